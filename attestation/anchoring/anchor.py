"""Anchor the log's current head on chain, once, and record it (issue 4, part 3).

`anchor_now` is the single step a scheduler or the CLI repeats: read what the chain holds
for this log, prove locally that the current head extends it, send, wait for the
confirmations, then record (size, root, tx, block, chain id, contract) in the database.
The local check comes first so the service never sends a root the contract would reject
(which would cost gas and, worse, hide a diverged log behind a generic revert).

Contract v2 (decisions 69-74): the log must be registered with this service's key as its
anchorer, and one anchor may grow the log by at most the log's `maxGrowth` entries, so a
head further ahead is anchored in steps (each step an intermediate size of the same log).
Each anchor carries the state-map root after its entries, from `map_root_for`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from hexbytes import HexBytes
from sqlalchemy import select
from web3.exceptions import TransactionNotFound

from attestation.anchoring.records import ChainAnchor
from attestation.chain.client import (
    NO_MAP_ROOT,
    AnchorReceipt,
    CarbonAnchor,
    Chain,
    ChainBackend,
    log_id_for_origin,
)
from attestation.chain.deployment import LogNotRegisteredError, ensure_log_registered
from attestation.chain.errors import ChainError
from ledger.log.merkle import ConsistencyProofError, verify_consistency
from ledger.log.store import Log
from ledger.storage.db import Database


class AnchorConflictError(ChainError):
    """The chain holds a root this log does not extend: wrong log, or history was rewritten."""


class NotTheAnchorerError(ChainError):
    """The contract names another account as this log's anchorer (rotated, or wrong key)."""


NEEDS_OPERATOR: tuple[type[ChainError], ...] = (
    AnchorConflictError,
    NotTheAnchorerError,
    LogNotRegisteredError,
)
"""Failures no retry can fix: anchoring waits for an operator (`anchor now` exits 1)."""


def map_root_for(log: Log, size: int) -> bytes:
    """The state-map root after entries 0..size-1, anchored beside the log root.

    The hook for issue 11 item 2: 32 zero bytes until the state map is bound to the log.
    """
    del log, size
    return NO_MAP_ROOT


class ReorganisedError(ChainError):
    """An anchor transaction left the canonical chain while waiting for confirmations."""


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    chain_id: int
    contract: str
    log_id: bytes
    size: int
    root: bytes
    tx_hash: bytes
    block: int
    gas_used: int
    confirmations: int
    anchored_at: datetime


def _record(row: ChainAnchor) -> AnchorRecord:
    return AnchorRecord(
        row.chain_id,
        row.contract,
        row.log_id,
        row.size,
        row.root,
        row.tx_hash,
        row.block,
        row.gas_used,
        row.confirmations,
        # SQLite returns the stored UTC time without its zone; PostgreSQL keeps it.
        row.anchored_at if row.anchored_at.tzinfo else row.anchored_at.replace(tzinfo=UTC),
    )


def anchor_now(
    log: Log,
    contract: CarbonAnchor,
    *,
    confirmations: int = 1,
    timeout: float = 300.0,
    poll_interval: float = 1.0,
) -> AnchorRecord | None:
    """Anchor the current head; None when the chain already holds it (or the log is empty).
    Returns the last of the anchors it took (several when the log grew by more than its
    `maxGrowth` since the last anchor).

    The record goes into the log's own database, so it can name only sizes that log has.

    Raises AnchorConflictError (nothing sent) when the anchored root is not an ancestor of
    the local head, ContractRevert if the contract still refuses, ReorganisedError or
    ChainError when the transaction does not reach `confirmations` blocks.
    """
    if confirmations < 1:
        raise ValueError("confirmations must be at least 1")
    record: AnchorRecord | None = None
    # More than the log's maxGrowth new entries take several anchors, one per plan.
    while (plan := plan_anchor(log, contract)) is not None:
        receipt = contract.anchor(
            plan.log_id, plan.size, plan.root, plan.proof, map_root=plan.map_root
        )
        wait_for_confirmations(contract.chain, receipt, confirmations, timeout, poll_interval)
        record = record_anchor(log, contract, receipt, confirmations)
        if plan.size >= plan.head_size:
            break
    return record


@dataclass(frozen=True, slots=True)
class AnchorPlan:
    """What the next anchor transaction sends: the log head and the proof from the chain's."""

    log_id: bytes
    size: int
    root: bytes
    proof: tuple[bytes, ...]
    anchored_size: int
    map_root: bytes = NO_MAP_ROOT
    head_size: int = 0
    """The log's size when planned; above `size` when the growth bound splits the anchor."""


