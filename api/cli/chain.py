"""`carbonledger chain …`, `carbonledger anchor …` and `carbonledger verify` (issue 4).

Wired into the main command tree by `api.cli.main` (`add_typer` for the two groups, `command`
for `verify`). Conventions are those of `api.cli.main`: machine output (`--json`) alone on
stdout, human output through Rich, every error one `error:` line on stderr, and the exit
codes 0 success, 1 a check failed, 2 usage or malformed input, 3 registry or chain
unavailable.

This module imports `api.cli.main` only inside the commands: `api.cli.main` imports this module to
wire it, and the commands run after both are loaded.

`carbonledger verify` needs nothing but the bundle, a chain endpoint and the log's verifier
key: it reads no settings and opens no database, like the `log verify-*` commands. Without
`--rpc` it checks against the embedded chain of a registry directory instead (`--data-dir`),
for a registry that anchors on its in-process chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

if TYPE_CHECKING:
    from attestation.bundles.report import VerificationReport
    from attestation.chain.client import Chain, ChainSettings

chain_app = typer.Typer(
    help="The CarbonAnchor contract on the configured chain.", no_args_is_help=True
)
anchor_app = typer.Typer(help="Anchor the log's head on chain and show what is anchored.")
anchor_app.info.no_args_is_help = True

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of text.")
]


def _chain_settings() -> ChainSettings:
    from pydantic import ValidationError  # noqa: PLC0415

    from api.cli.main import EXIT_USAGE, CliError  # noqa: PLC0415
    from attestation.chain.client import ChainSettings  # noqa: PLC0415

    try:
        return ChainSettings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "CARBONLEDGER_" + "_".join(str(part) for part in first["loc"]).upper()
        raise CliError(f"invalid setting {name}: {first['msg']}", EXIT_USAGE) from error


@contextmanager
def _chain_errors() -> Iterator[None]:
    """Chain failures as the CLI's one-line errors: unreachable or misconfigured is 3."""
    from api.cli.main import EXIT_UNAVAILABLE, CliError  # noqa: PLC0415
    from attestation.chain.client import ChainError  # noqa: PLC0415

    try:
        yield
    except ChainError as error:
        raise CliError(str(error), EXIT_UNAVAILABLE) from error


@contextmanager
def _open_chain(ctx: typer.Context) -> Iterator[tuple[Chain, Path]]:
    from api.cli.main import _settings  # noqa: PLC0415
    from attestation.chain.client import open_chain  # noqa: PLC0415

    data_dir = _settings(ctx).data_dir
    with _chain_errors():
        chain = open_chain(_chain_settings(), data_dir)
    try:
        yield chain, data_dir
    finally:
        chain.close()


# ----------------------------------------------------------------------------- chain


