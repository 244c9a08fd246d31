"""Wire formats of recorded anchors (`GET /v1/anchors`, `/v1/anchors/latest`).

Hashes and addresses are 0x-hex, as on the chain and in a proof bundle's `anchor` member
(DESIGN §4.5), so a client can paste them into any block explorer or `eth_call`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from attestation.anchoring.anchor import AnchorRecord


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class AnchorBody(_Wire):
    id: int = Field(description="Position in the anchor history (a cursor for `before`).")
    chain_id: int = Field(alias="chainId")
    contract: str = Field(description="CarbonAnchor contract address (checksummed).")
    log_id: str = Field(alias="logId", description="0x-hex sha256 of the log origin.")
    size: int = Field(ge=1, description="Tree size anchored.")
    root: str = Field(description="0x-hex root hash at that size.")
    tx: str = Field(description="0x-hex hash of the anchoring transaction.")
    block: int
    gas_used: int = Field(alias="gasUsed")
    confirmations: int = Field(description="Confirmations waited for before recording.")
    anchored_at: datetime = Field(alias="anchoredAt")

    @classmethod
    def from_record(cls, row_id: int, record: AnchorRecord) -> AnchorBody:
        return cls(
            id=row_id,
            chain_id=record.chain_id,
            contract=record.contract,
            log_id="0x" + record.log_id.hex(),
            size=record.size,
            root="0x" + record.root.hex(),
            tx="0x" + record.tx_hash.hex(),
            block=record.block,
            gas_used=record.gas_used,
            confirmations=record.confirmations,
            anchored_at=record.anchored_at,
        )


class AnchorPage(_Wire):
    anchors: list[AnchorBody] = Field(description="Newest first.")
    next: str | None = Field(
        default=None, description="Path of the next (older) page; null on the last page."
    )
