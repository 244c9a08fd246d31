"""`carbonledger audit replay` through Typer's CliRunner on the real app: exit codes 0/1/2/3,
the precise violation line on stdout and the one-line summary on stderr, JSON output, and
the chain comparison against the registry's embedded chain."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_support import at_text, filler_entry, plant_statement
from certificate_support import Scenario, issue_all, producer_scenario
from meter_support import T0
from typer.testing import CliRunner, Result

from api.cli.main import app
from api.settings import ApiSettings
from attestation.anchoring.anchor import anchor_now
from attestation.chain.client import ChainSettings
from attestation.chain.deployment import deploy_and_record, resolve_contract
from attestation.chain.embedded import open_embedded_chain
from ledger.certificates.lifecycle import RetirementRequest, retire_certificate
from ledger.certificates.rules import RetirementPurpose
from ledger.meters.entries import GridRegion
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

SETTING_VARIABLES = tuple(
    "CARBONLEDGER_" + name.upper()
    for name in (*ApiSettings.model_fields, *ChainSettings.model_fields)
)


def _env(settings: LedgerSettings) -> dict[str, str | None]:
    """Only this registry's settings: the developer's environment must not leak in."""
    env: dict[str, str | None] = dict.fromkeys(SETTING_VARIABLES)
    env["CARBONLEDGER_DATA_DIR"] = str(settings.data_dir)
    env["CARBONLEDGER_DATABASE_URL"] = settings.database_url
    return env


def _run(settings: LedgerSettings, *args: str) -> Result:
    return CliRunner().invoke(app, ["audit", "replay", *args], env=_env(settings))


@pytest.fixture
def registry_settings(tmp_path: Path) -> LedgerSettings:
    data = tmp_path / "data"
    return LedgerSettings(data_dir=data, database_url=f"sqlite:///{data / 'carbonledger.db'}")


@pytest.fixture
def scenario_registry(registry_settings: LedgerSettings) -> Iterator[tuple[Registry, Scenario]]:
    registry = initialise_registry(registry_settings)
    try:
        scenario = producer_scenario(registry)
        issue_all(registry, scenario, hours=10)
        yield registry, scenario
    finally:
        registry.close()


def _double_retire(registry: Registry, scenario: Scenario) -> tuple[int, str]:
    certificate = issue_all(registry, scenario, start=T0 + 10 * 3600, hours=1).issued[0]
    request = RetirementRequest(
        beneficiary_id=scenario.buyer,
        purpose=RetirementPurpose.VOLUNTARY,
        period_start=T0,
        period_end=T0 + 86_400,
        province="CN-JS",
        grid_region=GridRegion.EAST,
    )
    retire_certificate(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        certificate_id=certificate.certificate_id,
        request=request,
    )
    index = plant_statement(
        registry,
        {
            "kind": "certificate.retired/1",
            "certificate": certificate.certificate_id,
            "account": scenario.producer_account,
            "beneficiary": scenario.buyer,
            "purpose": "voluntary",
            "reportingPeriodStart": at_text(T0),
            "reportingPeriodEnd": at_text(T0 + 86_400),
            "consumptionProvince": "CN-JS",
            "consumptionGridRegion": "east",
            "at": at_text(int(time.time())),
        },
    )
    return index, certificate.certificate_id


def test_clean_registry_exits_0_and_says_the_chain_was_skipped(
    registry_settings: LedgerSettings, scenario_registry: tuple[Registry, Scenario]
) -> None:
    result = _run(registry_settings, "--no-chain")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "audit passed: no violation" in result.stdout
    assert "not checked (--no-chain)" in result.stdout
    assert "4 active" in result.stdout
    assert result.stderr == ""


def test_double_retirement_exits_1_with_the_precise_line(
    registry_settings: LedgerSettings, scenario_registry: tuple[Registry, Scenario]
) -> None:
    index, certificate = _double_retire(*scenario_registry)
    result = _run(registry_settings, "--no-chain")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    expected = f"entry {index}: [retired-is-final] {certificate} is retired; it cannot be retired"
    assert expected in result.stdout.splitlines()
    assert result.stderr.splitlines() == [
        f"error: audit failed: 1 violation; first: entry {index} [retired-is-final]"
    ]


def test_json_report_lists_the_violation(
    registry_settings: LedgerSettings, scenario_registry: tuple[Registry, Scenario]
) -> None:
    index, _ = _double_retire(*scenario_registry)
    result = _run(registry_settings, "--no-chain", "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert body["chain"] is None and body["chainNote"] == "not checked (--no-chain)"
    assert [(v["index"], v["rule"]) for v in body["replay"]["violations"]] == [
        (index, "retired-is-final")
    ]
    assert body["replay"]["certificates"]["retired"] == 1
    assert body["replay"]["retiredWh"] > 0


def test_missing_database_exits_3(registry_settings: LedgerSettings) -> None:
    result = _run(registry_settings, "--no-chain")
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the registry is not initialised")


def test_rpc_without_contract_is_a_usage_error(registry_settings: LedgerSettings) -> None:
    result = _run(registry_settings, "--rpc", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: --rpc needs --contract with the CarbonAnchor address"
    ]


def test_unreachable_rpc_exits_3(
    registry_settings: LedgerSettings, scenario_registry: tuple[Registry, Scenario]
) -> None:
    result = _run(
        registry_settings,
        "--rpc",
        "http://127.0.0.1:9",
        "--contract",
        "0x" + "11" * 20,
    )
    assert result.exit_code == 3, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: chain unavailable:")


def test_embedded_chain_anchors_are_compared(
    registry_settings: LedgerSettings, scenario_registry: tuple[Registry, Scenario]
) -> None:
    registry, _ = scenario_registry
    chain = open_embedded_chain(registry_settings.data_dir)
    try:
        deploy_and_record(chain, registry_settings.data_dir)
        contract = resolve_contract(chain, ChainSettings(), registry_settings.data_dir)
        anchor_now(registry.log, contract, poll_interval=0.01)
        registry.log.append([filler_entry()])
        anchor_now(registry.log, contract, poll_interval=0.01)
    finally:
        chain.close()
    result = _run(registry_settings, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert body["chain"]["anchorsChecked"] == 2
    assert body["chain"]["latestSize"] == registry.log.head().size
