"""The state map's tables: its nodes and its root per log size."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from ledger.storage.base import Base, LogIndex


class StateNode(Base):
    """One node of the state map (`ledger.statemap`), addressed by its SHA-256.

    `node` is the hash preimage: 0x02 ‖ key hash ‖ value hash for a leaf, 0x03 ‖ left ‖ right
    for an interior node; `value` holds a leaf's value bytes. Every version of the map that
    contains a node shares its row, and rows are never changed or deleted, so a proof at any
    past version reads the same rows it read then.
    """

    __tablename__ = "state_node"
    __table_args__ = (
        CheckConstraint("length(hash) = 32", name="state_node_hash_length"),
        CheckConstraint("length(node) = 65", name="state_node_node_length"),
        # One B-tree keyed by hash on SQLite, instead of a rowid table plus an index.
        {"sqlite_with_rowid": False},
    )

    hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    node: Mapped[bytes] = mapped_column(LargeBinary(65), nullable=False)
    value: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class StateRoot(Base):
    """The state map's root after the updates of log size `version` (a row only for sizes
    whose transaction changed the map; the root at size N is that of the last row <= N)."""

    __tablename__ = "state_root"
    __table_args__ = (
        CheckConstraint("version > 0", name="state_root_version_positive"),
        CheckConstraint("key_count >= 0", name="state_root_key_count"),
        CheckConstraint("length(root) = 32", name="state_root_root_length"),
    )

    version: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    key_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
