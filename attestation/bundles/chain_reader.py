"""The verifier's one look at the chain: does the contract hold the bundle's anchor?

An `AnchorReader` asks three read-only questions (chain id, `anchorAt`, the transaction's
receipt): `JsonRpcAnchorReader` of a JSON-RPC node with the standard library
(`attestation.chain.rpc`), `ChainAnchorReader` of a web3 connection (the embedded chain's).
web3 is imported only by the latter's methods: importing it takes a second, more than the
whole budget of `carbonledger verify --rpc`. `chain_check` turns the answers into the
`chain` check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from attestation.bundles.format import BundleAnchor
from attestation.bundles.report import FAILED, PASSED, Check
from attestation.chain import rpc
from attestation.chain.address import checksum_address
from attestation.chain.errors import ChainError

if TYPE_CHECKING:
    from web3 import Web3


class AnchorReaderError(ChainError):
    """The chain could not be asked (unreachable, not a CarbonAnchor, unexpected answer)."""


@dataclass(frozen=True, slots=True)
class ChainObservation:
    """What the chain says about one anchor claim (gathered by an `AnchorReader`)."""

    chain_id: int
    root: bytes | None
    """`anchorAt(logId, size)`'s log root on the named contract; None when it holds no
    valid root there."""
    tx_block: int | None
    """Block of the named transaction's successful receipt; None when there is none."""
    tx_anchors: tuple[tuple[bytes, int, bytes], ...]
    """(logId, size, root) of every `Anchored` event the contract emitted in that transaction."""
    map_root: bytes | None = None
    """The state-map root anchored beside `root` (contract v2); None with `root`."""
    revoked: bool = False
    """The contract's admin revoked the anchor at that size (`AnchorRevokedAt`)."""


class AnchorReader(Protocol):
    """The verifier's only I/O: one lookup of an anchor claim on one chain."""

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        """Raise AnchorReaderError when the chain cannot be asked."""
        ...


class ChainAnchorReader:
    """An `AnchorReader` over a web3 connection (the embedded chain's, or any other).

    One lookup is three read-only requests (chain id, `rootAt` as an eth_call, the
    transaction receipt); it needs no account and sends nothing.
    """

    def __init__(self, w3: Web3) -> None:
        from attestation.chain.client import load_artifact  # noqa: PLC0415 - see the docstring

        self.w3 = w3
        self._abi = load_artifact()["abi"]

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        address = checksum_address(contract)
        try:
            chain_id = int(self.w3.eth.chain_id)
            anchored, revoked = self._anchor_at(address, log_id, size)
            tx_block, anchors = self._transaction(address, tx)
        except AnchorReaderError:
            raise
        except Exception as exc:  # web3, requests and eth-tester raise many types for "down"
            raise AnchorReaderError(f"the chain could not be read: {exc}") from exc
        return ChainObservation(
            chain_id,
            anchored.root if anchored else None,
            tx_block,
            anchors,
            anchored.map_root if anchored else None,
            revoked,
        )

    def _anchor_at(
        self, address: str, log_id: bytes, size: int
    ) -> tuple[rpc.AnchorAt | None, bool]:
        from web3.exceptions import BadFunctionCallOutput  # noqa: PLC0415

        from attestation.chain.client import revert_data  # noqa: PLC0415

        contract = self.w3.eth.contract(address=address, abi=self._abi)  # type: ignore[call-overload]
        try:
            root, map_root, previous, anchored_at = contract.functions.anchorAt(log_id, size).call()
        except BadFunctionCallOutput:
            return None, False  # no contract code at that address: it holds nothing
        except Exception as exc:
            data = revert_data(exc)
            if data is None:
                raise
            # Any revert (UnknownAnchor, AnchorRevokedAt, or a contract without anchorAt)
            # means "no such root"; a revocation is named.
            return None, data[:4] == rpc.ANCHOR_REVOKED_SELECTOR
        return rpc.AnchorAt(bytes(root), bytes(map_root), int(previous), int(anchored_at)), False

    def _transaction(
        self, address: str, tx: bytes
    ) -> tuple[int | None, tuple[tuple[bytes, int, bytes], ...]]:
        from hexbytes import HexBytes  # noqa: PLC0415
        from web3.exceptions import TransactionNotFound  # noqa: PLC0415

        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx))
        except TransactionNotFound:
            return None, ()
        if receipt is None or int(receipt["status"]) != 1:
            return None, ()
        anchors = []
        for entry in receipt["logs"]:
            topics = entry["topics"]
            if (
                checksum_address(entry["address"]) == address
                and len(topics) == 4
                and bytes(topics[0]) == rpc.ANCHORED_TOPIC
            ):
                data = bytes(entry["data"])
                anchors.append(
                    (bytes(topics[1]), int.from_bytes(bytes(topics[2]), "big"), data[:32])
                )
        return int(receipt["blockNumber"]), tuple(anchors)


