"""`carbonledger audit replay` (issue 5): re-check the registry from its log alone.

Replays every log entry through the certificate rules (`ledger.audit.replay`), checks the
stored tree's root against the replayed leaves, and compares the log's roots with the anchors
on chain (`attestation.anchoring.audit`): the chain the registry is configured with (embedded
by default), or `--rpc URL --contract ADDR`; `--no-chain` skips that part with a visible note.

The report (or `--json`) goes on stdout; exit 0 clean, 1 a violation was found (the full
report on stdout, a one-line summary on stderr), 2 usage, 3 the database or the chain cannot
be reached.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_UNAVAILABLE,
    JsonOption,
    api_settings,
    chain_settings,
    checked_rpc_url,
    command_group,
    fail,
    open_log,
    print_error_line,
    print_field,
    print_headline,
    stdout_console,
    write_machine,
)

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from attestation.anchoring.audit import AnchorAudit
    from ledger.audit.replay import AuditReport
    from ledger.log.store import Log

audit_app = command_group("Re-check the registry from its log entries and the chain alone.")

MAX_LISTED_VIOLATIONS = 200
"""Text output lists this many violations; `--json` carries the report's full list."""


@audit_app.command("replay")
def replay_command(
    ctx: typer.Context,
    json_output: JsonOption = False,
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            metavar="URL",
            help="JSON-RPC endpoint of the chain to compare with (needs --contract). Without "
            "it: the chain the registry is configured with.",
            show_default=False,
        ),
    ] = None,
    contract: Annotated[
        str | None,
        typer.Option(
            "--contract",
            metavar="ADDR",
            help="The CarbonAnchor contract (default: the configured or recorded one).",
            show_default=False,
        ),
    ] = None,
    no_chain: Annotated[
        bool,
        typer.Option("--no-chain", help="Skip the chain comparison (the report says so)."),
    ] = False,
) -> None:
    """Replay the whole log through the certificate rules and compare it with the chain.

    Recomputes, from the log entries alone (not the service's tables): per device-hour
    issued ≤ metered with disjoint serial ranges, evidence readings, the lifecycle of every
    certificate (no move after retirement, expiry and withdrawal respected), every statement
    and credential signature, the tree's root, and the anchored roots on chain. Exits 1 with
    the list of violations, each as `entry N: [rule] sentence`.
    """
    from ledger.audit.replay import replay_log

    if rpc is not None and contract is None:
        fail("--rpc needs --contract with the CarbonAnchor address")
    if no_chain and (rpc is not None or contract is not None):
        fail("--no-chain cannot be combined with --rpc or --contract")
    if rpc is not None:
        checked_rpc_url(rpc, "--rpc")
    settings = api_settings(ctx)
    anchors: AnchorAudit | None = None
    chain_note = "not checked (--no-chain)" if no_chain else ""
    with open_log(settings) as log:
        head = log.head()
        report = replay_log(log, size=head.size)
        if not no_chain:
            anchors = chain_audit(log, settings.data_dir, rpc, contract, head.size)
    ok = report.ok and (anchors is None or anchors.ok)
    if json_output:
        write_machine(
            json.dumps(
                {
                    "ok": ok,
                    "replay": report.to_json(),
                    "chain": anchors.to_json() if anchors is not None else None,
                    "chainNote": chain_note or None,
                }
            )
        )
    else:
        print_audit(report, anchors, chain_note)
    if not ok:
        print_error_line(summary(report, anchors))
        raise typer.Exit(EXIT_CHECK_FAILED)


