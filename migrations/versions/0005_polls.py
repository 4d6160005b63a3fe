"""Tables of the polls (contests) plugin.

Revision ID: 0005_polls
Revises: 0004_faq
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import bot.db  # noqa: F401

revision: str = "0005_polls"
down_revision: str | None = "0004_faq"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
