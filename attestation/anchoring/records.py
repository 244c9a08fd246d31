"""The database record of each confirmed anchor (migration 0003).

It lives beside the chain code rather than in a `ledger` feature because only the
anchoring side writes it; it shares `ledger`'s declarative base, so Alembic and
`Base.metadata` still see one schema.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.storage.base import Base, utc_now

RowId = BigInteger().with_variant(Integer(), "sqlite")


class ChainAnchor(Base):
    """(size, root) of the log as confirmed on one chain and contract, with its transaction."""

    __tablename__ = "chain_anchor"
    __table_args__ = (
        UniqueConstraint("chain_id", "contract", "log_id", "size", name="uq_chain_anchor_size"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    contract: Mapped[str] = mapped_column(String(42), nullable=False)
    log_id: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    tx_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    block: Mapped[int] = mapped_column(BigInteger, nullable=False)
    gas_used: Mapped[int] = mapped_column(BigInteger, nullable=False)
    confirmations: Mapped[int] = mapped_column(Integer, nullable=False)
    anchored_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utc_now
    )
