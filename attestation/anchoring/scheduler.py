"""The anchoring scheduler: anchor the log head every N entries or T seconds (issue 4, part 3).

`AnchorScheduler.run_once()` is one step: check that the anchors already recorded are still
on the chain (a reorganisation may have removed them), decide whether an anchor is due, and
if so send it, wait for the configured confirmations and record it. `AnchorService` repeats
that step on a daemon thread; `carbonledger serve` starts one in the app
lifespan when anchoring is enabled (see `AnchorSettings.scheduler_enabled`).

Faults and what the scheduler does about them:

- **RPC unreachable** (or any other error): the step reports it and the loop waits with
  exponential backoff before trying again. Nothing is lost: the entries stay in the log
  and the next anchor covers all of them, because an anchor is a whole tree head.
- **transaction dropped** (the node forgot it) or **stuck** (not mined within
  `CARBONLEDGER_ANCHOR_TX_TIMEOUT_SECONDS`): it is signed again with the *same nonce* and a
  fee raised by `CARBONLEDGER_ANCHOR_FEE_BUMP_PERCENT`, so at most one of the versions can
  be mined; whichever is mined is the one recorded.
- **reorganised away**: during the confirmation wait `wait_for_confirmations` notices the
  receipt is gone; after recording, the next step notices the contract no longer holds the
  recorded root (or the transaction left its block). Either way the stale record is dropped,
  the nonce counter re-read from the node, and the current head anchored again.
- **nonces**: every transaction takes its nonce from `Chain.reserve_nonce`, the same
  counter `Chain.send` uses, so anchors sent back to back never share one.
- **a root the chain would reject** is never sent: `plan_anchor` verifies the consistency
  proof locally against the root the contract holds, and gas estimation runs the call.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import delete, select, update
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams

from attestation.anchoring.anchor import (
    NEEDS_OPERATOR,
    AnchorPlan,
    AnchorRecord,
    ReorganisedError,
    anchor_now,
    plan_anchor,
    record_anchor,
    wait_for_confirmations,
)
from attestation.anchoring.due import AnchorDue, AnchorForecast, anchor_due
from attestation.anchoring.records import ChainAnchor
from attestation.chain.client import (
    AnchorReceipt,
    CarbonAnchor,
    Chain,
    ChainBackend,
    ChainSettings,
    decode_revert,
    open_chain,
    revert_data,
)
from attestation.chain.deployment import recorded_deployments, resolve_contract
from attestation.chain.errors import ChainError
from ledger.log.store import Log

logger = logging.getLogger(__name__)

# Records checked against the chain on every step, newest first. A reorganisation deeper
# than this many anchors is beyond what any confirmation count is meant to absorb.
_RECHECK_RECORDS = 8
# How geth ("already known") and anvil ("transaction already imported") refuse a duplicate.
_ALREADY_KNOWN = re.compile(r"already (known|imported)", re.IGNORECASE)
# Anchors re-planned within one step after a reorganisation or a lost race before the
# step gives up and lets the backoff take over.
_MAX_ATTEMPTS_PER_STEP = 3
# T when ANCHOR_INTERVAL_SECONDS is unset: the embedded chain costs nothing per anchor, so
# readings become provable within seconds; a JSON-RPC chain spends fees on every anchor.
EMBEDDED_INTERVAL_SECONDS = 5.0
JSON_RPC_INTERVAL_SECONDS = 600.0


class AnchorSettings(BaseSettings):
    """`CARBONLEDGER_ANCHOR_*`: when the scheduler anchors and how it handles a slow chain.

    An anchor is due when `every_entries` entries were appended since the last recorded
    anchor, or when the interval has passed since it and at least one entry is new
    (`attestation.anchoring.due.anchor_due`). A log that was never anchored is anchored as
    soon as it has an entry.
    """

    model_config = SettingsConfigDict(env_prefix="CARBONLEDGER_", extra="ignore")

    anchor_enabled: bool | None = Field(
        default=None,
        description=(
            "Run the scheduler in `carbonledger serve`. Unset: on for the embedded chain; on a "
            "JSON-RPC chain only when ANCHOR_INTERVAL_SECONDS or ANCHOR_EVERY_ENTRIES is set "
            "(anchoring there spends real fees, so it is never implied)."
        ),
    )
    anchor_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "T: anchor when this long has passed since the last. Unset: "
            f"{EMBEDDED_INTERVAL_SECONDS:g} s on the embedded chain, "
            f"{JSON_RPC_INTERVAL_SECONDS:g} s on a JSON-RPC chain."
        ),
    )
    anchor_every_entries: int = Field(
        default=1000, ge=1, description="N: anchor when this many entries are new."
    )
    anchor_confirmations: int = Field(
        default=1, ge=1, description="Blocks (the anchor's own included) before it is recorded."
    )
    anchor_tx_timeout_seconds: float = Field(
        default=120.0, gt=0, description="A transaction not mined after this is replaced."
    )
    anchor_fee_bump_percent: int = Field(
        default=25,
        ge=10,  # nodes refuse a replacement that raises the fee by less than 10 %
        le=1000,
        description="Fee increase of a replacement transaction, in percent.",
    )
    anchor_max_replacements: int = Field(
        default=5,
        ge=0,
        description=(
            "Fee bumps per anchor before the scheduler stops raising the fee and only waits "
            "(a cap on what a congested chain can cost)."
        ),
    )
    anchor_confirmation_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Longest wait for the confirmations of a mined anchor."
    )
    anchor_retry_initial_seconds: float = Field(
        default=2.0, gt=0, description="First wait after a failed step (doubles each time)."
    )
    anchor_retry_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest wait between failed steps."
    )
    anchor_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often receipts and new blocks are polled."
    )
    anchor_tick_seconds: float = Field(
        default=5.0, gt=0, description="How often the loop checks whether an anchor is due."
    )

    def interval(self, backend: ChainBackend) -> timedelta:
        """T for this chain: the setting, else the chain's default."""
        if self.anchor_interval_seconds is not None:
            return timedelta(seconds=self.anchor_interval_seconds)
        if backend is ChainBackend.EMBEDDED:
            return timedelta(seconds=EMBEDDED_INTERVAL_SECONDS)
        return timedelta(seconds=JSON_RPC_INTERVAL_SECONDS)

    def scheduler_enabled(self, backend: ChainBackend) -> bool:
        if self.anchor_enabled is not None:
            return self.anchor_enabled
        if backend is ChainBackend.EMBEDDED:
            return True
        return bool({"anchor_interval_seconds", "anchor_every_entries"} & self.model_fields_set)


