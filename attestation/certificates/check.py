"""The certificates product of the verifier: offline checks of certificate bundles
(docs/certificates.md). `CERTIFICATES` is what `attestation.bundles.verify` runs; the entry
formats themselves are parsed by `ledger.certificates.entries`. Two layers:

- **entry checkers** for `issuer.key/1`, `device.registered/1`, `device.approved/1`,
  `account.opened/1` and every `certificate.*/1` kind: the entry's exact shape and its
  own signature (the credential's Data Integrity proof, or the statement's `sig`). An entry
  check sees one entry and cannot say whether its signer is a declared issuer; that is
  the bundle check's job.
- **the bundle checker "certificate"**, which runs when a bundle holds a
  `certificate.issued/1` entry and adds these named checks:

  | name        | what                                                                    |
  | ----------- | ----------------------------------------------------------------------- |
  | certificate | the bundle's certificate (the one no other credential was split from),   |
  |             | its credential proven and verified                                       |
  | issuer      | every credential and statement is signed by a DID that a proven          |
  |             | `issuer.key/1` entry declared before it; the pinned DID, when given      |
  | device      | the proven `device.registered/1` matches the credential's subject, and   |
  |             | a proven `device.approved/1` precedes the issuance                      |
  | evidence    | every evidence reading is in the bundle, proven, a verified `reading/1`  |
  |             | of one of the device's meters; the hour's energy recomputed from them    |
  |             | (`ledger.certificates.issuance.hourly_production`) is `meteredWh` and    |
  |             | covers the serials                                                       |
  | lineage     | for a split child: each split statement and parent credential is proven  |
  |             | and the child is exactly what the split made                            |
  | status      | `ledger.certificates.rules` applied to the proven statements in log order |
  |             | — active / transferred / split / retired / expired pass; a withdrawn     |
  |             | certificate FAILS with the withdrawal reason                             |

What a bundle cannot show: statements appended after its anchor (they appear in the next
bundle), so the status is "as of" the anchored size, which the summary says.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attestation.bundles.report import (
    FAILED,
    NOT_CHECKED,
    PASSED,
    BundleContext,
    BundleFindings,
    Check,
    EntryChecker,
    EntryContext,
    Product,
    Verdict,
)
from ledger.certificates import rules
from ledger.certificates.entries import (
    ACCOUNT_OPENED_KIND,
    DEVICE_APPROVED_KIND,
    DEVICE_REGISTERED_KIND,
    EXPIRED_KIND,
    ISSUED_KIND,
    RETIRED_KIND,
    SPLIT_KIND,
    STATEMENT_KINDS,
    TRANSFERRED_KIND,
    CredentialFacts,
    DeviceFacts,
    account_facts,
    approval_facts,
    credential_facts,
    device_facts,
    issued_facts,
    statement_facts,
)
from ledger.certificates.production import ReadingPoint, hourly_production
from ledger.certificates.rules import (
    HOUR,
    CertificateState,
    CertificateStatus,
    RuleViolationError,
    gec_text,
)
from ledger.credentials.entries import ISSUER_KEY_KIND, issuer_declaration
from ledger.log.entry_fields import EntryFormatError
from ledger.log.merkle import leaf_hash
from ledger.meters.entries import (
    METER_REGISTERED_KIND,
    READING_KINDS,
    ReadingEntry,
    parse_meter_registration,
    parse_reading,
)
from ledger.meters.plausibility import exceeds_capacity
from ledger.times import format_utc, format_utc_date


def _checker(kind: str, describe: Callable[[Mapping[str, Any]], str]) -> EntryChecker:
    def check(context: EntryContext) -> Verdict:
        try:
            return Verdict(PASSED, f"{kind}: {describe(context.entry)}")
        except EntryFormatError as exc:
            return Verdict(FAILED, f"{kind}: {exc}")
        except (KeyError, TypeError) as exc:  # a field of the wrong JSON type
            return Verdict(FAILED, f"{kind}: malformed ({exc!r})")

    return check


def _describe_issuer(entry: Mapping[str, Any]) -> str:
    return f"the log declares issuer {issuer_declaration(entry)}"


def _describe_device(entry: Mapping[str, Any]) -> str:
    facts = device_facts(entry)
    return (
        f"device {facts.device} ({facts.energy_source}, {facts.capacity_w:,} W, "
        f"{facts.province}) of organisation {facts.organisation}, meters {', '.join(facts.meters)}"
    )


def _describe_approval(entry: Mapping[str, Any]) -> str:
    facts = approval_facts(entry)
    return f"device {facts.device} approved at {format_utc(facts.at)}, signed by {facts.issuer}"


def _describe_account(entry: Mapping[str, Any]) -> str:
    facts = account_facts(entry)
    return f"account {facts.account} of organisation {facts.organisation}"


def _describe_issued(entry: Mapping[str, Any]) -> str:
    issued = issued_facts(entry)
    facts, account = issued.credential, issued.account
    return (
        f"credential {facts.certificate} ({facts.volume_wh:,} Wh, serials {facts.serial}) "
        f"into account {account}; eddsa-jcs-2022 proof by {facts.issuer} verifies"
    )


def _describe_statement(entry: Mapping[str, Any]) -> str:
    facts = statement_facts(entry)
    return f"about {facts['certificate']} at {format_utc(facts['at'])}, signed by {facts['issuer']}"


_ENTRY_CHECKERS: dict[str, EntryChecker] = {
    ISSUER_KEY_KIND: _checker(ISSUER_KEY_KIND, _describe_issuer),
    DEVICE_REGISTERED_KIND: _checker(DEVICE_REGISTERED_KIND, _describe_device),
    DEVICE_APPROVED_KIND: _checker(DEVICE_APPROVED_KIND, _describe_approval),
    ACCOUNT_OPENED_KIND: _checker(ACCOUNT_OPENED_KIND, _describe_account),
    ISSUED_KIND: _checker(ISSUED_KIND, _describe_issued),
    **{kind: _checker(kind, _describe_statement) for kind in STATEMENT_KINDS},
}


# --------------------------------------------------------------------- bundle checker


class _Missing:
    """No proven registration of the meter is in the bundle (not: registered without capacity)."""


_MISSING = _Missing()


class _FailedError(Exception):
    """One certificate check failed; `name` is the check, the message says why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(slots=True)
