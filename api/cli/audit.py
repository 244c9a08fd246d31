"""`carbonledger audit replay` (issue 5): re-check the registry from its log alone.

Replays every log entry through the certificate rules (`ledger.audit.replay`), checks the stored
tree's root against the replayed leaves, and compares the log's roots with the anchors on
chain (`attestation.anchoring.audit`): the chain the registry is configured with (embedded by
default), or `--rpc URL --contract ADDR`; `--no-chain` skips that part with a visible note.

Conventions are those of `api.cli.main`: the report (or `--json`) on stdout, errors one `error:`
line on stderr; exit 0 clean, 1 a violation was found (the full report on stdout, a one-line
summary on stderr), 2 usage, 3 the database or the chain cannot be reached. The command
turns its own expected errors into that line and code, so `audit_app` behaves the same
whether run inside the main command tree or alone.

Wired into the main tree by `api.cli.main` (`app.add_typer(audit_app, name="audit")`); like
`api.cli.chain`, it imports `api.cli.main` only inside the command.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from attestation.anchoring.audit import AnchorAudit
    from ledger.audit.replay import AuditReport
    from ledger.log.store import Log

audit_app = typer.Typer(
    help="Re-check the registry from its log entries and the chain alone.",
    no_args_is_help=True,
)

MAX_LISTED_VIOLATIONS = 200
"""Text output lists this many violations; `--json` carries the report's full list."""


@audit_app.callback()
def _audit_group() -> None:
    """Re-check the registry from its log entries and the chain alone."""


@audit_app.command("replay")
def replay_command(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of text.")
    ] = False,
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
    from api.cli.main import EXIT_USAGE, EXIT_VERIFICATION_FAILED, CliError, _fail_line  # noqa: PLC0415

    try:
        if rpc is not None and contract is None:
            raise CliError("--rpc needs --contract with the CarbonAnchor address", EXIT_USAGE)
        if no_chain and (rpc is not None or contract is not None):
            raise CliError("--no-chain cannot be combined with --rpc or --contract", EXIT_USAGE)
        report, anchors, chain_note = _run(ctx, rpc, contract, no_chain)
    except CliError as error:
        _fail_line(error.message)
        raise typer.Exit(error.exit_code) from None
    ok = report.ok and (anchors is None or anchors.ok)
    if json_output:
        from api.cli.main import _write_machine  # noqa: PLC0415

        _write_machine(
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
        _print(report, anchors, chain_note)
    if not ok:
        _fail_line(_summary(report, anchors))
        raise typer.Exit(EXIT_VERIFICATION_FAILED)


def _run(
    ctx: typer.Context, rpc: str | None, contract: str | None, no_chain: bool
) -> tuple[AuditReport, AnchorAudit | None, str]:
    from api.cli.main import CliError, _explain, _open_log, _settings  # noqa: PLC0415
    from ledger.audit.replay import replay_log  # noqa: PLC0415

    settings = _settings(ctx)
    try:
        with _open_log(settings) as log:
            head = log.head()
            report = replay_log(log, size=head.size)
            if no_chain:
                return report, None, "not checked (--no-chain)"
            anchors = _chain_audit(log, settings.data_dir, rpc, contract, head.size)
    except CliError:
        raise
    except Exception as error:
        explained = _explain(error)
        if explained is None:
            raise
        raise explained from error
    return report, anchors, ""


def _chain_audit(
    log: Log, data_dir: Path, rpc: str | None, contract: str | None, size: int
) -> AnchorAudit:
    from api.cli.chain import _chain_settings  # noqa: PLC0415
    from api.cli.main import EXIT_UNAVAILABLE, CliError  # noqa: PLC0415
    from attestation.anchoring.audit import audit_anchors  # noqa: PLC0415
    from attestation.chain.client import ChainError, open_chain  # noqa: PLC0415
    from attestation.chain.deployment import recorded_deployments, resolve_contract  # noqa: PLC0415

    try:
        if rpc is not None:
            from web3 import HTTPProvider, Web3  # noqa: PLC0415

            assert contract is not None
            w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": 30}))
            return audit_anchors(log, w3, contract, log_size=size)
        chain = open_chain(_chain_settings(), data_dir)
        try:
            address = (
                contract
                or resolve_contract(
                    chain, _chain_settings(), data_dir, deploy_embedded=False
                ).address
            )
            recorded = recorded_deployments(data_dir).get(chain.chain_id)
            # Events before the recorded deployment cannot be the contract's.
            first_block = (
                recorded.block
                if recorded is not None and recorded.address.lower() == address.lower()
                else 0
            )
            return audit_anchors(log, chain.w3, address, log_size=size, from_block=first_block)
        finally:
            chain.close()
    except (ChainError, OSError, ValueError) as error:
        raise CliError(
            f"chain unavailable: {' '.join(str(error).split())} (use --no-chain to skip it)",
            EXIT_UNAVAILABLE,
        ) from error


def _summary(report: AuditReport, anchors: AnchorAudit | None) -> str:
    violations = list(report.violations) + (list(anchors.violations) if anchors else [])
    total = report.violations_total + (len(anchors.violations) if anchors else 0)
    first = violations[0]
    return (
        f"audit failed: {total} violation{'s' if total != 1 else ''}; first: "
        f"entry {first.index} [{first.rule}]"
    )


def _print(report: AuditReport, anchors: AnchorAudit | None, chain_note: str) -> None:
    from api.cli.main import _field, _stdout  # noqa: PLC0415
    from ledger.certificates.rules import gec_text  # noqa: PLC0415

    console = _stdout()
    _field(console, "entries", str(report.size), f"root {report.root.hex()}")
    statuses = ", ".join(f"{count} {status}" for status, count in report.status_counts().items())
    _field(console, "certificates", str(len(report.certificates)), statuses)
    _field(console, "issued", f"{report.issued_wh} Wh", f"{gec_text(report.issued_wh)} GEC")
    _field(console, "retired", f"{report.retired_wh} Wh", f"{gec_text(report.retired_wh)} GEC")
    if anchors is None:
        _field(console, "chain", chain_note)
    else:
        _field(
            console,
            "chain",
            f"{anchors.anchors_checked} anchors checked",
            f"latest size {anchors.latest_size}, contract {anchors.contract}, "
            f"chain {anchors.chain_id}",
        )
    _violations(console, report, anchors)


def _violations(console: Console, report: AuditReport, anchors: AnchorAudit | None) -> None:
    listed = list(report.violations) + (list(anchors.violations) if anchors else [])
    if not listed:
        console.print(Text("audit passed: no violation", style="bold green"))
        return
    for violation in listed[:MAX_LISTED_VIOLATIONS]:
        console.print(Text(violation.line(), style="red"))
    hidden = report.violations_total + (len(anchors.violations) if anchors else 0)
    hidden -= min(len(listed), MAX_LISTED_VIOLATIONS)
    if hidden > 0:
        console.print(Text(f"… and {hidden} more (see --json)", style="dim"))
