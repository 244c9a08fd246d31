"""The Modbus gateway: poll a meter on the clock, sign, queue on disk, upload exactly once.

Guarantees and how they are kept:

- **Nothing signed is lost.** A reading is signed and written to the queue, together with
  the signer's new high-water mark (seq, time), in ONE SQLite transaction (WAL,
  `synchronous=FULL`, so a committed transaction survives a power cut). A crash before the
  commit loses only a reading that never left the device; its seq is reused for the next
  one, which the registry cannot see as equivocation because it never saw the first.
- **Nothing is sent twice into the log.** An item leaves the queue only after the API has
  answered `accepted` or `duplicate` for it (`duplicate` = those exact signed bytes are
  stored already, e.g. the answer to an earlier send was lost). Resending is therefore
  always safe, and every failure (connection refused, timeout, 5xx, 401, 429) just keeps the
  items and retries later with exponential backoff and jitter.
- **A rejected item does not block the queue.** It is appended (fsync) to
  `dead-letter.jsonl` in the state directory with the API's reason, then removed; a crash in
  between can only repeat a dead-letter line, never lose one.
- **Clock-aligned polls.** Readings are taken at wall-clock multiples of the interval
  (default 900 s: :00, :15, :30, :45) and carry that boundary as their `time`, so interval
  energy lines up with the registry's 15-minute buckets. A boundary missed by more than
  `min(interval / 2, 60 s)` (the gateway was down or stalled) is skipped, not back-filled:
  past registers cannot be read, and the cumulative registers make the next reading carry
  the energy of the gap anyway.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ledger.meters.readings import SignedReading, parse_time
from meter_signing.keys import MeterKey
from meter_signing.modbus import MeterReadError, RegisterValues
from meter_signing.signing import MeterSigner, SequenceError

log = logging.getLogger("carbonledger.gateway")

STATE_FILE = "gateway.sqlite"
DEAD_LETTER_FILE = "dead-letter.jsonl"
DEFAULT_INTERVAL_S = 900
DEFAULT_BATCH_SIZE = 100
READINGS_PATH = "/v1/readings"
TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path, not a secret
TOKEN_REFRESH_MARGIN_S = 30
ACKNOWLEDGED = frozenset({"accepted", "duplicate"})


class GatewayError(Exception):
    """The gateway cannot run: bad state directory, state of another meter, bad URL."""


class UploadError(Exception):
    """An upload attempt failed as a whole; every item of it stays queued."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class Meter(Protocol):
    def read(self) -> RegisterValues: ...


# ------------------------------------------------------------------------ the store


@dataclass(frozen=True, slots=True)
class QueuedReading:
    seq: int
    envelope: dict[str, Any]