class _Outcome:
    """The status walk's result."""

    state: CertificateState
    transfers: int = 0
    holder_organisation: str | None = None
    retirement: dict[str, Any] | None = None
    ended_at: int | None = None
    split_children: int = 0
    statements: int = 0


class _Analysis:
    """One certificate bundle, checked step by step; each step raises `_FailedError` or passes."""

    def __init__(self, context: BundleContext) -> None:
        self.context = context
        self.entries = {entry.index: entry for entry in context.bundle.entries}
        self.origin = context.bundle.checkpoint.split("\n", 1)[0]
        self.declared: dict[str, int] = {}
        self.unlinked = 0
        """Evidence intervals whose later reading is a `reading/1` (no prev to follow)."""
        for index, entry in context.decoded.items():
            if entry["kind"] == ISSUER_KEY_KIND and self._proven(index):
                self.declared.setdefault(entry["did"], index)

    def _proven(self, index: int) -> bool:
        """Included in the anchored tree and its own entry check passed."""
        check = self.context.entry_checks.get(index)
        return (
            bool(self.context.included.get(index))
            and check is not None
            and (check.status == PASSED)
        )

    def _why_not(self, index: int) -> str:
        if not self.context.included.get(index):
            return f"entry {index} is not proven in the anchored tree (inclusion failed)"
        check = self.context.entry_checks.get(index)
        return f"entry {index} did not verify: {check.message if check else 'no check'}"

    def _require_proven(self, name: str, index: int, what: str) -> None:
        if not self._proven(index):
            raise _FailedError(name, f"{what}: {self._why_not(index)}")

    def _require_issuer(self, name: str, did: str, index: int, what: str) -> None:
        declared = self.declared.get(did)
        if declared is None:
            raise _FailedError(
                name, f"{what} is signed by {did}, which no proven issuer.key/1 declares"
            )
        if declared >= index:
            raise _FailedError(
                name, f"{what} at index {index} precedes its issuer's declaration at {declared}"
            )
        pinned = self.context.trusted_issuers
        if pinned and did not in pinned:
            trusted = " or ".join(pinned)
            raise _FailedError(name, f"{what} is signed by {did}, not the pinned issuer {trusted}")

    # ---- certificate: which one, and its credential

    def credentials(self) -> tuple[CredentialFacts, list[tuple[int, CredentialFacts]]]:
        """The bundle's certificate and its lineage, root first, as (issued index, facts)."""
        # A changed leaf may also change its kind (and so what the certificate seems to
        # rest on), so a certificate is judged only on a bundle whose every entry is proven.
        for item in self.context.bundle.entries:
            if not self.context.included.get(item.index) or item.index not in (
                self.context.decoded
            ):
                raise _FailedError(
                    "certificate",
                    f"entry {item.index} is not proven in the anchored tree (or not JSON); "
                    "a certificate bundle must prove every entry",
                )
        by_id: dict[str, tuple[int, CredentialFacts]] = {}
        for index, entry in sorted(self.context.decoded.items()):
            if entry["kind"] != ISSUED_KIND:
                continue
            self._require_proven("certificate", index, "a certificate.issued/1 entry")
            # Verified by its entry check (required proven above): shape only here.
            facts = credential_facts(entry["credential"], verify=False)
            if facts.certificate in by_id:
                raise _FailedError(
                    "certificate", f"{facts.certificate} is issued twice in the bundle"
                )
            by_id[facts.certificate] = (index, facts)
        parents = {facts.split_from for _, facts in by_id.values() if facts.split_from}
        leaves = [facts for _, facts in by_id.values() if facts.certificate not in parents]
        if len(leaves) != 1:
            raise _FailedError(
                "certificate",
                f"the bundle must be about one certificate; it holds {len(leaves)} unrelated ones",
            )
        target = leaves[0]
        lineage = [by_id[target.certificate]]
        while lineage[0][1].split_from is not None:
            parent = lineage[0][1].split_from
            if parent not in by_id:
                raise _FailedError(
                    "lineage",
                    f"{lineage[0][1].certificate} was split from {parent}, "
                    "whose credential is not in the bundle",
                )
            lineage.insert(0, by_id[parent])
        if len(lineage) != len(by_id):
            raise _FailedError("certificate", "the bundle holds credentials outside the lineage")
        return target, lineage

    # ---- issuer

    def issuer(self, lineage: Sequence[tuple[int, CredentialFacts]]) -> str:
        for index, facts in lineage:
            self._require_issuer("issuer", facts.issuer, index, f"credential {facts.certificate}")
        did = lineage[-1][1].issuer
        return f"issuer {did}, declared by the log at index {self.declared[did]}"

    # ---- device

    def device(self, root_index: int, target: CredentialFacts) -> DeviceFacts:
        registered = [
            index
            for index, entry in self.context.decoded.items()
            if entry["kind"] == DEVICE_REGISTERED_KIND and entry.get("device") == target.device
        ]
        if len(registered) != 1:
            raise _FailedError(
                "device", f"the bundle must hold one device.registered/1 of {target.device}"
            )
        (reg_index,) = registered
        self._require_proven("device", reg_index, f"the registration of {target.device}")
        device = device_facts(self.context.decoded[reg_index])
        subject = target.subject
        expected = {
            "producer": device.organisation,
            "energySource": device.energy_source,
            "technology": device.technology,
            "capacityW": device.capacity_w,
            "province": device.province,
            "gridRegion": device.grid_region,
        }
        for name, value in expected.items():
            if subject[name] != value:
                raise _FailedError(
                    "device",
                    f"credential says {name} {subject[name]!r}; the device registration "
                    f"says {value!r}",
                )
        if reg_index >= root_index:
            raise _FailedError(
                "device", "the device was registered after the certificate was issued"
            )
        approvals = [
            index
            for index, entry in self.context.decoded.items()
            if entry["kind"] == DEVICE_APPROVED_KIND and entry.get("device") == target.device
        ]
        if not approvals:
            raise _FailedError(
                "device", f"no device.approved/1 of {target.device} is in the bundle"
            )
        approved = min(approvals)
        self._require_proven("device", approved, f"the approval of {target.device}")
        approval = self.context.decoded[approved]
        self._require_issuer("device", approval["issuer"], approved, "the device approval")
        if not reg_index < approved < root_index:
            raise _FailedError(
                "device",
                f"the approval (index {approved}) must come after the registration "
                f"({reg_index}) and before the issuance ({root_index})",
            )
        return device

    # ---- evidence

    def evidence(self, target: CredentialFacts, device: DeviceFacts) -> tuple[int, dict[str, int]]:
        """(recomputed Wh, readings per meter)."""
        if target.log != self.origin:
            raise _FailedError(
                "evidence", f"evidence is of log {target.log!r}, not {self.origin!r}"
            )
        capacities: Mapping[str, int | None] = self._capacities(device)
        readings: dict[str, list[tuple[ReadingEntry, bytes, int]]] = {}
        for index, expected_hash in target.readings:
            entry = self.entries.get(index)
            if entry is None or index not in self.context.decoded:
                raise _FailedError("evidence", f"evidence reading {index} is not in the bundle")
            digest = leaf_hash(entry.leaf_bytes())
            if digest.hex() != expected_hash:
                raise _FailedError("evidence", f"entry {index}'s leaf hash is not the credential's")
            value = self.context.decoded[index]
            if value["kind"] not in READING_KINDS:
                raise _FailedError("evidence", f"evidence entry {index} is a {value['kind']}")
            self._require_proven("evidence", index, f"evidence reading {index}")
            reading = parse_reading(value)
            meter = reading.payload.meter
            if meter not in device.meters:
                raise _FailedError(
                    "evidence", f"reading {index} is of meter {meter}, not the device's"
                )
            readings.setdefault(meter, []).append((reading, digest, index))
        points: dict[str, list[ReadingPoint]] = {}
        for meter, series in readings.items():
            series.sort(key=lambda item: item[0].time)
            points[meter] = self._run(meter, series, capacities.get(meter, _MISSING))
        scan = hourly_production(points, target.hour_start, target.hour_start + HOUR)
        if target.hour_start in scan.flagged_hours:
            raise _FailedError(
                "plausibility",
                "an evidence reading exceeds its meter's registered capacity x interval x 1.1: "
                "the hour is implausible and cannot be certified",
            )
        hour = scan.hours.get(target.hour_start)
        metered = hour.metered_wh if hour is not None else 0
        if metered != target.metered_wh:
            raise _FailedError(
                "evidence",
                f"the readings give {metered:,} Wh in the hour; the credential says "
                f"{target.metered_wh:,} Wh metered",
            )
        used = {point.index for point in hour.evidence} if hour is not None else set()
        if used != {index for index, _ in target.readings}:
            raise _FailedError(
                "evidence", "the credential names readings that do not bound the hour"
            )
        if target.serial_end > metered:
            raise _FailedError(
                "evidence",
                f"serials run to {target.serial_end:,} but only {metered:,} Wh were metered",
            )
        return metered, {meter: len(series) for meter, series in points.items()}

    def _capacities(self, device: DeviceFacts) -> dict[str, int | None]:
        """Each device meter's registered capacity, from its proven `meter.registered/1`."""
        found: dict[str, int | None] = {}
        for index, entry in self.context.decoded.items():
            if entry["kind"] != METER_REGISTERED_KIND or entry.get("meter") not in device.meters:
                continue
            self._require_proven("plausibility", index, f"the registration of {entry['meter']}")
            found[entry["meter"]] = parse_meter_registration(entry).capacity_w
        return found

    def _run(
        self,
        meter: str,
        series: Sequence[tuple[ReadingEntry, bytes, int]],
        capacity: int | _Missing | None,
    ) -> list[ReadingPoint]:
        """One meter's evidence readings as points, after the continuity and plausibility
        checks: each names the one before it (`reading/2` prev), so none was left out, and
        each interval's energy is judged against the registered capacity (the rule of
        `ledger.meters.plausibility`, as ingestion flagged it)."""
        if isinstance(capacity, _Missing):
            raise _FailedError(
                "plausibility",
                f"the bundle holds no proven meter.registered/1 of meter {meter}, so the "
                "plausibility of its readings cannot be judged",
            )
        result: list[ReadingPoint] = []
        for position, (reading, digest, index) in enumerate(series):
            implausible = False
            if position:
                before, before_digest, before_index = series[position - 1]
                payload, previous = reading.payload, before.payload
                if reading.time <= before.time or payload.export_wh < previous.export_wh:
                    raise _FailedError("evidence", f"readings of meter {meter} do not run forward")
                if not reading.chained:
                    self.unlinked += 1
                elif reading.prev is None or (reading.prev.index, reading.prev.leaf_hash) != (
                    before_index,
                    before_digest,
                ):
                    named = "none" if reading.prev is None else f"entry {reading.prev.index}"
                    raise _FailedError(
                        "continuity",
                        f"reading {index} of meter {meter} follows {named}, not evidence "
                        f"reading {before_index}: the evidence leaves readings out",
                    )
                implausible = exceeds_capacity(
                    capacity,
                    reading.time - before.time,
                    payload.import_wh - previous.import_wh,
                    payload.export_wh - previous.export_wh,
                )
            result.append(
                ReadingPoint(
                    meter, index, digest, reading.time, reading.payload.export_wh, implausible
                )
            )
        return result

    # ---- lineage

    def lineage(self, lineage: Sequence[tuple[int, CredentialFacts]]) -> str:
        if len(lineage) == 1:
            return "a root certificate (not split from another)"
        for (parent_index, parent), (child_index, child) in itertools.pairwise(lineage):
            splits = [
                index
                for index, entry in self.context.decoded.items()
                if entry["kind"] == SPLIT_KIND and entry.get("certificate") == parent.certificate
            ]
            if len(splits) != 1:
                raise _FailedError(
                    "lineage", f"the bundle must hold the one split of {parent.certificate}"
                )
            split_index = splits[0]
            self._require_proven("lineage", split_index, f"the split of {parent.certificate}")
            parts = statement_facts(self.context.decoded[split_index], verify=False)["children"]
            if (child.certificate, child.serial_start, child.serial_end) not in parts:
                raise _FailedError(
                    "lineage", f"the split of {parent.certificate} did not make {child.certificate}"
                )
            if not parent_index < split_index < child_index:
                raise _FailedError(
                    "lineage", "issuance, split and re-issuance are out of log order"
                )
            same = {
                name: value
                for name, value in child.subject.items()
                if name
                not in {
                    "serialStart",
                    "serialEnd",
                    "volumeWh",
                    "serial",
                    "gecEquivalent",
                    "splitFrom",
                }
            }
            parent_same = {name: parent.subject[name] for name in same if name in parent.subject}
            if same != parent_same or child.evidence != parent.evidence:
                raise _FailedError(
                    "lineage",
                    f"{child.certificate} does not repeat its parent's subject and evidence",
                )
            if child.valid_until != parent.valid_until:
                raise _FailedError(
                    "lineage", f"{child.certificate} changed the parent's validUntil"
                )
        chain = " ← ".join(facts.certificate for _, facts in reversed(lineage))
        return f"split lineage proven: {chain}"

    # ---- status

    def status(self, lineage: Sequence[tuple[int, CredentialFacts]]) -> _Outcome:
        ids = [facts.certificate for _, facts in lineage]
        root = lineage[0][1]
        statements = sorted(
            (index, entry)
            for index, entry in self.context.decoded.items()
            if entry["kind"] in STATEMENT_KINDS and entry.get("certificate") in ids
        )
        state = CertificateState(
            certificate=root.certificate,
            device=root.device,
            hour_start=root.hour_start,
            serial_start=root.serial_start,
            serial_end=root.serial_end,
            account=str(self.context.decoded[lineage[0][0]]["account"]),
            valid_until=root.valid_until,
        )
        outcome = _Outcome(state)
        position = 0
        for index, entry in statements:
            kind = entry["kind"]
            self._require_proven("status", index, f"the {kind} statement")
            facts = statement_facts(entry, verify=False)
            self._require_issuer("status", facts["issuer"], index, f"the {kind} statement")
            if index < lineage[position][0]:
                raise _FailedError("status", f"statement {index} precedes the issuance it concerns")
            if facts["certificate"] != state.certificate:
                raise _FailedError(
                    "status",
                    f"statement {index} concerns {facts['certificate']}, which holds nothing then",
                )
            outcome.statements += 1
            try:
                state, position = _apply(
                    kind, facts, state, outcome=outcome, lineage=lineage, position=position
                )
            except RuleViolationError as exc:
                raise _FailedError(
                    "status", f"statement {index} breaks rule {exc.rule}: {exc}"
                ) from None
        if state.certificate != ids[-1]:
            raise _FailedError("status", "the bundle lacks the split that made this certificate")
        outcome.state = state
        return outcome


