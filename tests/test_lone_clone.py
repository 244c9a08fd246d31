"""A clone of the repository with nothing beside it runs its tests (issue 9, item 2).

The committed tree is cloned into an empty temporary folder (no `shared/` next to it) and
the tests that read test material, plus the checks of this module's neighbours, run there
under CI=true with this interpreter (the clone's own code first on the path). Nothing they
read may come from outside the clone: a reference to `../shared` or a missing vector fails
them. Relative links in the clone's Markdown must resolve inside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBSET = (
    "tests/test_testdata_copies.py",
    "tests/ledger/test_rfc9162_vectors.py",
    "tests/ledger/test_jcs_vectors.py",
    "tests/credentials",
    "tests/readings/test_ocmf_records.py",
    "tests/ingest/test_ingest_ocmf.py",
    "tests/gateway/test_register_maps.py",
    "tests/matching/test_factors.py",
)
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the lone-clone test needs git and a git checkout")
    target = tmp_path_factory.mktemp("lone") / "carbonledger"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert not (target.parent / "shared").exists()
    return target


def test_markdown_links_resolve_inside_the_clone(clone: Path) -> None:
    broken = []
    for page in [clone / "README.md", *sorted((clone / "docs").rglob("*.md"))]:
        for target in MARKDOWN_LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # an absolute URL
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(clone) or not resolved.exists():
                broken.append(f"{page.relative_to(clone)} -> {target}")
    assert not broken, broken


@pytest.mark.slow
def test_the_test_material_subset_passes_in_a_lone_clone(clone: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
    env.update({"CI": "true", "PYTHONPATH": str(clone)})
    if "CARBONLEDGER_TEST_PG_URL" in os.environ:
        env["CARBONLEDGER_TEST_PG_URL"] = os.environ["CARBONLEDGER_TEST_PG_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUBSET],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "failed" not in summary and "error" not in summary, summary
    # Only the comparison with the absent originals may skip.
    skipped = re.search(r"(\d+) skipped", summary)
    copies = len([p for p in (clone / "tests" / "data").rglob("*") if p.is_file()]) - 1
    assert skipped is None or int(skipped.group(1)) <= copies + 1, result.stdout[-4000:]
