"""Random lifecycles keep every certificate invariant (issue 5, "hypothesis: random sequences
of issue/transfer/split/retire/expire/withdraw keep every invariant").

A hypothesis state machine drives the ledger API: readings keep arriving and are issued with
a growing anchored size; certificates are transferred, split and retired whole or in part,
expired with a clock past their validity and withdrawn. Each step predicts from the rules
whether the operation must succeed, and after each step the tables and the log are checked:

- per device-hour, live ranges tile [0, issued_wh) and so do the root certificates
  (disjoint, Wh conserved), issued_wh ≤ metered_wh, and metered_wh is what the anchored
  readings give (`split_energy`);
- a split parent holds nothing: its children partition its range;
- a retired, expired or withdrawn certificate never changes holder; its status only changes
  by withdrawal; ranges, hours and credentials of a row never change;
- a refused operation left the log and the rows exactly as they were;
- every credential and every signed statement in the log verifies under the issuer key.

Each example gets its own device and meter in one registry per backend, so a PostgreSQL run
does not pay for a fresh database per example.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from certificate_invariant_support import (
    ReadingStream,
    Row,
    certificate_rows,
    check_log,
    check_ranges,
    device_hours,
    expected_production,
    keyed_scenario,
    log_entries,
)
from certificate_support import Scenario
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from meter_support import T0

from ledger.certificates.devices import open_account
from ledger.certificates.issuance import issue_certificates
from ledger.certificates.lifecycle import (
    RetirementRequest,
    expire_due,
    retire_certificate,
    split_certificate,
    transfer_certificate,
    withdraw_certificate,
)
from ledger.certificates.rules import (
    HOUR,
    CertificateRequestError,
    CertificateStatus,
    RetirementPurpose,
    RuleViolationError,
)
from ledger.meters.entries import GridRegion
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ACTIVE = CertificateStatus.ACTIVE.value
SPLIT = CertificateStatus.SPLIT.value
RETIRED = CertificateStatus.RETIRED.value
EXPIRED = CertificateStatus.EXPIRED.value
WITHDRAWN = CertificateStatus.WITHDRAWN.value
ALLOWED_STATUS_CHANGES = {
    ACTIVE: {ACTIVE, SPLIT, RETIRED, EXPIRED, WITHDRAWN},
    SPLIT: {SPLIT},
    RETIRED: {RETIRED, WITHDRAWN},
    EXPIRED: {EXPIRED, WITHDRAWN},
    WITHDRAWN: {WITHDRAWN},
}
STATUS_RULE = {
    SPLIT: "split-holds-nothing",
    RETIRED: "retired-is-final",
    EXPIRED: "expired",
    WITHDRAWN: "withdrawn",
}
picks = st.integers(min_value=0, max_value=10**6)
fractions = st.integers(min_value=0, max_value=1000)


def rarely(one_in: int) -> st.SearchStrategy[bool]:
    return st.integers(0, one_in - 1).map(lambda draw: draw == 0)


lateness = rarely(5)
"""Now and then an action at the certificate's validUntil (refused: expired)."""


