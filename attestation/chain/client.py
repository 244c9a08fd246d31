"""A typed wrapper around the CarbonAnchor contract (DESIGN §5, §7).

Two chain backends:

- **embedded** (the default): an in-process py-evm chain behind web3's
  `EthereumTesterProvider`. Nothing to install or start. Its state lives in memory, so to
  survive a restart every mined transaction is appended, signed and raw, to a journal file
  in the data directory and replayed in order into a fresh chain on start. The genesis and
  the test accounts of eth-tester are fixed, signed transactions carry their own nonce and
  chain id, and every transaction is mined alone in its own block, so the replay
  reproduces the same transaction hashes, block numbers, contract addresses and contract
  storage (block hashes and timestamps differ; nothing here depends on them).
- **json-rpc**: any EVM endpoint (`CARBONLEDGER_CHAIN_RPC`); the chain id is checked
  against `CARBONLEDGER_CHAIN_ID` when set.

Transactions are always signed locally, so both backends take the same path. Contract
reverts surface as `ContractRevert`, which names the Solidity custom error and its
arguments, whichever revert format the backend uses.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import IO, Any, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams

from attestation.chain.errors import ChainError

ARTIFACT_PATH = (
    Path(__file__).resolve().parents[2] / "contracts" / "artifacts" / "CarbonAnchor.json"
)
"""The committed build output (ABI, bytecode); Python needs no Node at run time."""

HASH_SIZE = 32
NO_MAP_ROOT = bytes(HASH_SIZE)
"""The map root anchored until the state map is bound to the log (issue 11 item 2)."""
DEFAULT_MAX_GROWTH = 1 << 24
"""Entries one anchor may add to a log (set per log at registration; a uint32 on chain)."""
DEFAULT_REVOCATION_WINDOW = 7 * 24 * 3600
"""Seconds during which the admin may revoke a log's anchor (decision 71)."""
MAX_UINT32 = (1 << 32) - 1
MAX_UINT64 = (1 << 64) - 1
JOURNAL_NAME = "embedded-chain.jsonl"
# A revert carries a 4-byte selector; Error(string) and Panic(uint256) are the compiler's own.
_ERROR_STRING_SELECTOR = keccak(text="Error(string)")[:4]
_PANIC_SELECTOR = keccak(text="Panic(uint256)")[:4]
_TESTER_REVERT_PREFIX = "execution reverted: "


class ChainBackend(StrEnum):
    EMBEDDED = "embedded"
    JSON_RPC = "json-rpc"


class ChainSettings(BaseSettings):
    """`CARBONLEDGER_CHAIN_*`: which chain to anchor on, and with which key."""

    model_config = SettingsConfigDict(env_prefix="CARBONLEDGER_", extra="ignore")

    chain_rpc: str | None = Field(
        default=None, description="JSON-RPC URL; unset means the embedded in-process chain."
    )
    chain_id: int | None = Field(
        default=None, description="Expected chain id of the JSON-RPC endpoint (checked on open)."
    )
    chain_contract: str | None = Field(
        default=None, description="Address of a deployed CarbonAnchor contract."
    )
    chain_anchorer_key: SecretStr | None = Field(
        default=None, description="Hex private key that signs anchor transactions (JSON-RPC)."
    )
    chain_admin_key: SecretStr | None = Field(
        default=None,
        description="Hex private key of the contract's admin (JSON-RPC): a cold key, used only "
        "by `carbonledger chain deploy|register-log|rotate-anchorer|revoke-anchors`.",
    )

    @property
    def backend(self) -> ChainBackend:
        return ChainBackend.JSON_RPC if self.chain_rpc else ChainBackend.EMBEDDED


# ---------------------------------------------------------------------------- errors


class ContractRevert(ChainError):  # noqa: N818 - "revert" is the EVM's own word
    """The contract reverted; `error` is the Solidity error name, `arguments` its arguments.

    `error` is `Error` for a `require` message, `Panic` for a compiler panic, and
    `unknown` when the revert data matches nothing in the ABI (`data` keeps the bytes).
    """

    def __init__(
        self,
        error: str,
        arguments: Mapping[str, Any],
        data: bytes,
        tx_hash: bytes | None = None,
    ) -> None:
        self.error = error
        self.arguments = dict(arguments)
        self.data = data
        self.tx_hash = tx_hash
        shown = ", ".join(f"{name}={_show(value)}" for name, value in self.arguments.items())
        where = f" (transaction 0x{tx_hash.hex()})" if tx_hash else ""
        super().__init__(f"contract reverted: {error}({shown}){where}")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


