"""The tlog-tiles API, read by a client written from the C2SP spec alone.

`TileReader` below knows nothing of the project's Merkle code: it follows c2sp.org/tlog-tiles
(tile `L/N` = the hashes MTH(D[(N*256+i)*256^L : (N*256+i+1)*256^L]), partial tiles of width
floor(s/256^L) mod 256, `x`-prefixed 3-digit index elements, uint16-prefixed entry bundles)
and RFC 6962 §2.1 (MTH, PATH and its verification). It recomputes the checkpoint's root from
the served tiles, builds inclusion proofs from them, and checks every entry bundle against the
level-0 tiles — over HTTP and over the files `carbonledger log export-tiles` writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_helpers import access_token, bearer
from fastapi.testclient import TestClient

from ledger.access.clients import IssuedClient
from ledger.log.checkpoint import open_checkpoint
from ledger.log.tiles import export_tiles
from ledger.registry import Registry

Fetch = Callable[[str], bytes | None]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def index_path(n: int) -> str:
    groups = []
    while True:
        n, rest = divmod(n, 1000)
        groups.insert(0, f"{rest:03d}")
        if not n:
            break
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


class TileReader:
    """A tlog-tiles client for a tree of `size` leaves, fetching through `fetch(path)`."""

    def __init__(self, fetch: Fetch, size: int) -> None:
        self.fetch = fetch
        self.size = size
        self.tiles: dict[tuple[int, int], list[bytes]] = {}

    def tile(self, level: int, n: int) -> list[bytes]:
        if (level, n) not in self.tiles:
            hashes_at_level = self.size // 256**level
            if (n + 1) * 256 <= hashes_at_level:
                path = f"tile/{level}/{index_path(n)}"
                width = 256
            else:
                width = hashes_at_level % 256
                assert n * 256 + width == hashes_at_level and width > 0, "no such tile"
                path = f"tile/{level}/{index_path(n)}.p/{width}"
            data = self.fetch(path)
            assert data is not None, f"{path} missing"
            assert len(data) == 32 * width, f"{path} is {len(data)} bytes"
            self.tiles[level, n] = [data[i : i + 32] for i in range(0, len(data), 32)]
        return self.tiles[level, n]

    def subtree(self, start: int, width: int) -> bytes:
        """MTH(D[start:start+width]) for an aligned power-of-two `width`, from one tile."""
        height = width.bit_length() - 1
        level, within = divmod(height, 8)
        unit = 256**level  # leaves per hash of a level-`level` tile
        first = start // unit
        hashes = self.tile(level, first // 256)[first % 256 : first % 256 + 2**within]
        assert len(hashes) == 2**within
        while len(hashes) > 1:
            hashes = [sha256(b"\x01" + hashes[i] + hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def mth(self, start: int, end: int) -> bytes:
        """RFC 6962 MTH(D[start:end]); the left part is always an aligned perfect subtree."""
        n = end - start
        if n == 0:
            return sha256(b"")
        if n & (n - 1) == 0:
            return self.subtree(start, n)
        k = 1 << ((n - 1).bit_length() - 1)
        return sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        """RFC 6962 PATH(m, D[start:end])."""
        n = end - start
        if n == 1:
            return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def entries(self, n: int) -> list[bytes]:
        width = min(256, self.size - n * 256)
        suffix = "" if width == 256 else f".p/{width}"
        data = self.fetch(f"tile/entries/{index_path(n)}{suffix}")
        assert data is not None
        out, offset = [], 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 2], "big")
            out.append(data[offset + 2 : offset + 2 + length])
            offset += 2 + length
        assert offset == len(data) and len(out) == width
        return out


def verify_path(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, written out independently of ledger.log.merkle."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def append_entries(registry: Registry, count: int) -> None:
    for start in range(0, count, 200):
        batch = range(start, min(count, start + 200))
        registry.log.append([{"kind": "test.tile/1", "n": n, "pad": "x" * (n % 7)} for n in batch])


def read_checkpoint(fetch: Fetch, registry: Registry) -> tuple[int, bytes]:
    note = fetch("checkpoint")
    assert note is not None
    checkpoint = open_checkpoint(note.decode(), registry.signer.verifier)
    return checkpoint.size, checkpoint.root_hash


def check_log_through(fetch: Fetch, registry: Registry, *, with_entries: bool) -> None:
    size, root = read_checkpoint(fetch, registry)
    reader = TileReader(fetch, size)
    assert reader.mth(0, size) == root
    for index in sorted({0, 1, 255, 256, size // 2, size - 1} & set(range(size))):
        leaf = reader.subtree(index, 1)
        proof = reader.path(index, 0, size)
        assert verify_path(index, size, leaf, proof, root)
        assert not verify_path(index, size, leaf, [*proof[:-1], sha256(b"forged")], root)
        assert registry.log.inclusion_proof(index, size).hashes == tuple(proof)
    if with_entries:
        for n in range((size + 255) // 256):
            leaves = reader.entries(n)
            assert [sha256(b"\x00" + leaf) for leaf in leaves] == reader.tile(0, n)
            assert leaves == registry.log.entries(n * 256, n * 256 + len(leaves))


SIZES = [1, 256, 582]
"""One leaf; a single full level-0 tile (plus a level-1 partial of width 1, as the spec's
example says); two full level-0 tiles, a partial one of width 70 and a level-1 partial."""


@pytest.fixture
def log_reader_token(
    client: TestClient, make_api_client: Callable[..., IssuedClient]
) -> dict[str, str]:
    return bearer(access_token(client, make_api_client("log:read")))


def http_fetch(client: TestClient, headers: dict[str, str]) -> Fetch:
    def fetch(path: str) -> bytes | None:
        response = client.get(f"/{path}", headers=headers)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, (path, response.text)
        expected = "text/plain" if path == "checkpoint" else "application/octet-stream"
        assert response.headers["content-type"].startswith(expected)
        if path != "checkpoint":
            assert "immutable" in response.headers["cache-control"]
        return response.content

    return fetch


@pytest.mark.parametrize("size", SIZES)
def test_a_spec_reader_recomputes_the_root_and_proofs_from_served_tiles(
    client: TestClient, registry: Registry, log_reader_token: dict[str, str], size: int
) -> None:
    append_entries(registry, size)
    check_log_through(http_fetch(client, log_reader_token), registry, with_entries=True)


def test_exported_tiles_verify_with_the_same_reader(registry: Registry, tmp_path: Path) -> None:
    append_entries(registry, 300)
    summary = export_tiles(registry.log, registry.signer, tmp_path, entries=True)
    assert (summary.size, summary.entry_bundles) == (300, 2)

    def fetch(path: str) -> bytes | None:
        target = tmp_path / path
        return target.read_bytes() if target.is_file() else None

    check_log_through(fetch, registry, with_entries=True)
    # The log grows: re-exporting keeps full tiles, adds the new edge, moves the checkpoint.
    append_entries(registry, 300)
    again = export_tiles(registry.log, registry.signer, tmp_path)
    assert again.size == 600 and again.entry_bundles == 0
    assert not (tmp_path / "tile/entries/002.p/88").exists()
    check_log_through(fetch, registry, with_entries=False)
    # The partial tile an earlier checkpoint needs is still there (the spec's MUST).
    assert (tmp_path / "tile/0/001.p/44").stat().st_size == 44 * 32


def test_public_mirror_export_leaves_entries_out(registry: Registry, tmp_path: Path) -> None:
    append_entries(registry, 10)
    export_tiles(registry.log, registry.signer, tmp_path)
    assert not (tmp_path / "tile/entries").exists()
    assert (tmp_path / "tile/0/000.p/10").is_file()


NOT_TILES = [
    "tile/0/002",  # a full tile while only 70 hashes exist at the edge: still filling
    "tile/0/002.p/71",  # wider than the log
    "tile/0/2.p/70",  # not three digits
    "tile/0/x000/002.p/70",  # a second spelling of 002
    "tile/00/002.p/70",  # leading zero in the level
    "tile/0/002.p/070",  # leading zero in the width
    "tile/0/002.p/256",  # a partial tile is below 256 wide
    "tile/0/002.p/0",
    "tile/8/000.p/1",  # above the highest level
    "tile/1/000",  # level-1 tile needs 65,536 leaves
    "tile/0/x999/x999/x999/x999/x999/x999/999",
    "tile/0/٠٠٢.p/70",  # non-ASCII digits
    "tile/entries/002.p/71",
]


def test_tiles_that_do_not_exist_or_are_misspelt_are_404(
    client: TestClient, registry: Registry, log_reader_token: dict[str, str]
) -> None:
    append_entries(registry, 582)
    assert client.get("/tile/0/002.p/70").status_code == 200
    for path in NOT_TILES:
        response = client.get(f"/{path}", headers=log_reader_token)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")


def test_entry_bundles_need_log_read_but_hash_tiles_and_checkpoint_are_public(
    client: TestClient, registry: Registry, make_api_client: Callable[..., IssuedClient]
) -> None:
    append_entries(registry, 3)
    assert client.get("/tile/0/000.p/3").status_code == 200
    checkpoint: Any = client.get("/checkpoint")
    assert checkpoint.status_code == 200
    assert checkpoint.headers["cache-control"] == "public, max-age=2"
    assert client.get("/tile/entries/000.p/3").status_code == 401
    other = bearer(access_token(client, make_api_client("readings:write")))
    assert client.get("/tile/entries/000.p/3", headers=other).status_code == 403


def test_checkpoint_is_signed_once_per_tree_size(
    client: TestClient, registry: Registry, app: Any
) -> None:
    append_entries(registry, 2)
    first = client.get("/checkpoint").text
    assert client.get("/v1/log/checkpoint").text == first
    served = app.state.registry.log
    assert len(served._checkpoints) == 1  # the cache under test
    append_entries(registry, 1)
    moved = client.get("/checkpoint").text
    assert moved != first and open_checkpoint(moved, registry.signer.verifier).size == 3
