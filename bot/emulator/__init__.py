"""A local Telegram Bot API emulator: one world model, two transports (HTTP and in-process)."""

from .http import EmulatorServer, create_app, start_server
from .session import EmulatorSession
from .world import (
    ApiCall,
    ConnectionDropped,
    EmulatorApiError,
    Faults,
    ManualClock,
    UploadedFile,
    World,
    WorldError,
)

__all__ = [
    "ApiCall",
    "ConnectionDropped",
    "EmulatorApiError",
    "EmulatorServer",
    "EmulatorSession",
    "Faults",
    "ManualClock",
    "UploadedFile",
    "World",
    "WorldError",
    "create_app",
    "start_server",
]
