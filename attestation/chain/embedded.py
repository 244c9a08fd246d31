"""The embedded chain: an in-process py-evm chain behind web3's `EthereumTesterProvider`.

Nothing to install or start. py-evm's whole database (headers, receipts, the account and
storage tries) lives in `DATA_DIR/chain/embedded-state.sqlite3` (`attestation.chain.statedb`),
committed once per mined block, so opening the chain reads its head and not its history
(decision 75). One process writes (`serve`, `anchor now`; an exclusive lock on
`embedded-chain.lock`); any number read at the same time with `read_only=True`, each on a
snapshot taken when it opened.

Data directories from before kept a journal of every signed transaction
(`embedded-chain.jsonl`) and replayed it on every start. The first writer open replays it
once into the state file, checking every hash, block and status, and renames it
`embedded-chain.jsonl.migrated`. The genesis and the test accounts of eth-tester are fixed,
signed transactions carry their own nonce and chain id, and every transaction is mined alone
in its own block, so the replay reproduces the same transaction hashes, block numbers,
contract addresses and contract storage.

`Chain` (web3 plus the local signing accounts) is shared with the JSON-RPC backend, which
`attestation.chain.connect` opens.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from eth.db.atomic import AtomicDB
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    generate_genesis_state_for_keys,
    get_default_genesis_params,
)
from eth_tester.exceptions import TransactionFailed
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams

from attestation.chain.client import ChainBackend, ContractRevert, decode_revert, revert_data
from attestation.chain.errors import ChainError
from attestation.chain.statedb import StateFile

JOURNAL_NAME = "embedded-chain.jsonl"
"""The replay journal of data directories from before the state file (migrated once)."""
STATE_NAME = "embedded-state.sqlite3"
LOCK_NAME = "embedded-chain.lock"


@dataclass(frozen=True, slots=True)
class SentTransaction:
    tx_hash: bytes
    block: int
    gas_used: int
    contract_address: str | None


class _WriterLock:
    """The exclusive lock of the one process that may write an embedded chain.

    Two writers would fork the chain (each mines its own block N+1). Readers take no lock.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = path.open("ab")
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._handle.close()
            raise ChainError(
                f"the embedded chain {path.parent} is in use by another process (`serve`?); "
                "read-only commands still work, and `serve` anchors by itself"
            ) from exc

    def close(self) -> None:
        self._handle.close()  # closing the descriptor releases the lock


@dataclass
class Chain:
    """A web3 connection plus the local accounts that sign for it."""

    w3: Web3
    backend: ChainBackend
    chain_id: int
    accounts: Sequence[LocalAccount]
    read_only: bool = False
    _state: StateFile | None = None
    _writer_lock: _WriterLock | None = None
    _contracts: list[str] = field(default_factory=list)
    _nonces: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def account(self) -> LocalAccount:
        """The default signer (deployer, admin and anchorer unless told otherwise)."""
        return self.accounts[0]

    @property
    def state_path(self) -> Path | None:
        return self._state.path if self._state is not None else None

    @property
    def state_reads(self) -> int:
        """Keys read from the state file so far (the O(1)-open test counts them)."""
        return self._state.reads if self._state is not None else 0

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._writer_lock:
            self._writer_lock.close()
            self._writer_lock = None

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
        """Addresses created by transactions of the persisted embedded chain, oldest first."""
        return list(self._contracts)

    def send(self, tx: dict[str, Any], signer: LocalAccount | None = None) -> SentTransaction:
        """Sign locally, send, wait for the receipt; a reverted transaction raises.

        Nonces come from a local counter under a lock (seeded from the pending count), so two
        transactions sent back to back from this process never share one.
        """
        signer = signer or self.account
        if self.read_only:
            raise ChainError(
                "the embedded chain is open read-only (`serve` holds it); nothing can be sent"
            )
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
            if self._state is not None:
                # Every transaction is mined alone in its block (eth-tester auto-mines), so
                # this commits exactly one block; a reverted one is mined and kept too.
                if sent.contract_address:
                    self._contracts.append(sent.contract_address)
                self._state.commit(_meta(sent.block, self._contracts))
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


