"""The repository's copies of the test material are the independent originals, byte for byte.

`tests/data/` is what the tests read (a clone runs its tests with nothing beside it). The
originals live outside the repository (`shared/testdata/` next to it in the development
workspace, or wherever `CARBONLEDGER_SHARED_TESTDATA` points); when they are there, every
file named by `tests/data/PROVENANCE.md` must be identical to its original, and the packaged
factor table must hold exactly the original's factor values. Without the originals there
is nothing to compare, and this module's comparisons skip, also under CI: the clone-alone
run is exactly the case the copies exist for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from testdata_support import TESTDATA

REPO = Path(__file__).resolve().parents[1]
ORIGINALS = Path(
    os.environ.get("CARBONLEDGER_SHARED_TESTDATA", REPO.parent / "shared" / "testdata")
)
PACKAGED_FACTORS = REPO / "ledger" / "factors" / "data" / "cn_grid_factors.json"
FACTORS_MEMBER = "china_grid_co2_factors_kgCO2_per_kWh"


VENDORED_HEADING = "## Vendored straight from upstream"


def vendored_hashes() -> dict[str, str]:
    """Folder -> SHA-256 of its one file, for material with no original in shared/testdata."""
    provenance = (TESTDATA / "PROVENANCE.md").read_text(encoding="utf-8")
    _, _, section = provenance.partition(VENDORED_HEADING)
    rows = re.findall(
        r"^\| `([a-z0-9-]+)/` \| `([^`]+)`.*?\| `([0-9a-f]{64})` \|", section, flags=re.MULTILINE
    )
    return {f"{folder}/{name}": digest for folder, name, digest in rows}


def all_files() -> list[str]:
    return sorted(
        str(path.relative_to(TESTDATA))
        for path in TESTDATA.rglob("*")
        if path.is_file() and path.name != "PROVENANCE.md"
    )


def copied_files() -> list[str]:
    """The files that are copies of an original in shared/testdata."""
    vendored = {name.split("/", 1)[0] for name in vendored_hashes()}
    return [name for name in all_files() if name.split("/", 1)[0] not in vendored]


def test_every_copied_folder_has_its_provenance() -> None:
    provenance = (TESTDATA / "PROVENANCE.md").read_text(encoding="utf-8")
    folders = {name.split("/", 1)[0] for name in all_files()}
    assert folders, "tests/data holds no test material"
    listed = set(re.findall(r"^\| `([a-z0-9-]+)/` \|", provenance, flags=re.MULTILINE))
    assert folders == listed, f"PROVENANCE.md lists {sorted(listed)}; tests/data: {sorted(folders)}"


def test_vendored_files_have_their_recorded_hash() -> None:
    hashes = vendored_hashes()
    assert hashes, f"PROVENANCE.md has no row under {VENDORED_HEADING!r}"
    vendored = {name.split("/", 1)[0] for name in hashes}
    present = {name for name in all_files() if name.split("/", 1)[0] in vendored}
    assert present == set(hashes), f"vendored folders hold {sorted(present)}, rows {sorted(hashes)}"
    for name, digest in hashes.items():
        actual = hashlib.sha256((TESTDATA / name).read_bytes()).hexdigest()
        assert actual == digest, f"tests/data/{name} is not the upstream file PROVENANCE.md names"


def _originals() -> Path:
    if not ORIGINALS.is_dir():
        pytest.skip(f"no originals at {ORIGINALS} to compare with (a clone on its own)")
    return ORIGINALS


@pytest.mark.parametrize("name", copied_files())
def test_copy_is_identical_to_its_original(name: str) -> None:
    original = _originals() / name
    assert original.is_file(), f"{name} has no original in {ORIGINALS}"
    assert (TESTDATA / name).read_bytes() == original.read_bytes(), (
        f"tests/data/{name} differs from {original}; refresh the copy and PROVENANCE.md"
    )


def test_packaged_factor_table_holds_the_original_factors() -> None:
    original = json.loads((_originals() / "factors" / "cn_factors_gec.json").read_bytes())
    packaged = json.loads(PACKAGED_FACTORS.read_bytes())
    assert packaged == {FACTORS_MEMBER: original[FACTORS_MEMBER]}
