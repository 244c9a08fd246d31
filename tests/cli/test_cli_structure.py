"""The shape of the command tree: every command's help, flags shown as flags, the expected-error
table, and the import discipline that keeps `carbonledger --help` and the offline checks fast.

Start-up time itself is measured by scripts/bench/cli.py, not asserted here (a shared machine is
too noisy for a bound); what is asserted is what a fast start needs and what can regress
silently: which libraries a command loads.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import SETTING_VARIABLES, isolated_env, run
from loaded_modules_support import loaded_modules, top_level

from api.cli.common import EXPECTED_ERRORS, CommandGroup
from api.cli.main import COMMANDS as LAZY_COMMANDS
from api.cli.main import UnloadedCommand, app, load_command
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


def loaded_tree() -> Any:
    """The root group with every command loaded (as running each one would load it)."""
    root = typer.main.get_command(app)
    context = typer.Context(root)
    for name in root.list_commands(context):
        root.get_command(context, name)
    return root


def command_paths() -> Iterator[list[str]]:
    def visit(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        commands = getattr(command, "commands", None)
        if commands:
            for name, child in sorted(commands.items()):
                yield from visit(child, [*path, name])

    yield from visit(loaded_tree(), [])


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
        "chain register-log",
        "chain rotate-anchorer",
        "chain revoke-anchors",
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
    root = loaded_tree()

    def groups(command: object) -> Iterator[object]:
        commands = getattr(command, "commands", None)
        if commands is not None:
            yield command
            for child in commands.values():
                yield from groups(child)

    found = list(groups(root))
    assert len(found) > 5
    assert all(isinstance(group, CommandGroup) for group in found)


def first_paragraph(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


@pytest.mark.parametrize("name", list(LAZY_COMMANDS))
def test_each_summary_is_the_commands_own_first_help_line(name: str) -> None:
    """`carbonledger --help` shows the table's summaries without loading the commands."""
    lazy = LAZY_COMMANDS[name]
    command = load_command(name, lazy)
    assert lazy.summary == first_paragraph(command.help)
    assert isinstance(typer.main.get_command(app).commands[name], UnloadedCommand)


@pytest.mark.parametrize(("module_name", "class_name", "exit_code"), EXPECTED_ERRORS)
def test_expected_errors_name_real_exception_classes(
    module_name: str, class_name: str, exit_code: int
) -> None:
    error = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(error, type) and issubclass(error, Exception)
    assert exit_code in (2, 3)


# ------------------------------------------------------------------- import discipline


def imported_modules(*args: str) -> tuple[set[str], int]:
    """The top-level packages a `carbonledger …` process loads, and its exit code."""
    modules, completed = imported_module_names(*args)
    return top_level(modules), completed.returncode


def imported_module_names(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    env = {key: value for key, value in os.environ.items() if key not in SETTING_VARIABLES}
    return loaded_modules(list(args), env)


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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], set()),
        (["verify", "--help"], {"api.cli.chain"}),
        (["meter", "--help"], {"api.cli.meter", "api.cli.gateway"}),
        (["log", "verify-inclusion", "--help"], {"api.cli.log"}),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_command_loads_only_its_own_module(args: list[str], expected: set[str]) -> None:
    modules, completed = imported_module_names(*args)
    assert completed.returncode == 0
    commands = {
        name
        for name in modules
        if name.startswith("api.cli.") and name not in {"api.cli.main", "api.cli.common"}
    }
    assert commands == expected


def test_root_help_is_plain_text_without_rich() -> None:
    """`carbonledger --help` is a list of commands; Rich's help renderer would triple its cost."""
    modules, completed = imported_module_names("--help")
    assert completed.returncode == 0
    assert not {name for name in modules if name == "rich" or name.startswith("rich.")}
    assert "typer.rich_utils" not in modules
    # every summary is shown whole, not cut at the terminal's width
    for lazy in LAZY_COMMANDS.values():
        assert " ".join(lazy.summary.split()) in " ".join(completed.stdout.split())
