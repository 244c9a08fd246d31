"""Devices, accounts and granular certificates (issue 5).

The no-overlap invariant of live serial ranges is enforced by the database itself: an
exclusion constraint on PostgreSQL (btree_gist, a trusted extension since PostgreSQL 13),
triggers on SQLite. `device_hour`'s CHECK keeps issuance within metered production.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SQLITE_OVERLAP = """
SELECT RAISE(ABORT, 'certificate serial ranges overlap')
WHERE NEW.status <> 'split' AND EXISTS (
    SELECT 1 FROM certificate AS other
    WHERE other.device_id = NEW.device_id AND other.hour_start = NEW.hour_start
      AND other.id <> NEW.id AND other.status <> 'split'
      AND other.serial_start < NEW.serial_end AND NEW.serial_start < other.serial_end
);
"""


def upgrade() -> None:
    op.create_table(
        "issuer_key",
        sa.Column("did", sa.String(128), primary_key=True),
        sa.Column("log_index", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("valid_from", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "device",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "organisation_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("energy_source", sa.String(16), nullable=False),
        sa.Column("technology", sa.String(64), nullable=False),
        sa.Column("capacity_w", sa.BigInteger(), nullable=False),
        sa.Column("commissioning_date", sa.String(10), nullable=False),
        sa.Column("province", sa.String(16), nullable=False),
        sa.Column("grid_region", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("approved_at", sa.BigInteger(), nullable=True),
        sa.Column("approved_log_index", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_device_organisation_id", "device", ["organisation_id"])
    op.create_table(
        "device_meter",
        sa.Column("meter_id", sa.String(128), sa.ForeignKey("meter.id"), primary_key=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("device.id"), nullable=False),
    )
    op.create_index("ix_device_meter_device_id", "device_meter", ["device_id"])
    op.create_table(
        "account",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "organisation_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False, unique=True),
        sa.UniqueConstraint("organisation_id", "name", name="uq_account_name"),
    )
    op.create_index("ix_account_organisation_id", "account", ["organisation_id"])
    op.create_table(
        "device_hour",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("device.id"), primary_key=True),
        sa.Column("hour_start", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("metered_wh", sa.BigInteger(), nullable=False),
        sa.Column("issued_wh", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "issued_wh >= 0 AND issued_wh <= metered_wh", name="device_hour_issued_within_metered"
        ),
    )
    op.create_table(
        "certificate",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("device.id"), nullable=False),
        sa.Column("hour_start", sa.BigInteger(), nullable=False),
        sa.Column("serial_start", sa.BigInteger(), nullable=False),
        sa.Column("serial_end", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("energy_source", sa.String(16), nullable=False),
        sa.Column("grid_region", sa.String(16), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "serial_start >= 0 AND serial_end > serial_start", name="certificate_range"
        ),
    )
    op.create_index("ix_certificate_device_hour", "certificate", ["device_id", "hour_start"])
    op.create_index("ix_certificate_account_status", "certificate", ["account_id", "status"])
    op.create_index("ix_certificate_parent_id", "certificate", ["parent_id"])
    # The expiry sweep asks for active certificates past their validity.
    op.create_index("ix_certificate_status_expires", "certificate", ["status", "expires_at"])
    op.create_table(
        "certificate_retirement",
        sa.Column(
            "certificate_id", sa.String(64), sa.ForeignKey("certificate.id"), primary_key=True
        ),
        sa.Column(
            "beneficiary_id", sa.String(36), sa.ForeignKey("organisation.id"), nullable=False
        ),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("province", sa.String(16), nullable=False),
        sa.Column("grid_region", sa.String(16), nullable=False),
        sa.Column("retired_at", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False, unique=True),
    )
    op.create_index(
        "ix_certificate_retirement_beneficiary_id", "certificate_retirement", ["beneficiary_id"]
    )
    op.create_table(
        "certificate_event",
        sa.Column(
            "certificate_id", sa.String(64), sa.ForeignKey("certificate.id"), primary_key=True
        ),
        sa.Column("log_index", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(40), nullable=False),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE certificate ADD CONSTRAINT certificate_live_ranges_disjoint "
            "EXCLUDE USING gist (device_id WITH =, hour_start WITH =, "
            "int8range(serial_start, serial_end) WITH &&) WHERE (status <> 'split')"
        )
    else:
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER certificate_live_ranges_disjoint_{event.lower()} "
                f"BEFORE {event} ON certificate BEGIN {_SQLITE_OVERLAP} END"
            )


def downgrade() -> None:
    for table in (
        "certificate_event",
        "certificate_retirement",
        "certificate",
        "device_hour",
        "account",
        "device_meter",
        "device",
        "issuer_key",
    ):
        op.drop_table(table)