@cache
def load_artifact(path: Path = ARTIFACT_PATH) -> Mapping[str, Any]:
    with path.open(encoding="utf-8") as handle:
        artifact: dict[str, Any] = json.load(handle)
    return artifact


@cache
def _error_specs() -> dict[bytes, _ErrorSpec]:
    specs: dict[bytes, _ErrorSpec] = {}
    for item in load_artifact()["abi"]:
        if item["type"] != "error":
            continue
        types = tuple(str(i["type"]) for i in item["inputs"])
        selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
        specs[selector] = _ErrorSpec(item["name"], types, tuple(i["name"] for i in item["inputs"]))
    specs[_ERROR_STRING_SELECTOR] = _ErrorSpec("Error", ("string",), ("message",))
    specs[_PANIC_SELECTOR] = _ErrorSpec("Panic", ("uint256",), ("code",))
    return specs


def decode_revert(data: bytes, tx_hash: bytes | None = None) -> ContractRevert:
    """Name the custom error in raw revert data using the artifact's ABI error selectors."""
    spec = _error_specs().get(data[:4])
    if spec is None:
        return ContractRevert("unknown", {}, data, tx_hash)
    values = [
        # eth-abi gives lower-case addresses; checksummed ones compare equal to web3's own.
        to_checksum_address(value) if kind == "address" else value
        for kind, value in zip(spec.types, abi_decode(list(spec.types), data[4:]), strict=True)
    ]
    return ContractRevert(spec.name, dict(zip(spec.names, values, strict=True)), data, tx_hash)


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert bytes inside an exception from eth-tester or a JSON-RPC node, if any.

    eth-tester raises `TransactionFailed("execution reverted: b'…'")` (a bytes repr in the
    message); web3 raises `ContractLogicError` (and subclasses) with `data` as a 0x-hex
    string, or `Web3RPCError` whose JSON-RPC error object carries `data`.
    """
    if isinstance(exc, TransactionFailed):
        message = exc.args[0] if exc.args else None
        if isinstance(message, bytes):
            return message
        if isinstance(message, str) and message.startswith(_TESTER_REVERT_PREFIX):
            literal = message[len(_TESTER_REVERT_PREFIX) :]
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(literal)
                if isinstance(value, bytes):
                    return value
        return None
    if isinstance(exc, ContractLogicError):
        return _hex_data(exc.data)
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, Mapping):
        error = exc.rpc_response.get("error")
        if isinstance(error, Mapping):
            return _hex_data(error.get("data"))
    return None


def _hex_data(data: object) -> bytes | None:
    if isinstance(data, Mapping):  # some nodes nest it: {"data": "0x…"}
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(data[2:])
    return None


@contextlib.contextmanager
def _decoded_reverts(tx_hash: bytes | None = None) -> Iterator[None]:
    try:
        yield
    except (TransactionFailed, ContractLogicError, Web3RPCError) as exc:
        data = revert_data(exc)
        if data is None:
            raise
        raise decode_revert(data, tx_hash) from exc


# ---------------------------------------------------------------------------- chain


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
        with _decoded_reverts(sent.tx_hash):
            self.w3.eth.call(cast(TxParams, {**call, "from": signer.address}), sent.block - 1)
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


def open_rpc_chain(
    url: str, private_key: str | bytes, *, expected_chain_id: int | None = None, timeout: float = 30
) -> Chain:
    """A JSON-RPC endpoint; raises ChainError when unreachable or on another chain."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # requests and web3 raise many types for "no node there"
        raise ChainError(f"chain RPC {url} is unreachable: {exc}") from exc
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ChainError(
            f"chain RPC {url} serves chain id {chain_id}; CARBONLEDGER_CHAIN_ID is "
            f"{expected_chain_id}"
        )
    account: LocalAccount = Account.from_key(private_key)
    return Chain(w3, ChainBackend.JSON_RPC, chain_id, [account])


def open_chain(settings: ChainSettings, data_dir: Path) -> Chain:
    if settings.backend is ChainBackend.EMBEDDED:
        return open_embedded_chain(data_dir)
    assert settings.chain_rpc is not None
    if settings.chain_anchorer_key is None:
        raise ChainError("CARBONLEDGER_CHAIN_ANCHORER_KEY is required with CARBONLEDGER_CHAIN_RPC")
    return open_rpc_chain(
        settings.chain_rpc,
        settings.chain_anchorer_key.get_secret_value(),
        expected_chain_id=settings.chain_id,
    )


# ---------------------------------------------------------------------------- contract


