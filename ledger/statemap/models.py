"""The state map's tables: its nodes, and its root per log size."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from ledger.storage.base import Base, LogIndex


class StateNode(Base):
    """One node of the state map (`ledger.statemap`), numbered in the order it was written.

    `node` is the hash preimage: 0x02 ‖ key hash ‖ value hash for a leaf (with its value in
    `value`), 0x03 ‖ left ‖ right for an interior node, whose children's rows are `left_id` and
    `right_id` (NULL for an empty child). Reads follow the ids and check each node against the
    hash its parent holds. Rows are shared by every version that contains them and are never
    changed or deleted, so a proof at any past version reads the rows it read then.
    """

    __tablename__ = "state_node"
    __table_args__ = (CheckConstraint("length(node) = 65", name="state_node_node_length"),)

    id: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=False)
    node: Mapped[bytes] = mapped_column(LargeBinary(65), nullable=False)
    left_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    right_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    value: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class StateRoot(Base):
    """The state map's root after the updates of log size `version` (a row only for sizes
    whose transaction changed the map; the root at size N is that of the last row <= N).
    `root_id` is the root's row (NULL when the map is empty)."""

    __tablename__ = "state_root"
    __table_args__ = (
        CheckConstraint("version > 0", name="state_root_version_positive"),
        CheckConstraint("key_count >= 0", name="state_root_key_count"),
        CheckConstraint("length(root) = 32", name="state_root_root_length"),
    )

    version: Mapped[int] = mapped_column(LogIndex, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    root_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    key_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