def _status_check(outcome: _Outcome, now: int) -> Check:
    state = outcome.state
    if state.status is CertificateStatus.WITHDRAWN:
        assert outcome.ended_at is not None
        when = format_utc(outcome.ended_at)
        return Check("status", FAILED, f"withdrawn by the issuer on {when}: {state.reason}")
    return Check("status", PASSED, _status_words(outcome, now))


def _status_words(outcome: _Outcome, now: int) -> str:
    state = outcome.state
    if state.status is CertificateStatus.RETIRED:
        facts = outcome.retirement
        assert facts is not None
        return (
            f"retired to {facts['beneficiary']} for {facts['purpose']}, "
            f"{format_utc_date(facts['periodStart'])} to {format_utc_date(facts['periodEnd'])}, "
            f"{facts['province']} ({facts['gridRegion']} grid), on {format_utc(facts['at'])}"
        )
    if state.status is CertificateStatus.EXPIRED:
        return f"expired on {format_utc(outcome.ended_at or state.valid_until)}"
    if state.status is CertificateStatus.SPLIT:
        return (
            f"split into {outcome.split_children} certificates on "
            f"{format_utc(outcome.ended_at or 0)}; it holds nothing itself now"
        )
    if now >= state.valid_until:
        return f"expired: valid until {format_utc(state.valid_until)}, which has passed"
    if outcome.transfers:
        times = "once" if outcome.transfers == 1 else f"{outcome.transfers} times"
        return (
            f"active, held by account {state.account} of organisation "
            f"{outcome.holder_organisation} (transferred {times}); valid until "
            f"{format_utc(state.valid_until)}"
        )
    return f"active, held by account {state.account}; valid until {format_utc(state.valid_until)}"