@dataclass(frozen=True, slots=True)
class AnchorReceipt:
    log_id: bytes
    size: int
    root: bytes
    tx_hash: bytes
    block: int
    gas_used: int
    map_root: bytes = NO_MAP_ROOT


@dataclass(frozen=True, slots=True)
class AnchoredHead:
    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class LogConfig:
    """`logConfig(logId)`: who anchors the log, its limits, its latest size, its revocations."""

    anchorer: str | None
    """Checksummed address; None when the log is not registered."""
    max_growth: int
    revocation_window: int
    size: int
    revoked: int

    @property
    def registered(self) -> bool:
        return self.max_growth != 0


@dataclass(frozen=True, slots=True)
class AnchorEntry:
    """`anchorAt(logId, size)`: the record the contract keeps for one anchored size."""

    size: int
    root: bytes
    map_root: bytes
    previous_size: int
    anchored_at: int
    """Block timestamp (seconds since the epoch)."""


def _require_bytes32(value: bytes, what: str) -> bytes:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} is {len(value)} bytes; the contract takes bytes32")
    return bytes(value)


def _require_uint64(value: int, what: str) -> int:
    if not 0 <= value <= MAX_UINT64:
        raise ValueError(f"{what} {value} does not fit uint64")
    return value


def _require_uint32(value: int, what: str) -> int:
    if not 0 <= value <= MAX_UINT32:
        raise ValueError(f"{what} {value} does not fit uint32")
    return value


def _proof(proof: Sequence[bytes]) -> list[bytes]:
    return [_require_bytes32(item, f"proof hash {i}") for i, item in enumerate(proof)]


