"""Group commit for ingestion: concurrent requests share one writer transaction.

Each ingest request used to be its own fsync'd transaction, so 1-reading requests were
bounded by the disk's commit rate (57 readings/s with 4 clients, issue 10). Here requests
join a bounded in-process queue; one writer thread takes every waiting request of one
organisation (up to `max_group_items` readings) and runs them as ONE `ingest` batch, in
arrival order. A request is answered only when the commit that holds its items returned,
i.e. is durable (SQLite `synchronous=FULL`, PostgreSQL's default `synchronous_commit`).

Why concatenating is the same as running the requests one after another: `ingest` decides
items in order and an item sees the items accepted before it in the same batch (duplicates
and equivocations within a batch are recognised), so request B after request A in one batch
gets exactly the outcomes it would get after A's own commit. Requests of different
organisations are never mixed: `ingest` checks ownership against one organisation.

When more than `max_pending_items` readings wait, a request is refused at once
(`QueueFullError` → 503 with Retry-After), before anything is parsed or written, instead
of letting latency grow without bound. If a group's transaction fails, every request in it
gets the error and nothing of it was committed.

With `serve --workers N` each process has its own queue and writer thread; the database's
writer lock (BEGIN IMMEDIATE / the head row lock) still serialises the processes' commits.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ledger.log.store import Log
from ledger.meters.ingest import (
    DEFAULT_MAX_ITEMS,
    BatchTooLargeError,
    IngestPolicy,
    IngestResult,
    ingest,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_ITEMS = 20_000


class QueueFullError(RuntimeError):
    def __init__(self, pending: int, limit: int) -> None:
        super().__init__(
            f"{pending:,} readings are waiting to be committed (limit {limit:,}); retry shortly"
        )


class QueueClosedError(RuntimeError):
    pass


@dataclass(slots=True)
class _Request:
    items: Sequence[Any]
    organisation_id: str | None
    future_skew_seconds: int
    future: Future[IngestResult] = field(default_factory=Future)


class IngestQueue:
    """The bounded queue and its writer thread (one per process)."""

    def __init__(
        self,
        log: Log,
        *,
        max_pending_items: int = DEFAULT_MAX_PENDING_ITEMS,
        max_group_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        self.log = log
        self.max_pending_items = max_pending_items
        self.max_group_items = max_group_items
        self.groups = 0
        self.requests = 0
        self._pending: deque[_Request] = deque()
        self._pending_items = 0
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="carbonledger-ingest", daemon=True)
        self._thread.start()

    def submit(
        self, items: Sequence[Any], organisation_id: str | None, policy: IngestPolicy
    ) -> Future[IngestResult]:
        """Queue one request's items; the future resolves once they are committed."""
        if len(items) > policy.max_items:  # the per-request limit, checked up front
            raise BatchTooLargeError(len(items), policy.max_items)
        request = _Request(items, organisation_id, policy.future_skew_seconds)
        with self._wake:
            if self._closed:
                raise QueueClosedError("the service is shutting down")
            # An empty queue always takes a request, so one batch at the limit still runs.
            if self._pending and self._pending_items + len(items) > self.max_pending_items:
                raise QueueFullError(self._pending_items, self.max_pending_items)
            self._pending.append(request)
            self._pending_items += len(items)
            self._wake.notify()
        return request.future

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking requests; commit what is queued, then stop the writer."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    def _take_group(self) -> list[_Request] | None:
        with self._wake:
            while not self._pending:
                if self._closed:
                    return None
                self._wake.wait()
            first = self._pending.popleft()
            group, size = [first], len(first.items)
            kept: deque[_Request] = deque()
            while self._pending:
                request = self._pending.popleft()
                fits = size + len(request.items) <= self.max_group_items
                same = (request.organisation_id, request.future_skew_seconds) == (
                    first.organisation_id,
                    first.future_skew_seconds,
                )
                if fits and same:
                    group.append(request)
                    size += len(request.items)
                else:
                    kept.append(request)
            self._pending = kept
            self._pending_items -= size
            return group

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            self._commit(group)

    def _commit(self, group: list[_Request]) -> None:
        items = [item for request in group for item in request.items]
        policy = IngestPolicy(
            max_items=max(len(items), 1), future_skew_seconds=group[0].future_skew_seconds
        )
        try:
            result = ingest(
                self.log, items, organisation_id=group[0].organisation_id, policy=policy
            )
        except BaseException as exc:  # nothing of the group committed; every caller hears why
            logger.warning("group commit of %d requests failed: %s", len(group), exc)
            for request in group:
                request.future.set_exception(exc)
            return
        self.groups += 1
        self.requests += len(group)
        offset = 0
        for request in group:
            count = len(request.items)
            request.future.set_result(IngestResult(result.items[offset : offset + count]))
            offset += count
