"""The issuer keys the log has declared (`issuer.key/1`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.storage.base import Base


class IssuerKey(Base):
    """The registry's credential-issuing key (`issuer.key/1` at `log_index`); one row per key."""

    __tablename__ = "issuer_key"

    did: Mapped[str] = mapped_column(String(128), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    valid_from: Mapped[int] = mapped_column(BigInteger, nullable=False)