class CarbonAnchor:
    """One deployed CarbonAnchor (v2) contract on one chain.

    Anchors are signed by the chain's default account unless a `signer` is given; the
    admin's calls (`register_log`, `set_anchorer`, `revoke_anchors_above`) take the admin
    account explicitly, since it is a separate, cold key (decision 70).
    """

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract: Contract = chain.w3.eth.contract(
            address=self.address, abi=load_artifact()["abi"]
        )

    @classmethod
    def deploy(
        cls, chain: Chain, *, admin: str, signer: LocalAccount | None = None
    ) -> tuple[CarbonAnchor, SentTransaction]:
        """Deploy from the committed artifact with `admin` as its admin (paid by `signer`)."""
        artifact = load_artifact()
        factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        signer = signer or chain.account
        with _decoded_reverts():
            tx = factory.constructor(to_checksum_address(admin)).build_transaction(
                {"from": signer.address}
            )
        sent = chain.send(dict(tx), signer)
        assert sent.contract_address is not None, "a creation receipt names the contract"
        return cls(chain, sent.contract_address), sent

    def _transact(self, function: Any, signer: LocalAccount) -> SentTransaction:
        with _decoded_reverts():
            tx = function.build_transaction({"from": signer.address})
        return self.chain.send(dict(tx), signer)

    # ------------------------------------------------------------ the admin's

    def register_log(
        self,
        log_id: bytes,
        anchorer: str,
        *,
        admin: LocalAccount,
        max_growth: int = DEFAULT_MAX_GROWTH,
        revocation_window: int = DEFAULT_REVOCATION_WINDOW,
    ) -> SentTransaction:
        function = self.contract.functions.registerLog(
            _require_bytes32(log_id, "log id"),
            to_checksum_address(anchorer),
            _require_uint32(max_growth, "max growth"),
            _require_uint32(revocation_window, "revocation window"),
        )
        return self._transact(function, admin)

    def set_anchorer(self, log_id: bytes, anchorer: str, *, admin: LocalAccount) -> SentTransaction:
        function = self.contract.functions.setAnchorer(
            _require_bytes32(log_id, "log id"), to_checksum_address(anchorer)
        )
        return self._transact(function, admin)

    def revoke_anchors_above(
        self, log_id: bytes, keep_size: int, *, admin: LocalAccount
    ) -> SentTransaction:
        function = self.contract.functions.revokeAnchorsAbove(
            _require_bytes32(log_id, "log id"), _require_uint64(keep_size, "size")
        )
        return self._transact(function, admin)

    def is_admin(self, address: str) -> bool:
        role = self.contract.functions.DEFAULT_ADMIN_ROLE().call()
        return bool(self.contract.functions.hasRole(role, to_checksum_address(address)).call())

    # --------------------------------------------------------- the anchorer's

    def anchor(
        self,
        log_id: bytes,
        size: int,
        root: bytes,
        proof: Sequence[bytes],
        *,
        map_root: bytes = NO_MAP_ROOT,
        signer: LocalAccount | None = None,
        preflight: bool = True,
    ) -> AnchorReceipt:
        """Anchor (size, root, map root) for `log_id`; raises ContractRevert naming the
        failed check.

        With `preflight` (the default) the gas estimate runs the call first, so a rejected
        anchor never costs a transaction. Without it a fixed gas limit is used and the
        transaction is mined even if it reverts (tests use this to see an on-chain revert).
        """
        signer = signer or self.chain.account
        function = self.anchor_function(log_id, size, root, map_root, proof)
        params: dict[str, Any] = {"from": signer.address}
        if not preflight:
            # Above the worst case measured by the forge gas test (≤ 200k by DESIGN §8).
            params["gas"] = 500_000
        with _decoded_reverts():
            tx = function.build_transaction(params)
        sent = self.chain.send(dict(tx), signer)
        return AnchorReceipt(
            bytes(log_id), size, bytes(root), sent.tx_hash, sent.block, sent.gas_used, map_root
        )

    def anchor_function(
        self, log_id: bytes, size: int, root: bytes, map_root: bytes, proof: Sequence[bytes]
    ) -> Any:
        """The contract call `anchor(...)`, arguments checked (for callers that send it
        themselves, like the scheduler)."""
        return self.contract.functions.anchor(
            _require_bytes32(log_id, "log id"),
            _require_uint64(size, "size"),
            _require_bytes32(root, "root"),
            _require_bytes32(map_root, "map root"),
            _proof(proof),
        )

    # ------------------------------------------------------------------ views

    def log_config(self, log_id: bytes) -> LogConfig:
        with _decoded_reverts():
            anchorer, max_growth, window, size, revoked = self.contract.functions.logConfig(
                _require_bytes32(log_id, "log id")
            ).call()
        registered = int(max_growth) != 0
        return LogConfig(
            to_checksum_address(anchorer) if registered else None,
            int(max_growth),
            int(window),
            int(size),
            int(revoked),
        )

    def latest(self, log_id: bytes) -> AnchoredHead:
        """The last anchored (size, root); (0, 32 zero bytes) before the first anchor."""
        with _decoded_reverts():
            size, root = self.contract.functions.latest(_require_bytes32(log_id, "log id")).call()
        return AnchoredHead(int(size), bytes(root))

    def anchor_at(self, log_id: bytes, size: int) -> AnchorEntry:
        """The anchor at exactly `size`; ContractRevert UnknownAnchor or AnchorRevokedAt."""
        with _decoded_reverts():
            root, map_root, previous, anchored_at = self.contract.functions.anchorAt(
                _require_bytes32(log_id, "log id"), _require_uint64(size, "size")
            ).call()
        return AnchorEntry(size, bytes(root), bytes(map_root), int(previous), int(anchored_at))

    def root_at(self, log_id: bytes, size: int) -> bytes:
        with _decoded_reverts():
            root = self.contract.functions.rootAt(
                _require_bytes32(log_id, "log id"), _require_uint64(size, "size")
            ).call()
        return bytes(root)

    def verify_inclusion(
        self, log_id: bytes, size: int, leaf_hash: bytes, index: int, proof: Sequence[bytes]
    ) -> bool:
        with _decoded_reverts():
            result = self.contract.functions.verifyInclusion(
                _require_bytes32(log_id, "log id"),
                _require_uint64(size, "size"),
                _require_bytes32(leaf_hash, "leaf hash"),
                _require_uint64(index, "index"),
                _proof(proof),
            ).call()
        return bool(result)

    def verify_consistency(
        self, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
    ) -> None:
        """Returns None when the proof holds; raises ContractRevert naming the failed check."""
        with _decoded_reverts():
            self.contract.functions.verifyConsistency(
                _require_uint64(size1, "size1"),
                _require_uint64(size2, "size2"),
                _require_bytes32(root1, "root1"),
                _require_bytes32(root2, "root2"),
                _proof(proof),
            ).call()

    def root_from_inclusion_proof(
        self, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
    ) -> bytes:
        with _decoded_reverts():
            root = self.contract.functions.rootFromInclusionProof(
                _require_uint64(index, "index"),
                _require_uint64(size, "size"),
                _require_bytes32(leaf_hash, "leaf hash"),
                _proof(proof),
            ).call()
        return bytes(root)


def log_id_for_origin(origin: str) -> bytes:
    """DESIGN §4.4: the on-chain logId is sha256(origin) as bytes32."""
    return hashlib.sha256(origin.encode("utf-8")).digest()