@chain_app.command("deploy")
def deploy_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Deploy CarbonAnchor from the committed artifact and record its address.

    The chain is the embedded one under the data directory, or CARBONLEDGER_CHAIN_RPC
    (signed with CARBONLEDGER_CHAIN_ANCHORER_KEY, which becomes admin and anchorer). The
    address is recorded in DATA_DIR/chain/contracts.json for `serve` and `anchor`; publish
    it, since verifiers pin it with `carbonledger verify --contract`.
    """
    from api.cli.main import _field, _stdout, _write_machine  # noqa: PLC0415
    from attestation.chain.deployment import deploy_and_record, deployments_path  # noqa: PLC0415

    with _open_chain(ctx) as (chain, data_dir), _chain_errors():
        deployment = deploy_and_record(chain, data_dir)
        backend = chain.backend.value
    if json_output:
        _write_machine(
            json.dumps(
                {
                    "chainId": deployment.chain_id,
                    "contract": deployment.address,
                    "tx": deployment.tx,
                    "block": deployment.block,
                    "backend": backend,
                }
            )
        )
        return
    console = _stdout()
    console.print(Text("CarbonAnchor deployed.", style="bold green"))
    _field(console, "contract", deployment.address)
    _field(console, "chain id", str(deployment.chain_id), backend)
    _field(console, "transaction", deployment.tx)
    _field(console, "block", str(deployment.block))
    _field(console, "recorded in", str(deployments_path(data_dir)))


# ---------------------------------------------------------------------------- anchor


def _record_json(record: Any) -> dict[str, Any]:
    return {
        "chainId": record.chain_id,
        "contract": record.contract,
        "logId": "0x" + record.log_id.hex(),
        "size": record.size,
        "root": "0x" + record.root.hex(),
        "tx": "0x" + record.tx_hash.hex(),
        "block": record.block,
        "gasUsed": record.gas_used,
        "confirmations": record.confirmations,
        "anchoredAt": record.anchored_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@anchor_app.command("now")
def anchor_now_command(
    ctx: typer.Context,
    confirmations: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Blocks to wait for (default CARBONLEDGER_ANCHOR_CONFIRMATIONS or 1).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Anchor the log's current head now, wait for the confirmations and record it.

    Checks locally first that the head extends what the chain holds, so nothing the
    contract would refuse is sent. Stuck transactions are replaced with a higher fee, as
    by the scheduler of `serve`. On the embedded chain, stop `serve` first: one process
    at a time owns that chain.
    """
    from api.cli.main import (  # noqa: PLC0415
        EXIT_UNAVAILABLE,
        EXIT_VERIFICATION_FAILED,
        CliError,
        _field,
        _open_registry,
        _settings,
        _stdout,
        _write_machine,
    )
    from attestation.anchoring.scheduler import AnchorScheduler, AnchorSettings, StepResult  # noqa: PLC0415
    from attestation.chain.deployment import resolve_contract  # noqa: PLC0415

    settings = AnchorSettings()
    if confirmations is not None:
        settings = settings.model_copy(update={"anchor_confirmations": confirmations})
    with (
        _open_registry(_settings(ctx)) as registry,
        _open_chain(ctx) as (chain, data_dir),
        _chain_errors(),
    ):
        contract = resolve_contract(chain, _chain_settings(), data_dir)
        outcome = AnchorScheduler(registry.log, contract, settings).run_once(force=True)
        head = registry.log.head()
    if outcome.result is StepResult.FAILED:
        code = EXIT_VERIFICATION_FAILED if outcome.conflict else EXIT_UNAVAILABLE
        raise CliError(f"anchoring failed: {outcome.error}", code)
    if json_output:
        anchored = _record_json(outcome.record) if outcome.record else None
        _write_machine(json.dumps({"anchored": anchored, "size": head.size}))
        return
    console = _stdout()
    if outcome.record is None:
        console.print(Text(f"Nothing new: the chain already holds size {head.size}.", style="bold"))
        return
    record = outcome.record
    console.print(Text("Anchored.", style="bold green"))
    _field(console, "size", str(record.size))
    _field(console, "root", "0x" + record.root.hex())
    _field(console, "transaction", "0x" + record.tx_hash.hex())
    _field(console, "block", str(record.block), f"{record.confirmations} confirmations")
    _field(console, "contract", record.contract, f"chain {record.chain_id}")
    if outcome.replacements:
        _field(console, "replaced", str(outcome.replacements), "stuck, re-sent with a higher fee")


