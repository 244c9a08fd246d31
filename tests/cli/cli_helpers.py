"""Helpers shared by the CLI tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner, Result

from api.cli.main import app
from api.settings import ApiSettings
from ledger.registry import open_registry
from ledger.settings import LedgerSettings

# Every setting the CLI reads; unset in each run so the developer's environment cannot leak in.
SETTING_VARIABLES = tuple("CARBONLEDGER_" + name.upper() for name in ApiSettings.model_fields)


def isolated_env(**settings: str) -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(SETTING_VARIABLES)
    env.update({"CARBONLEDGER_" + key.upper(): value for key, value in settings.items()})
    return env


def run(
    args: Sequence[str],
    env: Mapping[str, str | None],
    input: str | bytes | None = None,
) -> Result:
    return CliRunner().invoke(app, list(args), env=env, input=input)


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> str:
    """The command failed with `exit_code` and exactly one `error:` line on stderr."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        "an expected error must not escape as an exception"
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def check_lines(result: Result) -> dict[str, str]:
    """The verdict per check name from a verify command's report: {"inclusion": "PASS"}."""
    verdicts: dict[str, str] = {}
    for line in result.stdout.splitlines():
        verdict, _, rest = line.partition("  ")
        if verdict in {"PASS", "FAIL", "SKIP"}:
            name = rest.split("  ")[0].strip()
            verdicts[name] = verdict
    return verdicts


def flip_base64(value: str, byte: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[byte] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def mutate(proof_json: str, **changes: Any) -> str:
    body = json.loads(proof_json)
    body.update(changes)
    return json.dumps(body)


@dataclass(frozen=True)
class CliRegistry:
    """An initialised registry as the CLI sees it: its environment and `init --json`."""

    env: dict[str, str | None]
    settings: LedgerSettings
    origin: str
    verifier_key: str

    def append(self, count: int) -> list[bytes]:
        """Append `count` entries through the library (the CLI has no write command)."""
        registry = open_registry(self.settings, migrate=False)
        try:
            start = registry.log.head().size
            registry.log.append(
                {"kind": "test.cli/1", "n": start + offset} for offset in range(count)
            )
            return registry.log.entries(start, start + count)
        finally:
            registry.close()
