"""`carbonledger log …`: checkpoints and proofs of the log, and their offline verification.

`checkpoint`, `prove` and `prove-consistency` read the registry and print the API's wire
formats on stdout. `verify-inclusion` and `verify-consistency` read no settings and open
no database, so a verifier runs them on any machine with nothing but the files; each check
prints PASS, FAIL or SKIP, and any failure exits 1 naming the failed checks.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from api.cli.common import (
    STDIN,
    CheckLine,
    api_settings,
    command_group,
    fail,
    one_stdin,
    open_log,
    open_registry,
    print_checks,
    print_note,
    read_bytes,
    source_name,
    write_machine,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ledger.log.checkpoint import NoteVerifier

    Model = TypeVar("Model", bound=BaseModel)

log_app = command_group("Checkpoints and proofs of the log, and their offline verification.")

MAX_PROOF_BYTES = 1 << 20
"""A proof has at most 128 hashes (~6 KiB of JSON); the cap stops a wrong file
(a disk image, /dev/zero) from being read into memory whole."""
MAX_LEAF_BYTES = 64 << 20
MAX_NOTE_FILE_BYTES = 1 << 20


# ---------------------------------------------------------------- reading the log


@log_app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    size: Annotated[
        int | None,
        typer.Option(
            metavar="SIZE",
            help="An earlier tree size (default: the current one).",
            min=0,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the signed checkpoint note (C2SP tlog-checkpoint) of the log."""
    with open_registry(api_settings(ctx)) as registry:
        note = registry.log.checkpoint(registry.signer, size)
    write_machine(note)


@log_app.command("export-tiles")
def export_tiles_command(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write checkpoint and tile/…")
    ],
    entries: Annotated[
        bool,
        typer.Option(
            "--entries",
            help="Also write the entry bundles (tile/entries/…): every organisation's "
            "entries, so only for a mirror with the access of `log:read`.",
        ),
    ] = False,
) -> None:
    """Write the log as C2SP tlog-tiles files, for any static file host to serve.

    Re-running refreshes a mirror in place: full tiles are written once, the partial
    tiles and then the checkpoint are replaced atomically.
    """
    from ledger.log.store import LogError
    from ledger.log.tiles import export_tiles

    if directory.exists() and not directory.is_dir():
        fail(f"{directory} exists and is not a directory")
    with open_registry(api_settings(ctx)) as registry:
        try:
            summary = export_tiles(registry.log, registry.signer, directory, entries=entries)
        except (LogError, OSError) as exc:
            fail(f"cannot export tiles to {directory}: {exc}")
    write_machine(
        json.dumps(
            {
                "size": summary.size,
                "hashTiles": summary.hash_tiles,
                "entryBundles": summary.entry_bundles,
                "directory": str(directory),
            }
        )
    )


