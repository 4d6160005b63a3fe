"""content_calendar without a bot: the festival year, the `when` language, entry validation, the CLI."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plugins.content_calendar.cli import register
from plugins.content_calendar.config import ContentCalendarConfig
from plugins.content_calendar.entries import Checker, compile_entry, parse_calendar, template_fields
from plugins.content_calendar.festivals import FestivalCalendar, FestivalError
from plugins.content_calendar.jobs import agenda
from plugins.content_calendar.when import WhenError, parse_when

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 15, 6, 40, tzinfo=SH)  # a Wednesday afternoon


@pytest.fixture
def fc() -> FestivalCalendar:
    return FestivalCalendar()


def slots(when: str, fc: FestivalCalendar, n: int = 3, tz: ZoneInfo = SH, after: datetime = NOW,
          peak: time = time(20)) -> list[str]:
    w = parse_when(when, fc)
    out = []
    for occ in w.iter_from(after, tz, fc, peak=peak, morning=time(8)):
        out.append(occ.slot)
        if len(out) == n:
            break
    return out


def checker(fc: FestivalCalendar, **kw: Any) -> Checker:
    base: dict[str, Any] = dict(festivals=fc, known_tags=frozenset({"marketing", "knowledge", "greeting"}),
                                chat_tags=frozenset({"fans"}), now=NOW.astimezone(UTC), default_tz=SH)
    base.update(kw)
    return Checker(**base)


# ---- festivals ------------------------------------------------------------------------------------
def test_lunar_festivals_next_year(fc: FestivalCalendar) -> None:
    assert fc.date_of(fc.lookup("中秋"), 2027) == date(2027, 9, 15)
    assert fc.date_of(fc.lookup("中秋节"), 2028) == date(2028, 10, 3)
    assert fc.date_of(fc.lookup("七夕"), 2027) == date(2027, 8, 8)
    assert fc.date_of(fc.lookup("春节"), 2027) == date(2027, 2, 6)
    assert fc.date_of(fc.lookup("除夕"), 2027) == date(2027, 2, 5)
    assert fc.date_of(fc.lookup("端午"), 2027) == date(2027, 6, 9)
    assert fc.date_of(fc.lookup("元宵"), 2027) == date(2027, 2, 20)
    assert fc.date_of(fc.lookup("腊八"), 2027) == date(2027, 1, 15)
    assert fc.date_of(fc.lookup("清明"), 2027) == date(2027, 4, 5)
    # Beyond the years the holidays library has announced: lunar conversion still answers.
    assert fc.date_of(fc.lookup("春节"), 2031) == date(2031, 1, 23)
    assert fc.date_of(fc.lookup("母亲节"), 2027) == date(2027, 5, 9)


def test_ecommerce_days_and_aliases(fc: FestivalCalendar) -> None:
    for name, day in (("双十一", (11, 11)), ("双11", (11, 11)), ("双１１", (11, 11)), ("双十二", (12, 12)),
                      ("520", (5, 20)), ("618", (6, 18))):
        f = fc.lookup(name)
        assert f is not None, name
        assert fc.date_of(f, 2027) == date(2027, *day)
    assert fc.lookup("不存在的节") is None
    assert fc.next_after(date(2026, 11, 18))[1] == date(2026, 12, 12)


def test_extra_festivals_from_config() -> None:
    fc = FestivalCalendar({"品牌日": "09-09", "会员日": "农历03-03", "周年庆": "2027-03-15"})
    assert fc.date_of(fc.lookup("品牌日"), 2027) == date(2027, 9, 9)
    assert fc.date_of(fc.lookup("会员日"), 2027) == date(2027, 4, 9)
    assert fc.date_of(fc.lookup("周年庆"), 2027) == date(2027, 3, 15)
    assert fc.date_of(fc.lookup("周年庆"), 2028) is None
    with pytest.raises(FestivalError):
        FestivalCalendar({"坏日子": "02-30"})
    with pytest.raises(FestivalError):
        FestivalCalendar({"坏格式": "next tuesday"})
    with pytest.raises(ValueError):
        ContentCalendarConfig(festivals={"x": "13-01"})


def test_official_workdays_and_days_off(fc: FestivalCalendar) -> None:
    assert fc.is_workday(date(2026, 2, 14))  # a 调休 Saturday is a working day
    assert not fc.is_workday(date(2026, 10, 1))
    assert fc.is_day_off(date(2026, 10, 6))  # 调休 rest day
    assert not fc.is_day_off(date(2026, 11, 21))  # an ordinary Saturday


# ---- the when language ----------------------------------------------------------------------------
def test_recurring_forms(fc: FestivalCalendar) -> None:
    assert slots("每天 20:00", fc) == ["2026-11-18T20:00", "2026-11-19T20:00", "2026-11-20T20:00"]
    assert slots("每周一 09:00", fc) == ["2026-11-23T09:00", "2026-11-30T09:00", "2026-12-07T09:00"]
    assert slots("每周一三五 8点半", fc) == ["2026-11-20T08:30", "2026-11-23T08:30", "2026-11-25T08:30"]
    assert slots("每月1日 10:00", fc) == ["2026-12-01T10:00", "2027-01-01T10:00", "2027-02-01T10:00"]
    assert slots("每月最后一天 21:00", fc, 2) == ["2026-11-30T21:00", "2026-12-31T21:00"]
    assert slots("每年2月29日 10:00", fc, 2) == ["2028-02-29T10:00", "2032-02-29T10:00"]
    assert slots("周末 10:00", fc, 2) == ["2026-11-21T10:00", "2026-11-22T10:00"]
    # cron with standard crontab meaning (1 = Monday, not APScheduler 3's Tuesday)
    assert slots("0 9 * * 1", fc, 2) == ["2026-11-23T09:00", "2026-11-30T09:00"]
    assert slots("30 20 * * 0,6", fc, 2) == ["2026-11-21T20:30", "2026-11-22T20:30"]
    assert slots("cron: */20 15 * * *", fc, 2) == ["2026-11-18T15:20", "2026-11-18T15:40"]


def test_workdays_follow_the_official_calendar(fc: FestivalCalendar) -> None:
    before_national_day = datetime(2026, 9, 30, 12, 0, tzinfo=SH)
    # 10-01..10-07 off, 10-10 (Saturday) is a make-up working day.
    assert slots("工作日 09:00", fc, 2, after=before_national_day) == ["2026-10-08T09:00", "2026-10-09T09:00"]
    assert slots("工作日 09:00", fc, 3, after=before_national_day)[2] == "2026-10-10T09:00"
    assert slots("weekdays 09:00", fc, 1, after=before_national_day) == ["2026-10-01T09:00"]


def test_holiday_driven_and_lunar_next_year(fc: FestivalCalendar) -> None:
    w = parse_when("中秋 09:00", fc)
    occ = w.next_after(NOW, SH, fc, peak=time(20), morning=time(8))
    assert occ is not None and occ.local == datetime(2027, 9, 15, 9, 0, tzinfo=SH)
    assert occ.festival is not None and occ.festival.key == "中秋"
    assert slots("七夕 20:00", fc, 1) == ["2027-08-08T20:00"]
    assert slots("春节前1天 10:00", fc, 1) == ["2027-02-05T10:00"]
    assert slots("中秋当天 早上", fc, 1) == ["2027-09-15T08:00"]
    assert slots("节假日 10:00", fc, 3) == ["2027-01-01T10:00", "2027-02-05T10:00", "2027-02-06T10:00"]


def test_double_eleven_countdown(fc: FestivalCalendar) -> None:
    w = parse_when("双十一倒计时3天 20:00", fc)
    occs = w.between(NOW, NOW + timedelta(days=400), SH, fc, peak=time(20), morning=time(8))
    assert [(o.slot, o.days_to) for o in occs] == [
        ("2027-11-08T20:00", 3), ("2027-11-09T20:00", 2), ("2027-11-10T20:00", 1)]
    # Half-way through a countdown only the remaining days are left.
    mid = datetime(2027, 11, 9, 21, 0, tzinfo=SH)
    assert [o.days_to for o in w.between(mid, mid + timedelta(days=5), SH, fc, peak=time(20), morning=time(8))] == [1]
    assert slots("双11前3天 20:00", fc, 1) == ["2027-11-08T20:00"]


def test_times_are_in_the_chats_timezone(fc: FestivalCalendar) -> None:
    w = parse_when("每天 09:00", fc)
    sh = w.next_after(NOW, SH, fc, peak=time(20), morning=time(8))
    ny = w.next_after(NOW, NY, fc, peak=time(20), morning=time(8))
    assert sh is not None and ny is not None
    assert sh.local.astimezone(UTC) == datetime(2026, 11, 19, 1, 0, tzinfo=UTC)
    assert ny.local.astimezone(UTC) == datetime(2026, 11, 18, 14, 0, tzinfo=UTC)  # 09:00 EST


def test_peak_slots_are_per_day(fc: FestivalCalendar) -> None:
    w = parse_when("每天 peak", fc)
    occ = w.next_after(NOW, SH, fc, peak=time(21), morning=time(8))
    assert occ is not None and occ.slot == "2026-11-18Tpeak" and occ.local.hour == 21
    assert w.contains("2026-11-19Tpeak", SH, fc, morning=time(8)) is not None
    assert parse_when("每周一 09:00", fc).contains("2026-11-24T09:00", SH, fc, morning=time(8)) is None


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("2月30日 20:00", "日期不存在"),
        ("每年2月30日 20:00", "日期不存在"),
        ("2026-02-30 20:00", "日期不存在"),
        ("每月32日 10:00", "1-31"),
        ("61 * * * *", "cron"),
        ("0 9 * * 8", "cron"),
        ("cron: 0 9 * *", "cron"),
        ("每天 24:00", "无效的时间"),
        ("每天", "时间"),
        ("光棍年节 20:00", "不认识的节日"),
        ("双十一前100天 20:00", "天数"),
        ("每周八 10:00", "星期"),
        ("12月12日 20:00", "年份"),
    ],
)
def test_bad_when_strings(when: str, fragment: str, fc: FestivalCalendar) -> None:
    with pytest.raises(WhenError) as info:
        parse_when(when, fc)
    assert fragment in str(info.value)


# ---- entries and templates ------------------------------------------------------------------------
def test_template_variables_are_checked() -> None:
    names, problems = template_fields("今天{date}{weekday}，距{next_festival}还有{days_to_next_festival}天")
    assert names == {"date", "weekday", "next_festival", "days_to_next_festival"} and problems == []
    _, problems = template_fields("{nope}")
    assert problems and "nope" in problems[0][1]["name"]
    _, problems = template_fields("{date")
    assert problems
    _, problems = template_fields("{date.year}")
    assert problems
    _, problems = template_fields("literal {{braces}} ok")
    assert problems == []


def test_compile_collects_every_problem(fc: FestivalCalendar) -> None:
    raw = {"id": "bad one", "when": "2026-02-30 20:00", "text": "<b>{nope}", "tags": ["markting"],
           "chat_tags": ["nobody"], "buttons": [{"text": "shop", "url": "javascript:alert(1)"}],
           "delete_after_hours": 100}
    entry, problems = compile_entry(raw, checker(fc))
    assert entry is None
    text = "\n".join(p.text() for p in problems)
    for fragment in ("id 只能用", "日期不存在", "未知的模板变量", "未知的标签", "没有任何群带有标签 nobody", "按钮链接",
                     "delete_after_hours"):
        assert fragment in text, fragment


def test_html_is_checked_at_load(fc: FestivalCalendar) -> None:
    ok = {"id": "a", "when": "每天 20:00", "chats": [-1001], "text": "<b>{date}</b> <a href='https://x.cn'>店</a>"}
    assert compile_entry(ok, checker(fc))[0] is not None
    for text in ("<b>unclosed", "<div>x</div>", "a < b", "Tom & Jerry"):
        entry, problems = compile_entry({**ok, "text": text}, checker(fc))
        assert entry is None, text
        assert problems


def test_past_one_off_is_a_warning_in_files_and_an_error_in_chat(fc: FestivalCalendar) -> None:
    raw = {"id": "old", "when": "2026-11-01 20:00", "chats": [-1001], "text": "x"}
    entry, problems = compile_entry(raw, checker(fc))
    assert entry is not None and [p.level for p in problems] == ["warning"]
    entry, problems = compile_entry(raw, checker(fc, past_is_error=True))
    assert entry is None and "时间已经过去" in problems[0].text()


CALENDAR = """
[defaults]
chat_tags = ["fans"]

