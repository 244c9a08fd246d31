"""Every CLI reader of JSON with input built to crash a parser: exit 2 with one line.

`log verify-inclusion` on a file nested 100,000 deep printed a RecursionError traceback and
exited 1; the proof readers now go through `ledger.strict_json` first, as bundles do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import CliRegistry, assert_one_line_error, isolated_env, run

READERS = (
    ["log", "verify-inclusion"],
    ["log", "verify-consistency"],
    ["verify"],
)
HOSTILE = {
    "nested 10^5": b"[" * 10**5 + b"]" * 10**5,
    "nested 10^6": b"[" * 10**6 + b"]" * 10**6,
    "objects 10^5": b'{"a":' * 10**5 + b"}" * 10**5,
    "unclosed 10^6": b"[" * 10**6,
    "oversized": b'{"a":"' + b"x" * (16 << 20) + b'"}',  # over every reader's limit
    "duplicate members": b'{"index":1,"index":2}',
    "not UTF-8": b'{"a":"\xff"}',
}


@pytest.mark.parametrize("reader", READERS, ids=" ".join)
def test_json_readers_refuse_hostile_files_with_exit_2(
    cli_registry: CliRegistry, tmp_path: Path, reader: list[str]
) -> None:
    path = tmp_path / "input.json"
    for shape, data in HOSTILE.items():
        path.write_bytes(data)
        result = run([*reader, str(path)], cli_registry.env)
        try:
            assert_one_line_error(result, 2)
        except AssertionError as failure:
            raise AssertionError(f"{shape}: {failure}") from None


@pytest.mark.parametrize("reader", READERS[:2], ids=" ".join)
def test_proof_readers_refuse_deep_stdin_without_settings(reader: list[str]) -> None:
    result = run([*reader, "-"], isolated_env(), input=b"[" * 10**5 + b"]" * 10**5)
    assert_one_line_error(result, 2, "nested over 32 deep")