@log_app.command("prove")
def prove_command(
    ctx: typer.Context,
    index: Annotated[int, typer.Option(metavar="N", help="Leaf index.", min=0, show_default=False)],
    size: Annotated[
        int | None,
        typer.Option(
            metavar="SIZE",
            help="Tree size to prove against (default: the current size).",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the inclusion proof of one leaf as JSON (the API's wire format)."""
    from api.schemas.log import InclusionProofBody

    with open_log(api_settings(ctx)) as log:
        proof = log.inclusion_proof(index, size)
    write_machine(InclusionProofBody.from_proof(proof).model_dump_json(by_alias=True))


@log_app.command("prove-consistency")
def prove_consistency_command(
    ctx: typer.Context,
    from_size: Annotated[
        int,
        typer.Option(
            "--from", metavar="SIZE", help="The older tree size.", min=1, show_default=False
        ),
    ],
    to_size: Annotated[
        int | None,
        typer.Option(
            "--to",
            metavar="SIZE",
            help="The newer tree size (default: the current size).",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the consistency proof between two tree sizes as JSON (the API's wire format)."""
    from api.schemas.log import ConsistencyProofBody

    with open_log(api_settings(ctx)) as log:
        proof = log.consistency_proof(from_size, to_size)
    write_machine(ConsistencyProofBody.from_proof(proof).model_dump_json(by_alias=True))


# ----------------------------------------------------------- offline verification


def run_check(name: str, check: Callable[[], str]) -> CheckLine:
    """Run one check; VerificationError and CheckpointError mean it failed."""
    from ledger.log.checkpoint import CheckpointError
    from ledger.log.merkle import VerificationError

    try:
        return CheckLine(name, True, check())
    except (VerificationError, CheckpointError) as error:
        return CheckLine(name, False, str(error))


def report(checks: list[CheckLine], *, anchored: bool, trust_options: str) -> None:
    print_checks(checks)
    if not anchored:
        print_note(
            f"note: no trusted root was given ({trust_options}): this shows only that "
            "the proof agrees with the roots it carries."
        )


def parse_proof(
    data: bytes, model: type[Model], source: str, what: str, other: tuple[str, str]
) -> Model:
    from pydantic import ValidationError

    from ledger import strict_json

    try:
        # Nesting, duplicate members and NaN first: the proof models would recurse into
        # (or silently pick one of) them.
        strict_json.loads(data)
    except strict_json.JsonInputError as error:
        fail(f"{source_name(source)} is not a valid {what}: {error}")
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        problems = error.errors()
        first = problems[0]
        location = ".".join(str(part) for part in first["loc"])
        message = f"{source_name(source)} is not a valid {what}: "
        message += f"{location}: {first['msg']}" if location else first["msg"]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problems)"
        other_key, other_command = other
        try:
            looks_other = other_key in json.loads(data)
        except (ValueError, TypeError):
            looks_other = False
        if looks_other:
            message += f"; it looks like the other kind of proof: use `{other_command}`"
        fail(message)


def parse_root(value: str, option: str) -> bytes:
    """A 32-byte hash in standard base64 (as in proofs and checkpoints) or 0x-hex (as
    read from the anchor contract)."""
    from ledger.log.merkle import HASH_SIZE

    try:
        if value.startswith("0x") and len(value) == 2 + 2 * HASH_SIZE:
            root = bytes.fromhex(value[2:])
        else:
            root = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        fail(f"{option} must be a base64 or 0x-hex SHA-256 hash")
    if len(root) != HASH_SIZE:
        fail(f"{option} is {len(root)} bytes; a SHA-256 hash is {HASH_SIZE}")
    return root


def parse_verifier(key: str | None, needed_by: str) -> NoteVerifier:
    from ledger.log.checkpoint import CheckpointError, NoteVerifier

    if key is None:
        fail(f"{needed_by} needs --key with the log's verifier key (printed by init)")
    try:
        return NoteVerifier.parse(key)
    except CheckpointError as error:
        fail(f"--key: {error}")


def read_note(path: Path, option: str) -> str:
    data = read_bytes(str(path), MAX_NOTE_FILE_BYTES, "a checkpoint note")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{option} {path} is not UTF-8 text")


@dataclass(frozen=True)
class TrustedRoot:
    """A root the verifier trusts: given directly, or taken from a signed checkpoint."""

    source: str  # how the user gave it, for messages
    root: bytes | None  # None when its checkpoint failed to verify
    size: int | None  # known only from a checkpoint; a bare root does not say its size


def trusted_root(
    root: str | None,
    checkpoint: Path | None,
    verifier: Callable[[], NoteVerifier],
    *,
    root_option: str,
    checkpoint_option: str,
    label: str,
    checks: list[CheckLine],
) -> TrustedRoot | None:
    from ledger.log.checkpoint import Checkpoint, open_checkpoint

    if root is not None and checkpoint is not None:
        fail(f"give {root_option} or {checkpoint_option}, not both")
    if root is not None:
        return TrustedRoot(root_option, parse_root(root, root_option), None)
    if checkpoint is None:
        return None
    note = read_note(checkpoint, checkpoint_option)
    trusted_key = verifier()
    opened: list[Checkpoint] = []

    def check_signature() -> str:
        opened.append(open_checkpoint(note, trusted_key))
        return f"{checkpoint} is signed by {trusted_key.name}, for size {opened[0].size}"

    checks.append(run_check(label, check_signature))
    if not opened:
        return TrustedRoot(str(checkpoint), None, None)
    return TrustedRoot(str(checkpoint), opened[0].root_hash, opened[0].size)


def compare_root(name: str, trusted: TrustedRoot, size: int, proof_root: bytes) -> CheckLine:
    if trusted.root is None:
        return CheckLine(name, None, "skipped: the checkpoint did not verify")
    if trusted.size is not None and trusted.size != size:
        return CheckLine(
            name,
            False,
            f"{trusted.source} is for size {trusted.size} but the proof is for size {size}; "
            f"use a checkpoint of size {size} (carbonledger log checkpoint --size {size})",
        )
    encoded = base64.b64encode(proof_root).decode()
    if trusted.root != proof_root:
        return CheckLine(
            name,
            False,
            f"the proof's root {encoded} differs from the root in {trusted.source} "
            f"({base64.b64encode(trusted.root).decode()})",
        )
    if trusted.size is None:
        # A proof verifies for several tree sizes under the same root (RFC 9162 paths
        # depend on the size only through their shape), so a bare root pins the leaf but
        # not the size the proof claims. A checkpoint pins both.
        return CheckLine(
            name,
            True,
            f"the proof's root is the one given with {trusted.source} "
            "(its tree size is not checked; --checkpoint checks it)",
        )
    return CheckLine(name, True, f"the proof's root is the one in {trusted.source} (size {size})")


ProofSource = Annotated[
    str,
    typer.Argument(metavar="FILE|-", help="Proof JSON file, or - for stdin.", show_default=False),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="KEY",
        help="The log's verifier key NAME+KEYID+BASE64 (printed by init), for --checkpoint.",
        show_default=False,
    ),
]


@log_app.command("verify-inclusion")
def verify_inclusion_command(
    source: ProofSource = STDIN,
    *,
    leaf_file: Annotated[
        Path | None,
        typer.Option(
            "--leaf-file",
            metavar="FILE",
            help="Raw leaf bytes; their RFC 9162 leaf hash must match.",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            metavar="HASH",
            help="Trusted root hash (base64 or 0x-hex) of the proof's size.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="NOTE_FILE",
            help="Signed checkpoint note of the proof's size to take "
            "the trusted root from (needs --key).",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Verify an inclusion proof offline; exit 1 if any check fails.

    Needs no database and no settings. Without --root or --checkpoint, it shows only
    that the proof agrees with the root it carries.
    """
    from api.schemas.log import InclusionProofBody
    from ledger.log.merkle import VerificationError, leaf_hash, verify_inclusion

    if key is not None and checkpoint is None:
        fail("--key is used only with --checkpoint")
    one_stdin(source, leaf_file, checkpoint)
    body = parse_proof(
        read_bytes(source, MAX_PROOF_BYTES, "an inclusion proof"),
        InclusionProofBody,
        source,
        "inclusion proof",
        ("from", "carbonledger log verify-consistency"),
    )
    leaf = None if leaf_file is None else read_bytes(str(leaf_file), MAX_LEAF_BYTES, "a leaf")

    checks: list[CheckLine] = []
    if leaf is not None:

        def check_leaf() -> str:
            if leaf_hash(leaf) != body.leaf_hash:
                raise VerificationError(
                    f"the leaf hash of {leaf_file} is {leaf_hash(leaf).hex()}, "
                    f"the proof's is {body.leaf_hash.hex()}"
                )
            return f"{leaf_file} hashes to the proof's leaf hash"

        checks.append(run_check("leaf", check_leaf))

    def check_inclusion() -> str:
        verify_inclusion(body.index, body.size, body.leaf_hash, body.proof, body.root_hash)
        return (
            f"leaf {body.index} is in the tree of size {body.size} with root "
            f"{base64.b64encode(body.root_hash).decode()}"
        )

    checks.append(run_check("inclusion", check_inclusion))
    trusted = trusted_root(
        root,
        checkpoint,
        partial(parse_verifier, key, "--checkpoint"),
        root_option="--root",
        checkpoint_option="--checkpoint",
        label="checkpoint",
        checks=checks,
    )
    if trusted is not None:
        checks.append(compare_root("trusted root", trusted, body.size, body.root_hash))
    report(checks, anchored=trusted is not None, trust_options="--root, or --checkpoint with --key")


@log_app.command("verify-consistency")
def verify_consistency_command(
    source: ProofSource = STDIN,
    *,
    old_root: Annotated[
        str | None,
        typer.Option(
            "--old-root",
            metavar="HASH",
            help="Trusted root (base64 or 0x-hex) at the proof's from size.",
            show_default=False,
        ),
    ] = None,
    new_root: Annotated[
        str | None,
        typer.Option(
            "--new-root",
            metavar="HASH",
            help="Trusted root (base64 or 0x-hex) at the proof's to size.",
            show_default=False,
        ),
    ] = None,
    old_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--old-checkpoint",
            metavar="NOTE_FILE",
            help="Signed checkpoint of the from size (needs --key).",
            show_default=False,
        ),
    ] = None,
    new_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--new-checkpoint",
            metavar="NOTE_FILE",
            help="Signed checkpoint of the to size (needs --key).",
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Verify a consistency proof offline; exit 1 if any check fails.

    Needs no database and no settings. Trusted roots for either end come from
    --old-root/--new-root or from signed checkpoints with --key.
    """
    from api.schemas.log import ConsistencyProofBody
    from ledger.log.merkle import verify_consistency

    if key is not None and old_checkpoint is None and new_checkpoint is None:
        fail("--key is used only with --old-checkpoint or --new-checkpoint")
    one_stdin(source, old_checkpoint, new_checkpoint)
    body = parse_proof(
        read_bytes(source, MAX_PROOF_BYTES, "a consistency proof"),
        ConsistencyProofBody,
        source,
        "consistency proof",
        ("index", "carbonledger log verify-inclusion"),
    )

    def check_consistency() -> str:
        verify_consistency(
            body.from_size, body.to_size, body.proof, body.old_root_hash, body.new_root_hash
        )
        return f"the tree of size {body.to_size} extends the tree of size {body.from_size}"

    checks = [run_check("consistency", check_consistency)]
    # Parsed once, and only if a checkpoint needs it.
    verifier = functools.cache(partial(parse_verifier, key, "--old-checkpoint/--new-checkpoint"))
    anchored = False
    for end, size, proof_root, given_root, checkpoint in (
        ("old", body.from_size, body.old_root_hash, old_root, old_checkpoint),
        ("new", body.to_size, body.new_root_hash, new_root, new_checkpoint),
    ):
        trusted = trusted_root(
            given_root,
            checkpoint,
            verifier,
            root_option=f"--{end}-root",
            checkpoint_option=f"--{end}-checkpoint",
            label=f"{end} checkpoint",
            checks=checks,
        )
        if trusted is not None:
            anchored = True
            checks.append(compare_root(f"trusted {end} root", trusted, size, proof_root))
    report(
        checks,
        anchored=anchored,
        trust_options="--old-root/--new-root, or --old-checkpoint/--new-checkpoint with --key",
    )