[[entry]]
id = "monday-knowledge"
when = "每周一 09:00"
tags = ["knowledge"]
text = "周一干货：{date} {weekday}"

[[entry]]
id = "d11"
when = "双十一倒计时3天 20:00"
tags = ["marketing"]
pin = true
text = "距{festival}还有{days_to_festival}天"
buttons = [[{ text = "去逛逛", url = "https://shop.example.com" }]]

[[entry]]
id = "monday-knowledge"
when = "每天 20:00"
text = "dup"

[[entry]]
id = "broken"
when = "乱节 20:00"
text = "{oops}"
"""


def test_calendar_file_reports_every_problem(fc: FestivalCalendar) -> None:
    result = parse_calendar(CALENDAR, checker(fc))
    assert [e.key for e in result.entries] == ["monday-knowledge", "d11"]
    text = "\n".join(p.entry + ": " + p.text() for p in result.errors)
    assert "重复的 id" in text and "monday-knowledge (#3)" in text
    assert "broken (#4): 不认识的节日：乱节" in text
    assert "未知的模板变量 {oops}" in text
    assert not result.ok
    d11 = result.entries[1]
    assert d11.chat_tags == ("fans",) and d11.pin and d11.buttons == ((("去逛逛", "https://shop.example.com"),),)
    bad = parse_calendar("this is = = not toml", checker(fc))
    assert not bad.ok and "TOML" in bad.errors[0].text()
    unknown_key = parse_calendar('[[entry]]\nid = "x"\nwhen = "每天 20:00"\ntext = "x"\nchats = [1]\ncolour = "red"\n',
                                 checker(fc))
    assert "未知的键：colour" in unknown_key.errors[0].text()


def test_agenda_is_pure_and_per_chat_timezone(fc: FestivalCalendar) -> None:
    result = parse_calendar('[[entry]]\nid = "n"\nwhen = "每天 09:00"\ntext = "x"\nchats = [-1, -2]\n', checker(fc))
    items = agenda(result.entries, NOW, NOW + timedelta(days=1), fc, chats_of=lambda e: list(e.chats),
                   tz_of=lambda c: NY if c == -2 else SH, peak_of=lambda c: (time(20), "default"), morning=time(8))
    assert [(i.chat_id, i.local.astimezone(UTC).hour) for i in items] == [(-2, 14), (-1, 1)]


# ---- CLI --------------------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", "-c")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def write_config(tmp_path: Path, calendar: Path | None = None) -> Path:
    cfg = tmp_path / "config.toml"
    cal = f'calendar_file = "{calendar}"\n' if calendar else ""
    cfg.write_text(
        '[bot]\ntimezone = "Asia/Shanghai"\n\n[plugins.content_calendar]\n' + cal
        + '\n[chats.-1001]\ntitle = "粉丝福利群"\ntags = ["fans"]\n\n[chats.-1002]\ntags = ["fans"]\n'
        'timezone = "America/New_York"\n',
        encoding="utf-8",
    )
    return cfg


def test_cli_validate_reports_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cal = tmp_path / "calendar.toml"
    cal.write_text(CALENDAR, encoding="utf-8")
    cfg = write_config(tmp_path)
    assert run_cli(["--config", str(cfg), "calendar", "validate", str(cal)]) == 1
    out = capsys.readouterr().out
    assert "重复的 id" in out and "不认识的节日" in out and "FAILED" in out and "3 error(s)" in out


def test_cli_validate_ok_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cal = tmp_path / "calendar.toml"
    cal.write_text(
        '[[entry]]\nid = "night"\nwhen = "每天 21:00"\nchat_tags = ["fans"]\ntext = "晚安 {date}"\n\n'
        '[[entry]]\nid = "only-sh"\nwhen = "每天 peak"\nchats = [-1001]\ntext = "高峰"\n',
        encoding="utf-8",
    )
    cfg = write_config(tmp_path, cal)
    assert run_cli(["--config", str(cfg), "calendar", "validate", str(cal)]) == 0
    assert "OK: 2 valid entries, 0 error(s)" in capsys.readouterr().out
    assert run_cli(["--config", str(cfg), "calendar", "show", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("night") == 6  # 3 days x 2 chats (one of them in New York time)
    assert out.count("only-sh") == 3 and "peak" in out
    assert "粉丝福利群" in out
    assert run_cli(["--config", str(cfg), "calendar", "show", "--days", "2", "--chat", "-1002"]) == 0
    out = capsys.readouterr().out
    assert "chat -1002" in out and "chat -1001" not in out and "EST" in out


def test_cli_through_qunbot_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    cal = tmp_path / "calendar.toml"
    cal.write_text('[[entry]]\nid = "x"\nwhen = "2026-02-30 20:00"\nchats = [-1001]\ntext = "x"\n', encoding="utf-8")
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "calendar", "validate", str(cal)]) == 1
    assert "日期不存在" in capsys.readouterr().out


# ---- translations -----------------------------------------------------------------------------------
def _msgids() -> set[str]:
    """zh_CN strings the plugin hands to gettext (directly, or as problem/notice msgids)."""
    import ast
    import re

    cjk = re.compile(r"[\u4e00-\u9fff]")
    callers = {"_", "N_", "WhenError", "bad", "Problem", "gettext", "_notify", "ValueError", "append", "UsageError"}
    found: set[str] = set()
    for path in Path("plugins/content_calendar").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in callers:
                continue
            args = list(node.args)
            if name == "append" and args and isinstance(args[0], ast.Tuple | ast.Call):
                args = list(args[0].elts) if isinstance(args[0], ast.Tuple) else list(args[0].args)
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and cjk.search(arg.value):
                    found.add(arg.value)
    return found


def test_every_user_facing_string_has_an_english_translation() -> None:
    from bot.i18n import parse_po
    from plugins.content_calendar.festivals import BUILTIN
    from plugins.content_calendar.jobs import WEEKDAYS

    catalog = parse_po(Path("plugins/content_calendar/locales/en.po").read_text(encoding="utf-8"))
    wanted = _msgids() | set(WEEKDAYS) | {f.name for f in BUILTIN if not f.name.isdigit()}
    wanted -= {"时间已经过去"}  # a prefix test, not a message
    assert len(wanted) > 100
    missing = sorted(m for m in wanted if m not in catalog)
    assert missing == []
    for msgid, text in catalog.items():  # placeholders survive translation
        assert set(re.findall(r"\{\w*\}", msgid)) == set(re.findall(r"\{\w*\}", text)), msgid


def test_example_calendar_file_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[bot]\ntimezone = "Asia/Shanghai"\n\n[chats.-1001234567890]\ntags = ["fans"]\n', encoding="utf-8")
    example = "plugins/content_calendar/calendar.example.toml"
    assert run_cli(["--config", str(cfg), "calendar", "validate", example]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_config_example_lists_every_key_with_its_default() -> None:
    import tomllib

    data = tomllib.loads(Path("plugins/content_calendar/config.example.toml").read_text(encoding="utf-8"))
    table = data["plugins"]["content_calendar"]
    assert set(table) == set(ContentCalendarConfig.model_fields)
    assert ContentCalendarConfig.model_validate(table) == ContentCalendarConfig()
