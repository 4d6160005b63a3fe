"""The emulator over HTTP: a local Bot API server (aiohttp) in front of a :class:`World`.

The bot connects with aiogram's real client::

    server = await start_server(world)
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from .world import ConnectionDropped, UploadedFile, World

WORLD_KEY: web.AppKey[World] = web.AppKey("world", World)
MAX_BODY = 64 * 1024 * 1024


def _error(status: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": status, "description": description}, status=status)


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _BadBody("can't parse JSON body") from None
        if not isinstance(body, dict):
            raise _BadBody("JSON body must be an object")
        params.update(body)
    else:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = UploadedFile(value.filename, value.file.read(), value.content_type)
            else:
                params[key] = value
    return params


class _BadBody(Exception):
    pass


async def _api(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    token = request.match_info["token"]
    method = request.match_info["method"]
    try:
        params = await _read_params(request)
    except _BadBody as exc:
        return _error(400, f"Bad Request: {exc}")
    try:
        status, payload = await world.handle_request(method, params, token=token)
    except ConnectionDropped:
        transport = request.transport
        if transport is not None:
            transport.close()
        raise web.HTTPServiceUnavailable() from None  # never reaches the client: the socket is closed
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json"
    )


async def _file(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD_KEY]
    if request.match_info["token"] != world.token:
        return _error(401, "Unauthorized")
    record = world.file_by_path(request.match_info["path"])
    if record is None or record.data is None:
        return _error(404, "Not Found")
    return web.Response(body=record.data, content_type=record.mime_type or "application/octet-stream")


def create_app(world: World) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[WORLD_KEY] = world
    app.router.add_route("GET", "/bot{token}/{method}", _api)
    app.router.add_route("POST", "/bot{token}/{method}", _api)
    app.router.add_route("GET", "/file/bot{token}/{path:.+}", _file)
    return app


@dataclass
class EmulatorServer:
    world: World
    runner: web.AppRunner
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self.world.stop_webhook_push()
        await self.runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_server(world: World, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """Serve ``world`` on host:port (0 = a free port); long polls are cancelled on close."""
    runner = web.AppRunner(
        create_app(world), access_log=None, handler_cancellation=True, shutdown_timeout=0.25
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    return EmulatorServer(world, runner, host, bound_port)


# ---------------------------------------------------------------------------------------------- webhook push
def update_chat_key(update: Mapping[str, Any]) -> Any:
    """Updates with the same key are pushed one at a time, in order (Telegram's per-chat order)."""
    for kind, body in update.items():
        if kind == "update_id" or not isinstance(body, dict):
            continue
        chat = body.get("chat")
        if not isinstance(chat, dict):
            message = body.get("message")
            chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return chat["id"]
        user = body.get("from") or body.get("user")
        if isinstance(user, dict) and "id" in user:
            return ("user", user["id"])
        if kind == "poll" and "id" in body:
            return ("poll", body["id"])
    return ("update", id(update))


class WebhookPusher:
    """Telegram's side of a webhook: POST every pending update to the URL with the secret header.

    Updates of one chat go one at a time, in order: the next is sent only after the previous got a 2xx.
    A non-2xx answer, a timeout or a refused connection is retried with exponential backoff (Telegram
    does the same, with longer waits); chats proceed independently, at most ``max_connections`` requests
    at once. An acknowledged update leaves the world's pending queue (``getWebhookInfo``'s
    ``pending_update_count``). Delivery is at least once: a worker that dies after committing but before
    its 200 reaches us gets the update again.
    """

    def __init__(self, world: World, url: str, secret: str | None, max_connections: int) -> None:
        self.world = world
        self.url = url
        self.secret = secret
        self.max_connections = max(1, max_connections)
        self._loop = asyncio.get_running_loop()
        self._queues: dict[Any, deque[dict[str, Any]]] = {}
        self._tasks: dict[Any, asyncio.Task[None]] = {}
        self._semaphore = asyncio.Semaphore(self.max_connections)
        self._session: aiohttp.ClientSession | None = None
        self.closed = False

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, force_close=not self.world.webhook_keepalive)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.world.webhook_timeout))
        return self._session

    def enqueue(self, update: dict[str, Any]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            self._loop.call_soon_threadsafe(self.enqueue, update)
            return
        if self.closed:
            return
        key = update_chat_key(update)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(update)
        if key not in self._tasks:
            self._tasks[key] = self._loop.create_task(self._chat(key, queue))

    async def _chat(self, key: Any, queue: deque[dict[str, Any]]) -> None:
        try:
            while queue and not self.closed:
                await self._deliver(queue[0])
                queue.popleft()
        finally:
            # No await between the empty check and this: a later enqueue starts a new task.
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
                if self._queues.get(key) is queue:
                    del self._queues[key]

    async def _deliver(self, update: dict[str, Any]) -> None:
        world = self.world
        body = json.dumps(update, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.secret
        attempt = 0
        while True:
            status: int | None = None
            error: str | None = None
            async with self._semaphore:
                started = asyncio.get_running_loop().time()
                try:
                    async with self._client().post(self.url, data=body, headers=headers) as response:
                        status = response.status
                        await response.read()
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
            world._webhook_attempt(update, status, error, attempt, asyncio.get_running_loop().time() - started)
            if status is not None and 200 <= status < 300:
                return
            delay = min(world.webhook_retry_max, world.webhook_retry_base * 2**attempt)
            attempt += 1
            await asyncio.sleep(delay)

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def stop(self) -> None:
        """Stop pushing (deleteWebhook, a new URL, the server closing); unacknowledged updates stay pending."""
        self.closed = True
        for task in list(self._tasks.values()):
            task.cancel()
        self._tasks.clear()
        self._queues.clear()
        session, self._session = self._session, None
        if session is not None:
            self._loop.create_task(session.close())

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        session = self._session
        self._session = None
        self.closed = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()
        if session is not None:
            await session.close()
