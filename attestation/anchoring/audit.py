"""The chain half of `carbonledger audit replay`: do the log's roots match the anchors?

For one CarbonAnchor contract and the log's `logId` it gathers every (size, root) the chain
holds — from the contract's `Anchored` events, plus `rootAt` for each size the registry
recorded (`chain_anchor` rows), which catches a recorded anchor the chain never took — and
checks for each that `Log.root_at(size)` equals the chain's root, that the chain's latest
size does not exceed the log's size, and that the chain's latest root is the log's root at
that size. Any web3 connection works: the embedded chain's or a JSON-RPC node's. Nothing is
sent; only reads.

An anchor the contract's admin revoked (`AnchorRevoked`, contract v2) is no longer the
chain's claim: it is counted (`revokedAnchors`) and not compared, unless the size was
anchored again later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import select
from web3 import Web3

from attestation.anchoring.records import ChainAnchor
from attestation.chain.client import load_artifact, log_id_for_origin, revert_data
from attestation.chain.errors import ChainError
from attestation.chain.rpc import ANCHORED_TOPIC
from ledger.audit.replay import Violation
from ledger.log.store import Log

REVOKED_TOPIC = keccak(text="AnchorRevoked(bytes32,uint64,bytes32,uint64)")
MAX_BLOCKS_PER_QUERY = 10_000
"""`eth_getLogs` window: public endpoints refuse wide ranges, so the scan walks in steps."""
MAX_ANCHORS = 1_000_000
"""Bounds the (size, root) map; one anchor per minute for two years fits."""


class ChainUnavailableError(ChainError):
    """The chain could not be read (node down, no contract there)."""


@dataclass(slots=True)
class AnchorAudit:
    chain_id: int
    contract: str
    log_id: bytes
    log_size: int
    latest_size: int = 0
    anchors_checked: int = 0
    revoked_anchors: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chainId": self.chain_id,
            "contract": self.contract,
            "logId": "0x" + self.log_id.hex(),
            "logSize": self.log_size,
            "latestSize": self.latest_size,
            "anchorsChecked": self.anchors_checked,
            "revokedAnchors": self.revoked_anchors,
            "violations": [
                {"index": item.index, "rule": item.rule, "message": item.message}
                for item in self.violations
            ],
        }


def _anchored_events(
    w3: Web3, address: ChecksumAddress, log_id: bytes, from_block: int
) -> tuple[dict[int, bytes], int]:
    """size → root from every `Anchored` event of the contract for this log, without the
    anchors revoked since (`AnchorRevoked`), and how many were revoked."""
    found: dict[int, bytes] = {}
    revoked = 0
    latest_block = int(w3.eth.block_number)
    for first in range(from_block, latest_block + 1, MAX_BLOCKS_PER_QUERY):
        last = min(first + MAX_BLOCKS_PER_QUERY - 1, latest_block)
        entries = w3.eth.get_logs(
            {
                "address": address,
                "fromBlock": first,
                "toBlock": last,
                "topics": [
                    ["0x" + ANCHORED_TOPIC.hex(), "0x" + REVOKED_TOPIC.hex()],
                    "0x" + log_id.hex(),
                ],
            }
        )
        # Nodes return logs in chain order, so a revocation follows the anchor it revokes.
        for entry in entries:
            topics = entry["topics"]
            kind = bytes(topics[0]) if topics else b""
            if kind == ANCHORED_TOPIC and len(topics) == 4:
                size = int.from_bytes(bytes(topics[2]), "big")
                found[size] = bytes(entry["data"])[:32]
            elif kind == REVOKED_TOPIC and len(topics) == 3:
                found.pop(int.from_bytes(bytes(topics[2]), "big"), None)
                revoked += 1
            if len(found) > MAX_ANCHORS:
                raise ChainUnavailableError(f"more than {MAX_ANCHORS} anchors for one log")
    return found, revoked


def _root_at(contract: Any, log_id: bytes, size: int) -> bytes | None:
    try:
        return bytes(contract.functions.rootAt(log_id, size).call())
    except Exception as error:
        if revert_data(error) is None:
            raise
        return None  # UnknownAnchor or AnchorRevokedAt: no valid root at that size


def recorded_sizes(log: Log, contract: str, log_id: bytes) -> list[int]:
    """Sizes the registry recorded as anchored on this contract (its `chain_anchor` rows)."""
    with log.database.read() as session:
        return list(
            session.scalars(
                select(ChainAnchor.size)
                .where(
                    ChainAnchor.contract == to_checksum_address(contract),
                    ChainAnchor.log_id == log_id,
                )
                .order_by(ChainAnchor.size)
                .limit(MAX_ANCHORS)
            )
        )


def audit_anchors(
    log: Log,
    w3: Web3,
    contract_address: str,
    *,
    log_size: int | None = None,
    from_block: int = 0,
) -> AnchorAudit:
    """Compare the log with what the contract holds for it; raises ChainUnavailableError.

    `from_block` (the contract's deployment block, when known) shortens the event scan.
    """
    head = log.head()
    size = head.size if log_size is None else log_size
    log_id = log_id_for_origin(head.origin)
    address = to_checksum_address(contract_address)
    try:
        chain_id = int(w3.eth.chain_id)
        if not w3.eth.get_code(address):
            raise ChainUnavailableError(f"there is no contract at {address} on chain {chain_id}")
        contract = w3.eth.contract(address=address, abi=load_artifact()["abi"])
        latest_size, latest_root = contract.functions.latest(log_id).call()
        anchors, revoked = _anchored_events(w3, address, log_id, from_block)
        missing: list[int] = []
        for recorded in recorded_sizes(log, address, log_id):
            if recorded not in anchors:
                root = _root_at(contract, log_id, recorded)
                if root is None:
                    missing.append(recorded)
                else:
                    anchors[recorded] = root
    except ChainUnavailableError:
        raise
    except Exception as error:  # web3, requests and eth-tester raise many types for "down"
        raise ChainUnavailableError(f"the chain could not be read: {error}") from error
    audit = AnchorAudit(
        chain_id, address, log_id, size, latest_size=int(latest_size), revoked_anchors=revoked
    )
    for recorded in missing:
        audit.violations.append(
            Violation(
                recorded,
                "anchor-missing",
                f"the registry recorded an anchor at size {recorded}, but contract {address} "
                "holds no root at that size",
            )
        )
    if int(latest_size) and int(latest_size) not in anchors:
        anchors[int(latest_size)] = bytes(latest_root)
    for anchored_size, chain_root in sorted(anchors.items()):
        audit.anchors_checked += 1
        if anchored_size > size:
            audit.violations.append(
                Violation(
                    anchored_size,
                    "anchor-beyond-log",
                    f"the chain anchors size {anchored_size}, but the log has only {size} entries",
                )
            )
            continue
        local = log.root_at(anchored_size)
        if local != chain_root:
            audit.violations.append(
                Violation(
                    anchored_size,
                    "anchor-root",
                    f"the log's root at size {anchored_size} is {local.hex()}, but the chain "
                    f"holds {chain_root.hex()}",
                )
            )
    return audit
