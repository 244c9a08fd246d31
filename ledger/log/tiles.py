"""The log as C2SP tlog-tiles resources: hash tiles, entry bundles, their paths, an export.

c2sp.org/tlog-tiles: tile `L/N` holds the 256 hashes of tree level `8 * L` starting at
node `N * 256`; a partial tile `L/N.p/W` holds the first `W` of them (1..255). The store
already keeps every complete node in 256-hash rows per tree level (`ledger.log.store`),
so a tile is the row of level `8 * L`, cut to its width: one indexed read, no hashing.

Complete nodes never change, so a tile of a given width is the same bytes forever: full
and partial tiles alike can be cached as immutable. A partial tile wider than what the log
holds does not exist yet (404), nor does a "full" tile that is still filling.

Entry bundles (`tile/entries/N[.p/W]`) are the leaves `N * 256 ..`, each prefixed with its
length as a big-endian uint16.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from ledger.log.checkpoint import NoteSigner
from ledger.log.merkle import HASH_SIZE
from ledger.log.models import LogTile
from ledger.log.store import TILE_WIDTH, Log, LogError, tile_key

TILE_HEIGHT = 8
"""Tree levels per tile level: 256 = 2^8 hashes per tile."""
MAX_TILE_LEVEL = 7
"""Tile level L covers tree level 8L; stored tree levels are below 63."""
MAX_BUNDLE_ENTRY_BYTES = 0xFFFF
ENTRIES = "entries"


class TilePathError(ValueError):
    """A tile path that breaks the C2SP encoding (not merely one that does not exist yet)."""


@dataclass(frozen=True, slots=True)
class TileRef:
    """A parsed tile path: `level` is None for an entry bundle; `width` None for a full tile."""

    level: int | None
    index: int
    width: int | None

    @property
    def path(self) -> str:
        return tile_path(self.level, self.index, self.width)


def _decimal(text: str, what: str) -> int:
    # ASCII digits only, no leading zeros: one spelling per resource, so caches never split.
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise TilePathError(f"{what} {text!r} is not a decimal number without leading zeros")
    return int(text)


def encode_index(index: int) -> str:
    """`1234067` → `x001/x234/067` (zero-padded 3-digit elements, all but the last `x`-led)."""
    if index < 0:
        raise TilePathError("a tile index is not negative")
    groups = []
    while True:
        index, rest = divmod(index, 1000)
        groups.append(f"{rest:03d}")
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])


def tile_path(level: int | None, index: int, width: int | None = None) -> str:
    """The path below the prefix: `tile/L/N[.p/W]` or `tile/entries/N[.p/W]`."""
    head = ENTRIES if level is None else str(level)
    suffix = "" if width is None else f".p/{width}"
    return f"tile/{head}/{encode_index(index)}{suffix}"


def parse_tile_path(path: str) -> TileRef:
    """Parse what follows `tile/`, refusing every other spelling of the same resource."""
    parts = path.split("/")
    if len(parts) < 2:
        raise TilePathError("a tile path is L/N or entries/N")
    level = None if parts[0] == ENTRIES else _decimal(parts[0], "tile level")
    if level is not None and level > MAX_TILE_LEVEL:
        raise TilePathError(f"tile level {level} is above {MAX_TILE_LEVEL}")
    rest = parts[1:]
    width = None
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width = _decimal(rest[-1], "tile width")
        if not 1 <= width < TILE_WIDTH:
            raise TilePathError(f"a partial tile is 1..{TILE_WIDTH - 1} wide")
        rest = [*rest[:-2], rest[-2][: -len(".p")]]
    if len(rest) > 7:  # 10^21 > any index a 64-bit tree can have
        raise TilePathError("the tile index has too many elements")
    index = 0
    for position, element in enumerate(rest):
        last = position == len(rest) - 1
        digits = element if last else element.removeprefix("x")
        if (not last and not element.startswith("x")) or len(digits) != 3:
            raise TilePathError(f"tile index element {element!r} is not x### (or ### last)")
        if not (digits.isascii() and digits.isdigit()):
            raise TilePathError(f"tile index element {element!r} is not decimal")
        index = index * 1000 + int(digits)
    ref = TileRef(level, index, width)
    if ref.path != f"tile/{path}":  # e.g. a leading x000 element
        raise TilePathError("not the canonical spelling of this tile path")
    return ref


def read_hash_tile(log: Log, level: int, index: int, width: int | None = None) -> bytes | None:
    """The tile's bytes, or None when the log does not (yet) hold that many hashes."""
    tree_level = level * TILE_HEIGHT
    if index >= 1 << (62 - tree_level):
        return None
    with log.database.snapshot() as connection:
        data = connection.execute(
            select(LogTile.hashes).where(LogTile.id == tile_key(tree_level, index))
        ).scalar_one_or_none()
    wanted = (width or TILE_WIDTH) * HASH_SIZE
    if data is None or len(data) < wanted:
        return None
    return bytes(data[:wanted])


