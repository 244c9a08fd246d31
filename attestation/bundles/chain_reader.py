"""The verifier's one look at the chain: does the contract hold the bundle's anchor?

`ChainAnchorReader` asks any web3 connection (the embedded chain's or a JSON-RPC node's)
three read-only questions; `chain_check` turns the answers into the `chain` check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import BadFunctionCallOutput, TransactionNotFound

from attestation.bundles.format import BundleAnchor
from attestation.bundles.report import FAILED, PASSED, Check
from attestation.chain.client import load_artifact, revert_data
from attestation.chain.errors import ChainError


class AnchorReaderError(ChainError):
    """The chain could not be asked (unreachable, not a CarbonAnchor, unexpected answer)."""


@dataclass(frozen=True, slots=True)
class ChainObservation:
    """What the chain says about one anchor claim (gathered by an `AnchorReader`)."""

    chain_id: int
    root: bytes | None
    """`rootAt(logId, size)` on the named contract; None when it holds no root there."""
    tx_block: int | None
    """Block of the named transaction's successful receipt; None when there is none."""
    tx_anchors: tuple[tuple[bytes, int, bytes], ...]
    """(logId, size, root) of every `Anchored` event the contract emitted in that transaction."""


class AnchorReader(Protocol):
    """The verifier's only I/O: one lookup of an anchor claim on one chain."""

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        """Raise AnchorReaderError when the chain cannot be asked."""
        ...


_ANCHORED_TOPIC = keccak(text="Anchored(bytes32,uint64,bytes32,uint64,address)")


class ChainAnchorReader:
    """An `AnchorReader` over any web3 connection: the embedded chain's or a JSON-RPC node's.

    One lookup is three read-only requests (chain id, `rootAt` as an eth_call, the
    transaction receipt); it needs no account and sends nothing.
    """

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._abi = load_artifact()["abi"]

    def observe(self, contract: str, log_id: bytes, size: int, tx: bytes) -> ChainObservation:
        address = to_checksum_address(contract)
        try:
            chain_id = int(self.w3.eth.chain_id)
            root = self._root_at(address, log_id, size)
            tx_block, anchors = self._transaction(address, tx)
        except AnchorReaderError:
            raise
        except Exception as exc:  # web3, requests and eth-tester raise many types for "down"
            raise AnchorReaderError(f"the chain could not be read: {exc}") from exc
        return ChainObservation(chain_id, root, tx_block, anchors)

    def _root_at(self, address: str, log_id: bytes, size: int) -> bytes | None:
        contract = self.w3.eth.contract(address=address, abi=self._abi)  # type: ignore[call-overload]
        try:
            return bytes(contract.functions.rootAt(log_id, size).call())
        except BadFunctionCallOutput:
            return None  # no contract code at that address: it holds nothing
        except Exception as exc:
            data = revert_data(exc)
            if data is None:
                raise
            # Any revert (UnknownAnchor, or a contract without rootAt) means "no such root".
            return None

    def _transaction(
        self, address: str, tx: bytes
    ) -> tuple[int | None, tuple[tuple[bytes, int, bytes], ...]]:
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
                to_checksum_address(entry["address"]) == address
                and len(topics) == 4
                and bytes(topics[0]) == _ANCHORED_TOPIC
            ):
                data = bytes(entry["data"])
                anchors.append(
                    (bytes(topics[1]), int.from_bytes(bytes(topics[2]), "big"), data[:32])
                )
        return int(receipt["blockNumber"]), tuple(anchors)


def rpc_anchor_reader(url: str, *, timeout: float = 30) -> ChainAnchorReader:
    """A read-only reader for a JSON-RPC endpoint (no key: the verifier never sends)."""
    return ChainAnchorReader(Web3(HTTPProvider(url, request_kwargs={"timeout": timeout})))


def chain_check(anchor: BundleAnchor, observed: ChainObservation) -> Check:
    size, root = anchor.size, anchor.root_bytes
    claim = (anchor.log_id_bytes, size, root)
    if observed.chain_id != anchor.chain_id:
        problem = f"the chain read has id {observed.chain_id}; the bundle names {anchor.chain_id}"
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
