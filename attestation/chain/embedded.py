"""The embedded chain: an in-process py-evm chain behind web3's `EthereumTesterProvider`.

Nothing to install or start. Its state lives in memory, so to survive a restart every
mined transaction is appended, signed and raw, to a journal file in the data directory and
replayed in order into a fresh chain on start. The genesis and the test accounts of
eth-tester are fixed, signed transactions carry their own nonce and chain id, and every
transaction is mined alone in its own block, so the replay reproduces the same transaction
hashes, block numbers, contract addresses and contract storage (block hashes and timestamps
differ; nothing here depends on them).

`Chain` (web3 plus the local signing accounts) is shared with the JSON-RPC backend, which
`attestation.chain.connect` opens.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams

from attestation.chain.client import ChainBackend, ContractRevert, decode_revert, revert_data
from attestation.chain.errors import ChainError

JOURNAL_NAME = "embedded-chain.jsonl"


@dataclass(frozen=True, slots=True)
class SentTransaction:
    tx_hash: bytes
    block: int
    gas_used: int
    contract_address: str | None


class _Journal:
    """Append-only record of every mined transaction of the embedded chain (JSON lines).

    Each line: {"tx": hash, "raw": signed bytes, "block": n, "status": 0|1} and "contract"
    for a creation. The file is
    locked exclusively while open: two processes on one embedded chain would fork it.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._handle.close()
            raise ChainError(f"the embedded chain {path} is in use by another process") from exc

    def records(self) -> list[dict[str, Any]]:
        self._handle.seek(0)
        text = self._handle.read()
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                # Only the very last line may be torn (a crash during the append); that
                # transaction was never acknowledged, so it is dropped. Anything else is damage.
                if number == len(lines) and not text.endswith("\n"):
                    self._truncate(len(text) - len(line))
                    break
                raise ChainError(f"{self.path}: line {number} is not valid JSON") from exc
        return records

    def _truncate(self, length: int) -> None:
        self._handle.truncate(length)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, raw: bytes, sent: SentTransaction, status: int) -> None:
        record: dict[str, Any] = {
            "tx": sent.tx_hash.hex(),
            "raw": raw.hex(),
            "block": sent.block,
            "status": status,
        }
        if sent.contract_address:
            record["contract"] = sent.contract_address
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()  # closing the descriptor releases the lock