@anchor_app.command("status")
def anchor_status_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show the newest recorded anchor, what is not anchored yet, and what the chain holds.

    The chain is read too when it can be; if not (the RPC is down, or `serve` owns the
    embedded chain) the recorded state is shown with a note.
    """
    from api.cli.main import _field, _open_registry, _settings, _stdout, _write_machine  # noqa: PLC0415
    from attestation.anchoring.anchor import latest_anchor_record  # noqa: PLC0415
    from attestation.chain.client import ChainError, log_id_for_origin  # noqa: PLC0415
    from attestation.chain.deployment import resolve_contract  # noqa: PLC0415

    settings = _settings(ctx)
    with _open_registry(settings) as registry:
        head = registry.log.head()
        record = latest_anchor_record(registry.database)
    on_chain: dict[str, Any] | None = None
    chain_note = ""
    try:
        from attestation.chain.client import open_chain  # noqa: PLC0415

        chain = open_chain(_chain_settings(), settings.data_dir)
        try:
            contract = resolve_contract(
                chain, _chain_settings(), settings.data_dir, deploy_embedded=False
            )
            latest = contract.latest(log_id_for_origin(head.origin))
            on_chain = {
                "chainId": chain.chain_id,
                "contract": contract.address,
                "size": latest.size,
                "root": "0x" + latest.root.hex(),
            }
        finally:
            chain.close()
    except (ChainError, OSError, ValueError) as error:
        chain_note = str(error)
    except Exception as error:  # web3 and requests raise many types for "no node there"
        chain_note = f"{type(error).__name__}: {error}"
    anchored_size = record.size if record else 0
    if json_output:
        _write_machine(
            json.dumps(
                {
                    "logSize": head.size,
                    "unanchored": head.size - anchored_size,
                    "latest": _record_json(record) if record else None,
                    "chain": on_chain,
                    "chainError": chain_note or None,
                }
            )
        )
        return
    console = _stdout()
    _field(console, "log size", str(head.size))
    _field(console, "unanchored", str(head.size - anchored_size), "entries after the last anchor")
    if record is None:
        _field(console, "latest", "nothing anchored yet")
    else:
        _field(console, "latest", f"size {record.size}", record.anchored_at.isoformat())
        _field(console, "root", "0x" + record.root.hex())
        _field(console, "transaction", "0x" + record.tx_hash.hex(), f"block {record.block}")
        _field(console, "contract", record.contract, f"chain {record.chain_id}")
    if on_chain is not None:
        agrees = on_chain["size"] == anchored_size
        note = "matches the record" if agrees else "differs from the record"
        _field(console, "on chain", f"size {on_chain['size']}", note)
    else:
        _field(console, "on chain", "not read", chain_note)


# ---------------------------------------------------------------------------- verify


def verify_command(
    ctx: typer.Context,
    bundle_file: Annotated[
        str,
        typer.Argument(metavar="BUNDLE.json", help="The proof bundle (`-` reads stdin)."),
    ],
    *,
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            metavar="URL",
            help="JSON-RPC endpoint of the chain the bundle names. Without it: the embedded "
            "chain under --data-dir.",
            show_default=False,
        ),
    ] = None,
    contract: Annotated[
        str | None,
        typer.Option(
            "--contract",
            metavar="ADDR",
            help="The anchor contract you trust; without it any contract holding the root "
            "passes, and the `contract` check is shown as not made.",
            show_default=False,
        ),
    ] = None,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            metavar="VERIFIER_KEY",
            help="The log's checkpoint verifier key (as printed by `carbonledger init`). "
            "Required with --rpc; without --rpc, the registry's own key is used.",
            show_default=False,
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer",
            metavar="DID",
            help="The credential issuer you trust (the registry's did:key); without it any "
            "issuer the anchored log declares is accepted.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check a proof bundle with nothing but the bundle and the chain.

    Recomputes each leaf hash, checks inclusion against the anchored root, the checkpoint
    signature, each entry's own signature (meter readings, key registrations), and makes
    one chain call: the contract holds that root at that size for that log. For a
    certificate bundle it also checks the credential, its issuer, device, evidence
    readings and energy, split lineage and current status, and says in plain words what
    was proven. Prints every check with PASS or FAIL and exits 1 naming the checks that
    failed (a withdrawn certificate fails, with the withdrawal reason).
    """
    from api.cli.main import (  # noqa: PLC0415
        EXIT_UNAVAILABLE,
        EXIT_USAGE,
        CliError,
        _read_bytes,
        _write_machine,
    )
    from attestation.bundles.chain_reader import (  # noqa: PLC0415
        ChainAnchorReader,
        rpc_anchor_reader,
    )
    from attestation.bundles.format import MAX_BUNDLE_BYTES  # noqa: PLC0415
    from attestation.bundles.report import UnusableInputError  # noqa: PLC0415
    from attestation.bundles.verify import verify_bundle  # noqa: PLC0415
    from ledger.log.checkpoint import CheckpointError, NoteVerifier  # noqa: PLC0415

    data = _read_bytes(bundle_file, MAX_BUNDLE_BYTES, "a proof bundle")
    if issuer is not None:
        from ledger.credentials.data_integrity import CredentialError, public_key_from_did_key  # noqa: PLC0415

        try:
            public_key_from_did_key(issuer)
        except CredentialError as error:
            raise CliError(f"--issuer: {error}", EXIT_USAGE) from error
        if "#" in issuer:
            raise CliError("--issuer: give the did:key DID, not a DID URL", EXIT_USAGE)
    if rpc is None and log_key is None:
        verifier = None  # taken from the registry below
    elif log_key is None:
        raise CliError("--rpc needs --log-key with the log's verifier key", EXIT_USAGE)
    else:
        try:
            verifier = NoteVerifier.parse(log_key)
        except CheckpointError as error:
            raise CliError(f"--log-key: {error}", EXIT_USAGE) from error

    with _verification_chain(ctx, rpc) as (w3, registry_key):
        if rpc is not None:
            try:
                w3.eth.chain_id  # noqa: B018 - one request: is anyone there?
            except Exception as error:
                raise CliError(
                    f"chain RPC {rpc} is unreachable: {error}", EXIT_UNAVAILABLE
                ) from error
        key = verifier or registry_key
        assert key is not None
        try:
            report = verify_bundle(
                data,
                anchor_reader=ChainAnchorReader(w3) if rpc is None else rpc_anchor_reader(rpc),
                log_verifier_key=key,
                trusted_contract=contract,
                trusted_issuer=issuer,
            )
        except UnusableInputError as error:
            raise CliError(str(error), EXIT_USAGE) from error
    if json_output:
        _write_machine(json.dumps(_report_json(report)))
        if not report.ok:
            from api.cli.main import EXIT_VERIFICATION_FAILED  # noqa: PLC0415

            raise typer.Exit(EXIT_VERIFICATION_FAILED)
        return
    _print_report(report)