def plan_anchor(
    log: Log, contract: CarbonAnchor, *, anchorer: str | None = None
) -> AnchorPlan | None:
    """The anchor the chain would accept now from `anchorer` (default: the chain's account);
    None when it already holds the head.

    Raises AnchorConflictError when the anchored root is not an ancestor of the local head,
    LogNotRegisteredError or NotTheAnchorerError when the contract would refuse the sender.
    """
    head = log.head()
    log_id = log_id_for_origin(head.origin)
    if head.size == 0:
        return None
    ensure_log_registered(contract, log_id)
    config = contract.log_config(log_id)
    sender = anchorer or contract.chain.account.address
    if config.anchorer != sender:
        raise NotTheAnchorerError(
            f"contract {contract.address} names {config.anchorer} as the anchorer of log "
            f"0x{log_id.hex()}, not {sender}"
        )
    anchored = contract.latest(log_id)
    if anchored.size > head.size:
        raise AnchorConflictError(
            f"the chain holds size {anchored.size} for this log, but the log has {head.size}"
        )
    if anchored.size == head.size:
        if anchored.root != head.root:
            raise AnchorConflictError(
                f"the chain holds root 0x{anchored.root.hex()} at size {head.size}; "
                f"the log's root is 0x{head.root.hex()}"
            )
        return None
    # At most maxGrowth entries per anchor: the rest goes in the next step(s).
    size = min(head.size, anchored.size + config.max_growth)
    root = head.root if size == head.size else log.root_at(size)
    proof: tuple[bytes, ...] = ()
    if anchored.size:
        consistency = log.consistency_proof(anchored.size, size)
        try:
            # Against the chain's root, not the log's own root at that size: this is the
            # exact check the contract will make.
            verify_consistency(anchored.size, size, consistency.hashes, anchored.root, root)
        except ConsistencyProofError as exc:
            raise AnchorConflictError(
                f"the log does not extend the anchored (size {anchored.size}, root "
                f"0x{anchored.root.hex()}): {exc}"
            ) from exc
        proof = consistency.hashes
    return AnchorPlan(log_id, size, root, proof, anchored.size, map_root_for(log, size), head.size)


def record_anchor(
    log: Log, contract: CarbonAnchor, receipt: AnchorReceipt, confirmations: int
) -> AnchorRecord:
    """Store a confirmed anchor in the log's database."""
    row = ChainAnchor(
        chain_id=contract.chain.chain_id,
        contract=contract.address,
        log_id=receipt.log_id,
        size=receipt.size,
        root=receipt.root,
        tx_hash=receipt.tx_hash,
        block=receipt.block,
        gas_used=receipt.gas_used,
        confirmations=confirmations,
    )
    with log.database.write() as session:
        session.add(row)
        session.flush()
        return _record(row)


def wait_for_confirmations(
    chain: Chain, receipt: AnchorReceipt, confirmations: int, timeout: float, poll_interval: float
) -> None:
    """Block until `receipt`'s block has `confirmations` blocks (itself included) on top.

    The embedded chain has one node and mines every transaction at once, so its
    transactions are final when sent; a JSON-RPC chain is polled, and the receipt re-read
    at the end, so a transaction reorganised away in the meantime is reported, not recorded.
    """
    if chain.backend is ChainBackend.EMBEDDED:
        return
    deadline = time.monotonic() + timeout
    target = receipt.block + confirmations - 1
    while chain.w3.eth.block_number < target:
        if time.monotonic() > deadline:
            raise ChainError(
                f"transaction 0x{receipt.tx_hash.hex()} did not reach {confirmations} "
                f"confirmations within {timeout}s"
            )
        time.sleep(poll_interval)
    try:
        current = chain.w3.eth.get_transaction_receipt(HexBytes(receipt.tx_hash))
    except TransactionNotFound:
        current = None
    if current is None or int(current["blockNumber"]) != receipt.block:
        raise ReorganisedError(
            f"transaction 0x{receipt.tx_hash.hex()} is no longer in block {receipt.block}"
        )


def anchor_records(database: Database, *, limit: int = 100) -> list[AnchorRecord]:
    """Recorded anchors, newest first."""
    with database.read() as session:
        rows = session.scalars(
            select(ChainAnchor)
            .order_by(ChainAnchor.size.desc(), ChainAnchor.id.desc())
            .limit(limit)
        ).all()
        return [_record(row) for row in rows]


def latest_anchor_record(database: Database) -> AnchorRecord | None:
    records = anchor_records(database, limit=1)
    return records[0] if records else None


def anchor_page(
    database: Database, *, limit: int = 20, before_id: int | None = None
) -> list[tuple[int, AnchorRecord]]:
    """(id, record) of recorded anchors, newest recorded first, older than `before_id`.

    Ids grow with every record, so they page stably while new anchors are added.
    """
    query = select(ChainAnchor).order_by(ChainAnchor.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(ChainAnchor.id < before_id)
    with database.read() as session:
        return [(row.id, _record(row)) for row in session.scalars(query).all()]