class StepResult(StrEnum):
    ANCHORED = "anchored"
    NOT_DUE = "not-due"
    UP_TO_DATE = "up-to-date"  # the chain already holds the head
    BACKING_OFF = "backing-off"  # an earlier step failed; waiting before the next try
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StepOutcome:
    result: StepResult
    record: AnchorRecord | None = None
    error: str | None = None
    retry_in: float | None = None
    dropped_records: int = 0
    """Recorded anchors found reorganised away (and removed) in this step."""
    replacements: int = 0
    """Transactions re-sent with the same nonce and a higher fee in this step."""
    conflict: bool = False
    """The step failed because the chain holds a root this log does not extend."""


class _Replan(Exception):  # noqa: N818 - control flow, not an error
    """Start the step's anchor again from the chain's current state."""


@dataclass
class _InFlight:
    """An anchor transaction sent but not yet mined: every version of it, same nonce."""

    plan: AnchorPlan
    tx: dict[str, Any]
    nonce: int
    hashes: list[bytes] = field(default_factory=list)
    last_sent: float = 0.0
    replacements: int = 0


class AnchorScheduler:
    """Anchors one log on one contract; `run_once` is safe to call from several threads."""

    def __init__(
        self,
        log: Log,
        contract: CarbonAnchor,
        settings: AnchorSettings | None = None,
        *,
        signer: LocalAccount | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.log = log
        self.contract = contract
        self.settings = settings or AnchorSettings()
        self.signer = signer or contract.chain.account
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._failures = 0
        self._next_attempt = 0.0
        self._in_flight: _InFlight | None = None
        self._replacements = 0
        self.last_outcome: StepOutcome | None = None

    @property
    def chain(self) -> Chain:
        return self.contract.chain

    # ------------------------------------------------------------------ the step

    def run_once(self, *, force: bool = False) -> StepOutcome:
        """One scheduling step. `force` anchors whatever is new now and ignores the backoff."""
        with self._lock:
            if not force and self._monotonic() < self._next_attempt:
                outcome = StepOutcome(
                    StepResult.BACKING_OFF, retry_in=self._next_attempt - self._monotonic()
                )
                self.last_outcome = outcome
                return outcome
            dropped = 0
            self._replacements = 0
            try:
                dropped = self._drop_reorganised_records()
                if self._in_flight is None and not force and not self._due():
                    outcome = StepOutcome(StepResult.NOT_DUE, dropped_records=dropped)
                else:
                    record = self._anchor()
                    outcome = StepOutcome(
                        StepResult.ANCHORED if record else StepResult.UP_TO_DATE,
                        record=record,
                        dropped_records=dropped,
                        replacements=self._replacements,
                    )
            except Exception as exc:  # every failure is retried later, with backoff
                self._failures += 1
                delay = min(
                    self.settings.anchor_retry_max_seconds,
                    self.settings.anchor_retry_initial_seconds * 2 ** (self._failures - 1),
                )
                self._next_attempt = self._monotonic() + delay
                # A conflict is not transient: it needs an operator, so it is logged loudly.
                level = logging.ERROR if isinstance(exc, NEEDS_OPERATOR) else logging.WARNING
                logger.log(level, "anchoring failed (retry in %.1fs): %s", delay, exc)
                outcome = StepOutcome(
                    StepResult.FAILED,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                    dropped_records=dropped,
                    replacements=self._replacements,
                    conflict=isinstance(exc, NEEDS_OPERATOR),
                )
            else:
                self._failures = 0
                self._next_attempt = 0.0
            self.last_outcome = outcome
            return outcome

    def _due(self) -> bool:
        due = self.due()
        return due is not None and due.due_at <= self._now()

    def due(self) -> AnchorDue | None:
        """What is not anchored yet and when the rule anchors it; None when nothing is new."""
        head = self.log.head()
        last = self._latest_record()
        return anchor_due(
            log_size=head.size,
            anchored_size=last.size if last is not None else 0,
            anchored_at=_aware(last.anchored_at) if last is not None else None,
            every_entries=self.settings.anchor_every_entries,
            interval=self.settings.interval(self.chain.backend),
            now=self._now(),
        )

    def backoff_until(self) -> datetime | None:
        """When the backoff after a failed step ends (None: no backoff), on the wall clock."""
        remaining = self._next_attempt - self._monotonic()
        return self._now() + timedelta(seconds=remaining) if remaining > 0 else None

    # ------------------------------------------------------------ recorded anchors

    def _records_query(self) -> Any:
        return (
            select(ChainAnchor)
            .where(
                ChainAnchor.chain_id == self.chain.chain_id,
                ChainAnchor.contract == self.contract.address,
            )
            .order_by(ChainAnchor.size.desc(), ChainAnchor.id.desc())
        )

    def _latest_record(self) -> ChainAnchor | None:
        with self.log.database.read() as session:
            row: ChainAnchor | None = session.scalars(self._records_query().limit(1)).first()
            if row is not None:
                session.expunge(row)
            return row

    def _drop_reorganised_records(self) -> int:
        """Remove recorded anchors the chain no longer holds; fix moved blocks.

        A record stands when the contract holds its root at its size and its transaction
        is mined. A transaction re-included in another block keeps its record (the block
        number is corrected); anything else is dropped, newest first, so the next anchor
        is planned from what the chain really holds.
        """
        if self.chain.backend is ChainBackend.EMBEDDED:
            return 0  # one node, no forks: its anchors are final when mined
        with self.log.database.read() as session:
            rows = session.scalars(self._records_query().limit(_RECHECK_RECORDS)).all()
            checks = [
                (row.id, row.log_id, row.size, row.root, row.tx_hash, row.block) for row in rows
            ]
        dropped = 0
        for row_id, log_id, size, root, tx_hash, block in checks:
            mined_in = self._mined_block(tx_hash)
            if mined_in is not None and self.contract.root_at(log_id, size) == root:
                if mined_in != block:
                    with self.log.database.write() as session:
                        session.execute(
                            update(ChainAnchor)
                            .where(ChainAnchor.id == row_id)
                            .values(block=mined_in)
                        )
                break  # older records are below a standing one
            logger.warning(
                "anchor of size %d (transaction 0x%s) was reorganised away; anchoring again",
                size,
                tx_hash.hex(),
            )
            with self.log.database.write() as session:
                session.execute(delete(ChainAnchor).where(ChainAnchor.id == row_id))
            dropped += 1
        if dropped:
            self.chain.forget_nonces()
        return dropped

    def _mined_block(self, tx_hash: bytes) -> int | None:
        try:
            receipt = self.chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        if receipt is None or receipt["blockNumber"] is None:
            return None
        return int(receipt["blockNumber"])

    # ---------------------------------------------------------------- anchoring

    def _anchor(self) -> AnchorRecord | None:
        if self.chain.backend is ChainBackend.EMBEDDED:
            # Mined at once and final: the simple path is the whole story.
            return anchor_now(self.log, self.contract, confirmations=1)
        for _ in range(_MAX_ATTEMPTS_PER_STEP):
            try:
                return self._anchor_rpc()
            except _Replan as why:
                logger.warning("anchoring again: %s", why)
        raise ChainError(f"the anchor did not hold after {_MAX_ATTEMPTS_PER_STEP} attempts")

    def _anchor_rpc(self) -> AnchorRecord | None:
        flight = self._in_flight
        if flight is None:
            plan = plan_anchor(self.log, self.contract, anchorer=self.signer.address)
            if plan is None:
                return None
            flight = self._send_new(plan)
        mined = self._await_mined(flight)
        receipt = AnchorReceipt(
            flight.plan.log_id,
            flight.plan.size,
            flight.plan.root,
            bytes(mined["transactionHash"]),
            int(mined["blockNumber"]),
            int(mined["gasUsed"]),
            flight.plan.map_root,
        )
        if mined["status"] != 1:
            self._in_flight = None
            # The estimate passed, so the chain changed in between (another anchorer, or
            # a reorganisation that re-included an older anchor): plan again from it.
            raise _Replan(self._revert_reason(flight, receipt))
        try:
            wait_for_confirmations(
                self.chain,
                receipt,
                self.settings.anchor_confirmations,
                self.settings.anchor_confirmation_timeout_seconds,
                self.settings.anchor_poll_seconds,
            )
        except ReorganisedError as exc:
            self._in_flight = None
            self.chain.forget_nonces()
            raise _Replan(str(exc)) from exc
        # Any other failure above (RPC gone, too few blocks yet) keeps the transaction in
        # flight: the next step looks for its receipt again instead of planning anew, since
        # the chain may already hold this head and would then never be recorded.
        record = record_anchor(self.log, self.contract, receipt, self.settings.anchor_confirmations)
        self._in_flight = None
        return record

    def _send_new(self, plan: AnchorPlan) -> _InFlight:
        function = self.contract.anchor_function(
            plan.log_id, plan.size, plan.root, plan.map_root, plan.proof
        )
        try:
            # Estimates gas, so a root the contract refuses fails here and costs nothing.
            tx = dict(function.build_transaction({"from": self.signer.address}))
        except (ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is None:
                raise
            raise decode_revert(data) from exc
        tx.pop("nonce", None)
        with self.chain.reserve_nonce(self.signer) as nonce:
            flight = _InFlight(plan, tx, nonce)
            self._broadcast(flight)
        # Kept until mined, so an RPC outage in between resumes this transaction instead
        # of sending a second one for the same head.
        self._in_flight = flight
        return flight

    def _broadcast(self, flight: _InFlight) -> None:
        signed = self.signer.sign_transaction(
            {**flight.tx, "nonce": flight.nonce, "chainId": self.chain.chain_id}
        )
        try:
            tx_hash = bytes(self.chain.w3.eth.send_raw_transaction(signed.raw_transaction))
        except Web3RPCError as exc:
            # The node has these exact bytes already (a re-send of an unchanged transaction,
            # or one it listed a moment late): that is the state a send aims for.
            if not _ALREADY_KNOWN.search(str(exc)):
                raise
            tx_hash = keccak(bytes(signed.raw_transaction))
        if tx_hash not in flight.hashes:
            flight.hashes.append(tx_hash)
        flight.last_sent = self._monotonic()

    def _await_mined(self, flight: _InFlight) -> Any:
        """The receipt of whichever version of the transaction is mined; replaces stuck ones."""
        while True:
            for tx_hash in reversed(flight.hashes):
                try:
                    receipt = self.chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
                except TransactionNotFound:
                    continue
                if receipt is not None and receipt["blockNumber"] is not None:
                    return receipt
            stuck = self._monotonic() - flight.last_sent >= self.settings.anchor_tx_timeout_seconds
            dropped = self._dropped(flight)
            capped = flight.replacements >= self.settings.anchor_max_replacements
            if stuck and capped and not dropped:
                # The fee cap is reached: fail the step (the loop backs off) but keep the
                # transaction in flight, so later steps look for its receipt at this fee.
                flight.last_sent = self._monotonic()
                raise ChainError(
                    f"anchor transaction 0x{flight.hashes[-1].hex()} is not mined after "
                    f"{flight.replacements} fee increases; waiting at this fee"
                )
            if stuck or dropped:
                self._replace(flight)
            # Also after a replacement: a node may list a new transaction a moment late,
            # and looking again at once would take it for dropped and bump the fee again.
            self._sleep(self.settings.anchor_poll_seconds)

    def _dropped(self, flight: _InFlight) -> bool:
        for tx_hash in flight.hashes:
            try:
                self.chain.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                continue
            return False
        return True

    def _replace(self, flight: _InFlight) -> None:
        """Same nonce, higher fee: the node keeps one of them, and at most one is mined."""
        mined_nonce = self.chain.w3.eth.get_transaction_count(self.signer.address, "latest")
        if mined_nonce > flight.nonce:
            # The nonce was used by a transaction that is none of ours (another process
            # with this key): this anchor was never mined, so plan it again.
            self._in_flight = None
            self.chain.forget_nonces()
            raise _Replan(f"nonce {flight.nonce} was used by another transaction")
        if flight.replacements < self.settings.anchor_max_replacements:
            flight.tx = _bumped(flight.tx, self.settings.anchor_fee_bump_percent)
            flight.replacements += 1
            self._replacements += 1
        # else: a dropped transaction at the fee cap is sent again unchanged.
        logger.warning(
            "anchor transaction 0x%s not mined after %.0fs; replacing it (nonce %d, higher fee)",
            flight.hashes[-1].hex(),
            self._monotonic() - flight.last_sent,
            flight.nonce,
        )
        self._broadcast(flight)

    def _revert_reason(self, flight: _InFlight, receipt: AnchorReceipt) -> str:
        call = {k: v for k, v in flight.tx.items() if k in {"to", "data", "value"}}
        try:
            self.chain.w3.eth.call(
                cast(TxParams, {**call, "from": self.signer.address}), receipt.block - 1
            )
        except (ContractLogicError, Web3RPCError) as exc:
            data = revert_data(exc)
            if data is not None:
                return (
                    f"anchor transaction 0x{receipt.tx_hash.hex()} reverted: {decode_revert(data)}"
                )
        return f"anchor transaction 0x{receipt.tx_hash.hex()} reverted"


def _bumped(tx: dict[str, Any], percent: int) -> dict[str, Any]:
    def raise_(value: int) -> int:
        return value + max(1, value * percent // 100)

    bumped = dict(tx)
    if "maxFeePerGas" in bumped:
        bumped["maxFeePerGas"] = raise_(int(bumped["maxFeePerGas"]))
        bumped["maxPriorityFeePerGas"] = raise_(int(bumped["maxPriorityFeePerGas"]))
    else:
        bumped["gasPrice"] = raise_(int(bumped["gasPrice"]))
    return bumped


def _aware(moment: datetime) -> datetime:
    # SQLite returns stored UTC times without their zone; PostgreSQL keeps it.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AnchorService:
    """What `carbonledger serve` runs: connect to the chain, find the contract, then loop.

    Connecting happens on the loop's thread, with the same backoff as a failed step, so
    an unreachable RPC at start-up delays anchoring instead of failing the API.
    Configuration mistakes that need no network (no anchorer key, no contract known for
    a JSON-RPC chain) raise from `start`, so `serve` refuses to start with a clear message.
    """

    def __init__(
        self,
        log: Log,
        data_dir: Path,
        chain_settings: ChainSettings,
        settings: AnchorSettings,
    ) -> None:
        self.log = log
        self.data_dir = data_dir
        self.chain_settings = chain_settings
        self.settings = settings
        self.scheduler: AnchorScheduler | None = None
        self.last_error: str | None = None
        self._chain: Chain | None = None
        # When the loop wakes for its next step (None while a step runs): what a forecast
        # needs beside the rule, since an anchor is only sent by a step.
        self._wake_at: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="carbonledger-anchor", daemon=True)

    @classmethod
    def start(
        cls,
        log: Log,
        data_dir: Path,
        chain_settings: ChainSettings | None = None,
        settings: AnchorSettings | None = None,
    ) -> AnchorService | None:
        """Start anchoring in the background; None when the settings leave it off."""
        chain_settings = chain_settings or ChainSettings()
        settings = settings or AnchorSettings()
        if not settings.scheduler_enabled(chain_settings.backend):
            return None
        if chain_settings.backend is ChainBackend.JSON_RPC:
            if chain_settings.chain_anchorer_key is None:
                raise ChainError(
                    "anchoring on CARBONLEDGER_CHAIN_RPC needs CARBONLEDGER_CHAIN_ANCHORER_KEY"
                )
            if not chain_settings.chain_contract and not recorded_deployments(data_dir):
                raise ChainError(
                    "anchoring on CARBONLEDGER_CHAIN_RPC needs a contract: run "
                    "`carbonledger chain deploy` or set CARBONLEDGER_CHAIN_CONTRACT"
                )
        service = cls(log, data_dir, chain_settings, settings)
        service._thread.start()
        return service

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._chain is not None:
            self._chain.close()  # releases the embedded chain's journal lock
            self._chain = None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def chain(self) -> Chain | None:
        """The connected chain (None until the loop has connected)."""
        return self._chain

    def forecast(self, now: datetime | None = None) -> AnchorForecast | None:
        """When this service will next try to anchor; None when everything is anchored.

        The rule's due time (`AnchorScheduler.due`), no earlier than the loop's next wake-up
        and the backoff after a failed step. Before the chain is connected the anchored size
        is unknown, so the forecast is the next connection attempt, `pending_entries` None.
        """
        moment = now or datetime.now(UTC)
        wake_at = self._wake_at or moment
        retrying = self.last_error is not None
        scheduler = self.scheduler
        if scheduler is None:
            return AnchorForecast(max(moment, wake_at), None, retrying)
        due = scheduler.due()
        if due is None:
            return None
        candidates = [moment, due.due_at, wake_at]
        backoff = scheduler.backoff_until()
        if backoff is not None:
            candidates.append(backoff)
        return AnchorForecast(max(candidates), due.pending_entries, retrying)

    def _connect(self) -> AnchorScheduler:
        chain = open_chain(self.chain_settings, self.data_dir)
        try:
            contract = resolve_contract(chain, self.chain_settings, self.data_dir)
        except BaseException:
            chain.close()
            raise
        self._chain = chain
        logger.info("anchoring to %s on chain %d", contract.address, chain.chain_id)
        return AnchorScheduler(self.log, contract, self.settings)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake_at = None
            wait = self.settings.anchor_tick_seconds
            try:
                if self.scheduler is None:
                    self.scheduler = self._connect()
                outcome = self.scheduler.run_once()
                self.last_error = outcome.error
                wait = self._next_wait(self.scheduler, outcome)
                if outcome.record is not None:
                    logger.info(
                        "anchored size %d in block %d (transaction 0x%s)",
                        outcome.record.size,
                        outcome.record.block,
                        outcome.record.tx_hash.hex(),
                    )
                failures = 0
            except Exception as exc:  # connecting failed, or a bug: log it and try again
                failures += 1
                wait = min(
                    self.settings.anchor_retry_max_seconds,
                    self.settings.anchor_retry_initial_seconds * 2 ** (failures - 1),
                )
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("anchoring unavailable (retry in %.1fs): %s", wait, exc)
            self._wake_at = datetime.now(UTC) + timedelta(seconds=wait)
            self._stop.wait(wait)

    def _next_wait(self, scheduler: AnchorScheduler, outcome: StepOutcome) -> float:
        """Sleep one tick, but wake when an anchor falls due or a backoff ends before that,
        so the anchor goes out on time rather than up to a tick late."""
        tick = self.settings.anchor_tick_seconds
        if outcome.retry_in is not None:
            return max(0.0, min(tick, outcome.retry_in))
        if outcome.result is not StepResult.NOT_DUE:
            return tick
        due = scheduler.due()
        if due is None:
            return tick
        return max(0.0, min(tick, (due.due_at - datetime.now(UTC)).total_seconds()))