@dataclass
class Chain:
    """A web3 connection plus the local accounts that sign for it."""

    w3: Web3
    backend: ChainBackend
    chain_id: int
    accounts: Sequence[LocalAccount]
    _journal: _Journal | None = None
    _nonces: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def account(self) -> LocalAccount:
        """The default signer (deployer, admin and anchorer unless told otherwise)."""
        return self.accounts[0]

    @property
    def journal_path(self) -> Path | None:
        return self._journal.path if self._journal else None

    def close(self) -> None:
        if self._journal:
            self._journal.close()
            self._journal = None

    def forget_nonces(self) -> None:
        """Re-read nonces from the node on the next send (after a reorg or a replaced tx)."""
        with self._lock:
            self._nonces.clear()

    @contextlib.contextmanager
    def reserve_nonce(self, signer: LocalAccount | None = None) -> Iterator[int]:
        """Hold the nonce lock and yield the signer's next nonce; it is used up when the
        block exits normally (the transaction was accepted by the node) and re-read from
        the node when it raises.

        For callers that send without waiting for the receipt (the anchoring scheduler,
        which replaces stuck transactions itself); `send` uses the same counter, so the
        two never hand out one nonce twice.
        """
        signer = signer or self.account
        with self._lock:
            nonce = self._nonces.get(signer.address)
            if nonce is None:
                nonce = self.w3.eth.get_transaction_count(signer.address, "pending")
            try:
                yield nonce
            except BaseException:
                self._nonces.pop(signer.address, None)
                raise
            self._nonces[signer.address] = nonce + 1

    def contracts_deployed(self) -> list[str]:
        """Addresses created by journaled transactions (embedded chain), oldest first."""
        if self._journal is None:
            return []
        return [r["contract"] for r in self._journal.records() if r.get("contract")]

    def send(self, tx: dict[str, Any], signer: LocalAccount | None = None) -> SentTransaction:
        """Sign locally, send, wait for the receipt; a reverted transaction raises.

        Nonces come from a local counter under a lock (seeded from the pending count), so two
        transactions sent back to back from this process never share one.
        """
        signer = signer or self.account
        with self._lock:
            nonce = self._nonces.get(signer.address)
            if nonce is None:
                nonce = self.w3.eth.get_transaction_count(signer.address, "pending")
            signed = signer.sign_transaction({**tx, "nonce": nonce, "chainId": self.chain_id})
            try:
                tx_hash = bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
            except BaseException:
                self._nonces.pop(signer.address, None)  # re-read from the node next time
                raise
            self._nonces[signer.address] = nonce + 1
            receipt = self.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=120)
            sent = SentTransaction(
                tx_hash,
                int(receipt["blockNumber"]),
                int(receipt["gasUsed"]),
                str(receipt["contractAddress"]) if receipt["contractAddress"] else None,
            )
            if self._journal is not None:
                # A reverted transaction is mined too and uses its nonce, so it is journaled
                # as well: leaving it out would shift every later nonce on replay.
                self._journal.append(bytes(signed.raw_transaction), sent, int(receipt["status"]))
        if receipt["status"] != 1:
            self._raise_for_failed(tx, signer, sent)
        return sent

    def _raise_for_failed(
        self, tx: dict[str, Any], signer: LocalAccount, sent: SentTransaction
    ) -> None:
        # The receipt carries no revert data: re-run the call on the state it ran against.
        call = {k: v for k, v in tx.items() if k in {"to", "data", "value"}}
        try:
            self.w3.eth.call(cast(TxParams, {**call, "from": signer.address}), sent.block - 1)
        except (TransactionFailed, ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is None:
                raise
            raise decode_revert(data, sent.tx_hash) from exc
        raise ContractRevert("unknown", {}, b"", sent.tx_hash)


def open_embedded_chain(data_dir: Path | None) -> Chain:
    """The in-process chain; with a data directory, replay its journal and keep appending.

    `data_dir=None` gives a throw-away chain (tests). The replay checks each transaction
    hash, block number and status against the journal, so a changed genesis or EVM rule
    is detected instead of silently producing a different chain.
    """
    backend = PyEVMBackend()
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    accounts = [Account.from_key(key.to_bytes()) for key in backend.account_keys]
    journal = _Journal(data_dir / "chain" / JOURNAL_NAME) if data_dir is not None else None
    chain = Chain(w3, ChainBackend.EMBEDDED, int(w3.eth.chain_id), accounts)
    if journal is None:
        return chain
    try:
        for number, record in enumerate(journal.records(), start=1):
            _replay(w3, record, number, journal.path)
    except BaseException:
        journal.close()
        raise
    chain._journal = journal
    return chain


def _replay(w3: Web3, record: Mapping[str, Any], number: int, path: Path) -> None:
    raw = bytes.fromhex(record["raw"])
    try:
        tx_hash = bytes(w3.eth.send_raw_transaction(raw))
    except TransactionFailed:
        # eth-tester raises for a reverting transaction but still mines it, as when it was
        # first sent; the receipt check below confirms the status.
        tx_hash = keccak(raw)
    receipt = w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    if (
        tx_hash.hex() != record["tx"]
        or receipt["blockNumber"] != record["block"]
        or receipt["status"] != record["status"]
    ):
        raise ChainError(
            f"{path}: replaying line {number} gave transaction 0x{tx_hash.hex()} in block "
            f"{receipt['blockNumber']} with status {receipt['status']}; the journal says "
            f"0x{record['tx']} in block {record['block']} with status {record['status']}"
        )