class GatewayStore:
    """The gateway's durable state in one directory: signer marks, queue, dead letters."""

    def __init__(self, state_dir: Path, meter_id: str) -> None:
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(
                state_dir / STATE_FILE, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: WAL commits are fsynced, so an acknowledged enqueue survives power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS signer (id INTEGER PRIMARY KEY CHECK (id = 1), "
                    "meter TEXT NOT NULL, last_seq INTEGER, last_time TEXT)"
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS queue "
                    "(seq INTEGER PRIMARY KEY, envelope TEXT NOT NULL)"
                )
                row = self._db.execute("SELECT meter FROM signer WHERE id = 1").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO signer (id, meter) VALUES (1, ?)", (meter_id,))
                elif row[0] != meter_id:
                    raise GatewayError(
                        f"the state directory {state_dir} belongs to meter {row[0]!r}, not "
                        f"{meter_id!r}; one state directory per meter keeps each seq unique"
                    )
        except (OSError, sqlite3.Error) as exc:
            raise GatewayError(f"cannot open the gateway state in {state_dir}: {exc}") from exc
        self.state_dir = state_dir
        self.dead_letter_path = state_dir / DEAD_LETTER_FILE
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def signer_marks(self) -> tuple[int | None, datetime | None]:
        with self._lock:
            last_seq, last_time = self._db.execute(
                "SELECT last_seq, last_time FROM signer WHERE id = 1"
            ).fetchone()
        return last_seq, (parse_time(last_time) if last_time is not None else None)

    def enqueue(self, reading: SignedReading) -> None:
        """Queue a signed reading and advance the signer marks atomically."""
        envelope = reading.to_json()
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO queue (seq, envelope) VALUES (?, ?)",
                (reading.payload.seq, json.dumps(envelope, separators=(",", ":"))),
            )
            self._db.execute(
                "UPDATE signer SET last_seq = ?, last_time = ? WHERE id = 1",
                (reading.payload.seq, envelope["payload"]["time"]),
            )

    def pending(self, limit: int) -> list[QueuedReading]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, envelope FROM queue ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [QueuedReading(seq, json.loads(text)) for seq, text in rows]

    def pending_count(self) -> int:
        with self._lock:
            count: int = self._db.execute("SELECT count(*) FROM queue").fetchone()[0]
        return count

    def remove(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._lock, self._transaction():
            self._db.executemany("DELETE FROM queue WHERE seq = ?", [(seq,) for seq in seqs])

    def dead_letter(self, item: QueuedReading, outcome: dict[str, Any]) -> None:
        """Append the rejected envelope and the API's verdict, durably, before removing it."""
        line = json.dumps(
            {
                "rejectedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "reason": outcome.get("reason"),
                "detail": outcome.get("detail"),
                "envelope": item.envelope,
            },
            separators=(",", ":"),
        )
        created = not self.dead_letter_path.exists()
        fd = os.open(self.dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            # A new file's directory entry is durable only once the directory is synced.
            dir_fd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self.remove([item.seq])

    def dead_letters(self) -> list[dict[str, Any]]:
        if not self.dead_letter_path.exists():
            return []
        lines = self.dead_letter_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GatewayStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ the API client


class ApiClient:
    """`POST /v1/readings` with a client-credentials bearer token (stdlib HTTP only)."""

    def __init__(
        self, base_url: str, client_id: str, client_secret: str, *, timeout: float = 10.0
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise GatewayError(f"the API URL must be http(s)://host[:port], not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.timeout = timeout
        self._token: str | None = None
        self._token_expires = 0.0

    def _request(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.base_url + path, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except ValueError:
                detail = {}
            return exc.code, detail if isinstance(detail, dict) else {}
        except (OSError, ValueError) as exc:  # refused, reset, timeout, DNS, bad JSON
            raise UploadError(f"{self.base_url} unreachable: {exc}") from exc

    def _bearer(self) -> str:
        if self._token is None or time.monotonic() >= self._token_expires:
            status, body = self._request(
                TOKEN_PATH,
                b"grant_type=client_credentials",
                {
                    "Authorization": f"Basic {self._basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            if status != 200 or "access_token" not in body:
                raise UploadError(f"token request failed: HTTP {status} {body.get('detail', '')}")
            self._token = str(body["access_token"])
            lifetime = int(body.get("expires_in", 300))
            self._token_expires = time.monotonic() + max(1, lifetime - TOKEN_REFRESH_MARGIN_S)
        return self._token

    def submit(self, envelopes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The per-item outcomes, in order; raises UploadError if the batch as a whole failed."""
        body = json.dumps({"readings": list(envelopes)}, separators=(",", ":")).encode()
        for attempt in range(2):
            status, answer = self._request(
                READINGS_PATH,
                body,
                {"Authorization": f"Bearer {self._bearer()}", "Content-Type": "application/json"},
            )
            if status == 401 and attempt == 0:
                self._token = None  # expired or the server's secret rotated: one fresh token
                continue
            break
        if status == 413:
            raise UploadError("the API refused the batch as too large", too_large=True)
        if status != 200:
            raise UploadError(f"HTTP {status} from {READINGS_PATH}: {answer.get('detail', '')}")
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(envelopes):
            raise UploadError("the API's answer does not hold one result per reading")
        return [item if isinstance(item, dict) else {} for item in results]


# ------------------------------------------------------------------------ the loop


def next_boundary(now: float, interval: int) -> int:
    """The first wall-clock multiple of `interval` seconds strictly after `now`."""
    return (math.floor(now) // interval + 1) * interval


@dataclass(frozen=True)
class GatewayConfig:
    interval_s: int = DEFAULT_INTERVAL_S
    batch_size: int = DEFAULT_BATCH_SIZE
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0

    def __post_init__(self) -> None:
        if self.interval_s < 1:
            raise GatewayError(
                "the poll interval is at least 1 s (reading times are whole seconds)"
            )
        if not 1 <= self.batch_size <= 5_000:
            raise GatewayError("the batch size is 1..5000 (the API's default limit)")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise GatewayError("backoff: 0 < initial <= max")

    @property
    def late_tolerance_s(self) -> float:
        return min(self.interval_s / 2, 60.0)


@dataclass
class GatewayStats:
    polls: int = 0
    poll_failures: int = 0
    acknowledged: int = 0
    dead_lettered: int = 0
    upload_failures: int = 0


class Gateway:
    """One meter, one key, one state directory, one API."""

    def __init__(
        self,
        *,
        meter_id: str,
        key: MeterKey,
        meter: Meter,
        store: GatewayStore,
        api: ApiClient,
        config: GatewayConfig | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.meter_id, self.key, self.meter = meter_id, key, meter
        self.store, self.api = store, api
        self.config = config or GatewayConfig()
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = GatewayStats()
        self._batch_size = self.config.batch_size
        self._failures = 0
        self.signer = self._resume_signer()

    def _resume_signer(self) -> MeterSigner:
        last_seq, last_time = self.store.signer_marks()
        return MeterSigner(self.meter_id, self.key, last_seq=last_seq, last_time=last_time)

    # ------------------------------------------------------------------ polling

    def poll(self, boundary: int) -> SignedReading | None:
        """Read the meter, sign the reading for `boundary` and queue it; None if skipped."""
        self.stats.polls += 1
        try:
            values = self.meter.read()
        except MeterReadError as exc:
            self.stats.poll_failures += 1
            log.warning("poll at %s skipped: %s", boundary, exc)
            return None
        moment = datetime.fromtimestamp(boundary, UTC)
        try:
            reading = self.signer.sign_next(moment, values.import_wh, values.export_wh)
        except SequenceError as exc:
            # The wall clock went back (or a restart within one interval): never re-sign.
            log.warning("poll at %s skipped: %s", boundary, exc)
            return None
        try:
            self.store.enqueue(reading)
        except (OSError, sqlite3.Error):
            # Not stored, so never sent: drop it and resume from what the disk says.
            self.signer = self._resume_signer()
            raise
        log.info(
            "seq %d at %s: import %d Wh, export %d Wh",
            reading.payload.seq,
            moment.isoformat(),
            values.import_wh,
            values.export_wh,
        )
        return reading

    # ---------------------------------------------------------------- uploading

    def upload_batch(self) -> int:
        """Send the oldest queued readings once; returns how many left the queue.

        Raises UploadError (after shrinking the batch if the API said it was too large).
        """
        items = self.store.pending(self._batch_size)
        if not items:
            return 0
        try:
            outcomes = self.api.submit([item.envelope for item in items])
        except UploadError as exc:
            if exc.too_large and self._batch_size > 1:
                self._batch_size = max(1, self._batch_size // 2)
            raise
        acknowledged = [
            item.seq
            for item, outcome in zip(items, outcomes, strict=True)
            if outcome.get("status") in ACKNOWLEDGED
        ]
        self.store.remove(acknowledged)
        self.stats.acknowledged += len(acknowledged)
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.get("status") not in ACKNOWLEDGED:
                log.error("seq %d rejected: %s", item.seq, outcome.get("reason"))
                self.store.dead_letter(item, outcome)
                self.stats.dead_lettered += 1
        return len(items)

    def backoff_delay(self) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, so gateways
        that lost the API together do not all return in the same second."""
        ceiling: float = min(
            self.config.backoff_max_s,
            self.config.backoff_initial_s * float(2 ** min(self._failures - 1, 32)),
        )
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def drain(self, until: float) -> float | None:
        """Upload batches until the queue is empty or `until` (the next poll) arrives.

        Returns None when done, or the time of the next attempt after a failure.
        """
        while self.store.pending_count() and self.clock() < until:
            batch_size = self._batch_size
            try:
                self.upload_batch()
            except UploadError as exc:
                if exc.too_large and self._batch_size < batch_size:
                    continue  # a smaller batch can go at once; the API itself is fine
                self._failures += 1
                self.stats.upload_failures += 1
                delay = self.backoff_delay()
                log.warning(
                    "upload failed (%s); %d queued, retry in %.1f s",
                    exc,
                    self.store.pending_count(),
                    delay,
                )
                return self.clock() + delay
            self._failures = 0
        return None

    # ------------------------------------------------------------------ running

    def run(self, stop: threading.Event, *, max_polls: int | None = None) -> None:
        """Poll and upload until `stop` is set (or after `max_polls` polls and a drain)."""
        interval = self.config.interval_s
        next_poll = next_boundary(self.clock(), interval)
        retry_at: float | None = None  # None: upload as soon as something is queued
        polls = 0
        while not stop.is_set():
            now = self.clock()
            polling = max_polls is None or polls < max_polls
            if polling and now >= next_poll:
                due = math.floor(now) // interval * interval
                if now - due <= self.config.late_tolerance_s:
                    self.poll(due)
                else:
                    log.warning("missed the poll at %s; next at %s", due, due + interval)
                polls += 1
                next_poll = due + interval
            if retry_at is None or self.clock() >= retry_at:
                limit = next_poll if max_polls is None or polls < max_polls else math.inf
                retry_at = self.drain(until=limit)
            if max_polls is not None and polls >= max_polls and retry_at is None:
                return
            polling = max_polls is None or polls < max_polls
            wake = min(
                next_poll if polling else math.inf, math.inf if retry_at is None else retry_at
            )
            if math.isinf(wake):
                wake = self.clock() + self.config.backoff_initial_s
            stop.wait(max(0.0, wake - self.clock()))
