"""The log (head, entries, node tiles), organisations and API clients.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log_index = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "log_head",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="log_head_single_row"),
        sa.CheckConstraint("size >= 0", name="log_head_size_non_negative"),
    )
    op.create_table(
        "log_entry",
        sa.Column("idx", log_index, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "log_tile",
        sa.Column("id", log_index, primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "organisation",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_client",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column(
            "organisation_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False
        ),
        sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_client_organisation_id", "api_client", ["organisation_id"])


def downgrade() -> None:
    op.drop_index("ix_api_client_organisation_id", "api_client")
    op.drop_table("api_client")
    op.drop_table("organisation")
    op.drop_table("log_tile")
    op.drop_table("log_entry")
    op.drop_table("log_head")
