"""analytics: exports (/export, ``qunbot export``), /mydata, /forgetme, and the points pseudonym."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.models import PointsBalance, PointsEntry, User
from bot.services.events import CrisisChanged
from plugins.analytics import collector, export
from plugins.analytics.models import ChatDay, MemberDay
from tests.harness import ADMIN, ALICE, BOB, CREATOR, GROUP, OTHER_GROUP, Harness


def docs(h: Harness, chat: int) -> list[Any]:
    return [c for c in h.calls("sendDocument") if c.params["chat_id"] == chat]


def file_bytes(h: Harness, call: Any) -> bytes:
    data = h.world.files[call.result["document"]["file_id"]].data
    assert data is not None
    return data


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # a BOM, so Excel reads the Chinese names
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


async def busy(make_harness: Any) -> Harness:
    h: Harness = await make_harness(plugins=["analytics"])
    first = await h.say(GROUP, ALICE, "大家好")
    await h.say(GROUP, BOB, "你好呀", reply_to=first["message_id"])
    await h.say(GROUP, BOB, "在吗")
    await h.app.points.change(GROUP, ALICE, 30, "checkin", f"checkin:{GROUP}:{ALICE}:2026-11-18", note="day 1: 30")
    await h.app.points.change(GROUP, ALICE, 12, "activity", "act-1")
    await h.app.points.change(GROUP, BOB, 5, "checkin", "bob-1")
    return h


# ---- /export ---------------------------------------------------------------------------------------
async def test_export_in_group_goes_to_the_admins_private_chat(make_harness: Any) -> None:
    h = await busy(make_harness)
    await h.say(GROUP, ADMIN, "/export")
    assert h.last_text(GROUP).startswith("用法：")
    await h.say(GROUP, ALICE, "/export members")
    assert h.last_text(GROUP) == "只有该群的管理员可以导出它的数据。"
    await h.say(GROUP, ADMIN, "/export members")  # has not started the bot: cannot be DMed
    assert "请先私聊机器人发送 /start" in h.last_text(GROUP)
    assert not h.calls("sendDocument")
    await h.say(ADMIN, ADMIN, "/start")
    await h.say(GROUP, ADMIN, "/export members")
    assert h.last_text(GROUP) == "📤 已私信发送给你。"
    [doc] = docs(h, ADMIN)
    assert doc.result["document"]["file_name"] == f"members-{GROUP}-2026-11-18.csv"
    table = read_csv(file_bytes(h, doc))
    assert table[0] == export.MEMBER_COLUMNS
    by_id = {int(r[0]): dict(zip(table[0], r, strict=True)) for r in table[1:]}
    assert by_id[ALICE]["name"] == "Alice" and by_id[ALICE]["username"] == "alice"
    assert by_id[ALICE]["lifecycle"] == "active" and by_id[ALICE]["points_balance"] == "42"
    assert by_id[BOB]["messages_30d"] == "2" and by_id[ALICE]["replies_received_30d"] == "1"
    assert not docs(h, GROUP)  # nothing personal posted in the group


async def test_export_from_a_private_chat_checks_the_admin(make_harness: Any) -> None:
    h = await busy(make_harness)
    await h.say(ALICE, ALICE, f"/export daily {GROUP}")
    assert h.last_text(ALICE) == "只有该群的管理员可以导出它的数据。"
    await h.say(ALICE, ALICE, "/export daily")
    assert "请在群里发送，或在私聊里写上群 ID" in h.last_text(ALICE)
    await h.say(ADMIN, ADMIN, "/export daily -100abc")
    assert "群 ID 是一串数字" in h.last_text(ADMIN)
    await h.say(ADMIN, ADMIN, f"/export daily {GROUP}")
    [doc] = docs(h, ADMIN)
    table = read_csv(file_bytes(h, doc))
    assert table[0] == export.DAILY_COLUMNS
    assert len(table) == 2 and table[1][0] == "2026-11-18"
    row = dict(zip(table[0], table[1], strict=True))
    assert (row["messages"], row["active_members"], row["replies"]) == ("3", "2", "1")
    await h.say(ADMIN, ADMIN, f"/export ledger {GROUP}")
    ledger = read_csv(file_bytes(h, docs(h, ADMIN)[-1]))
    assert ledger[0] == export.LEDGER_COLUMNS and [r[3] for r in ledger[1:]] == ["30", "12", "5"]


async def test_export_incidents_with_and_without_the_crisis_table(make_harness: Any) -> None:
    h = await busy(make_harness)
    columns, rows = await export.rows_for(h.app, GROUP, "incidents")
    assert "peak_level" in columns and "members" not in columns and "evidence" not in columns and rows == []
    await collector.on_crisis(h.app, CrisisChanged(chat_id=GROUP, incident_id=4, level=2, old_level=None,
                                                   at=h.app.clock.now()))
    async with h.app.engine.begin() as conn:  # a minimal install: no crisis plugin, no table
        await conn.execute(text("DROP TABLE crisis_timeline"))
        await conn.execute(text("DROP TABLE crisis_incidents"))
    columns, rows = await export.rows_for(h.app, GROUP, "incidents")
    assert columns == export.OWN_INCIDENT_COLUMNS
    assert [(r["incident_id"], r["peak_level"]) for r in rows] == [(4, 2)]


async def test_cli_export(make_harness: Any, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    h = await busy(make_harness)

    def args(**kw: Any) -> argparse.Namespace:
        return argparse.Namespace(**{"chat": GROUP, "what": "daily", "format": "csv", "days": None, "out": "-", **kw})

    assert await export.run_cli(args(what="ledger", format="json"), h.app) == 0
    data = json.loads(capsysbinary.readouterr().out)
    assert [(e["user_id"], e["delta"], e["reason"]) for e in data] == [(ALICE, 30, "checkin"), (ALICE, 12, "activity"),
                                                                      (BOB, 5, "checkin")]
    out = tmp_path / "members.csv"
    assert await export.run_cli(args(what="members", out=str(out)), h.app) == 0
    assert read_csv(out.read_bytes())[0] == export.MEMBER_COLUMNS
    assert await export.run_cli(args(chat=-100777), h.app) == 1  # a chat we know nothing about
    assert b"no data for chat -100777" in capsysbinary.readouterr().err
    assert await export.run_cli(args(days=0), h.app) == 2


def test_cli_is_registered() -> None:
    from bot.cli import build_parser

    ns = build_parser().parse_args(["export", "--chat", "-1001", "--what", "members", "--format", "json"])
    assert (ns.chat, ns.what, ns.format, ns.func) == (-1001, "members", "json", export.cmd_export)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--chat", "-1001", "--what", "passwords"])


# ---- /mydata ---------------------------------------------------------------------------------------
async def test_mydata_by_deep_link_and_in_private(make_harness: Any) -> None:
    h = await busy(make_harness)
    await h.say(GROUP, ALICE, "/mydata")
    prompt = h.calls("sendMessage")[-1]
    assert "数据只私信发送" in prompt.params["text"]
    [[button]] = prompt.params["reply_markup"]["inline_keyboard"]
    assert button["url"] == "https://t.me/qunbot_bot?start=mydata"
    assert not h.calls("sendDocument")
    await h.say(ALICE, ALICE, "/start mydata")  # the deep link opens the private chat
    [doc] = docs(h, ALICE)
    data = json.loads(file_bytes(h, doc))
    assert data["user_id"] == ALICE and data["profile"]["username"] == "alice"
    assert [(d["chat_id"], d["messages"], d["replies_received"]) for d in data["daily_activity"]] == [(GROUP, 2, 1)]
    assert [e["delta"] for e in data["points_ledger"]] == [30, 12]
    assert {m["chat_id"] for m in data["memberships"]} == {GROUP}
    await h.say(GROUP, ALICE, "/mydata")  # now the bot may DM her
    assert h.last_text(GROUP) == "📬 你的数据已私信发送给你。" and len(docs(h, ALICE)) == 2
    await h.say(BOB, BOB, "/mydata")
    assert json.loads(file_bytes(h, docs(h, BOB)[-1]))["user_id"] == BOB


# ---- /forgetme -------------------------------------------------------------------------------------
async def test_forgetme_deletes_personal_data_and_keeps_aggregates(make_harness: Any) -> None:
    h = await busy(make_harness)
    await h.app.points.change(GROUP, BOB, 7, "admin_give", "give-1", actor_id=ALICE)
    await h.say(OTHER_GROUP, ALICE, "另一个群")
    async with h.app.db() as s:
        before = {(d.chat_id, d.day): d.messages for d in (await s.scalars(select(ChatDay))).all()}
    await h.say(GROUP, ALICE, "/forgetme")
    prompt = h.calls("sendMessage")[-1]
    assert "确定要删除你的个人数据吗" in prompt.params["text"]
    yes, _no = [b["callback_data"] for b in prompt.params["reply_markup"]["inline_keyboard"][0]]
    assert yes == f"an:fg:{ALICE}:y"
    await h.press(GROUP, BOB, prompt.result["message_id"], yes)  # someone else's button
    assert "这不是你的按钮" in h.calls("answerCallbackQuery")[-1].params["text"]
    async with h.app.db() as s:
        assert (await s.scalars(select(MemberDay).where(MemberDay.user_id == ALICE))).all()
    await h.press(GROUP, ALICE, prompt.result["message_id"], yes)
    assert "已删除你的个人数据" in h.calls("editMessageText")[-1].params["text"]
    async with h.app.db() as s:
        assert (await s.scalars(select(MemberDay).where(MemberDay.user_id == ALICE))).all() == []
        user = await s.get(User, ALICE)
        assert user is not None and (user.first_name, user.last_name, user.username) == ("", None, None)
        ledger = (await s.scalars(select(PointsEntry).order_by(PointsEntry.id))).all()
        after = {(d.chat_id, d.day): d.messages for d in (await s.scalars(select(ChatDay))).all()}
        pseudo = {e.user_id for e in ledger if e.user_id < 0}
        balances = {b.user_id: b.balance for b in (await s.scalars(select(PointsBalance))).all()}
    assert after == {k: v + (1 if k[0] == GROUP else 0) for k, v in before.items()}  # only /forgetme itself added
    assert ALICE not in {e.user_id for e in ledger} and len(pseudo) == 1
    [p] = pseudo
    alice_rows = [e for e in ledger if e.user_id == p]
    assert [e.delta for e in alice_rows] == [30, 12]
    assert all(e.reference == f"anon:{p}:{e.id}" and e.note is None for e in alice_rows)
    assert next(e for e in ledger if e.reference == "give-1").actor_id is None
    assert balances[p] == 42 and ALICE not in balances
    assert await h.app.points.balance(GROUP, ALICE) == 0 == await h.app.points.ledger_sum(GROUP, ALICE)
    assert await h.app.points.ledger_sum(GROUP, p) == 42  # the pool's totals are unchanged
    assert [u for u, _ in await h.app.points.leaderboard(GROUP)] == [BOB]  # pseudonyms are never on a board
    # Redelivered, the confirmation changes nothing more.
    h.world.push_update(next(u for u in reversed(h.world.all_updates) if "callback_query" in u))
    await h.deliver()
    async with h.app.db() as s:
        assert len({e.user_id for e in (await s.scalars(select(PointsEntry))).all() if e.user_id < 0}) == 1


async def test_forgetme_cancel_and_in_private(make_harness: Any) -> None:
    h = await busy(make_harness)
    await h.say(BOB, BOB, "/forgetme")
    prompt = h.calls("sendMessage")[-1]
    _yes, no = [b["callback_data"] for b in prompt.params["reply_markup"]["inline_keyboard"][0]]
    await h.press(BOB, BOB, prompt.result["message_id"], no)
    assert h.calls("editMessageText")[-1].params["text"] == "已取消，你的数据没有变化。"
    async with h.app.db() as s:
        assert (await s.scalars(select(MemberDay).where(MemberDay.user_id == BOB))).all()
    await h.say(BOB, BOB, "/forgetme")
    prompt = h.calls("sendMessage")[-1]
    yes, _no = [b["callback_data"] for b in prompt.params["reply_markup"]["inline_keyboard"][0]]
    await h.press(BOB, BOB, prompt.result["message_id"], yes)
    async with h.app.db() as s:
        assert (await s.scalars(select(MemberDay).where(MemberDay.user_id == BOB))).all() == []
    assert CREATOR  # the group's creator is untouched by all of this
