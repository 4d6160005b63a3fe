"""A local Telegram Bot API emulator: one world model, two transports (HTTP and in-process)."""

from .http import EmulatorServer, create_app, start_server
from .sandbox import SandboxClock, build_sandbox_world, populate_sandbox, run_sandbox
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
    "SandboxClock",
    "UploadedFile",
    "World",
    "WorldError",
    "build_sandbox_world",
    "create_app",
    "populate_sandbox",
    "run_sandbox",
    "start_server",
]
