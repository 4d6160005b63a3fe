"""Tables of the analytics plugin.

Revision ID: 0009_analytics
Revises: 0008_calendar
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import bot.db  # noqa: F401

revision: str = "0009_analytics"
down_revision: str | None = "0008_calendar"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
