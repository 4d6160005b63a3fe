"""Webhook mode with one worker (SQLite): secret token, bad bodies, group commit, the emulator's push mode."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.emulator.http import EmulatorServer
from bot.models import ProcessedUpdate
from bot.plugin import Plugin
from tests.harness import ALICE, BOB, CAROL, GROUP, OTHER_GROUP, TOKEN
from tests.scale.support import COUNTER_PLUGIN, ROOT, Worker, answered, counts, free_port, wait_for, worker_config


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


async def start_worker(tmp_path: Path, emulator: EmulatorServer, **kwargs: Any) -> Worker:
    port = kwargs.pop("port", 0)
    extra = kwargs.pop("extra", None)
    cfg = worker_config(sqlite_url(tmp_path), emulator.base_url, port=port, extra=extra)
    kwargs.setdefault("plugin_objects", {"scalecount": COUNTER_PLUGIN})
    return await Worker(emulator.base_url, cfg, reuse_port=False, **kwargs).start(schema=True)


async def post(url: str, body: bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def processed(worker: Worker) -> set[int]:
    async with worker.app.db() as s:
        return set((await s.scalars(select(ProcessedUpdate.update_id))).all())


def message_update(world: Any, update_id: int, chat_id: int, user_id: int, text: str) -> dict[str, Any]:
    """A well-formed update as Telegram would POST it (the message exists in the world)."""
    msg = world.send_message(chat_id, user_id, text)
    # The world queued it too; this test posts by hand, so it is dropped from the queue.
    world._updates.clear()
    return {"update_id": update_id, "message": msg}


async def test_secret_token_and_bad_bodies(tmp_path: Path, emulator: EmulatorServer) -> None:
    world = emulator.world
    worker = await start_worker(tmp_path, emulator)
    try:
        update = message_update(world, 500, GROUP, ALICE, "/id")
        body = json.dumps(update).encode()
        world.clear_calls()

        assert await post(worker.url, body, None) == 401
        assert await post(worker.url, body, "wrong-token") == 401
        assert await post(worker.url, body, worker.secret + "x") == 401
        await asyncio.sleep(0.1)
        assert world.calls_of("sendMessage") == []
        assert 500 not in await processed(worker)
        assert not worker.app.updates.seen(500)

        assert await post(worker.url, b"{not json", worker.secret) == 400
        assert await post(worker.url, b"\xff\xfe", worker.secret) == 400
        assert await post(worker.url, b"[1, 2]", worker.secret) == 400
        assert await post(worker.url, b'{"message": {}}', worker.secret) == 400
        assert await post(worker.url, b'{"update_id": true}', worker.secret) == 400
        # Valid JSON that is not a valid Update: skipped (200) like the polling loop does, never retried.
        assert await post(worker.url, b'{"update_id": 501, "message": {"oops": 1}}', worker.secret) == 200
        assert world.calls_of("sendMessage") == []
        assert worker.server.stats["unauthorized"] == 3 and worker.server.stats["bad_request"] == 5

        assert await post(worker.url, body, worker.secret) == 200
        # 200 means committed: the processed id is in the database when the answer arrives.
        assert 500 in await processed(worker)
        await worker.app.sender.drain(5)
        assert len(world.calls_of("sendMessage")) == 1
        # A redelivery is answered 200 and changes nothing.
        assert await post(worker.url, body, worker.secret) == 200
        await worker.app.sender.drain(5)
        assert len(world.calls_of("sendMessage")) == 1
        assert (await counts(worker.app)) == {GROUP: 1}
        # Another path is not the webhook.
        assert await post(worker.url.replace("/tg", "/other"), body, worker.secret) in (404, 405)
    finally:
        await worker.stop()


async def test_push_mode_end_to_end_in_order_and_exactly_once(tmp_path: Path, emulator: EmulatorServer) -> None:
    world = emulator.world
    worker = await start_worker(tmp_path, emulator)
    try:
        assert await worker.app.bot.set_webhook(worker.url, secret_token=worker.secret, max_connections=10)
        sent: dict[int, list[int]] = {GROUP: [], OTHER_GROUP: []}
        for i in range(40):
            chat = GROUP if i % 3 else OTHER_GROUP
            sent[chat].append(world.send_message(chat, (ALICE, BOB, CAROL)[i % 3], "/id")["message_id"])
        await world.wait_until_consumed(30)
        await worker.app.sender.drain(10)
        for chat, ids in sent.items():
            assert answered(world, chat) == ids  # every message answered once, in order
        assert await counts(worker.app) == {GROUP: len(sent[GROUP]), OTHER_GROUP: len(sent[OTHER_GROUP])}
        # Group commit: far fewer transactions than updates.
        assert worker.server.commit.flushes < 40
        info = await worker.app.bot.get_webhook_info()
        assert info.url == worker.url and info.pending_update_count == 0
        with pytest.raises(Exception, match="webhook is active"):
            await worker.app.bot.get_updates(timeout=0)

        # Telegram redelivers an update (a lost 200): applied once.
        first = next(u for u in world.all_updates if "message" in u)
        world.push_update(first)
        await world.wait_until_consumed(10)
        await worker.app.sender.drain(5)
        assert answered(world, first["message"]["chat"]["id"]).count(first["message"]["message_id"]) == 1
        assert worker.server.stats["accepted"] == 41
    finally:
        await worker.stop()


async def test_push_retries_until_the_worker_answers(tmp_path: Path, emulator: EmulatorServer) -> None:
    world = emulator.world
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg"
    settings_secret = "s3cret-Token_1"
    assert await world.call("setWebhook", url=url, secret_token=settings_secret)
    msg = world.send_message(GROUP, ALICE, "/id")
    await wait_for(lambda: len(world.webhook_deliveries) >= 2, 10, "failed deliveries")
    assert all(d["status"] is None for d in world.webhook_deliveries)
    info = await world.call("getWebhookInfo")
    assert info["pending_update_count"] == 1 and "Connection failed" in info["last_error_message"]

    worker = await start_worker(tmp_path, emulator, port=port)
    try:
        await world.wait_until_consumed(15)
        await worker.app.sender.drain(5)
        assert answered(world, GROUP) == [msg["message_id"]]
        assert world.webhook_deliveries[-1]["status"] == 200 and world.webhook_deliveries[-1]["attempt"] >= 2
    finally:
        await worker.stop()


async def test_failed_commit_answers_500_and_the_redelivery_is_applied_once(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    world = emulator.world
    failures = {"left": 2}

    async def flaky_flush(app: Any, session: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionResetError("database went away")

    flaky = Plugin(name="flaky", description="fails its first flushes", flush=flaky_flush)
    worker = await start_worker(tmp_path, emulator, plugin_objects={"scalecount": COUNTER_PLUGIN, "flaky": flaky})
    try:
        assert await worker.app.bot.set_webhook(worker.url, secret_token=worker.secret)
        ids = [world.send_message(GROUP, ALICE, "hello")["message_id"] for _ in range(3)]
        await world.wait_until_consumed(20)
        statuses = [d["status"] for d in world.webhook_deliveries]
        assert 500 in statuses and statuses.count(200) == 3
        # Every message counted exactly once although its first commit failed.
        assert await counts(worker.app) == {GROUP: len(ids)}
        assert {u["update_id"] for u in world.all_updates} <= await processed(worker)
    finally:
        await worker.stop()


async def test_installed_plugins_through_the_webhook(
    tmp_path: Path, emulator: EmulatorServer, shared_nlp: Any
) -> None:
    world = emulator.world
    worker = await start_worker(tmp_path, emulator, plugin_objects=None, nlp=shared_nlp,
                                extra={"plugins": {"moderation": {"enabled": False}}})
    try:
        assert await worker.app.bot.set_webhook(worker.url, secret_token=worker.secret)
        world.send_message(GROUP, ALICE, "签到")
        await world.wait_until_consumed(20)
        await worker.app.sender.drain(5)
        texts = world.sent_texts(GROUP)
        assert texts, "no check-in reply"
        replies = len(texts)
        checkin = next(u for u in world.all_updates if "message" in u)
        world.push_update(checkin)  # redelivered: no second check-in, no second reply
        await world.wait_until_consumed(10)
        await worker.app.sender.drain(5)
        assert len(world.sent_texts(GROUP)) == replies
    finally:
        await worker.stop()


async def test_webhook_cli_set_info_delete(tmp_path: Path, emulator: EmulatorServer) -> None:
    from bot.webhook import cmd_webhook, secret_for
    from tests.harness import make_settings

    world = emulator.world
    settings = make_settings(sqlite_url(tmp_path), {"webhook": {"url": "https://bot.example.com/tg"}},
                             api_server=emulator.base_url)
    world.webhook_push = "off"  # example.com is not ours to call

    class Args:
        webhook_command = "set"
        url = None

    assert await asyncio.to_thread(cmd_webhook, Args(), settings) == 0
    assert world.webhook["url"] == "https://bot.example.com/tg"
    assert world.webhook["secret_token"] == secret_for(settings)
    call = world.calls_of("setWebhook")[-1]
    assert call.params.get("drop_pending_updates") in (None, False)
    assert "chat_member" in call.params["allowed_updates"]
    Args.webhook_command = "info"
    assert await asyncio.to_thread(cmd_webhook, Args(), settings) == 0
    Args.webhook_command = "delete"
    assert await asyncio.to_thread(cmd_webhook, Args(), settings) == 0
    assert world.webhook["url"] == ""
    assert world.calls_of("deleteWebhook")[-1].params.get("drop_pending_updates") in (None, False)


@pytest.mark.slow
def test_several_workers_need_redis_and_postgres(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[telegram]\ntoken = "{TOKEN}"\n[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n',
                   encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
    out = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(cfg), "--webhook", "--workers", "2"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "[redis] url is not set" in out.stderr and "PostgreSQL" in out.stderr
    out = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(cfg), "--workers", "3"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--webhook" in out.stderr
