"""In-process aiogram session: the bot talks to a :class:`World` without sockets.

It serializes every method exactly like :class:`aiogram.client.session.aiohttp.AiohttpSession`
(``prepare_value`` per field, empty values dropped, files as ``attach://`` parts), hands the form to
:meth:`World.handle_request`, and runs aiogram's own ``check_response`` on the JSON text, so aiogram raises
the same exceptions as over HTTP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import TelegramType

from .world import ConnectionDropped, UploadedFile, World

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import TelegramMethod
    from aiogram.types import InputFile

_FILE_URL_RE = re.compile(r"/file/bot[^/]+/(.+)$")


class EmulatorSession(BaseSession):
    """``Bot(token, session=EmulatorSession(world))``: the fast transport for tests."""

    def __init__(self, world: World, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.world = world
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    async def build_params(self, bot: Bot, method: TelegramMethod[TelegramType]) -> dict[str, Any]:
        """The same fields AiohttpSession.build_form_data would put in its form, files read into memory."""
        params: dict[str, Any] = {}
        files: dict[str, InputFile] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if not prepared:
                continue
            params[key] = prepared
        for key, input_file in files.items():
            chunks = [chunk async for chunk in input_file.read(bot)]
            params[key] = UploadedFile(input_file.filename or key, b"".join(chunks))
        return params

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,
    ) -> TelegramType:
        self.closed = False
        params = await self.build_params(bot, method)
        request = self.world.handle_request(method.__api_method__, params, token=bot.token)
        try:
            # asyncio.timeout, not wait_for: no task per call, so an answer the world has at once comes
            # back without turns of the event loop (as a real connection's buffered response would).
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                status, payload = await request
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        except ConnectionDropped as exc:
            raise TelegramNetworkError(
                method=method, message="ServerDisconnectedError: Server disconnected"
            ) from exc
        response = self.check_response(
            bot=bot, method=method, status_code=status, content=self.json_dumps(payload)
        )
        return cast(TelegramType, response.result)

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        match = _FILE_URL_RE.search(url)
        record = self.world.file_by_path(match.group(1)) if match else None
        if record is None or record.data is None:
            if raise_for_status:
                raise TelegramNetworkError(method=None, message=f"404 Not Found: {url}")  # type: ignore[arg-type]
            return
        data = record.data
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]