def entry_bundle(leaves: Sequence[bytes]) -> bytes:
    out = bytearray()
    for leaf in leaves:
        if len(leaf) > MAX_BUNDLE_ENTRY_BYTES:
            raise LogError(f"a leaf of {len(leaf)} bytes does not fit an entry bundle")
        out += len(leaf).to_bytes(2, "big") + leaf
    return bytes(out)


def read_entry_bundle(log: Log, index: int, width: int | None = None) -> bytes | None:
    """The entry bundle's bytes, or None when the log does not (yet) hold those entries."""
    count = width or TILE_WIDTH
    start = index * TILE_WIDTH
    if start + count > 1 << 62:
        return None
    leaves = log.entries(start, start + count)
    if len(leaves) < count:
        return None
    return entry_bundle(leaves)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    size: int
    hash_tiles: int
    entry_bundles: int


def tiles_for_size(size: int) -> list[TileRef]:
    """Every hash tile of the tree of `size` leaves, full and (at the right edge) partial."""
    refs: list[TileRef] = []
    for level in range(MAX_TILE_LEVEL + 1):
        hashes = size >> (TILE_HEIGHT * level)
        if hashes == 0:
            break
        full, partial = divmod(hashes, TILE_WIDTH)
        refs.extend(TileRef(level, index, None) for index in range(full))
        if partial:
            refs.append(TileRef(level, full, partial))
    return refs


def export_tiles(
    log: Log, signer: NoteSigner, directory: Path, *, entries: bool = False
) -> ExportSummary:
    """Write `checkpoint` and the tiles of the current tree under `directory`.

    The checkpoint is written last, so a static host being refreshed in place never serves
    a checkpoint whose tiles are missing; existing full tiles are left alone (immutable).
    """
    head = log.head()
    note = log.signed_checkpoint(head, signer)
    tiles = tiles_for_size(head.size)
    written_tiles = written_bundles = 0
    for ref in tiles:
        assert ref.level is not None
        target = directory / ref.path
        if ref.width is None and target.exists():
            continue
        data = read_hash_tile(log, ref.level, ref.index, ref.width)
        if data is None:  # the tree is at least `head.size` wide: its tiles exist
            raise LogError(f"tile {ref.path} is missing from the store")
        _write_atomic(target, data)
        written_tiles += 1
    if entries:
        for ref in tiles:
            if ref.level != 0:
                continue
            target = directory / tile_path(None, ref.index, ref.width)
            if ref.width is None and target.exists():
                continue
            bundle = read_entry_bundle(log, ref.index, ref.width)
            if bundle is None:
                raise LogError(f"entries of {target.name} are missing from the store")
            _write_atomic(target, bundle)
            written_bundles += 1
    _write_atomic(directory / "checkpoint", note.encode())
    return ExportSummary(head.size, written_tiles, written_bundles)


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, target)
