"""The C2SP tlog-tiles read API: `/checkpoint`, `/tile/<L>/<N>[.p/<W>]`, `/tile/entries/<N>`.

Hash tiles and the checkpoint are public: they are hashes and a signature, they reveal no
entry content. Entry bundles hold every organisation's entries, so they need the same
`log:read` scope as `/v1/log/entries/{index}` (decision 89); a public mirror made with
`carbonledger log export-tiles` leaves them out unless asked.

Every tile is one indexed read (`ledger.log.tiles`); tiles never change once they exist,
so they are served `immutable` and any cache or static host can serve them from then on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from api.deps import RegistryDep, require_scopes
from api.problems import FORBIDDEN, NOT_FOUND, UNAUTHORIZED, ProblemError, problem_responses
from api.security import SCOPE_LOG_READ
from ledger.log.tiles import TilePathError, parse_tile_path, read_entry_bundle, read_hash_tile

router = APIRouter(tags=["log"], responses=problem_responses(NOT_FOUND))

CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"
TILE_MEDIA_TYPE = "application/octet-stream"
IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_CACHE = "public, max-age=2"
"""The spec: the checkpoint is mutable; caches may hold it a few seconds at most."""

TilePath = Annotated[str, Path(max_length=64, description="`<L>/<N>[.p/<W>]`, C2SP encoding")]


@router.get(
    "/checkpoint",
    summary="The signed checkpoint of the current tree (C2SP tlog-tiles location)",
    response_class=Response,
    responses={200: {"content": {CHECKPOINT_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
def checkpoint(registry: RegistryDep) -> Response:
    note = registry.log.signed_checkpoint(registry.log.head(), registry.signer)
    return Response(
        note, media_type=CHECKPOINT_MEDIA_TYPE, headers={"Cache-Control": CHECKPOINT_CACHE}
    )


def _tile_response(data: bytes | None, path: str) -> Response:
    if data is None:
        raise ProblemError(NOT_FOUND, f"the log holds no tile {path} (yet)")
    return Response(data, media_type=TILE_MEDIA_TYPE, headers={"Cache-Control": IMMUTABLE})


def _parse(path: str) -> tuple[int | None, int, int | None]:
    try:
        ref = parse_tile_path(path)
    except TilePathError as exc:
        raise ProblemError(NOT_FOUND, f"not a tile path: {exc}") from exc
    return ref.level, ref.index, ref.width


@router.get(
    "/tile/entries/{path:path}",
    summary="An entry bundle: 256 (or W) leaves, each prefixed by its uint16 length",
    response_class=Response,
    responses={
        200: {"content": {TILE_MEDIA_TYPE: {}}},
        **problem_responses(UNAUTHORIZED, FORBIDDEN),
    },
    dependencies=[require_scopes(SCOPE_LOG_READ)],
)
def entry_bundle(registry: RegistryDep, path: TilePath) -> Response:
    _, index, width = _parse(f"entries/{path}")
    return _tile_response(read_entry_bundle(registry.log, index, width), f"entries/{path}")


@router.get(
    "/tile/{path:path}",
    summary="A hash tile: 256 (or W) node hashes of tree level 8*L (C2SP tlog-tiles)",
    response_class=Response,
    responses={200: {"content": {TILE_MEDIA_TYPE: {}}}},
)
def hash_tile(registry: RegistryDep, path: TilePath) -> Response:
    level, index, width = _parse(path)
    if level is None:  # only reached for a bad entries path the route above did not take
        raise ProblemError(NOT_FOUND, "not a hash tile path")
    return _tile_response(read_hash_tile(registry.log, level, index, width), path)
