"""Welcome plugin logic without Telegram: templates, HTML check, challenges, config, captcha state."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import session_factory
from bot.shared import MemoryShared
from plugins.welcome import service
from plugins.welcome.config import CaptchaQuestion, WelcomeConfig
from plugins.welcome.models import FAILING, KICKED, LEFT, PASSED, PASSING, PENDING
from plugins.welcome.service import Batch, Challenge, Joiner, WelcomeRuntime
from plugins.welcome.state import WelcomeState
from tests.dbutil import db_url, engine_with_schema  # noqa: F401

NOW = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)


# ---- templates -----------------------------------------------------------------------------------


def test_unknown_variables_are_reported_once_in_order() -> None:
    text = "欢迎 {name}{nmae} 来 {title}，{nmae} {name.__class__} {} {count}{rules}{mention}"
    assert service.unknown_variables(text) == ["nmae", "name.__class__", ""]
    assert service.unknown_variables("欢迎 {mention} 加入 {title}，现有 {count} 人。{rules}") == []
    assert service.unknown_variables("lone { brace and } close") == [" brace and "]
    assert service.unknown_variables("only { one") == []


def test_unknown_variables_reject_braced_words_only() -> None:
    assert service.unknown_variables("{ name }") == [" name "]
    assert service.unknown_variables("no braces at all") == []
    assert service.unknown_variables("emoji {😀}") == ["😀"]


def test_render_replaces_known_and_keeps_the_rest() -> None:
    values = {"name": "小红", "mention": "<a>小红</a>", "title": "群", "count": "3", "rules": "R"}
    assert service.render("{name}|{mention}|{title}|{count}|{rules}", values) == "小红|<a>小红</a>|群|3|R"
    assert service.render("{x} {{name}} {", values) == "{x} {小红} {"
    # a value that looks like a variable is not expanded again
    assert service.render("{name}", {**values, "name": "{rules}"}) == "{rules}"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<b>粗体</b> 和 <i>斜体</i>", True),
        ('<a href="https://example.com">链接</a>', True),
        ('<span class="tg-spoiler">剧透</span><tg-spoiler>x</tg-spoiler>', True),
        ("a &amp; b &lt;3 &#128512;", True),
        ("<b>未闭合", False),
        ("<b><i>交叉</b></i>", False),
        ("1 < 2", False),
        ("a & b", False),
        ("<script>alert(1)</script>", False),
        ('<span class="red">x</span>', False),
        ('<b onclick="x">x</b>', False),
        ("<br/>", False),
        ("纯文本", True),
    ],
)
def test_is_telegram_html(text: str, ok: bool) -> None:
    assert service.is_telegram_html(text) is ok


def test_as_html_keeps_markup_or_escapes() -> None:
    assert service.as_html("<b>群规</b>") == "<b>群规</b>"
    assert service.as_html("1 < 2 & <b>") == "1 &lt; 2 &amp; &lt;b&gt;"


# ---- challenges ------------------------------------------------------------------------------------


def test_math_challenges_are_solvable_with_four_distinct_options() -> None:
    rng = random.Random(7)
    for _ in range(500):
        c = service.math_challenge(rng)
        a, op, b, _eq, _q = c.question.split()
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "×": int(a) * int(b)}[op]
        assert c.options[c.answer] == str(expected)
        assert len(set(c.options)) == 4 and all(int(o) >= 0 for o in c.options)


def test_question_challenge_points_at_the_right_option() -> None:
    q = CaptchaQuestion(question="品牌？", options=["A", " B ", "C"], answer="B")
    seen = set()
    rng = random.Random(1)
    for _ in range(50):
        c = service.question_challenge(rng, [q])
        assert c.options[c.answer] == "B" and sorted(c.options) == ["A", "B", "C"]
        seen.add(c.options)
    assert len(seen) > 1  # shuffled


def test_challenge_round_trip_and_bad_payloads() -> None:
    c = Challenge("math", "1 + 1 = ?", ("2", "3", "4", "5"), 0)
    assert Challenge.from_dict(c.to_dict()) == c
    for bad in ({"options": []}, {"options": ["a"], "answer": 3}, {"options": ["a"], "answer": -1}):
        with pytest.raises(ValueError):
            Challenge.from_dict(bad)


@pytest.mark.parametrize(
    "data",
    [None, "", "wlc:", "wlc:abc:1", "wlc:0123456789", "wlc:0123456789:x", "wlc:0123456789:123",
     "wlc:0123456789:1:2", "cfg:t:1", "wlc:0123456789:-1", "WLC:0123456789:1", "wlc:012345678g:1"],
)
def test_parse_callback_refuses_garbage(data: str | None) -> None:
    assert service.parse_callback(data) is None


def test_parse_callback_round_trip() -> None:
    assert service.parse_callback(service.callback_data("0123456789", 3)) == ("0123456789", 3)


# ---- config ------------------------------------------------------------------------------------------


def test_config_defaults_match_the_contract() -> None:
    cfg = WelcomeConfig()
    assert cfg.captcha == "button" and cfg.captcha_timeout == 120 and cfg.raid_window == 5
    assert cfg.greet and cfg.skip_bots and cfg.captcha_kick


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="captcha_questions"):
        WelcomeConfig(captcha="question")
    with pytest.raises(ValidationError):
        WelcomeConfig(captcha="emoji")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        WelcomeConfig(captcha_timeout=5)
    with pytest.raises(ValidationError):
        WelcomeConfig(unknown_key=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="not one of the options"):
        CaptchaQuestion(question="q", options=["a", "b"], answer="c")
    with pytest.raises(ValidationError, match="distinct"):
        CaptchaQuestion(question="q", options=["a", "a"], answer="a")
    ok = WelcomeConfig(captcha="question", captcha_questions=[{"question": "q", "options": ["a", "b"], "answer": "b"}])
    assert ok.captcha_questions[0].answer == "b"


# ---- runtime -----------------------------------------------------------------------------------------


def test_batch_payload_round_trip() -> None:
    batch = Batch(key="welcome.greet:-1:0123456789", token="0123456789", due=NOW,
                  challenge=Challenge("button", "", ("ok",), 0), title="群",
                  members=[Joiner(1, "a", True), Joiner(2, "b", False)])
    again = Batch.from_payload(batch.key, NOW, batch.payload())
    assert again == batch
    with pytest.raises(ValueError):
        Batch.from_payload(batch.key, NOW, {**batch.payload(), "token": "../../x"})


def test_runtime_tokens() -> None:
    rt = WelcomeRuntime(random.Random(3))
    token = rt.new_token()
    assert len(token) == 10 and service.parse_callback(service.callback_data(token, 0)) == (token, 0)
    assert rt.new_token() != token


async def test_state_batch_member_and_flushed_keys() -> None:
    shared = MemoryShared()
    state = WelcomeState(shared)
    batch = Batch(key="welcome.greet:-1:0123456789", token="0123456789", due=NOW + timedelta(seconds=5),
                  challenge=Challenge("math", "1 + 1 = ?", ("2", "3"), 0), title="群",
                  members=[Joiner(1, "a", True), Joiner(2, "b", False)])
    assert await state.batch(-1) is None
    await state.save_batch(-1, batch, NOW)
    assert await state.batch(-1) == batch and await state.batch(-2) is None
    assert await state.drop_member(-1, 1, NOW) and not await state.drop_member(-1, 1, NOW)
    assert [m.user_id for m in (await state.batch(-1)).members] == [2]  # type: ignore[union-attr]
    assert await state.take_batch(-1, "other") is None and await state.batch(-1) is not None
    assert (await state.take_batch(-1, batch.key)).token == batch.token  # type: ignore[union-attr]
    assert await state.batch(-1) is None
    assert not await state.was_flushed(batch.key)
    await state.mark_flushed(batch.key)
    assert await state.was_flushed(batch.key)


async def test_state_treats_garbled_values_as_absent() -> None:
    shared = MemoryShared()
    state = WelcomeState(shared)
    for key, value in (("welcome:batch:-1", "{not json"), ("welcome:greeted:-1", "soon"),
                       ("welcome:raid:-1", "nan"), ("welcome:perms:-1", '{"at": "x"}')):
        await shared.set(key, value, 60)
    assert await state.batch(-1) is None
    assert await state.last_greeting(-1) is None
    assert await state.raid_until(-1) == 0.0
    assert await state.permissions(-1, 0.0, 300) is None
    await state.set_raid(-1, float("inf"), 0.0)
    assert await state.raid_until(-1) == float("inf")
    await state.clear_raid(-1)
    assert await state.raid_until(-1) == 0.0
    await state.save_permissions(-1, {"can_send_messages": True}, 100.0, 300)
    assert await state.permissions(-1, 399.0, 300) == {"can_send_messages": True}
    assert await state.permissions(-1, 400.0, 300) is None  # older than max_age on the App's clock


# ---- captcha state (SQLite, and PostgreSQL when reachable) ------------------------------------------


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:  # noqa: F811
    import plugins.welcome.models  # noqa: F401

    eng = await engine_with_schema(db_url)
    yield eng
    await eng.dispose()


async def test_captcha_lifecycle(engine: AsyncEngine) -> None:
    db = session_factory(engine)
    deadline = NOW + timedelta(seconds=120)
    async with db() as s, s.begin():
        assert await service.open_captcha(s, -1, 7, token="aaaaaaaaaa", mode="math", answer="2/4", deadline=deadline,
                                          now=NOW)
        # one open captcha per member: a repeat is refused
        assert not await service.open_captcha(s, -1, 7, token="bbbbbbbbbb", mode="button", answer="0/1",
                                              deadline=deadline, now=NOW)
        assert await service.open_captcha(s, -1, 8, token="aaaaaaaaaa", mode="math", answer="2/4", deadline=deadline,
                                          now=NOW)
        assert await service.open_captcha(s, -2, 7, token="cccccccccc", mode="math", answer="2/4", deadline=deadline,
                                          now=NOW)
    async with db() as s, s.begin():
        assert await service.add_attempt(s, -1, 7, "aaaaaaaaaa") == 1
        assert await service.add_attempt(s, -1, 7, "aaaaaaaaaa") == 2
        assert await service.add_attempt(s, -1, 7, "zzzzzzzzzz") == 0
        await service.attach_message(s, -1, "aaaaaaaaaa", 55, "<b>hi</b>", NOW)
        await service.extend_deadlines(s, -1, "aaaaaaaaaa", deadline + timedelta(seconds=30))
    async with db() as s, s.begin():
        row = await service.get_captcha(s, -1, 7)
        assert row is not None and row.message_id == 55 and row.answer == "2/4" and row.attempts == 2
        assert row.deadline == deadline + timedelta(seconds=30)
        # claims are exclusive: an answer and the timeout cannot both act
        assert await service.claim(s, -1, 7, "aaaaaaaaaa", (PENDING,), PASSING)
        assert not await service.claim(s, -1, 7, "aaaaaaaaaa", (PENDING, FAILING), FAILING)
        assert not await service.claim(s, -1, 7, "wrongtoken", (PASSING,), PASSING)
        await service.finish(s, -1, 7, "aaaaaaaaaa", PASSED, NOW)
        # 8 still open: the message stays
        assert await service.close_prompt(s, -1, "aaaaaaaaaa", NOW) is None
        assert await service.claim(s, -1, 8, "aaaaaaaaaa", (PENDING,), FAILING)
        await service.finish(s, -1, 8, "aaaaaaaaaa", KICKED, NOW)
        closed = await service.close_prompt(s, -1, "aaaaaaaaaa", NOW)
        assert closed is not None and closed[0].message_id == 55 and closed[1] is True
        assert await service.close_prompt(s, -1, "aaaaaaaaaa", NOW) is None  # only once
    async with db() as s, s.begin():
        # a finished captcha makes room for a new one (a rejoin)
        assert await service.open_captcha(s, -1, 7, token="dddddddddd", mode="button", answer="0/1",
                                          deadline=deadline, now=NOW)
        assert await service.claim(s, -1, 7, "dddddddddd", (PENDING,), LEFT)
        assert await service.open_members(s, -1, "dddddddddd") == []
        assert await service.open_members(s, -2, "cccccccccc") == [7]


def test_config_example_lists_every_key_with_its_default() -> None:
    import tomllib
    from pathlib import Path

    import plugins.welcome

    path = Path(plugins.welcome.__file__).parent / "config.example.toml"
    table = tomllib.loads(path.read_text(encoding="utf-8"))["plugins"]["welcome"]
    assert set(table) == set(WelcomeConfig.model_fields)
    assert WelcomeConfig.model_validate(table) == WelcomeConfig()
