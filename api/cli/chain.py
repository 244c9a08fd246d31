"""`carbonledger chain …`, `carbonledger anchor …` and `carbonledger verify` (issue 4).

`carbonledger verify` needs nothing but the bundle, a chain endpoint and the log's verifier
key: it reads no settings and opens no database, like the `log verify-*` commands. With
`--rpc` it reads the chain through `attestation.chain.rpc` (the standard library, no web3);
without `--rpc` it checks against the embedded chain of a registry directory instead
(`--data-dir`), for a registry that anchors on its in-process chain.

`anchor status` only reads: on a JSON-RPC chain it needs no signing key.

Contract v2 separates the admin from the anchorer (decisions 69-74): `chain deploy`,
`chain register-log`, `chain rotate-anchorer` and `chain revoke-anchors` are signed by the
admin's cold key, CARBONLEDGER_CHAIN_ADMIN_KEY, and never need the anchorer key; the service
(`serve`, `anchor now`) signs anchors with CARBONLEDGER_CHAIN_ANCHORER_KEY and never needs
the admin key. On the embedded chain both are built in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from api.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_UNAVAILABLE,
    CheckLine,
    CliError,
    JsonOption,
    api_settings,
    chain_errors,
    chain_settings,
    checked_rpc_url,
    command_group,
    fail,
    open_chain,
    open_registry,
    print_checks,
    print_field,
    print_headline,
    read_bytes,
    stdout_console,
    write_machine,
)

if TYPE_CHECKING:
    from pathlib import Path

    from eth_account.signers.local import LocalAccount

    from attestation.bundles.chain_reader import AnchorReader
    from attestation.bundles.report import VerificationReport
    from attestation.chain.client import CarbonAnchor, Chain
    from ledger.log.checkpoint import NoteVerifier

chain_app = command_group("The CarbonAnchor contract on the configured chain.")
anchor_app = command_group("Anchor the log's head on chain and show what is anchored.")


# ----------------------------------------------------------------------------- chain


@contextmanager
def admin_chain(ctx: typer.Context) -> Iterator[tuple[Chain, LocalAccount, Path]]:
    """The configured chain with the admin's account: the embedded chain's own admin, or
    CARBONLEDGER_CHAIN_ADMIN_KEY on CARBONLEDGER_CHAIN_RPC (the anchorer key is not needed)."""
    from attestation.chain.client import open_rpc_chain
    from attestation.chain.deployment import embedded_admin
    from attestation.chain.errors import ChainError
    from attestation.chain.rpc import unreachable_message

    settings = chain_settings()
    if settings.chain_rpc is None:
        with open_chain(ctx) as (chain, data_dir):
            yield chain, embedded_admin(chain), data_dir
        return
    url = checked_rpc_url(settings.chain_rpc, "CARBONLEDGER_CHAIN_RPC")
    if settings.chain_admin_key is None:
        fail(
            "this command is signed by the contract's admin: set CARBONLEDGER_CHAIN_ADMIN_KEY "
            "(the cold admin key, not the anchorer key)"
        )
    try:
        chain = open_rpc_chain(
            url, settings.chain_admin_key.get_secret_value(), expected_chain_id=settings.chain_id
        )
    except ChainError as error:
        if isinstance(error.__cause__, OSError):
            fail(unreachable_message(url, error.__cause__), EXIT_UNAVAILABLE)
        fail(str(error), EXIT_UNAVAILABLE)
    try:
        yield chain, chain.account, api_settings(ctx).data_dir
    finally:
        chain.close()


@contextmanager
def _refusals() -> Iterator[None]:
    """A contract revert of an admin command is a refusal (exit 1, the named error), not an
    unavailable chain (exit 3)."""
    from attestation.chain.client import ContractRevert

    try:
        yield
    except ContractRevert as error:
        raise CliError(str(error), EXIT_CHECK_FAILED) from error


def _anchorer_address(chain: Chain, given: str | None) -> str:
    """--anchorer, else the address of CARBONLEDGER_CHAIN_ANCHORER_KEY, else (embedded) the
    chain's own first account."""
    from eth_account import Account
    from eth_utils.address import is_address, to_checksum_address

    if given is not None:
        if not is_address(given):
            fail(f"--anchorer {given!r} is not an address (0x and 40 hex digits)")
        return to_checksum_address(given)
    settings = chain_settings()
    if settings.chain_anchorer_key is not None:
        return str(Account.from_key(settings.chain_anchorer_key.get_secret_value()).address)
    if settings.chain_rpc is None:
        return chain.account.address
    fail("give --anchorer ADDRESS (or set CARBONLEDGER_CHAIN_ANCHORER_KEY to derive it)")