def _meters_words(per_meter: Mapping[str, int]) -> str:
    count = sum(per_meter.values())
    meters = ", ".join(sorted(per_meter))
    noun = "meter" if len(per_meter) == 1 else "meters"
    return f"{count} signed readings of {noun} {meters}"


def check_certificate(context: BundleContext) -> BundleFindings:
    """The bundle checker "certificate" (see the module docstring)."""
    if not any(entry["kind"] == ISSUED_KIND for entry in context.decoded.values()):
        return BundleFindings()
    analysis = _Analysis(context)
    checks: list[Check] = []
    step = "certificate"
    try:
        target, lineage = analysis.credentials()
        checks.append(
            Check(
                "certificate",
                PASSED,
                f"credential {target.certificate} is proven at index {lineage[-1][0]}; its "
                f"eddsa-jcs-2022 proof verifies",
            )
        )
        step = "issuer"
        declared = analysis.issuer(lineage)  # raises when a credential's issuer is wrong
        if context.trusted_issuers:
            checks.append(Check("issuer", PASSED, declared))
        else:
            # Any key can declare itself an issuer in a log its operator controls: without
            # a pinned issuer the credential proves only that *someone* signed it.
            checks.append(Check("issuer", NOT_CHECKED, f"{declared}; not pinned (--issuer)"))
        step = "device"
        device = analysis.device(lineage[0][0], target)
        checks.append(
            Check(
                "device",
                PASSED,
                f"device {device.device} of organisation {device.organisation} registered and "
                "approved by the issuer before issuance",
            )
        )
        step = "evidence"
        metered, per_meter = analysis.evidence(target, device)
        checks.append(
            Check(
                "evidence",
                PASSED,
                f"{_meters_words(per_meter)} show {metered:,} Wh metered in the hour, "
                f"covering serials up to {target.serial_end:,}",
            )
        )
        intervals = sum(per_meter.values()) - len(per_meter)
        if analysis.unlinked:
            checks.append(
                Check(
                    "continuity",
                    NOT_CHECKED,
                    f"{analysis.unlinked} of {intervals} evidence interval(s) end in a reading/1, "
                    "which names no previous reading: that none was left out is not shown",
                )
            )
        else:
            checks.append(
                Check(
                    "continuity",
                    PASSED,
                    f"each of the {intervals} evidence interval(s) is a reading naming the one "
                    "before it: no reading of the span is left out",
                )
            )
        checks.append(
            Check(
                "plausibility",
                PASSED,
                "no evidence interval exceeds its meter's registered capacity x interval x 1.1",
            )
        )
        step = "lineage"
        checks.append(Check("lineage", PASSED, analysis.lineage(lineage)))
        step = "status"
        outcome = analysis.status(lineage)
    except _FailedError as failed:
        checks.append(Check(failed.name, FAILED, str(failed)))
        return BundleFindings(tuple(checks))
    except EntryFormatError as problem:  # an entry that failed its own check, read again here
        checks.append(Check(step, FAILED, str(problem)))
        return BundleFindings(tuple(checks))
    status = _status_check(outcome, context.now)
    checks.append(status)
    subject = target.subject
    hour = target.hour_start
    proves = (
        f"certificate {target.certificate} proves {target.volume_wh:,} Wh "
        f"({gec_text(target.volume_wh)} GEC) of {target.energy_source} electricity from device "
        f"{target.device} ({subject['province']}, {subject['gridRegion']} grid), produced "
        f"{format_utc_date(hour)} {time.strftime('%H:%M', time.gmtime(hour))}\u2013"
        f"{time.strftime('%H:%M', time.gmtime(hour + HOUR))} UTC, serials {target.serial}"
    )
    if status.status == FAILED:
        summary = (f"certificate {target.certificate} is WITHDRAWN: {status.message}",)
    else:
        summary = (
            f"{proves}; {_meters_words(per_meter)} show {metered:,} Wh metered; "
            f"{status.message}; as of log size {context.bundle.anchor.size}",
        )
    return BundleFindings(tuple(checks), summary)


