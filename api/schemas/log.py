"""Wire formats of log proofs. The CLI reads and writes the same JSON as the API."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

if TYPE_CHECKING:
    # Types only: the offline `log verify-*` commands parse proofs with these models and
    # must not load the storage layer (SQLAlchemy) to do so.
    from ledger.log.store import ConsistencyProof, InclusionProof
    from ledger.registry import Registry


def _decode_base64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ValueError("not valid standard base64") from exc


Base64Bytes = Annotated[
    bytes,
    PlainValidator(_decode_base64),
    PlainSerializer(lambda value: base64.b64encode(value).decode(), return_type=str),
    Field(json_schema_extra={"type": "string", "contentEncoding": "base64"}),
]


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class DeclaredIssuer(_Wire):
    id: str = Field(description="The issuer's `did:key`, as credentials name it.")
    log_index: int = Field(alias="logIndex", description="Its `issuer.key/1` declaration.")


class LogInfo(_Wire):
    origin: str
    size: int
    root_hash: Base64Bytes = Field(alias="rootHash")
    verifier_key: str = Field(
        alias="verifierKey", description="signed-note verifier key: <name>+<key id>+<base64 key>"
    )
    issuers: list[DeclaredIssuer] = Field(
        description="The credential issuers the log declares, oldest first (none until the "
        "first certificate); a verifier pins one with `carbonledger verify --issuer`."
    )

    @classmethod
    def from_registry(cls, registry: Registry) -> LogInfo:
        """What the operator publishes about its log: `GET /v1/log` and `init --json`."""
        # Here, not at the top: the offline proof checks parse proofs with this module and
        # must not load the storage layer (tests/cli/test_cli_structure.py).
        from ledger.credentials.issuer import declared_issuers  # noqa: PLC0415

        head = registry.log.head()
        declared = sorted(declared_issuers(registry.log).items(), key=lambda item: item[1])
        return cls(
            origin=head.origin,
            size=head.size,
            root_hash=head.root,
            verifier_key=registry.signer.verifier.encode(),
            issuers=[DeclaredIssuer(id=did, log_index=index) for did, index in declared],
        )


class InclusionProofBody(_Wire):
    index: int = Field(ge=0)
    size: int = Field(ge=1)
    leaf_hash: Base64Bytes = Field(alias="leafHash")
    root_hash: Base64Bytes = Field(alias="rootHash")
    proof: list[Base64Bytes] = Field(max_length=64)

    @classmethod
    def from_proof(cls, proof: InclusionProof) -> InclusionProofBody:
        return cls(
            index=proof.index,
            size=proof.size,
            leaf_hash=proof.leaf_hash,
            root_hash=proof.root,
            proof=list(proof.hashes),
        )


class ConsistencyProofBody(_Wire):
    from_size: int = Field(alias="from", ge=1)
    to_size: int = Field(alias="to", ge=1)
    old_root_hash: Base64Bytes = Field(alias="oldRootHash")
    new_root_hash: Base64Bytes = Field(alias="newRootHash")
    proof: list[Base64Bytes] = Field(max_length=128)

    @classmethod
    def from_proof(cls, proof: ConsistencyProof) -> ConsistencyProofBody:
        return cls(
            from_size=proof.size1,
            to_size=proof.size2,
            old_root_hash=proof.root1,
            new_root_hash=proof.root2,
            proof=list(proof.hashes),
        )


class LogEntryBody(_Wire):
    index: int
    leaf: Base64Bytes = Field(description="the exact canonical bytes that were hashed")
    leaf_hash: Base64Bytes = Field(alias="leafHash")
    entry: dict[str, Any]
