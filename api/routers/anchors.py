"""Anchors (public) and proof bundles (`log:read`).

`GET /v1/anchors` and `/v1/anchors/latest` list what the registry recorded after the chain
confirmed it: sizes, roots, transactions and blocks that are public on the chain anyway,
so they need no token.

Bundles (`GET /v1/log/entries/{index}/bundle`, `GET /v1/log/bundle?indices=…`) carry the
leaf bytes of the entries, so they need `log:read`, exactly like `GET /v1/log/entries/{i}`:
a bundle reveals nothing the entries do not. The verifier is not the caller here; the
holder of a claim (the meter's organisation) fetches the bundle and hands it over, and the
verifier checks it with `carbonledger verify` and the chain alone, never calling this API.

Every read is a synchronous database call, so the path functions are plain `def`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import RegistryDep, require_scopes
from api.problems import (
    BUNDLE_REQUEST_INVALID,
    FORBIDDEN,
    NOT_ANCHORED,
    NOT_FOUND,
    NOT_READY,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    ProblemError,
    problem_responses,
)
from api.schemas.anchors import AnchorBody, AnchorPage
from api.security import SCOPE_LOG_READ
from attestation.anchoring.anchor import anchor_page
from attestation.bundles.build import BundleRequestError, build_bundle
from attestation.bundles.format import BUNDLE_MEDIA_TYPE, MAX_REQUESTED_ENTRIES, bundle_bytes
from ledger.log.merkle import MAX_TREE_SIZE

ANCHORS_PATH = "/v1/anchors"
router = APIRouter(prefix=ANCHORS_PATH, tags=["anchors"], responses=problem_responses(NOT_READY))
bundle_router = APIRouter(
    prefix="/v1/log",
    tags=["log"],
    responses=problem_responses(
        NOT_READY, NOT_FOUND, NOT_ANCHORED, UNAUTHORIZED, FORBIDDEN, VALIDATION_ERROR
    ),
    dependencies=[require_scopes(SCOPE_LOG_READ)],
)

_BUNDLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A proof bundle (DESIGN §4.5): check it with `carbonledger verify`.",
        "content": {BUNDLE_MEDIA_TYPE: {"schema": {"type": "object"}}},
    }
}


@router.get("", summary="Recorded anchors, newest first (public)")
def list_anchors(
    registry: RegistryDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Anchors per page.")] = 20,
    before: Annotated[
        int | None,
        Query(ge=1, le=MAX_TREE_SIZE, description="Only anchors older than this `id`."),
    ] = None,
) -> AnchorPage:
    rows = anchor_page(registry.database, limit=limit, before_id=before)
    anchors = [AnchorBody.from_record(row_id, record) for row_id, record in rows]
    following = None
    if len(anchors) == limit and anchors[-1].id > 1:
        following = f"{ANCHORS_PATH}?limit={limit}&before={anchors[-1].id}"
    return AnchorPage(anchors=anchors, next=following)


@router.get(
    "/latest",
    summary="The newest recorded anchor (public)",
    responses=problem_responses(NOT_FOUND),
)
def latest_anchor(registry: RegistryDep) -> AnchorBody:
    rows = anchor_page(registry.database, limit=1)
    if not rows:
        raise ProblemError(NOT_FOUND, "nothing has been anchored yet")
    row_id, record = rows[0]
    return AnchorBody.from_record(row_id, record)


def _bundle_response(registry: RegistryDep, indices: list[int], filename: str) -> Response:
    bundle = build_bundle(registry.log, registry.signer, indices)
    return Response(
        bundle_bytes(bundle),
        media_type=BUNDLE_MEDIA_TYPE,
        # A file to hand to a verifier: `curl -OJ` saves it under this name.
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bundle_router.get(
    "/entries/{index}/bundle",
    summary="Proof bundle of one entry against the newest anchor that covers it",
    response_class=Response,
    responses=_BUNDLE_RESPONSE,
)
def entry_bundle(
    registry: RegistryDep, index: Annotated[int, Path(ge=0, lt=MAX_TREE_SIZE)]
) -> Response:
    return _bundle_response(registry, [index], f"bundle-{index}.json")


@bundle_router.get(
    "/bundle",
    summary="Proof bundle of several entries against the newest anchor that covers them all",
    response_class=Response,
    responses={**_BUNDLE_RESPONSE, **problem_responses(BUNDLE_REQUEST_INVALID)},
)
def entries_bundle(
    registry: RegistryDep,
    indices: Annotated[
        str,
        Query(
            max_length=MAX_REQUESTED_ENTRIES * 21,
            description=f"Comma-separated entry indices, at most {MAX_REQUESTED_ENTRIES}.",
            examples=["1,2,3"],
        ),
    ],
) -> Response:
    wanted = _parse_indices(indices)
    return _bundle_response(registry, wanted, f"bundle-{wanted[0]}-{len(wanted)}.json")


def _parse_indices(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise BundleRequestError("indices must be comma-separated non-negative integers")
    values = [int(part) for part in parts]
    if max(values) >= MAX_TREE_SIZE:
        raise BundleRequestError(f"an index must be below {MAX_TREE_SIZE}")
    return values
