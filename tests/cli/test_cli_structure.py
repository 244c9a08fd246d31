"""The shape of the command tree: every command's help, flags shown as flags, the expected-error
table, and the import discipline that keeps `carbonledger --help` and the offline checks fast.

Start-up time itself is measured by scripts/bench/cli.py, not asserted here (a shared machine is
too noisy for a bound); what is asserted is what a fast start needs and what can regress
silently: which libraries a command loads.
"""

from __future__ import annotations

import base64
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from cli_helpers import SETTING_VARIABLES, isolated_env, run

from api.cli.common import EXPECTED_ERRORS, CommandGroup
from api.cli.main import app
from ledger.log.merkle import leaf_hash

HEAVY = frozenset(
    {
        "alembic",
        "eth_account",
        "eth_tester",
        "fastapi",
        "httpx",
        "matplotlib",
        "pandas",
        "pydantic_settings",
        "pymodbus",
        "requests",
        "sqlalchemy",
        "uvicorn",
        "web3",
    }
)
"""Libraries that cost a tenth of a second or more to import and that `--help` never needs."""


def command_paths() -> Iterator[list[str]]:
    root = typer.main.get_command(app)

    def visit(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        commands = getattr(command, "commands", None)
        if commands:
            for name, child in sorted(commands.items()):
                yield from visit(child, [*path, name])

    yield from visit(root, [])


COMMANDS = list(command_paths())


def test_the_tree_has_the_documented_commands() -> None:
    names = {" ".join(path) for path in COMMANDS}
    for expected in (
        "init",
        "serve",
        "admin create-client",
        "log checkpoint",
        "log verify-inclusion",
        "meter keygen",
        "meter register",
        "meter sign",
        "meter simulate",
        "gateway run",
        "readings import",
        "chain deploy",
        "anchor now",
        "anchor status",
        "verify",
        "report matching",
        "audit replay",
    ):
        assert expected in names, (expected, sorted(names))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "carbonledger")
def test_every_help_shows_flags_as_flags(path: list[str]) -> None:
    result = run([*path, "--help"], isolated_env())
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "<bool>" not in result.stdout
    help_lines = [line for line in result.stdout.splitlines() if "--help " in line]
    assert help_lines and all("Show this message" in line for line in help_lines)


def test_a_flag_line_names_no_value_and_an_option_line_its_metavar() -> None:
    result = run(["verify", "--help"], {**isolated_env(), "COLUMNS": "200"})
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.count("--") >= 1}
    assert "--json" in lines and "--rpc" in lines, result.stdout
    json_line = lines["--json"]
    after_flag = json_line.split("--json", 1)[1].split()
    assert after_flag[0] == "Print", json_line  # the help text follows the flag directly
    assert lines["--rpc"].split("--rpc", 1)[1].split()[0] == "URL"


def test_every_group_shows_flags_as_flags() -> None:
    root = typer.main.get_command(app)

    def groups(command: object) -> Iterator[object]:
        commands = getattr(command, "commands", None)
        if commands is not None:
            yield command
            for child in commands.values():
                yield from groups(child)

    found = list(groups(root))
    assert len(found) > 5
    assert all(isinstance(group, CommandGroup) for group in found)


@pytest.mark.parametrize(("module_name", "class_name", "exit_code"), EXPECTED_ERRORS)
def test_expected_errors_name_real_exception_classes(
    module_name: str, class_name: str, exit_code: int
) -> None:
    error = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(error, type) and issubclass(error, Exception)
    assert exit_code in (2, 3)


# ------------------------------------------------------------------- import discipline


def imported_modules(*args: str, stdin: str | None = None) -> tuple[set[str], int]:
    """The top-level packages a `carbonledger …` process imports, and its exit code."""
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "api.cli.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    packages = set()
    for line in completed.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            packages.add(name.split(".", 1)[0])
    assert packages, completed.stderr[-2000:]
    return packages, completed.returncode


@pytest.mark.parametrize(
    "args",
    [["--help"], ["verify", "--help"], ["meter", "sign", "--help"], ["log", "--help"]],
    ids=" ".join,
)
def test_help_loads_no_heavy_library(args: list[str]) -> None:
    packages, code = imported_modules(*args)
    assert code == 0
    assert not packages & HEAVY, sorted(packages & HEAVY)


def test_offline_proof_check_loads_no_storage_or_chain_library(tmp_path: Path) -> None:
    """`log verify-inclusion` needs the proof and the Merkle code, nothing of the registry."""
    leaf = leaf_hash(b"only leaf")
    proof = tmp_path / "proof.json"
    encoded = base64.b64encode(leaf).decode()
    proof.write_text(
        f'{{"index":0,"size":1,"leafHash":"{encoded}","rootHash":"{encoded}","proof":[]}}'
    )
    packages, code = imported_modules("log", "verify-inclusion", str(proof))
    assert code == 0
    assert not packages & HEAVY, sorted(packages & HEAVY)
