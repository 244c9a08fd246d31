"""The state map (`state-map/1`): nodes in write order, and the root per log size.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log_index = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "state_node",
        sa.Column("id", log_index, primary_key=True, autoincrement=False),
        sa.Column("node", sa.LargeBinary(65), nullable=False),
        sa.Column("left_id", sa.BigInteger(), nullable=True),
        sa.Column("right_id", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.CheckConstraint("length(node) = 65", name="state_node_node_length"),
    )
    op.create_table(
        "state_root",
        sa.Column("version", log_index, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("root_id", sa.BigInteger(), nullable=True),
        sa.Column("key_count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("version > 0", name="state_root_version_positive"),
        sa.CheckConstraint("key_count >= 0", name="state_root_key_count"),
        sa.CheckConstraint("length(root) = 32", name="state_root_root_length"),
    )


def downgrade() -> None:
    op.drop_table("state_root")
    op.drop_table("state_node")
