"""Tables of the content_calendar plugin.

Revision ID: 0008_calendar
Revises: 0007_crisis
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import bot.db  # noqa: F401

revision: str = "0008_calendar"
down_revision: str | None = "0007_crisis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
