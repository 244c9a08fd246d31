"""Wire formats of reading ingestion and the reading and energy readers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.meters.ingest import ItemResult, Reason


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class ReadingBatch(_Wire):
    # Items are checked one by one by `ledger.meters.ingest` (a bad item is a per-item rejection,
    # not a 422 for the whole batch). The item limit is a setting, enforced by `ingest`
    # (413 batch-too-large), so the schema does not repeat it.
    readings: list[Any] = Field(
        min_length=1,
        description=(
            "Signed reading envelopes (DESIGN §4.3): "
            '{"payload": {...}, "alg": "Ed25519" | "ES256", "sig": "<base64url>"}, '
            'and/or OCMF records as strings ("OCMF|{...}|{...}", ECDSA-secp256r1-SHA256, '
            "verified with the meter's ES256 key; seq is the PG counter)."
        ),
    )


class ItemOutcome(_Wire):
    status: Literal["accepted", "duplicate", "rejected"]
    meter: str | None = None
    seq: int | None = None
    index: int | None = Field(
        default=None, description="Log index (for duplicates: of the reading already accepted)."
    )
    reason: Reason | None = None
    detail: str | None = None
    implausible: bool | None = Field(
        default=None, description="Accepted, but energy above capacity x interval x 1.1."
    )

    @classmethod
    def from_result(cls, result: ItemResult) -> ItemOutcome:
        return cls(
            status=result.status,
            meter=result.meter,
            seq=result.seq,
            index=result.index,
            reason=result.reason,
            detail=result.detail,
            implausible=result.implausible if result.status == "accepted" else None,
        )


class BatchOutcome(_Wire):
    accepted: int
    duplicate: int
    rejected: int
    results: list[ItemOutcome] = Field(description="One outcome per item, in request order.")


class StoredReadingBody(_Wire):
    seq: int
    time: str
    log_index: int = Field(alias="logIndex")
    key_id: str = Field(alias="keyId")
    implausible: bool
    envelope: dict[str, Any]


class ReadingPage(_Wire):
    readings: list[StoredReadingBody]
    next_after: int | None = Field(
        alias="nextAfter", description="Pass as `after` (a seq) for the next page; null at the end."
    )


class IntervalBody(_Wire):
    start: str
    end: str
    import_wh: int = Field(alias="importWh")
    export_wh: int = Field(alias="exportWh")
    covered_seconds: int = Field(
        alias="coveredSeconds", description="Seconds of the interval between two readings."
    )
    implausible: bool


class EnergyBody(_Wire):
    meter: str
    interval: Literal["15min", "hour", "day"]
    intervals: list[IntervalBody]