@contextmanager
def _verification_chain(ctx: typer.Context, rpc: str | None) -> Iterator[tuple[Any, Any]]:
    """(web3, registry key or None): the RPC given, or the registry's embedded chain."""
    if rpc is not None:
        from web3 import HTTPProvider, Web3  # noqa: PLC0415

        yield Web3(HTTPProvider(rpc, request_kwargs={"timeout": 30})), None
        return
    from api.cli.main import _open_registry, _settings  # noqa: PLC0415
    from attestation.chain.client import open_embedded_chain  # noqa: PLC0415

    settings = _settings(ctx)
    with _open_registry(settings) as registry, _chain_errors():
        chain = open_embedded_chain(settings.data_dir)
        try:
            yield chain.w3, registry.signer.verifier
        finally:
            chain.close()


def _print_report(report: VerificationReport) -> None:
    from api.cli.main import CliError, _Check, _report, _stdout  # noqa: PLC0415
    from attestation.bundles.report import CheckStatus  # noqa: PLC0415

    passed = {CheckStatus.PASSED: True, CheckStatus.FAILED: False}
    checks = [_Check(c.name, passed.get(c.status), c.message) for c in report.checks]
    try:
        # Raises the one-line `verification failed: <names>` error (exit 1) when a check failed.
        _report(checks, anchored=True, trust_options="")
    except CliError as error:
        status = report.check("status")
        if status is not None and status.status == CheckStatus.FAILED:
            # A withdrawn certificate: the reason belongs on the one error line.
            raise CliError(
                f"{error.message}: certificate {status.message}", error.exit_code
            ) from None
        raise
    console = _stdout()
    for line in report.summary:
        console.print(Text(line, style="bold"))
    made = sum(1 for c in report.checks if c.status == CheckStatus.PASSED)
    skipped = len(report.checks) - made
    summary = f"verified: {made} checks passed"
    if skipped:
        summary += f", {skipped} not made (SKIP)"
    summary += f"; offline {report.offline_seconds * 1000:.2f} ms"
    console.print(Text(summary, style="bold green"))


def _report_json(report: VerificationReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "complete": report.complete,
        "checks": [
            {"name": c.name, "status": c.status.value, "message": c.message} for c in report.checks
        ],
        "failed": [c.name for c in report.failures],
        "summary": list(report.summary),
        "offlineMs": round(report.offline_seconds * 1000, 3),
    }
