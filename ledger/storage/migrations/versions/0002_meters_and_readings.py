"""Meters, meter keys, accepted readings and equivocation evidence.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "meter",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column(
            "organisation_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("province", sa.String(16), nullable=False),
        sa.Column("grid_region", sa.String(16), nullable=False),
        sa.Column("energy_source", sa.String(16), nullable=True),
        sa.Column("capacity_w", sa.BigInteger(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_time", sa.BigInteger(), nullable=True),
        sa.Column("last_import_wh", sa.BigInteger(), nullable=True),
        sa.Column("last_export_wh", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "role IN ('generation', 'consumption', 'bidirectional')", name="meter_role"
        ),
        sa.CheckConstraint(
            "role <> 'generation' OR (capacity_w IS NOT NULL AND energy_source IS NOT NULL)",
            name="meter_generator_capacity",
        ),
        sa.CheckConstraint("capacity_w IS NULL OR capacity_w > 0", name="meter_capacity_positive"),
    )
    op.create_index("ix_meter_organisation_id", "meter", ["organisation_id"])
    op.create_table(
        "meter_key",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("meter_id", sa.String(128), sa.ForeignKey("meter.id"), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("valid_from", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("revoked_from", sa.BigInteger(), nullable=True),
        sa.Column("revoked_log_index", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "revoked_from IS NULL OR revoked_from >= valid_from", name="meter_key_revoked_after"
        ),
    )
    op.create_index("ix_meter_key_meter_id", "meter_key", ["meter_id"])
    op.create_table(
        "reading",
        sa.Column("meter_id", sa.String(128), sa.ForeignKey("meter.id"), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("payload_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("implausible", sa.Boolean(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False, unique=True),
    )
    op.create_index("ix_reading_meter_time", "reading", ["meter_id", "time"], unique=True)
    op.create_table(
        "reading_evidence",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("meter_id", sa.String(128), sa.ForeignKey("meter.id"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("conflicts_with", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reading_evidence_meter_id", "reading_evidence", ["meter_id"])


def downgrade() -> None:
    op.drop_index("ix_reading_evidence_meter_id", "reading_evidence")
    op.drop_table("reading_evidence")
    op.drop_index("ix_reading_meter_time", "reading")
    op.drop_table("reading")
    op.drop_index("ix_meter_key_meter_id", "meter_key")
    op.drop_table("meter_key")
    op.drop_index("ix_meter_organisation_id", "meter")
    op.drop_table("meter")
