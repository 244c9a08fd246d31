"""What a verifier trusts, stated explicitly, and where each input came from (issue 11, item 4).

A bundle proves nothing by itself: its checkpoint must be signed by the log key the
verifier already trusts, its anchor must be on the chain and contract the verifier pins,
and its credentials must be issued by a key the verifier accepts. `TrustInputs` holds
those inputs; each records its source (a command-line flag, a trust file, the registry's
own data directory) so the report can say which came from where. An input that is missing
is not guessed from the bundle: the check that needed it is not made, and a report with a
check not made is incomplete, which `carbonledger verify` never reports as success.

A trust file (`carbonledger/trust/1`, JSON) is what an operator publishes and a verifier
keeps:

    {"trust": "carbonledger/trust/1", "chainId": 31337,
     "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
     "logKey": "<origin>+<key id>+<base64 key>",
     "issuers": ["did:key:z6Mk…"],
     "rpc": "http://127.0.0.1:8545"}

`rpc` is a convenience (where to read the chain), not a trust input: any node of the
pinned chain gives the same answers, and the chain id is checked against the pin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from attestation.chain.address import checksum_address, is_checksum_address
from ledger import strict_json
from ledger.credentials.data_integrity import CredentialError, public_key_from_did_key
from ledger.log.checkpoint import CheckpointError, NoteVerifier
from ledger.strict_json import JsonInputError

TRUST_FORMAT = "carbonledger/trust/1"
MAX_TRUST_FILE_BYTES = 64 * 1024
MAX_ISSUERS = 64
_MEMBERS = frozenset({"trust", "chainId", "contract", "logKey", "issuers", "rpc"})


class TrustError(ValueError):
    """A trust input is malformed; the message names it and says what to fix."""


class Source(StrEnum):
    FLAG = "flag"
    TRUST_FILE = "trust file"
    DATA_DIR = "registry data directory"


@dataclass(frozen=True, slots=True)
class Pinned:
    value: Any
    source: Source
    where: str = ""
    """The flag name or the file path the value came from."""

    def origin(self) -> str:
        return f"{self.source.value} {self.where}".strip()


@dataclass(frozen=True, slots=True)
class TrustInputs:
    chain_id: Pinned | None = None
    contract: Pinned | None = None
    log_key: Pinned | None = None
    issuers: Pinned | None = None
    """A tuple of did:key DIDs."""
    rpc: str | None = None
    allow_embedded_chain: bool = False
    """The user accepts a bundle anchored on a registry's in-process chain (which proves
    nothing to anyone but the registry's operator)."""
    max_age_seconds: int | None = None
    """How long after a newer anchor superseded the bundle's anchor its statuses may still
    be called current; None: only a bundle at the chain's latest anchor is current."""
    notes: tuple[str, ...] = field(default=())

    @property
    def log_verifier(self) -> NoteVerifier | None:
        return None if self.log_key is None else self.log_key.value

    @property
    def issuer_dids(self) -> tuple[str, ...]:
        return () if self.issuers is None else self.issuers.value

    def merged_over(self, base: TrustInputs) -> TrustInputs:
        """These inputs, falling back to `base` for each one not given here (flags over a
        trust file)."""
        return replace(
            base,
            chain_id=self.chain_id or base.chain_id,
            contract=self.contract or base.contract,
            log_key=self.log_key or base.log_key,
            issuers=self.issuers or base.issuers,
            rpc=self.rpc or base.rpc,
            allow_embedded_chain=self.allow_embedded_chain or base.allow_embedded_chain,
            max_age_seconds=(
                self.max_age_seconds if self.max_age_seconds is not None else base.max_age_seconds
            ),
            notes=(*base.notes, *self.notes),
        )

    def missing(self) -> tuple[str, ...]:
        """The trust inputs not given, by their flag names."""
        names = []
        if self.chain_id is None:
            names.append("--chain-id")
        if self.contract is None:
            names.append("--contract")
        if self.log_key is None:
            names.append("--log-key")
        if self.issuers is None:
            names.append("--issuer")
        return tuple(names)


