"""The README's journeys, pasted as a new user would: every `sh` block, top to bottom.

The repository's files (as `git ls-files` lists them, with uncommitted edits) are copied into
an empty temporary folder — nothing beside it, no `var/`, no `work/` — and the README runs there
in one bash session (`readme_runner`): `make run` in the background, then every journey
against it, anvil and a second server included. The project's installed `.venv` and
`contracts/node_modules` stand in for the install `make` would do (linked, with the copy's
dependency lists dated before them so `make` sees nothing to install); the copy's own code is
what runs (`PYTHONPATH`).

The journeys use the ports the README names (8000, 8001, 8545, 5020 on 127.0.0.1), as a user's
would; no other test binds a fixed port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from readme_runner import run_readme
from testdata_support import running_in_ci

ROOT = Path(__file__).resolve().parents[2]
README_PORTS = (8000, 8001, 8545, 5020)
JOURNEY_TIMEOUT_SECONDS = 1_200


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if not source.is_file():  # deleted in the work tree, not yet in the index
            continue
        destination = target / os.fsdecode(name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def _link_installed(target: Path) -> None:
    venv = ROOT / ".venv"
    node_modules = ROOT / "contracts" / "node_modules"
    if not (venv / "bin" / "carbonledger").exists():
        pytest.fail("the project is not installed in .venv: run `make install`")
    if not (node_modules / ".bin" / "anvil").exists():
        message = "anvil is not installed: run `make contracts-install`"
        if running_in_ci():
            pytest.fail(message + " (CI=true: the README's anvil journey must run)")
        pytest.skip(message)
    (target / ".venv").symlink_to(venv)
    (target / "contracts" / "node_modules").symlink_to(node_modules)
    # `make` re-installs when a dependency list is newer than its stamp: date the copies back.
    for name in ("pyproject.toml", "contracts/package.json", "contracts/package-lock.json"):
        os.utime(target / name, (0, 0))


@pytest.mark.slow
@pytest.mark.timeout(JOURNEY_TIMEOUT_SECONDS + 60)
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    busy = [port for port in README_PORTS if _port_in_use(port)]
    if busy:
        pytest.fail(f"the README's ports are taken on 127.0.0.1: {busy}; stop what holds them")
    clone = tmp_path / "carbonledger"
    _copy_repository(clone)
    _link_installed(clone)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CARBONLEDGER_", "VIRTUAL_ENV", "PYTHON", "MAKE", "MFLAGS"))
    }
    env["PYTHONPATH"] = str(clone)
    logs = tmp_path / "logs"
    result = run_readme(
        clone / "README.md", clone, env, log_dir=logs, timeout=JOURNEY_TIMEOUT_SECONDS
    )
    background = "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(logs.glob("background-*.log"))
    )
    assert result.returncode == 0, (
        f"{result.stderr[-4000:]}\n--- stdout\n{result.stdout[-4000:]}\n{background}"
    )
    # What the journeys say they produce is there.
    work = clone / "work"
    for produced in (
        "bundle-3.json",
        "certificate-bundle.json",
        "anvil-bundle-3.json",
        "tampered.json",
        "pv-2-leaf.bin",
    ):
        assert (work / produced).is_file(), produced
    assert "verified:" in result.stdout
    assert "verification failed" in result.stdout + result.stderr  # the tampered bundle
    assert "audit passed: no violation" in result.stdout
    assert list((work / "report").glob("matching-*.png"))
    # Nothing was written outside the git-ignored folders.
    untracked = {
        path.relative_to(clone).parts[0]
        for path in clone.iterdir()
        if path.name not in {".venv", "var", "work"}
    }
    tracked = {
        Path(os.fsdecode(name)).parts[0]
        for name in subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        if name
    }
    assert untracked <= tracked, sorted(untracked - tracked)
