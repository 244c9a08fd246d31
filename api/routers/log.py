"""The log: its head and verifier key, the signed checkpoint, proofs (public) and entries.

Every read here is a synchronous database call, so the path functions are plain `def`
and FastAPI runs them in its threadpool instead of blocking the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from api.deps import RegistryDep, require_scopes
from api.problems import (
    FORBIDDEN,
    NOT_FOUND,
    NOT_READY,
    PROOF_REQUEST_INVALID,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    problem_responses,
)
from api.schemas.log import (
    ConsistencyProofBody,
    InclusionProofBody,
    LogEntryBody,
    LogInfo,
)
from api.security import SCOPE_LOG_READ
from ledger.log.canonical import parse_entry
from ledger.log.merkle import MAX_TREE_SIZE, leaf_hash

router = APIRouter(prefix="/v1/log", tags=["log"], responses=problem_responses(NOT_READY))

CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"

# Query and path integers are bounded by MAX_TREE_SIZE so that no value can overflow a
# 64-bit database column (which would be a 500, not a 422).


@router.get(
    "", summary="Current size, root hash, origin, checkpoint verifier key and declared issuers"
)
def log_info(registry: RegistryDep) -> LogInfo:
    return LogInfo.from_registry(registry)


@router.get(
    "/checkpoint",
    summary="The signed checkpoint of the current tree (C2SP tlog-checkpoint note)",
    response_class=PlainTextResponse,
    responses={200: {"content": {CHECKPOINT_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
def checkpoint(registry: RegistryDep) -> PlainTextResponse:
    note = registry.log.checkpoint(registry.signer)
    return PlainTextResponse(note, media_type=CHECKPOINT_MEDIA_TYPE)


@router.get(
    "/proofs/inclusion",
    summary="RFC 9162 inclusion proof of the leaf at `index` in the tree of `size` leaves",
    responses=problem_responses(PROOF_REQUEST_INVALID, VALIDATION_ERROR),
)
def inclusion_proof(
    registry: RegistryDep,
    index: Annotated[int, Query(ge=0, lt=MAX_TREE_SIZE)],
    size: Annotated[
        int | None,
        Query(ge=1, le=MAX_TREE_SIZE, description="Tree size; the current size if omitted."),
    ] = None,
) -> InclusionProofBody:
    return InclusionProofBody.from_proof(registry.log.inclusion_proof(index, size))


@router.get(
    "/proofs/consistency",
    summary="RFC 9162 consistency proof between the trees of `from` and `to` leaves",
    responses=problem_responses(PROOF_REQUEST_INVALID, VALIDATION_ERROR),
)
def consistency_proof(
    registry: RegistryDep,
    from_size: Annotated[int, Query(alias="from", ge=1, le=MAX_TREE_SIZE)],
    to_size: Annotated[
        int | None,
        Query(alias="to", ge=1, le=MAX_TREE_SIZE, description="The current size if omitted."),
    ] = None,
) -> ConsistencyProofBody:
    return ConsistencyProofBody.from_proof(registry.log.consistency_proof(from_size, to_size))


@router.get(
    "/entries/{index}",
    summary="The entry at `index`: its exact leaf bytes, leaf hash and parsed content",
    responses=problem_responses(NOT_FOUND, UNAUTHORIZED, FORBIDDEN, VALIDATION_ERROR),
    # Every entry is visible to every `log:read` client for now; routes that filter by
    # organisation take `Annotated[Principal, require_scopes(...)]` as a parameter instead.
    dependencies=[require_scopes(SCOPE_LOG_READ)],
)
def log_entry(
    registry: RegistryDep, index: Annotated[int, Path(ge=0, lt=MAX_TREE_SIZE)]
) -> LogEntryBody:
    leaf = registry.log.entry(index)
    return LogEntryBody(index=index, leaf=leaf, leaf_hash=leaf_hash(leaf), entry=parse_entry(leaf))