def _meta(block: int, contracts: Sequence[str]) -> dict[str, str]:
    return {"head": str(block), "contracts": json.dumps(list(contracts))}


def open_embedded_chain(data_dir: Path | None, *, read_only: bool = False) -> Chain:
    """The in-process chain; with a data directory, the one persisted there.

    `data_dir=None` gives a throw-away chain (tests). `read_only` opens a snapshot next to a
    running writer: calls and reads work, `send` raises. A read-only open of a directory
    with no state file yet (nothing written, or a journal a writer has not migrated) gives
    the chain in memory, replaying the journal if there is one.
    """
    backend = PyEVMBackend()
    accounts = [Account.from_key(key.to_bytes()) for key in backend.account_keys]
    if data_dir is None:
        return _chain(backend, accounts)
    directory = data_dir / "chain"
    journal = directory / JOURNAL_NAME
    if read_only:
        if not (directory / STATE_NAME).exists():
            chain = _chain(backend, accounts, read_only=True)
            for number, record in enumerate(journal_records(journal), start=1):
                _replay(chain.w3, record, number, journal)
            return chain
        snapshot = StateFile(directory / STATE_NAME, read_only=True)
        try:
            return _persisted(backend, accounts, snapshot, None)
        except BaseException:
            snapshot.close()
            raise
    lock = _WriterLock(directory / LOCK_NAME)
    state: StateFile | None = None
    try:
        state = StateFile(directory / STATE_NAME)
        return _persisted(backend, accounts, state, lock, journal)
    except BaseException:
        if state is not None:
            state.close()
        lock.close()
        raise


def _chain(
    backend: PyEVMBackend, accounts: Sequence[LocalAccount], *, read_only: bool = False
) -> Chain:
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend)))
    return Chain(w3, ChainBackend.EMBEDDED, int(w3.eth.chain_id), accounts, read_only)


def _persisted(
    backend: PyEVMBackend,
    accounts: Sequence[LocalAccount],
    state: StateFile,
    lock: _WriterLock | None,
    journal: Path | None = None,
) -> Chain:
    # eth-tester's chain class is built inside its setup function; take it from the
    # in-memory chain PyEVMBackend made, and point a new one at the file.
    chain_class = type(backend.chain)
    head = state.meta("head")
    if head is not None:
        backend.chain = chain_class(AtomicDB(state))
        chain = _chain(backend, accounts, read_only=lock is None)
        chain._contracts = list(json.loads(state.meta("contracts") or "[]"))
    else:
        if lock is None:  # a reader found an empty file a writer is just creating
            raise ChainError(f"{state.path} holds no chain yet; try again in a moment")
        # The same genesis PyEVMBackend builds, written into the file.
        backend.chain = chain_class.from_genesis(
            AtomicDB(state),
            get_default_genesis_params(),
            generate_genesis_state_for_keys(backend.account_keys),
        )
        chain = _chain(backend, accounts)
        records = journal_records(journal) if journal is not None else []
        for number, record in enumerate(records, start=1):
            assert journal is not None
            _replay(chain.w3, record, number, journal)
        chain._contracts = [str(r["contract"]) for r in records if r.get("contract")]
        state.commit(_meta(int(chain.w3.eth.block_number), chain._contracts))
    chain._state = state
    chain._writer_lock = lock
    if lock is not None and journal is not None and journal.exists():
        # After the commit above, or left over by a crash right after it: the state file
        # holds everything the journal did.
        journal.rename(journal.with_name(JOURNAL_NAME + ".migrated"))
    return chain


def journal_records(path: Path) -> list[dict[str, Any]]:
    """The records of a replay journal, oldest first; [] when there is none.

    Each line: {"tx": hash, "raw": signed bytes, "block": n, "status": 0|1} and "contract"
    for a creation. Only the very last line may be torn (a crash during its append; that
    transaction was never acknowledged), and it is dropped; anything else is damage.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):
                break
            raise ChainError(f"{path}: line {number} is not valid JSON") from exc
    return records


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
