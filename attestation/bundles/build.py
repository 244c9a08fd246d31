"""Building proof bundles from the log and the recorded anchors (the format is
`attestation.bundles.format`; which keys and which anchor a bundle carries, and why, is
explained there)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from attestation.anchoring.records import ChainAnchor
from attestation.bundles.format import (
    BUNDLE_FORMAT,
    MAX_BUILD_ENTRIES,
    MAX_CHECKPOINT_CHARS,
    MAX_REQUESTED_ENTRIES,
    BundleAnchor,
    BundleEntry,
    BundleKey,
    ProofBundle,
)
from attestation.chain.address import checksum_address
from ledger.log.checkpoint import MAX_NOTE_BYTES, NoteSigner
from ledger.log.store import EntryNotFoundError, Log, LogError
from ledger.meters.entries import METER_KEY_KIND, READING_KINDS
from ledger.meters.models import MeterKey


class BundleRequestError(ValueError):
    """A bundle was asked for with impossible parameters (no indices, too many, negative)."""


class NotYetAnchoredError(LookupError):
    """No recorded anchor covers the requested entries yet; retry after the next anchor.

    `anchored_size` is the newest recorded anchor's size (None: none yet), `log_size` the
    log's size when asked; an entry at index i needs an anchored size of at least i + 1.
    """

    def __init__(self, indices: tuple[int, ...], anchored_size: int | None, log_size: int) -> None:
        self.indices = indices
        self.anchored_size = anchored_size
        self.log_size = log_size
        needed = max(indices) + 1
        if anchored_size is None:
            have = "nothing is anchored yet"
        else:
            have = f"the latest anchor covers size {anchored_size}"
        super().__init__(
            f"entries up to index {needed - 1} need an anchored size of at least {needed}; "
            f"{have} (the log has {log_size} entries)"
        )


class AnchorRecordMismatchError(LogError):
    """An anchor record names a root that the log does not have at that size (damage)."""


# ----------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class _Anchor:
    chain_id: int
    contract: str
    log_id: bytes
    size: int
    root: bytes
    tx_hash: bytes
    block: int


def _latest_anchor(
    log: Log, chain_id: int | None, contract: str | None, size: int | None = None
) -> _Anchor | None:
    query = select(ChainAnchor)
    if size is not None:
        query = query.where(ChainAnchor.size == size)
    if chain_id is not None:
        query = query.where(ChainAnchor.chain_id == chain_id)
    if contract is not None:
        query = query.where(ChainAnchor.contract == checksum_address(contract))
    query = query.order_by(ChainAnchor.size.desc(), ChainAnchor.id.desc()).limit(1)
    with log.database.read() as session:
        row = session.scalars(query).first()
        if row is None:
            return None
        return _Anchor(
            row.chain_id, row.contract, row.log_id, row.size, row.root, row.tx_hash, row.block
        )


def _key_entry_indices(log: Log, key_ids: set[str], anchored_size: int) -> set[int]:
    """Log indices of the registration (and revocation, if anchored) of each key."""
    if not key_ids:
        return set()
    with log.database.read() as session:
        rows = session.execute(
            select(MeterKey.key_id, MeterKey.log_index, MeterKey.revoked_log_index).where(
                MeterKey.key_id.in_(sorted(key_ids))
            )
        ).all()
    found = {row.key_id for row in rows}
    if found != key_ids:
        raise LogError(f"readings name keys the registry does not have: {sorted(key_ids - found)}")
    indices: set[int] = set()
    for row in rows:
        indices.add(row.log_index)
        # A revocation after the anchored size is not provable against this anchor yet.
        if row.revoked_log_index is not None and row.revoked_log_index < anchored_size:
            indices.add(row.revoked_log_index)
    return indices


def _kind_and_key(leaf: bytes) -> tuple[str | None, str | None]:
    value = json.loads(leaf)
    if not isinstance(value, dict):
        return None, None
    kind, kid = value.get("kind"), value.get("keyId")
    return (kind if isinstance(kind, str) else None), (kid if isinstance(kid, str) else None)


def build_bundle(
    log: Log,
    signer: NoteSigner,
    indices: Iterable[int],
    *,
    chain_id: int | None = None,
    contract: str | None = None,
    anchored_size: int | None = None,
    max_entries: int = MAX_REQUESTED_ENTRIES,
) -> ProofBundle:
    """A bundle for `indices` against the newest recorded anchor covering all of them.

    `signer` is the log's checkpoint key (`Registry.signer`): the checkpoint note is signed
    for the anchored size when the bundle is built (checkpoints are not stored).
    `anchored_size` restricts the choice to anchors of exactly that size (a caller that
    chose its entries for one anchor must get that one, not a newer one recorded meanwhile).
    `max_entries` (at most MAX_BUILD_ENTRIES) bounds the indices asked for; the default is
    the generic request limit. Raises BundleRequestError (bad indices), EntryNotFoundError
    (an index beyond the log) and NotYetAnchoredError (no anchor covers them yet).
    """
    if not 1 <= max_entries <= MAX_BUILD_ENTRIES:
        raise BundleRequestError(f"max_entries must be between 1 and {MAX_BUILD_ENTRIES}")
    wanted = tuple(sorted(set(indices)))
    if not wanted:
        raise BundleRequestError("a bundle needs at least one entry index")
    if len(wanted) > max_entries:
        raise BundleRequestError(f"a bundle covers at most {max_entries} entries")
    if wanted[0] < 0:
        raise BundleRequestError("entry indices are not negative")
    head = log.head()
    if wanted[-1] >= head.size:
        raise EntryNotFoundError(f"no entry at index {wanted[-1]} (the log has {head.size})")
    anchor = _latest_anchor(log, chain_id, contract, anchored_size)
    if anchor is None or anchor.size <= wanted[-1]:
        raise NotYetAnchoredError(wanted, anchor.size if anchor else None, head.size)

    leaves = {index: log.entry(index) for index in wanted}
    reading_keys = set()
    for leaf in leaves.values():
        kind, kid = _kind_and_key(leaf)
        if kind in READING_KINDS and kid is not None:
            reading_keys.add(kid)
    for index in _key_entry_indices(log, reading_keys, anchor.size) - set(wanted):
        leaves[index] = log.entry(index)

    entries: list[BundleEntry] = []
    keys: dict[str, BundleKey] = {}
    for index in sorted(leaves):
        proof = log.inclusion_proof(index, anchor.size)
        if proof.root != anchor.root:
            raise AnchorRecordMismatchError(
                f"the anchor record says root 0x{anchor.root.hex()} at size {anchor.size}, "
                f"the log has 0x{proof.root.hex()}"
            )
        leaf = leaves[index]
        entries.append(
            BundleEntry(
                index=index,
                leaf=base64.b64encode(leaf).decode("ascii"),
                inclusion=[base64.b64encode(item).decode("ascii") for item in proof.hashes],
            )
        )
        entry = json.loads(leaf)
        if isinstance(entry, dict) and entry.get("kind") == METER_KEY_KIND:
            keys[entry["keyId"]] = BundleKey(alg=entry["alg"], public_key=entry["publicKey"])

    return ProofBundle(
        bundle=BUNDLE_FORMAT,
        entries=entries,
        checkpoint=_checkpoint_note(log, signer, anchor.size),
        anchor=BundleAnchor(
            chain_id=anchor.chain_id,
            contract=checksum_address(anchor.contract),
            log_id="0x" + anchor.log_id.hex(),
            size=anchor.size,
            root="0x" + anchor.root.hex(),
            tx="0x" + anchor.tx_hash.hex(),
            block=anchor.block,
        ),
        keys=keys,
    )


def newest_anchored_size(
    log: Log, *, chain_id: int | None = None, contract: str | None = None
) -> int | None:
    """The size of the newest recorded anchor (as `build_bundle` would choose), or None."""
    anchor = _latest_anchor(log, chain_id, contract)
    return anchor.size if anchor is not None else None


def _checkpoint_note(log: Log, signer: NoteSigner, size: int) -> str:
    note = log.checkpoint(signer, size=size)
    if len(note) > MAX_CHECKPOINT_CHARS or len(note.encode()) > MAX_NOTE_BYTES:
        raise LogError("the checkpoint note is larger than a bundle may carry")
    return note