def chain_audit(
    log: Log, data_dir: Path, rpc_url: str | None, contract: str | None, size: int
) -> AnchorAudit:
    """The anchors on chain against the log; read only, so no key is needed on any chain.

    `--rpc` (with `--contract`) or CARBONLEDGER_CHAIN_RPC is read through web3 (the audit
    scans the contract's events); otherwise the embedded chain under the data directory.
    """
    from attestation.anchoring.audit import audit_anchors
    from attestation.chain import rpc
    from attestation.chain.client import ChainBackend
    from attestation.chain.deployment import recorded_deployments, resolve_contract
    from attestation.chain.embedded import open_embedded_chain
    from attestation.chain.errors import ChainError

    settings = chain_settings()
    if rpc_url is None and settings.backend is ChainBackend.JSON_RPC:
        assert settings.chain_rpc is not None
        rpc_url = checked_rpc_url(settings.chain_rpc, "CARBONLEDGER_CHAIN_RPC")
    try:
        if rpc_url is not None:
            from web3 import HTTPProvider, Web3

            import attestation.chain.stack  # noqa: F401

            # One light request first: an unreachable node gets a message that says what
            # to check, and the chain id finds the recorded deployment.
            chain_id = rpc.JsonRpc(rpc_url).chain_id()
            recorded = recorded_deployments(data_dir).get(chain_id)
            address = (
                contract or settings.chain_contract or (recorded.address if recorded else None)
            )
            if address is None:
                fail(
                    f"no CarbonAnchor contract is known on chain {chain_id}; give --contract "
                    "or set CARBONLEDGER_CHAIN_CONTRACT",
                    EXIT_UNAVAILABLE,
                )
            w3 = Web3(
                HTTPProvider(rpc_url, request_kwargs={"timeout": rpc.DEFAULT_TIMEOUT_SECONDS})
            )
            return audit_anchors(
                log, w3, address, log_size=size, from_block=first_block(recorded, address)
            )
        chain = open_embedded_chain(data_dir, read_only=True)
        try:
            address = (
                contract
                or resolve_contract(chain, settings, data_dir, deploy_embedded=False).address
            )
            recorded = recorded_deployments(data_dir).get(chain.chain_id)
            return audit_anchors(
                log, chain.w3, address, log_size=size, from_block=first_block(recorded, address)
            )
        finally:
            chain.close()
    except (ChainError, OSError, ValueError) as error:
        # OSError: requests' connection errors, under web3, are OSErrors.
        detail = (
            rpc.unreachable_message(rpc_url, error)
            if rpc_url is not None and isinstance(error, OSError)
            else " ".join(str(error).split())
        )
        fail(f"chain unavailable: {detail} (use --no-chain to skip it)", EXIT_UNAVAILABLE)


def first_block(recorded: Any, address: str) -> int:
    """Events before the recorded deployment of `address` cannot be the contract's."""
    if recorded is not None and recorded.address.lower() == address.lower():
        return int(recorded.block)
    return 0


def summary(report: AuditReport, anchors: AnchorAudit | None) -> str:
    violations = list(report.violations) + (list(anchors.violations) if anchors else [])
    total = report.violations_total + (len(anchors.violations) if anchors else 0)
    first = violations[0]
    return (
        f"audit failed: {total} violation{'s' if total != 1 else ''}; first: "
        f"entry {first.index} [{first.rule}]"
    )


def print_audit(report: AuditReport, anchors: AnchorAudit | None, chain_note: str) -> None:
    from ledger.certificates.rules import gec_text

    console = stdout_console()
    print_field(console, "entries", str(report.size), f"root {report.root.hex()}")
    statuses = ", ".join(f"{count} {status}" for status, count in report.status_counts().items())
    print_field(console, "certificates", str(len(report.certificates)), statuses)
    print_field(console, "issued", f"{report.issued_wh} Wh", f"{gec_text(report.issued_wh)} GEC")
    print_field(console, "retired", f"{report.retired_wh} Wh", f"{gec_text(report.retired_wh)} GEC")
    if anchors is None:
        print_field(console, "chain", chain_note)
    else:
        print_field(
            console,
            "chain",
            f"{anchors.anchors_checked} anchors checked",
            f"latest size {anchors.latest_size}, contract {anchors.contract}, "
            f"chain {anchors.chain_id}",
        )
    print_violations(console, report, anchors)


def print_violations(console: Console, report: AuditReport, anchors: AnchorAudit | None) -> None:
    listed = list(report.violations) + (list(anchors.violations) if anchors else [])
    if not listed:
        print_headline(console, "audit passed: no violation")
        return
    for violation in listed[:MAX_LISTED_VIOLATIONS]:
        print_headline(console, violation.line(), "red")
    hidden = report.violations_total + (len(anchors.violations) if anchors else 0)
    hidden -= min(len(listed), MAX_LISTED_VIOLATIONS)
    if hidden > 0:
        print_headline(console, f"… and {hidden} more (see --json)", "dim")
