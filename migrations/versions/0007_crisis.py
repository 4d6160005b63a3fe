"""Tables of the crisis plugin.

Revision ID: 0007_crisis
Revises: 0006_moderation
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import bot.db  # noqa: F401

revision: str = "0007_crisis"
down_revision: str | None = "0006_moderation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
