"""``qunbot sandbox``: type into an emulated group as a member and watch what the bot does.

The caller builds a world (``build_sandbox_world``), starts the HTTP emulator and the real bot against it
in the same event loop, then awaits :func:`run_sandbox`. Every Bot API call the bot makes is printed as
a readable line as it arrives; inline buttons are numbered so ``:press MSG_ID N`` can press them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from .world import ApiCall, World, WorldError

SANDBOX_TOKEN = "123456:SANDBOX-token"
SANDBOX_GROUP = -1001
SANDBOX_GROUP_2 = -1002
SANDBOX_OWNER = 111
SANDBOX_MEMBERS: tuple[tuple[int, str, str], ...] = (
    (201, "Alice", "alice"),
    (202, "Bob", "bob"),
    (203, "Carol", "carol"),
)
QUIET_METHODS = frozenset(
    {
        "getUpdates",
        "getMe",
        "deleteWebhook",
        "setWebhook",
        "getWebhookInfo",
        "getChatAdministrators",
        "getChatMember",
        "getChat",
        "getChatMemberCount",
        "setMyCommands",
        "getMyCommands",
        "deleteMyCommands",
        "sendChatAction",
        "getFile",
        "logOut",
        "close",
    }
)
HELP = """\
plain text          send it as the current member into the current chat
:as NAME            act as another member (username, first name or id)
:chat ID            switch chat (-1001, -1002, or "dm" for a private chat with the bot)
:join NAME [LINK]   NAME joins the current chat (optionally through an invite link)
:leave NAME         NAME leaves the current chat
:press MSG_ID N     press the Nth inline button under message MSG_ID
:reply MSG_ID TEXT  reply to a message
:vote MSG_ID N...   vote in the poll of message MSG_ID (options numbered from 1)
:start              the current member starts the bot in private
:clock +2m          advance the world clock (s, m, h, d)
:who                members of the current chat and their status
:log [N]            the last N Bot API calls, quiet ones included
:help               this text
:quit               leave the sandbox"""

InputFunc = Callable[[str], "str | Awaitable[str]"]
Output = Callable[[str], None] | TextIO


class SandboxClock:
    """Wall-clock time plus an offset the sandbox user can advance with ``:clock``."""

    def __init__(self, offset: float = 0.0, base: Callable[[], float] = time.time) -> None:
        self.offset = float(offset)
        self._base = base

    def __call__(self) -> float:
        return self._base() + self.offset

    def advance(self, seconds: float) -> float:
        self.offset += seconds
        return self()


def populate_sandbox(world: World) -> World:
    """Add the sandbox cast (idempotent): two groups, the owner 店长 and members alice, bob, carol."""
    if SANDBOX_OWNER not in world.users:
        world.add_user(SANDBOX_OWNER, "店长", "shop_owner")
    for user_id, name, username in SANDBOX_MEMBERS:
        if user_id not in world.users:
            world.add_user(user_id, name, username)
    for chat_id, title in ((SANDBOX_GROUP, "粉丝福利群"), (SANDBOX_GROUP_2, "粉丝二群")):
        if chat_id in world.chats:
            continue
        world.add_chat(chat_id, title)
        world.set_member(chat_id, SANDBOX_OWNER, "creator")
        for user_id, _, _ in SANDBOX_MEMBERS:
            world.set_member(chat_id, user_id, "member")
    world.user_starts_bot(SANDBOX_OWNER)
    return world


def build_sandbox_world(
    token: str = SANDBOX_TOKEN, clock: Callable[[], float] | None = None, bot_username: str = "qunbot_bot"
) -> World:
    return populate_sandbox(World(token=token, clock=clock or SandboxClock(), bot_username=bot_username))


def parse_duration(text: str) -> float:
    """'+2m' -> 120.0; units s, m, h, d (default seconds)."""
    match = re.fullmatch(r"\+?(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r}; try +30s, +2m, +1h, +1d")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _hhmm(world: World, timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp)
    now = dt.datetime.fromtimestamp(world.now())
    return moment.strftime("%H:%M" if moment.date() == now.date() else "%m-%d %H:%M")


def _who(world: World, user_id: Any) -> str:
    try:
        user = world.users.get(int(user_id))
    except (TypeError, ValueError):
        return str(user_id)
    if user is None:
        return str(user_id)
    return str(user.get("username") or user["first_name"])


def _chat_name(world: World, chat_id: Any) -> str:
    try:
        return world.chat_title(int(chat_id))
    except (TypeError, ValueError):
        return str(chat_id)


def _buttons(markup: Any) -> list[str]:
    if not isinstance(markup, dict):
        return []
    lines = []
    number = 0
    for row in markup.get("inline_keyboard", []):
        for button in row:
            number += 1
            action = f"(cb: {button['callback_data']})" if "callback_data" in button else ""
            if "url" in button:
                action = f"(url: {button['url']})"
            lines.append(f"      [{number}] {button.get('text', '')} {action}".rstrip())
    for row in markup.get("keyboard", []):
        for button in row:
            text = button.get("text", button) if isinstance(button, dict) else button
            lines.append(f"      [keyboard] {text}")
    return lines


def _shorten(text: str, limit: int = 300) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_call(world: World, call: ApiCall, verbose: bool = False) -> str | None:
    """One readable line (plus button lines) for a bot call; None for quiet calls unless verbose."""
    p = call.params
    method = call.method
    if not call.ok:
        if call.status == 0:
            return f"🤖 ✗ {method}: connection dropped (fault injection)"
        if method == "getUpdates" and not verbose:
            return None
        return f"🤖 ✗ {method} failed: {call.error}"
    if method in QUIET_METHODS and not verbose:
        return None
    result = call.result
    chat = _chat_name(world, p.get("chat_id"))
    if method in (
        "sendMessage",
        "sendPhoto",
        "sendVideo",
        "sendDocument",
        "sendAnimation",
        "sendSticker",
        "forwardMessage",
        "copyMessage",
    ):
        message = result if isinstance(result, dict) else {}
        message_id = message.get("message_id", "?")
        body = message.get("text") or message.get("caption") or ""
        kind = next((k for k in ("photo", "video", "document", "animation", "sticker") if k in message), None)
        if kind:
            body = f"[{kind}] {body}".rstrip()
        reply = message.get("reply_to_message")
        tail = f"  (reply to #{reply['message_id']})" if isinstance(reply, dict) else ""
        stored = world.message(int(message.get("chat", {}).get("id", 0) or 0), int(message_id or 0)) or {}
        lines = [f"🤖 #{message_id} {method} → {chat}: {_shorten(body)}{tail}"]
        lines += _buttons(stored.get("reply_markup") or p.get("reply_markup"))
        return "\n".join(lines)
    if method in ("editMessageText", "editMessageCaption", "editMessageReplyMarkup"):
        message = result if isinstance(result, dict) else {}
        body = message.get("text") or message.get("caption") or ""
        head = f"🤖 {method} #{p.get('message_id')} in {chat}"
        lines = [f"{head}: {_shorten(body)}" if method != "editMessageReplyMarkup" else head]
        buttons = _buttons(message.get("reply_markup"))
        lines += buttons or (["      (no buttons)"] if method == "editMessageReplyMarkup" else [])
        return "\n".join(lines)
    if method == "deleteMessage":
        return f"🤖 deleteMessage #{p.get('message_id')} in {chat}"
    if method == "deleteMessages":
        return f"🤖 deleteMessages {p.get('message_ids')} in {chat}"
    if method == "restrictChatMember":
        perms = p.get("permissions") if isinstance(p.get("permissions"), dict) else {}
        member = world.member(int(world._resolve_chat(p["chat_id"])["id"]), int(p["user_id"]))
        if member["status"] != "restricted":
            return f"🤖 restrictChatMember {_who(world, p.get('user_id'))} lifted in {chat}"
        until = member.get("until_date") or 0
        when = f"until {_hhmm(world, until)}" if until else "forever"
        what = "muted" if not perms.get("can_send_messages") else "restricted"
        return f"🤖 restrictChatMember {_who(world, p.get('user_id'))} {when} ({what}) in {chat}"
    if method == "banChatMember":
        until = int(p.get("until_date") or 0)
        when = f" until {_hhmm(world, until)}" if until else ""
        return f"🤖 banChatMember {_who(world, p.get('user_id'))}{when} in {chat}"
    if method == "unbanChatMember":
        return f"🤖 unbanChatMember {_who(world, p.get('user_id'))} in {chat}"
    if method == "answerCallbackQuery":
        text = p.get("text")
        alert = " (alert)" if p.get("show_alert") in (True, "true") else ""
        return f"🤖 answerCallbackQuery: {text}{alert}" if text else "🤖 answerCallbackQuery"
    if method == "sendPoll":
        message = result if isinstance(result, dict) else {}
        poll = message.get("poll", {})
        options = " | ".join(o.get("text", "") for o in poll.get("options", []))
        return f"🤖 #{message.get('message_id')} sendPoll → {chat}: {poll.get('question')} [{options}]"
    if method == "stopPoll":
        counts = ", ".join(f"{o['text']}={o['voter_count']}" for o in (result or {}).get("options", []))
        return f"🤖 stopPoll #{p.get('message_id')} in {chat}: {counts}"
    if method == "createChatInviteLink":
        return f"🤖 createChatInviteLink {chat}: {(result or {}).get('invite_link')}"
    if method in ("pinChatMessage", "unpinChatMessage"):
        return f"🤖 {method} #{p.get('message_id', '')} in {chat}"
    shown = ", ".join(f"{k}={_shorten(str(v), 60)}" for k, v in p.items() if k != "chat_id")
    target = f" {chat}" if "chat_id" in p else ""
    return f"🤖 {method}{target}" + (f" ({shown})" if shown else "")


class _Sandbox:
    def __init__(self, world: World, input_func: InputFunc, write: Callable[[str], None]) -> None:
        self.world = world
        self.input_func = input_func
        self.write = write
        members = [uid for uid, _, _ in SANDBOX_MEMBERS if uid in world.users]
        self.user_id = members[0] if members else next(iter(world.users))
        self.chat_id = SANDBOX_GROUP if SANDBOX_GROUP in world.chats else next(iter(world.chats), 0)
        self.running = True

    def prompt(self) -> str:
        return f"{_who(self.world, self.user_id)}@{_chat_name(self.world, self.chat_id)}> "

    async def read(self) -> str | None:
        try:
            line = self.input_func(self.prompt())
            if inspect.isawaitable(line):
                line = await line
        except (EOFError, KeyboardInterrupt):
            return None
        return str(line)

    def show_message(self, message: dict[str, Any]) -> None:
        body = message.get("text") or message.get("caption") or ""
        reply = message.get("reply_to_message")
        tail = f"  (reply to #{reply['message_id']})" if isinstance(reply, dict) else ""
        self.write(f"   #{message['message_id']} {_who(self.world, self.user_id)}: {body}{tail}")

    def handle(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        if not text.startswith(":"):
            self.show_message(self.world.send_message(self.chat_id, self.user_id, text))
            return
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        handler = getattr(self, f"cmd_{command[1:].lower()}", None)
        if handler is None:
            self.write(f"⚠ unknown command {command}; :help lists them")
            return
        handler(rest)

    # commands ------------------------------------------------------------------------------------

    def cmd_help(self, rest: str) -> None:
        self.write(HELP)

    def cmd_quit(self, rest: str) -> None:
        self.running = False

    cmd_q = cmd_exit = cmd_quit

    def cmd_as(self, rest: str) -> None:
        self.user_id = int(self.world.find_user(rest)["id"])
        self.write(f"   now acting as {_who(self.world, self.user_id)}")

    def cmd_chat(self, rest: str) -> None:
        if rest.lower() == "dm":
            self.world.user_starts_bot(self.user_id)
            self.chat_id = self.user_id
        else:
            chat_id = int(rest)
            if chat_id not in self.world.chats:
                raise WorldError(f"no chat {chat_id}; known: {sorted(self.world.chats)}")
            self.chat_id = chat_id
        self.write(f"   now in {_chat_name(self.world, self.chat_id)}")

    def cmd_join(self, rest: str) -> None:
        parts = shlex.split(rest)
        if not parts:
            raise WorldError("usage: :join NAME [invite_link]")
        user = self.world.find_user(parts[0])
        self.world.join(self.chat_id, int(user["id"]), invite_link=parts[1] if len(parts) > 1 else None)
        self.write(f"   {_who(self.world, user['id'])} joined {_chat_name(self.world, self.chat_id)}")

    def cmd_leave(self, rest: str) -> None:
        user = self.world.find_user(rest)
        self.world.leave(self.chat_id, int(user["id"]))
        self.write(f"   {_who(self.world, user['id'])} left {_chat_name(self.world, self.chat_id)}")

    def cmd_press(self, rest: str) -> None:
        parts = rest.split()
        if len(parts) != 2 or not all(re.fullmatch(r"-?\d+", x) for x in parts):
            raise WorldError("usage: :press MSG_ID N")
        message_id, number = int(parts[0]), int(parts[1])
        buttons = self.world.buttons(self.chat_id, message_id)
        if not 1 <= number <= len(buttons):
            raise WorldError(f"message #{message_id} has {len(buttons)} button(s)")
        button = buttons[number - 1]
        if "callback_data" not in button:
            self.write(f"   (button opens {button.get('url') or 'something outside the chat'})")
            return
        self.world.press_button(self.chat_id, self.user_id, message_id, str(button["callback_data"]))
        self.write(f"   {_who(self.world, self.user_id)} pressed [{button.get('text')}]")

    def cmd_reply(self, rest: str) -> None:
        message_id, _, text = rest.partition(" ")
        if not re.fullmatch(r"\d+", message_id) or not text.strip():
            raise WorldError("usage: :reply MSG_ID text")
        self.show_message(
            self.world.send_message(self.chat_id, self.user_id, text.strip(), reply_to=int(message_id))
        )

    def cmd_vote(self, rest: str) -> None:
        parts = rest.split()
        if len(parts) < 2 or not all(x.isdigit() for x in parts):
            raise WorldError("usage: :vote MSG_ID N [N...]")
        message = self.world.message(self.chat_id, int(parts[0])) or {}
        poll = message.get("poll")
        if not poll:
            raise WorldError(f"message #{parts[0]} has no poll")
        self.world.vote_poll(poll["id"], self.user_id, [int(x) - 1 for x in parts[1:]])
        self.write(f"   {_who(self.world, self.user_id)} voted")

    def cmd_start(self, rest: str) -> None:
        self.world.user_starts_bot(self.user_id)
        self.show_message(self.world.send_message(self.user_id, self.user_id, "/start"))

    def cmd_clock(self, rest: str) -> None:
        clock = self.world.clock
        advance = getattr(clock, "advance", None)
        if not callable(advance):
            raise WorldError("this world's clock cannot be moved")
        if rest:
            advance(parse_duration(rest))
        stamp = dt.datetime.fromtimestamp(self.world.now()).strftime("%Y-%m-%d %H:%M:%S")
        self.write(f"   world time is now {stamp}")

    def cmd_who(self, rest: str) -> None:
        chat = self.world.chats.get(self.chat_id)
        if chat is None:
            raise WorldError("no current chat")
        self.write(f"   {_chat_name(self.world, self.chat_id)} ({self.chat_id}):")
        for user_id in sorted(chat["members"]):
            member = self.world.member(self.chat_id, user_id)
            status = member["status"]
            if member.get("until_date"):
                status += f" until {_hhmm(self.world, member['until_date'])}"
            if status.startswith("restricted") and not member.get("can_send_messages"):
                status += " (muted)"
            marker = " ← you" if user_id == self.user_id else ""
            self.write(f"     {user_id:>12} {_who(self.world, user_id):<16} {status}{marker}")

    def cmd_log(self, rest: str) -> None:
        count = int(rest) if rest.isdigit() else 15
        for call in self.world.calls[-count:]:
            stamp = dt.datetime.fromtimestamp(call.at).strftime("%H:%M:%S")
            line = describe_call(self.world, call, verbose=True) or call.method
            self.write(f"   {stamp} [{call.status}] {line.splitlines()[0]}")


def _writer(output: Output | None) -> Callable[[str], None]:
    if output is None:
        output = sys.stdout
    if callable(output):
        return output
    stream: TextIO = output

    def write(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return write


async def _default_input(prompt: str) -> str:
    return await asyncio.to_thread(input, prompt)


async def run_sandbox(
    world: World,
    *,
    input_func: InputFunc | None = None,
    output: Output | None = None,
) -> None:
    """The REPL. ``input_func(prompt)`` returns a line (or an awaitable of one); EOFError or :quit ends it."""
    populate_sandbox(world)
    write = _writer(output)
    sandbox = _Sandbox(world, input_func or _default_input, write)
    queue: asyncio.Queue[ApiCall] = asyncio.Queue()
    remove_listener = world.add_call_listener(queue.put_nowait)

    async def watch() -> None:
        while True:
            call = await queue.get()
            try:
                line = describe_call(world, call)
            except Exception as exc:  # a describe bug must not kill the sandbox
                line = f"🤖 {call.method} (could not describe: {exc})"
            if line:
                write(line)

    watcher = asyncio.create_task(watch())
    write("qunbot sandbox: you are a member of 粉丝福利群. Type :help for commands.")
    try:
        while sandbox.running:
            line = await sandbox.read()
            if line is None:
                break
            try:
                sandbox.handle(line)
            except (WorldError, ValueError) as exc:
                write(f"⚠ {exc}")
            await asyncio.sleep(0)  # let the bot and the watcher run
    finally:
        remove_listener()
        for _ in range(100):  # flush what the bot already did
            if queue.empty() or watcher.done():
                break
            await asyncio.sleep(0.01)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        write("bye")