def _apply(
    kind: str,
    facts: Mapping[str, Any],
    state: CertificateState,
    *,
    outcome: _Outcome,
    lineage: Sequence[tuple[int, CredentialFacts]],
    position: int,
) -> tuple[CertificateState, int]:
    """One statement through `ledger.certificates.rules`: (next state, lineage position)."""
    at = facts["at"]
    if kind == TRANSFERRED_KIND:
        outcome.transfers += 1
        outcome.holder_organisation = facts["toOrganisation"]
        return rules.transfer(state, from_account=facts["from"], to_account=facts["to"], at=at), (
            position
        )
    if kind == SPLIT_KIND:
        parent, kids = rules.split(
            state, children=facts["children"], account=facts["account"], at=at
        )
        if position + 1 == len(lineage):  # the bundle's own certificate was split
            outcome.split_children = len(kids)
            outcome.ended_at = at
            return parent, position
        following = lineage[position + 1][1].certificate
        for kid in kids:
            if kid.certificate == following:
                return kid, position + 1
        raise RuleViolationError("split-partition", f"the split did not make {following}")
    outcome.ended_at = at
    if kind == RETIRED_KIND:
        outcome.retirement = dict(facts)
        return rules.retire(
            state, account=facts["account"], beneficiary=facts["beneficiary"], at=at
        ), position
    if kind == EXPIRED_KIND:
        return rules.expire(state, at=at), position
    return rules.withdraw(state, reason=facts["reason"], at=at), position


CERTIFICATES = Product(
    name="certificates",
    entry_checkers=_ENTRY_CHECKERS,
    bundle_checkers={"certificate": check_certificate},
)
