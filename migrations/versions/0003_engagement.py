"""Tables of the checkin (engagement: points shop, invites, badges) plugin.

Revision ID: 0003_engagement
Revises: 0002_welcome
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import bot.db  # noqa: F401

revision: str = "0003_engagement"
down_revision: str | None = "0002_welcome"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