def parse_chain_id(value: object, source: Source, where: str) -> Pinned:
    if type(value) is not int or not 1 <= value <= (1 << 53) - 1:
        raise TrustError(f"{where}: a chain id is a positive integer (EIP-155)")
    return Pinned(value, source, where)


def parse_contract(value: object, source: Source, where: str) -> Pinned:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise TrustError(f"{where}: a contract address is 0x and 40 hex digits")
    try:
        checksummed = checksum_address(value)
    except ValueError as exc:
        raise TrustError(f"{where}: {exc}") from None
    if value != value.lower() and not is_checksum_address(value):
        raise TrustError(f"{where}: {value} has a wrong EIP-55 checksum (is it mistyped?)")
    return Pinned(checksummed, source, where)


def parse_log_key(value: object, source: Source, where: str) -> Pinned:
    if not isinstance(value, str):
        raise TrustError(f"{where}: the log key is the verifier key string name+id+key")
    try:
        return Pinned(NoteVerifier.parse(value), source, where)
    except CheckpointError as exc:
        raise TrustError(f"{where}: {exc}") from None


def parse_issuers(values: object, source: Source, where: str) -> Pinned:
    if not isinstance(values, list | tuple) or not 1 <= len(values) <= MAX_ISSUERS:
        raise TrustError(f"{where}: give 1-{MAX_ISSUERS} issuer DIDs")
    dids = []
    for value in values:
        if not isinstance(value, str) or "#" in value:
            raise TrustError(f"{where}: an issuer is a did:key DID (no #fragment)")
        try:
            public_key_from_did_key(value)
        except CredentialError as exc:
            raise TrustError(f"{where}: {value}: {exc}") from None
        dids.append(value)
    return Pinned(tuple(dict.fromkeys(dids)), source, where)


def load_trust_file(path: Path) -> TrustInputs:
    """The inputs of a `carbonledger/trust/1` file; TrustError says what is wrong."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUST_FILE_BYTES + 1)
    except OSError as exc:
        raise TrustError(f"cannot read the trust file {path}: {exc.strerror}") from None
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise TrustError(f"{path} is larger than a trust file can be ({MAX_TRUST_FILE_BYTES} B)")
    try:
        document = strict_json.loads(data)
    except JsonInputError as exc:
        raise TrustError(f"{path}: {exc}") from None
    if not isinstance(document, dict) or document.get("trust") != TRUST_FORMAT:
        raise TrustError(f'{path}: not a trust file (needs "trust": "{TRUST_FORMAT}")')
    unknown = sorted(set(document) - _MEMBERS)
    if unknown:
        raise TrustError(f"{path}: unknown members {unknown}")
    where, source = str(path), Source.TRUST_FILE
    rpc = document.get("rpc")
    if rpc is not None and not isinstance(rpc, str):
        raise TrustError(f"{path}: rpc must be a URL string")
    return TrustInputs(
        chain_id=parse_chain_id(document["chainId"], source, where)
        if "chainId" in document
        else None,
        contract=parse_contract(document["contract"], source, where)
        if "contract" in document
        else None,
        log_key=parse_log_key(document["logKey"], source, where) if "logKey" in document else None,
        issuers=parse_issuers(document["issuers"], source, where)
        if "issuers" in document
        else None,
        rpc=rpc,
    )


def trust_document(inputs: TrustInputs) -> dict[str, Any]:
    """The trust file for these inputs (what `carbonledger trust export` writes)."""
    document: dict[str, Any] = {"trust": TRUST_FORMAT}
    if inputs.chain_id is not None:
        document["chainId"] = inputs.chain_id.value
    if inputs.contract is not None:
        document["contract"] = inputs.contract.value
    if inputs.log_verifier is not None:
        document["logKey"] = inputs.log_verifier.encode()
    if inputs.issuers is not None:
        document["issuers"] = list(inputs.issuer_dids)
    if inputs.rpc is not None:
        document["rpc"] = inputs.rpc
    return document


def write_trust_file(path: Path, inputs: TrustInputs) -> None:
    path.write_text(json.dumps(trust_document(inputs), indent=2) + "\n", encoding="utf-8")
