"""The emulator over HTTP: a local Bot API server (aiohttp) in front of a :class:`World`.

The bot connects with aiogram's real client::

    server = await start_server(world)
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