def _log_id(ctx: typer.Context, origin: str | None) -> tuple[str, bytes]:
    from attestation.chain.client import log_id_for_origin

    if origin is None:
        with open_registry(api_settings(ctx)) as registry:
            origin = registry.log.head().origin
    return origin, log_id_for_origin(origin)


def _resolved(chain: Chain, data_dir: Path) -> CarbonAnchor:
    from attestation.chain.deployment import resolve_contract

    return resolve_contract(chain, chain_settings(), data_dir, deploy_embedded=False)


AdminAddressOption = Annotated[
    str | None,
    typer.Option(
        "--admin",
        metavar="ADDRESS",
        help="The contract's admin (default: the address of CARBONLEDGER_CHAIN_ADMIN_KEY). "
        "With it, the deployment may be paid by the anchorer key.",
        show_default=False,
    ),
]
OriginOption = Annotated[
    str | None,
    typer.Option(
        "--origin",
        metavar="ORIGIN",
        help="The log's checkpoint origin (logId = sha256(origin)); default: this registry's.",
        show_default=False,
    ),
]


@chain_app.command("deploy")
def deploy_command(
    ctx: typer.Context, admin: AdminAddressOption = None, json_output: JsonOption = False
) -> None:
    """Deploy CarbonAnchor from the committed artifact and record its address.

    The chain is the embedded one under the data directory, or CARBONLEDGER_CHAIN_RPC. The
    admin (registers logs, rotates anchorers, revokes) is the cold key
    CARBONLEDGER_CHAIN_ADMIN_KEY, which signs the deployment, or the address given with
    --admin (the deployment is then signed by CARBONLEDGER_CHAIN_ANCHORER_KEY). The admin may
    not be the anchorer. The address is recorded in DATA_DIR/chain/contracts.json for `serve`
    and `anchor`; publish it, since verifiers pin it with `carbonledger verify --contract`.
    Then register the log: `carbonledger chain register-log`.
    """
    from eth_utils.address import is_address, to_checksum_address

    from attestation.chain.deployment import deploy_and_record, deployments_path

    settings = chain_settings()
    if admin is not None and not is_address(admin):
        fail(f"--admin {admin!r} is not an address (0x and 40 hex digits)")
    if settings.chain_rpc is not None and (admin is None or settings.chain_admin_key):
        opened = admin_chain(ctx)
    else:
        opened = _with_admin_of(ctx)
    with opened as (chain, admin_account, data_dir), chain_errors():
        admin_address = to_checksum_address(admin) if admin else admin_account.address
        if admin_address == _anchorer_address_or_none(chain):
            fail("the admin must not be the anchorer: use a separate, cold key")
        deployment = deploy_and_record(chain, data_dir, admin=admin_address, signer=chain.account)
        backend = chain.backend.value
    if json_output:
        write_machine(
            json.dumps(
                {
                    "chainId": deployment.chain_id,
                    "contract": deployment.address,
                    "admin": admin_address,
                    "tx": deployment.tx,
                    "block": deployment.block,
                    "backend": backend,
                }
            )
        )
        return
    console = stdout_console()
    print_headline(console, "CarbonAnchor deployed.")
    print_field(console, "contract", deployment.address)
    print_field(console, "admin", admin_address)
    print_field(console, "chain id", str(deployment.chain_id), backend)
    print_field(console, "transaction", deployment.tx)
    print_field(console, "block", str(deployment.block))
    print_field(console, "recorded in", str(deployments_path(data_dir)))


@contextmanager
def _with_admin_of(ctx: typer.Context) -> Iterator[tuple[Chain, LocalAccount, Path]]:
    """The service's chain (anchorer key) for a deployment whose admin is given by address."""
    from attestation.chain.deployment import embedded_admin

    with open_chain(ctx) as (chain, data_dir):
        if chain.backend.value == "embedded":
            yield chain, embedded_admin(chain), data_dir
        else:
            yield chain, chain.account, data_dir


def _anchorer_address_or_none(chain: Chain) -> str | None:
    from eth_account import Account

    settings = chain_settings()
    if settings.chain_anchorer_key is not None:
        return str(Account.from_key(settings.chain_anchorer_key.get_secret_value()).address)
    return chain.account.address if settings.chain_rpc is None else None