class CertificateMachine(RuleBasedStateMachine):
    registry: ClassVar[Registry]

    def __init__(self) -> None:
        super().__init__()
        registry = self.registry
        self.checked_size = registry.log.head().size
        self.scenario: Scenario
        self.stream: ReadingStream
        self.scenario, self.stream = keyed_scenario(
            registry, hours=8, step=1800, tag=uuid.uuid4().hex[:12]
        )
        second = open_account(registry.log, self.scenario.buyer, "second").account_id
        self.owners = {
            self.scenario.producer_account: self.scenario.producer,
            self.scenario.buyer_account: self.scenario.buyer,
            second: self.scenario.buyer,
        }
        self.anchored = registry.log.head().size
        self.rows: dict[str, Row] = {}
        self.issued_entries = 0

    # ------------------------------------------------------------------ helpers

    def _pick(self, pick: int, live_only: bool = False) -> Row:
        rows = sorted(
            (row for row in self.rows.values() if not live_only or row.status != SPLIT),
            key=lambda row: row.log_index,
        )
        return rows[pick % len(rows)]

    def _attempt(
        self,
        label: str,
        call: Callable[[], Any],
        *,
        succeeds: bool,
        rule_slug: str | None = None,
    ) -> Any:
        """Run `call`; it must succeed exactly when the rules say so, and a refusal must leave
        the log and the device's certificates untouched."""
        size = self.registry.log.head().size
        try:
            outcome = call()
        except CertificateRequestError as exc:
            event(f"refused {label}: {getattr(exc, 'rule', type(exc).__name__)}")
            assert not succeeds, f"refused unexpectedly: {exc!r}"
            if rule_slug is not None:
                assert isinstance(exc, RuleViolationError), repr(exc)
                assert exc.rule == rule_slug, (exc.rule, rule_slug, str(exc))
            assert self.registry.log.head().size == size, "a refused operation wrote to the log"
            assert certificate_rows(self.registry, self.scenario.device) == self.rows
            return None
        event(f"accepted: {label}")
        assert succeeds, f"accepted although the rules forbid it (expected {rule_slug})"
        assert self.registry.log.head().size > size
        return outcome

    def _movable(self, row: Row, late: bool) -> tuple[bool, str | None]:
        if row.status != ACTIVE:
            return False, STATUS_RULE[row.status]
        if late:
            return False, "expired"
        return True, None

    @staticmethod
    def _part(row: Row, fraction: int) -> int:
        """1 … volume Wh (the whole when it reaches the volume)."""
        return 1 + (row.volume - 1) * fraction // 1000

    # -------------------------------------------------------------------- rules

    @rule(count=st.integers(1, 8), step=st.sampled_from([900, 1800, 2700]), whole=st.booleans())
    def readings_then_issue(self, count: int, step: int, whole: bool) -> None:
        middle = self.stream.add(count, step)
        latest = self.stream.add(count, step)
        self.anchored = max(self.anchored, latest if whole else middle)
        end = -(-self.stream.last_time // HOUR) * HOUR
        result = issue_certificates(
            self.registry.log,
            self.registry.issuer(),
            organisation_id=self.scenario.producer,
            device_id=self.scenario.device,
            account_id=self.scenario.producer_account,
            start=T0,
            end=end,
            anchored_size=self.anchored,
            validity_months=12,
        )
        self.issued_entries += len(result.issued)
        expected = expected_production(self.stream.times_below(self.anchored), T0, end)
        metered = {
            hour: metered
            for (_, hour), (metered, _) in device_hours(self.registry, self.scenario.device).items()
        }
        assert metered == expected
        for item in result.issued:
            assert item.serial_end == expected[item.hour_start]

    @precondition(lambda self: self.rows)
    @rule(
        pick=picks,
        whole=st.booleans(),
        fraction=fractions,
        destination=st.integers(0, 2),
        late=lateness,
    )
    def transfer(self, pick: int, whole: bool, fraction: int, destination: int, late: bool) -> None:
        row = self._pick(pick)
        to = sorted(self.owners)[destination]
        volume = None if whole else self._part(row, fraction)
        ok, slug = self._movable(row, late)
        if ok and to == row.account_id:
            ok, slug = False, "same-account"
        result = self._attempt(
            "transfer",
            lambda: transfer_certificate(
                self.registry.log,
                self.registry.issuer(),
                organisation_id=self.owners[row.account_id],
                certificate_id=row.id,
                to_account=to,
                volume_wh=volume,
                now=row.expires_at if late else None,
            ),
            succeeds=ok,
            rule_slug=slug,
        )
        if result is not None:
            moved = result.certificate
            assert moved.account_id == to and moved.holder_id == self.owners[to]
            assert moved.volume_wh == (volume or row.volume)
            if result.remainder is not None:
                assert result.remainder.account_id == row.account_id
                assert result.remainder.volume_wh == row.volume - moved.volume_wh
                self.issued_entries += 2
            else:
                assert moved.certificate_id == row.id

    @precondition(lambda self: self.rows)
    @rule(
        pick=picks,
        weights=st.lists(st.integers(1, 100), min_size=1, max_size=5).filter(
            lambda weights: len(weights) > 1 or weights[0] == 1
        ),
        wrong_total=rarely(5),
        late=lateness,
    )
    def split(self, pick: int, weights: list[int], wrong_total: bool, late: bool) -> None:
        row = self._pick(pick)
        total = sum(weights)
        volumes = [row.volume * weight // total for weight in weights[:-1]]
        volumes.append(row.volume - sum(volumes) + (1 if wrong_total else 0))
        slug: str | None
        # The certificate's state is checked before the volumes asked for.
        ok, slug = self._movable(row, late)
        if not ok:
            pass
        elif not 2 <= len(volumes) <= 64 or min(volumes) <= 0:
            ok, slug = False, "split-parts"
        elif sum(volumes) != row.volume:
            ok, slug = False, "split-partition"
        children = self._attempt(
            "split",
            lambda: split_certificate(
                self.registry.log,
                self.registry.issuer(),
                organisation_id=self.owners[row.account_id],
                certificate_id=row.id,
                volumes=volumes,
                now=row.expires_at if late else None,
            ),
            succeeds=ok,
            rule_slug=slug,
        )
        if children is not None:
            assert [child.volume_wh for child in children] == volumes
            assert all(child.parent_id == row.id for child in children)
            assert all(child.account_id == row.account_id for child in children)
            self.issued_entries += len(children)

    @precondition(lambda self: self.rows)
    @rule(pick=picks, whole=st.booleans(), fraction=fractions, late=lateness)
    def retire(self, pick: int, whole: bool, fraction: int, late: bool) -> None:
        row = self._pick(pick)
        volume = None if whole else self._part(row, fraction)
        ok, slug = self._movable(row, late)
        request = RetirementRequest(
            beneficiary_id=self.scenario.buyer,
            purpose=RetirementPurpose.SCOPE2_MARKET_BASED,
            period_start=T0,
            period_end=T0 + 365 * 86_400,
            province="CN-SH",
            grid_region=GridRegion.EAST,
        )
        result = self._attempt(
            "retire",
            lambda: retire_certificate(
                self.registry.log,
                self.registry.issuer(),
                organisation_id=self.owners[row.account_id],
                certificate_id=row.id,
                request=request,
                volume_wh=volume,
                now=row.expires_at if late else None,
            ),
            succeeds=ok,
            rule_slug=slug,
        )
        if result is not None:
            retired = result.certificate
            assert retired.status is CertificateStatus.RETIRED
            assert retired.retirement is not None
            assert retired.retirement.beneficiary_id == self.scenario.buyer
            assert retired.volume_wh == (volume or row.volume)
            if result.remainder is not None:
                assert result.remainder.status is CertificateStatus.ACTIVE
                self.issued_entries += 2

    @precondition(lambda self: self.rows)
    @rule(pick=picks, delay=st.sampled_from([-1, 0, 1, 86_400]), act=rarely(3))
    def expire(self, pick: int, delay: int, act: bool) -> None:
        if not act:  # expiry ends a certificate's life; keep it rarer than the other steps
            return
        # Mostly the earliest hours, so the machine keeps active certificates to work with.
        earliest = sorted(self.rows.values(), key=lambda row: row.expires_at)
        now = earliest[pick % min(3, len(earliest))].expires_at + delay
        due = {
            row.id for row in self.rows.values() if row.status == ACTIVE and row.expires_at <= now
        }
        size = self.registry.log.head().size
        expired = set(expire_due(self.registry.log, self.registry.issuer(), now=now))
        assert expired & set(self.rows) == due
        if not expired:
            assert self.registry.log.head().size == size

    @precondition(lambda self: self.rows)
    @rule(
        pick=picks,
        reason=st.sampled_from(["meter found faulty", "CT ratio wrong", " "]),
        act=rarely(3),
    )
    def withdraw(self, pick: int, reason: str, act: bool) -> None:
        if not act:  # withdrawal ends a certificate's life; keep it rarer than the other steps
            return
        row = self._pick(pick)
        targets = self._live_descendants(row)
        ok = bool(targets) and bool(reason.strip())
        slug = "withdraw" if reason.strip() else None
        withdrawn = self._attempt(
            "withdraw",
            lambda: withdraw_certificate(
                self.registry.log, self.registry.issuer(), certificate_id=row.id, reason=reason
            ),
            succeeds=ok,
            rule_slug=slug,
        )
        if withdrawn is not None:
            assert set(withdrawn) == targets

    def _live_descendants(self, row: Row) -> set[str]:
        if row.status == WITHDRAWN:
            return set()
        if row.status != SPLIT:
            return {row.id}
        found: set[str] = set()
        for child in self.rows.values():
            if child.parent_id == row.id:
                found |= self._live_descendants(child)
        return found

    # --------------------------------------------------------------- invariants

    @invariant()
    def tables_and_log_agree(self) -> None:
        registry, device = self.registry, self.scenario.device
        rows = certificate_rows(registry, device)
        hours = device_hours(registry, device)
        check_ranges(rows, hours)
        for certificate, before in self.rows.items():
            after = rows[certificate]  # a certificate never disappears
            assert (after.hour_start, after.serial_start, after.serial_end) == (
                before.hour_start,
                before.serial_start,
                before.serial_end,
            )
            assert (after.parent_id, after.log_index, after.expires_at) == (
                before.parent_id,
                before.log_index,
                before.expires_at,
            )
            assert after.status in ALLOWED_STATUS_CHANGES[before.status], (before, after)
            if before.status != ACTIVE:
                assert after.account_id == before.account_id, "a final certificate moved"
        # One credential per certificate row: every row made by a step of this machine.
        assert len(rows) == self.issued_entries
        new_credentials = [
            entry["credential"]["id"]
            for _, entry in log_entries(registry, self.checked_size)
            if entry["kind"] == "certificate.issued/1"
            and entry["credential"]["credentialSubject"]["device"] == device
        ]
        assert sorted(new_credentials) == sorted(set(rows) - set(self.rows))
        self.checked_size = check_log(registry, rows, hours, start=self.checked_size)
        self.rows = rows


def _run(registry: Registry, examples: int, steps: int) -> None:
    machine = type("Machine", (CertificateMachine,), {"registry": registry})
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_random_lifecycles_keep_every_invariant_on_sqlite(tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = initialise_registry(
        LedgerSettings(data_dir=data, database_url=f"sqlite:///{data / 'carbonledger.db'}")
    )
    try:
        _run(registry, examples=20, steps=20)
    finally:
        registry.close()


@pytest.mark.postgres
def test_random_lifecycles_keep_every_invariant_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    registry = initialise_registry(
        LedgerSettings(data_dir=tmp_path / "data", database_url=postgres_url)
    )
    try:
        _run(registry, examples=4, steps=15)
    finally:
        registry.close()
