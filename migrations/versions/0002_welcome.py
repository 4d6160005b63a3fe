"""Tables of the welcome plugin.

Revision ID: 0002_welcome
Revises: 0001_core
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import bot.db  # noqa: F401

revision: str = "0002_welcome"
down_revision: str | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