@chain_app.command("register-log")
def register_log_command(
    ctx: typer.Context,
    *,
    anchorer: Annotated[
        str | None,
        typer.Option(
            "--anchorer",
            metavar="ADDRESS",
            help="The one account that may anchor this log (default: the address of "
            "CARBONLEDGER_CHAIN_ANCHORER_KEY).",
            show_default=False,
        ),
    ] = None,
    max_growth: Annotated[
        int,
        typer.Option(
            "--max-growth",
            min=1,
            max=(1 << 32) - 1,
            metavar="N",
            help="Most entries one anchor may add (bounds what a stolen anchorer key can claim).",
        ),
    ] = 1 << 24,
    revocation_window: Annotated[
        int,
        typer.Option(
            "--revocation-window",
            min=0,
            max=(1 << 32) - 1,
            metavar="SECONDS",
            help="How long after an anchor the admin may still revoke it; then it is final.",
        ),
    ] = 7 * 24 * 3600,
    origin: OriginOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register the log on the contract with its anchorer (admin key; once per log).

    Until it is registered the contract refuses every anchor of the log, the first included.
    """
    origin_text, log_id = _log_id(ctx, origin)
    with admin_chain(ctx) as (chain, admin, data_dir), chain_errors(), _refusals():
        contract = _resolved(chain, data_dir)
        who = _anchorer_address(chain, anchorer)
        sent = contract.register_log(
            log_id, who, admin=admin, max_growth=max_growth, revocation_window=revocation_window
        )
    _print_admin_result(
        json_output,
        "Log registered.",
        {
            "origin": origin_text,
            "logId": "0x" + log_id.hex(),
            "anchorer": who,
            "maxGrowth": max_growth,
            "revocationWindowSeconds": revocation_window,
            "tx": "0x" + sent.tx_hash.hex(),
            "block": sent.block,
        },
    )


@chain_app.command("rotate-anchorer")
def rotate_anchorer_command(
    ctx: typer.Context,
    anchorer: Annotated[
        str, typer.Argument(metavar="ADDRESS", help="The log's new anchorer account.")
    ],
    origin: OriginOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make ADDRESS the log's only anchorer (admin key), e.g. after the old key was stolen."""
    origin_text, log_id = _log_id(ctx, origin)
    with admin_chain(ctx) as (chain, admin, data_dir), chain_errors(), _refusals():
        contract = _resolved(chain, data_dir)
        who = _anchorer_address(chain, anchorer)
        previous = contract.log_config(log_id).anchorer
        sent = contract.set_anchorer(log_id, who, admin=admin)
    _print_admin_result(
        json_output,
        "Anchorer rotated.",
        {
            "origin": origin_text,
            "logId": "0x" + log_id.hex(),
            "previous": previous,
            "anchorer": who,
            "tx": "0x" + sent.tx_hash.hex(),
            "block": sent.block,
        },
    )


@chain_app.command("revoke-anchors")
def revoke_anchors_command(
    ctx: typer.Context,
    keep_size: Annotated[
        int,
        typer.Option(
            "--keep-size",
            min=0,
            metavar="N",
            help="An anchored size of the log: every newer anchor is revoked.",
        ),
    ],
    origin: OriginOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke the log's anchors above --keep-size (admin key), e.g. a fabricated one sent with
    a stolen anchorer key. Rotate the anchorer first. Only anchors younger than the log's
    revocation window can be revoked; revocations stay visible on chain."""
    origin_text, log_id = _log_id(ctx, origin)
    with admin_chain(ctx) as (chain, admin, data_dir), chain_errors(), _refusals():
        contract = _resolved(chain, data_dir)
        before = contract.log_config(log_id)
        sent = contract.revoke_anchors_above(log_id, keep_size, admin=admin)
        after = contract.log_config(log_id)
    _print_admin_result(
        json_output,
        "Anchors revoked.",
        {
            "origin": origin_text,
            "logId": "0x" + log_id.hex(),
            "previousSize": before.size,
            "size": after.size,
            "revoked": after.revoked - before.revoked,
            "tx": "0x" + sent.tx_hash.hex(),
            "block": sent.block,
        },
    )


def _print_admin_result(json_output: bool, headline: str, fields: dict[str, Any]) -> None:
    if json_output:
        write_machine(json.dumps(fields))
        return
    console = stdout_console()
    print_headline(console, headline)
    for name, value in fields.items():
        print_field(console, name, str(value))


# ---------------------------------------------------------------------------- anchor


def record_json(record: Any) -> dict[str, Any]:
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
    from attestation.anchoring.scheduler import AnchorScheduler, AnchorSettings, StepResult
    from attestation.chain.deployment import resolve_contract

    settings = AnchorSettings()
    if confirmations is not None:
        settings = settings.model_copy(update={"anchor_confirmations": confirmations})
    with (
        open_registry(api_settings(ctx)) as registry,
        open_chain(ctx) as (chain, data_dir),
        chain_errors(),
    ):
        contract = resolve_contract(chain, chain_settings(), data_dir)
        outcome = AnchorScheduler(registry.log, contract, settings).run_once(force=True)
        head = registry.log.head()
    if outcome.result is StepResult.FAILED:
        code = EXIT_CHECK_FAILED if outcome.conflict else EXIT_UNAVAILABLE
        fail(f"anchoring failed: {outcome.error}", code)
    if json_output:
        anchored = record_json(outcome.record) if outcome.record else None
        write_machine(json.dumps({"anchored": anchored, "size": head.size}))
        return
    console = stdout_console()
    if outcome.record is None:
        print_headline(console, f"Nothing new: the chain already holds size {head.size}.", "bold")
        return
    record = outcome.record
    print_headline(console, "Anchored.")
    print_field(console, "size", str(record.size))
    print_field(console, "root", "0x" + record.root.hex())
    print_field(console, "transaction", "0x" + record.tx_hash.hex())
    print_field(console, "block", str(record.block), f"{record.confirmations} confirmations")
    print_field(console, "contract", record.contract, f"chain {record.chain_id}")
    if outcome.replacements:
        print_field(
            console, "replaced", str(outcome.replacements), "stuck, re-sent with a higher fee"
        )


@anchor_app.command("status")
def anchor_status_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show the newest recorded anchor, what is not anchored yet, and what the chain holds.

    The chain is read too when it can be; if not (the RPC is down, or `serve` owns the
    embedded chain) the recorded state is shown with a note.
    """
    from attestation.anchoring.anchor import latest_anchor_record

    settings = api_settings(ctx)
    with open_registry(settings) as registry:
        head = registry.log.head()
        record = latest_anchor_record(registry.database)
    on_chain: dict[str, Any] | None = None
    chain_note = ""
    try:
        on_chain = read_chain_head(settings.data_dir, head.origin)
    except CliError as error:
        chain_note = error.message
    anchored_size = record.size if record else 0
    if json_output:
        write_machine(
            json.dumps(
                {
                    "logSize": head.size,
                    "unanchored": head.size - anchored_size,
                    "latest": record_json(record) if record else None,
                    "chain": on_chain,
                    "chainError": chain_note or None,
                }
            )
        )
        return
    console = stdout_console()
    print_field(console, "log size", str(head.size))
    print_field(
        console, "unanchored", str(head.size - anchored_size), "entries after the last anchor"
    )
    if record is None:
        print_field(console, "latest", "nothing anchored yet")
    else:
        print_field(console, "latest", f"size {record.size}", record.anchored_at.isoformat())
        print_field(console, "root", "0x" + record.root.hex())
        print_field(console, "transaction", "0x" + record.tx_hash.hex(), f"block {record.block}")
        print_field(console, "contract", record.contract, f"chain {record.chain_id}")
    if on_chain is not None:
        agrees = on_chain["size"] == anchored_size
        note = "matches the record" if agrees else "differs from the record"
        print_field(console, "on chain", f"size {on_chain['size']}", note)
    else:
        print_field(console, "on chain", "not read", chain_note)


def read_chain_head(data_dir: Path, origin: str) -> dict[str, Any]:
    """What the configured chain holds for the log, read without any key.

    A JSON-RPC chain is read with `attestation.chain.rpc` (no account, nothing sent); the
    embedded chain is opened like `serve` does (which fails while `serve` owns it).
    """
    from attestation.chain.client import ChainBackend, log_id_for_origin
    from attestation.chain.deployment import recorded_deployments, resolve_contract

    settings = chain_settings()
    log_id = log_id_for_origin(origin)
    if settings.backend is ChainBackend.JSON_RPC:
        from attestation.chain import rpc
        from attestation.chain.address import checksum_address

        assert settings.chain_rpc is not None
        with chain_errors():
            node = rpc.JsonRpc(checked_rpc_url(settings.chain_rpc, "CARBONLEDGER_CHAIN_RPC"))
            chain_id = node.chain_id()
            recorded = recorded_deployments(data_dir).get(chain_id)
            address = settings.chain_contract or (recorded.address if recorded else None)
            if address is None:
                fail(
                    f"no CarbonAnchor contract is known on chain {chain_id}; run "
                    "`carbonledger chain deploy` or set CARBONLEDGER_CHAIN_CONTRACT",
                    EXIT_UNAVAILABLE,
                )
            answer = node.call(checksum_address(address), rpc.latest_call(log_id))
            if not answer:
                fail(f"there is no CarbonAnchor at {address} on chain {chain_id}", EXIT_UNAVAILABLE)
            size, root = rpc.decode_latest(answer)
        return {
            "chainId": chain_id,
            "contract": checksum_address(address),
            "size": size,
            "root": "0x" + root.hex(),
        }
    with chain_errors():
        from attestation.chain.client import open_embedded_chain

        chain = open_embedded_chain(data_dir)
        try:
            contract = resolve_contract(chain, settings, data_dir, deploy_embedded=False)
            latest = contract.latest(log_id)
            return {
                "chainId": chain.chain_id,
                "contract": contract.address,
                "size": latest.size,
                "root": "0x" + latest.root.hex(),
            }
        finally:
            chain.close()


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
    from attestation.bundles.format import MAX_BUNDLE_BYTES
    from attestation.bundles.report import UnusableInputError
    from attestation.bundles.verify import verify_bundle

    data = read_bytes(bundle_file, MAX_BUNDLE_BYTES, "a proof bundle")
    if issuer is not None:
        check_issuer_option(issuer)
    if rpc is not None:
        checked_rpc_url(rpc, "--rpc")
        if log_key is None:
            fail("--rpc needs --log-key with the log's verifier key")
    verifier = None if log_key is None else parse_log_key(log_key)
    with verification_chain(ctx, rpc) as (reader, registry_key):
        key = verifier or registry_key
        assert key is not None, "without --rpc the registry's own key is used"
        try:
            report = verify_bundle(
                data,
                anchor_reader=reader,
                log_verifier_key=key,
                trusted_contract=contract,
                trusted_issuer=issuer,
            )
        except UnusableInputError as error:
            fail(str(error))
    if json_output:
        write_machine(json.dumps(report_json(report)))
        if not report.ok:
            raise typer.Exit(EXIT_CHECK_FAILED)
        return
    print_report(report)


def check_issuer_option(issuer: str) -> None:
    from ledger.credentials.data_integrity import CredentialError, public_key_from_did_key

    try:
        public_key_from_did_key(issuer)
    except CredentialError as error:
        fail(f"--issuer: {error}")
    if "#" in issuer:
        fail("--issuer: give the did:key DID, not a DID URL")


def parse_log_key(text: str) -> NoteVerifier:
    from ledger.log.checkpoint import CheckpointError, NoteVerifier

    try:
        return NoteVerifier.parse(text)
    except CheckpointError as error:
        fail(f"--log-key: {error}")


@contextmanager
def verification_chain(
    ctx: typer.Context, rpc_url: str | None
) -> Iterator[tuple[AnchorReader, NoteVerifier | None]]:
    """(the chain's anchor reader, the registry's log key or None).

    With `--rpc`: the standard-library JSON-RPC reader, after one request that tells an
    unreachable node (exit 3) from a bundle that fails its `chain` check (exit 1). Without:
    the embedded chain of the registry under `--data-dir`, and that registry's log key.
    """
    if rpc_url is not None:
        from attestation.bundles.chain_reader import rpc_anchor_reader
        from attestation.chain import rpc

        with chain_errors():
            rpc.JsonRpc(rpc_url).chain_id()
        yield rpc_anchor_reader(rpc_url), None
        return
    from attestation.bundles.chain_reader import ChainAnchorReader
    from attestation.chain.client import open_embedded_chain

    settings = api_settings(ctx)
    with open_registry(settings) as registry, chain_errors():
        chain = open_embedded_chain(settings.data_dir)
        try:
            yield ChainAnchorReader(chain.w3), registry.signer.verifier
        finally:
            chain.close()


def print_report(report: VerificationReport) -> None:
    """Every check as PASS, FAIL or SKIP (not made), then what the bundle proves."""
    from attestation.bundles.report import CheckStatus

    verdicts = {CheckStatus.PASSED: True, CheckStatus.FAILED: False}
    lines = [CheckLine(c.name, verdicts.get(c.status), c.message) for c in report.checks]
    try:
        print_checks(lines)
    except CliError as error:
        status = report.check("status")
        if status is not None and status.status == CheckStatus.FAILED:
            # The one failure that is about the certificate, not the proof (a withdrawal):
            # its reason belongs on the one error line.
            fail(f"{error.message}: certificate {status.message}", error.exit_code)
        raise
    console = stdout_console()
    for line in report.summary:
        print_headline(console, line, "bold")
    made = sum(1 for c in report.checks if c.status == CheckStatus.PASSED)
    skipped = len(report.checks) - made
    summary = f"verified: {made} checks passed"
    if skipped:
        summary += f", {skipped} not made (SKIP)"
    summary += f"; offline {report.offline_seconds * 1000:.2f} ms"
    print_headline(console, summary)


def report_json(report: VerificationReport) -> dict[str, Any]:
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