class JsonRpcAnchorReader:
    """An `AnchorReader` for a JSON-RPC endpoint, with the standard library only: the same
    three read-only requests as `ChainAnchorReader`, without web3's second of imports."""

    def __init__(self, url: str, *, timeout: float = rpc.DEFAULT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        address = checksum_address(contract)
        try:
            node = rpc.JsonRpc(self.url, timeout=self.timeout)
            chain_id = node.chain_id()
            answer, reverted = node.call_or_revert(address, rpc.anchor_at_call(log_id, size))
            # A revert (UnknownAnchor, AnchorRevokedAt, or a contract without anchorAt) and
            # an empty answer (no code at that address) both mean: it holds no such root.
            anchored = None if answer is None else rpc.decode_anchor_at(answer)
            receipt = node.receipt(tx)
        except ChainError as exc:
            raise AnchorReaderError(f"the chain could not be read: {exc}") from exc
        root = anchored.root if anchored else None
        map_root = anchored.map_root if anchored else None
        revoked = reverted is not None and reverted[:4] == rpc.ANCHOR_REVOKED_SELECTOR
        if receipt is None or receipt.status != 1:
            return ChainObservation(chain_id, root, None, (), map_root, revoked)
        return ChainObservation(
            chain_id, root, receipt.block, rpc.anchored_events(receipt, address), map_root, revoked
        )


def rpc_anchor_reader(url: str, *, timeout: float = 30) -> JsonRpcAnchorReader:
    """A read-only reader for a JSON-RPC endpoint (no key: the verifier never sends)."""
    return JsonRpcAnchorReader(url, timeout=timeout)


def chain_check(anchor: BundleAnchor, observed: ChainObservation) -> Check:
    size, root = anchor.size, anchor.root_bytes
    claim = (anchor.log_id_bytes, size, root)
    if observed.chain_id != anchor.chain_id:
        problem = f"the chain read has id {observed.chain_id}; the bundle names {anchor.chain_id}"
    elif observed.revoked:
        problem = (
            f"contract {anchor.contract} revoked its anchor at size {size} for this logId "
            "(AnchorRevokedAt): the admin withdrew it, e.g. after a stolen anchorer key"
        )
    elif observed.root is None:
        problem = f"contract {anchor.contract} holds no root at size {size} for this logId"
    elif observed.root != root:
        problem = f"contract holds root 0x{observed.root.hex()} at size {size}, not {anchor.root}"
    elif observed.tx_block is None:
        problem = f"transaction {anchor.tx} is not on this chain (or it failed)"
    elif observed.tx_block != anchor.block:
        problem = f"transaction {anchor.tx} is in block {observed.tx_block}, not {anchor.block}"
    elif claim not in observed.tx_anchors:
        problem = f"transaction {anchor.tx} did not anchor this root at size {size}"
    else:
        return Check(
            "chain",
            PASSED,
            f"chain {anchor.chain_id} contract {anchor.contract} holds root at size {size} "
            f"(tx {anchor.tx[:12]}… block {anchor.block})",
        )
    return Check("chain", FAILED, problem)
