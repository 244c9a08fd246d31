"""`carbonledger meter register` on SQLite and PostgreSQL: the meter and its key as log entries
(the rules of POST /v1/meters and POST /v1/meters/{id}/keys), and every refusal leaving the
registry as it was."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CliRegistry, assert_one_line_error, run
from typer.testing import Result

from ledger.access.clients import create_client
from ledger.log.canonical import parse_entry
from ledger.meters.registration import MeterNotFoundError, get_meter
from ledger.registry import Registry, open_registry
from meter_signing.keys import create_meter_key_file, load_meter_key_file

SOLAR = [
    "--meter",
    "pv-1",
    "--org",
    "Sunny Roofs",
    "--role",
    "generation",
    "--province",
    "CN-JS",
    "--grid-region",
    "east",
    "--source",
    "solar",
    "--capacity-w",
    "5000",
]


@pytest.fixture
def registry_of(cli_registry: CliRegistry) -> Iterator[Registry]:
    opened = open_registry(cli_registry.settings, migrate=False)
    create_client(opened.database, "Sunny Roofs", ["readings:write"])
    create_client(opened.database, "Other Grid", ["readings:write"])
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "pv-1.pem"
    create_meter_key_file(path)
    return path


def register(env: dict[str, str | None], *args: str) -> Result:
    return run(["meter", "register", *args], env)


def entries_since(registry: Registry, size: int) -> list[dict[str, Any]]:
    head = registry.log.head().size
    return [parse_entry(leaf) for leaf in registry.log.entries(size, head)]


def test_register_writes_the_meter_and_its_key_as_log_entries(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path
) -> None:
    before = registry_of.log.head().size
    args = [*SOLAR, "--key", str(key_file), "--valid-from", "2026-01-01T00:00:00Z", "--json"]
    result = run(["meter", "register", *args], cli_registry.env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)

    registered, key = entries_since(registry_of, before)
    assert registered["kind"] == "meter.registered/1"
    assert registered["meter"] == "pv-1" and registered["capacityW"] == 5000
    assert registered["energySource"] == "solar" and registered["gridRegion"] == "east"
    assert key["kind"] == "meter.key/1" and key["validFrom"] == "2026-01-01T00:00:00Z"

    public = load_meter_key_file(key_file)
    assert key["keyId"] == public.key_id
    assert base64.b64decode(key["publicKey"]) == public.public_spki
    # The JSON is the API's meter body, and it agrees with the registry.
    stored = get_meter(registry_of.database, "pv-1")
    assert body["id"] == "pv-1" and body["organisationId"] == stored.organisation_id
    assert [item["keyId"] for item in body["keys"]] == [public.key_id]
    assert body["keys"][0]["validFrom"] == "2026-01-01T00:00:00Z"
    assert body["logIndex"] == stored.log_index == before


def test_text_output_says_from_when_the_key_signs(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path
) -> None:
    args = [*SOLAR, "--key", str(key_file), "--valid-from", "2026-01-01T00:00:00Z"]
    result = run(["meter", "register", *args], {**cli_registry.env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Meter pv-1 registered with its key." in result.stdout
    valid_line = next(line for line in result.stdout.splitlines() if "valid from" in line)
    assert "2026-01-01T00:00:00Z" in valid_line and "earlier are refused" in valid_line


def test_a_public_key_alone_is_enough(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path
) -> None:
    spki = load_meter_key_file(key_file).public_spki_b64
    result = run(["meter", "register", *SOLAR, "--public-key", spki], cli_registry.env)
    assert result.exit_code == 0, result.output
    assert get_meter(registry_of.database, "pv-1").keys[0].public_key == base64.b64decode(spki)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"--source": None}, "energySource and capacityW"),
        ({"--capacity-w": None}, "energySource and capacityW"),
        ({"--province": "Jiangsu"}, "ISO 3166-2"),
        ({"--role": "producer"}, "--role must be one of generation, consumption, bidirectional"),
        ({"--grid-region": "mars"}, "--grid-region must be one of north"),
        ({"--source": "coal"}, "--source must be one of solar"),
        ({"--meter": "bad id!"}, "meter id must be"),
        ({"--org": "Nobody"}, "no organisation named 'Nobody'"),
        ({"--role": None}, "a new meter needs --role"),
        ({"--valid-from": "2026-01-01"}, "--valid-from must be an RFC 3339 UTC time"),
        ({"--public-key": "bm90IGEga2V5"}, "SubjectPublicKeyInfo"),
        ({"--public-key": "not base64!"}, "--public-key must be standard base64"),
    ],
)
def test_refusals_change_nothing(
    cli_registry: CliRegistry,
    registry_of: Registry,
    key_file: Path,
    change: dict[str, str | None],
    fragment: str,
) -> None:
    options: dict[str, str | None] = dict(zip(SOLAR[::2], SOLAR[1::2], strict=True))
    options["--key"] = str(key_file)
    if "--public-key" in change:
        del options["--key"]
    options.update(change)
    args = [item for name, value in options.items() if value is not None for item in (name, value)]
    before = registry_of.log.head().size
    result = run(["meter", "register", *args], cli_registry.env)
    assert_one_line_error(result, 2, fragment)
    assert registry_of.log.head().size == before


def test_one_key_source_is_required(cli_registry: CliRegistry, registry_of: Registry) -> None:
    assert_one_line_error(run(["meter", "register", *SOLAR], cli_registry.env), 2, "--key FILE")


def test_rerunning_changes_nothing_and_a_second_key_is_added(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path, tmp_path: Path
) -> None:
    args = ["meter", "register", *SOLAR, "--key", str(key_file)]
    assert run([*args, "--valid-from", "2026-01-01T00:00:00Z"], cli_registry.env).exit_code == 0
    size = registry_of.log.head().size

    again = run([*args, "--valid-from", "2026-01-01T00:00:00Z"], cli_registry.env)
    assert again.exit_code == 0, again.output
    assert "registered already" in again.stdout
    assert registry_of.log.head().size == size

    # Its validFrom is in the log for good: asking for another is refused, not ignored.
    moved = run([*args, "--valid-from", "2025-01-01T00:00:00Z"], cli_registry.env)
    assert_one_line_error(moved, 2, "validFrom cannot change", "register a new key")
    assert registry_of.log.head().size == size

    second = tmp_path / "pv-1-second.pem"
    create_meter_key_file(second, "ES256")
    rotated = run(
        ["meter", "register", "--meter", "pv-1", "--org", "Sunny Roofs", "--key", str(second)],
        cli_registry.env,
    )
    assert rotated.exit_code == 0, rotated.output
    assert "Key added to meter pv-1." in rotated.stdout
    (entry,) = entries_since(registry_of, size)
    assert entry["kind"] == "meter.key/1" and entry["alg"] == "ES256"
    assert len(get_meter(registry_of.database, "pv-1").keys) == 2


def test_a_registered_meter_keeps_its_attributes_and_its_owner(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path, tmp_path: Path
) -> None:
    assert (
        run(["meter", "register", *SOLAR, "--key", str(key_file)], cli_registry.env).exit_code == 0
    )
    size = registry_of.log.head().size
    other_key = tmp_path / "other.pem"
    create_meter_key_file(other_key)

    changed = [*SOLAR, "--key", str(other_key)]
    changed[changed.index("--capacity-w") + 1] = "9000"
    result = run(["meter", "register", *changed], cli_registry.env)
    assert_one_line_error(result, 2, "registered with --capacity-w 5000", "cannot change")

    # Another organisation cannot add its key to someone else's meter.
    stolen = [
        "meter",
        "register",
        "--meter",
        "pv-1",
        "--org",
        "Other Grid",
        "--key",
        str(other_key),
    ]
    assert_one_line_error(run(stolen, cli_registry.env), 2, "belongs to another organisation")
    assert registry_of.log.head().size == size


def test_a_key_of_another_meter_is_refused_before_the_meter_is_written(
    cli_registry: CliRegistry, registry_of: Registry, key_file: Path
) -> None:
    assert (
        run(["meter", "register", *SOLAR, "--key", str(key_file)], cli_registry.env).exit_code == 0
    )
    size = registry_of.log.head().size
    second = [*SOLAR, "--key", str(key_file)]
    second[second.index("--meter") + 1] = "pv-2"
    result = run(["meter", "register", *second], cli_registry.env)
    assert_one_line_error(result, 2, "already registered for meter 'pv-1'")
    assert registry_of.log.head().size == size
    with pytest.raises(MeterNotFoundError):
        get_meter(registry_of.database, "pv-2")
