"""The committed contract artifact matches its sources: a real recompile with the pinned
solc-js (`node build.mjs --check`), and the source hashes checked from Python alone."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

from anchor_support import CONTRACTS, missing_tool

from attestation.chain.client import load_artifact


def test_artifact_matches_a_fresh_compile() -> None:
    node = shutil.which("node")
    if node is None:
        missing_tool("node is not installed")
    if not (CONTRACTS / "node_modules" / "solc").exists():
        missing_tool("solc-js is not installed; run `npm ci` in contracts/")
    assert node is not None
    result = subprocess.run(
        [node, "build.mjs", "--check"],
        cwd=CONTRACTS,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches a fresh compile" in result.stdout


def test_source_hashes_match_the_contract_sources() -> None:
    artifact = load_artifact()
    sources: dict[str, str] = artifact["sources"]
    own = sorted(CONTRACTS.glob("src/*.sol"))
    assert own, "contracts/src has the Solidity sources"
    for path in own:
        unit = f"src/{path.name}"
        assert sources[unit] == hashlib.sha256(path.read_bytes()).hexdigest(), unit
    listing = "".join(f"{digest}  {unit}\n" for unit, digest in sorted(sources.items()))
    assert artifact["sourceHash"] == hashlib.sha256(listing.encode()).hexdigest()
    assert {item["name"] for item in artifact["abi"] if item["type"] == "function"} >= {
        "anchor",
        "latest",
        "rootAt",
        "verifyInclusion",
        "verifyConsistency",
        "rootFromInclusionProof",
    }
