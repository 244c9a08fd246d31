"""What a bundle check produces, and the interface of the per-product checkers.

Every check of `carbonledger verify` is a `Check` (name, pass/fail/not-checked, the sentence
the CLI prints). The verifier (`attestation.bundles.verify`) runs its own checks — format,
log id, checkpoint, inclusion, contract, chain — and hands each entry and then the whole
bundle to the checkers of the products it knows (`Product`: meters and readings,
certificates; later points and passports). A product module imports this module and
nothing of the verifier, so no module imports back the one that imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from attestation.bundles.format import ProofBundle


class CheckStatus(StrEnum):
    PASSED = "pass"
    FAILED = "fail"
    NOT_CHECKED = "not-checked"
    """The check could not be made (unknown entry kind, no pinned contract): not a failure."""


PASSED, FAILED, NOT_CHECKED = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.NOT_CHECKED


class UnusableInputError(TypeError):
    """The verifier was called with something that is not a bundle or not a trusted key."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: CheckStatus
    message: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    checks: tuple[Check, ...]
    offline_seconds: float
    """Time of everything but the chain lookup (parsing included)."""
    chain_seconds: float | None
    """Time of the chain lookup; None when it was not made (the bundle did not parse)."""
    bundle: ProofBundle | None
    summary: tuple[str, ...] = ()
    """Plain-words statements of what the bundle proves, from the bundle checkers."""

    @property
    def ok(self) -> bool:
        """No check failed (checks that could not be made do not count as failures)."""
        return bool(self.checks) and all(check.status != FAILED for check in self.checks)

    @property
    def complete(self) -> bool:
        """`ok`, and every check was actually made (all entry kinds known, contract pinned)."""
        return self.ok and all(check.status == PASSED for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status == FAILED)

    def check(self, name: str) -> Check | None:
        return next((check for check in self.checks if check.name == name), None)


_MARKS: dict[CheckStatus, str] = {PASSED: "✓", FAILED: "✗", NOT_CHECKED: "-"}


def report_lines(report: VerificationReport) -> list[str]:
    """Human-readable lines, one per check then a verdict: what `carbonledger verify` prints."""
    width = max((len(check.name) for check in report.checks), default=0)
    lines = [f"{_MARKS[c.status]} {c.name:<{width}}  {c.message}" for c in report.checks]
    if report.ok:
        verdict = "VERIFIED" if report.complete else "VERIFIED (some checks not made, see -)"
    else:
        verdict = "FAILED: " + ", ".join(check.name for check in report.failures)
    lines.append(f"{verdict}  (offline {report.offline_seconds * 1000:.2f} ms)")
    if report.ok:  # what was proven, only when it was (a failed check carries its reason)
        lines.extend(report.summary)
    return lines


# ----------------------------------------------------------------- the checkers' interface


@dataclass(frozen=True, slots=True)
class ProvenKey:
    """A meter key whose `meter.key/1` entry this bundle proves to be in the anchored log."""

    key_id: str
    meter: str
    alg: str
    spki: bytes
    valid_from: int
    index: int
    revoked_from: int | None = None
    revoked_index: int | None = None


@dataclass(frozen=True, slots=True)
class EntryContext:
    index: int
    entry: Mapping[str, Any]
    """The decoded leaf (checked to be canonical JCS with a `kind`)."""
    included: bool
    """Whether the entry's inclusion proof verified against the anchored root."""
    keys: Mapping[str, ProvenKey]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: CheckStatus
    message: str


@dataclass(frozen=True, slots=True)
class BundleContext:
    """What a bundle-level checker sees, after the inclusion and entry checks."""

    bundle: ProofBundle
    decoded: Mapping[int, Mapping[str, Any]]
    """Every entry whose leaf is canonical JSON with a `kind`, by index."""
    included: Mapping[int, bool]
    """Per entry index: whether its inclusion proof verified against the anchored root."""
    entry_checks: Mapping[int, Check]
    """Per entry index: the result of its own `entry[i]` check."""
    keys: Mapping[str, ProvenKey]
    trusted_issuers: tuple[str, ...]
    """The credential issuer DIDs the verifier trusts; empty: none pinned, so the `issuer`
    check is not made (and the report is incomplete)."""
    now: int
    """The verifier's clock (seconds since the epoch), for statuses such as expiry."""


@dataclass(frozen=True, slots=True)
class BundleFindings:
    checks: tuple[Check, ...] = ()
    summary: tuple[str, ...] = ()


EntryChecker = Callable[[EntryContext], Verdict]
BundleChecker = Callable[[BundleContext], BundleFindings]
"""Runs on every bundle after the entry checks; returns no findings when the bundle holds
nothing it concerns."""


@dataclass(frozen=True, slots=True)
class Product:
    """The checks one product contributes: one per entry kind it defines, and bundle-level
    checks that need several entries at once (named as the checks they produce)."""

    name: str
    entry_checkers: Mapping[str, EntryChecker]
    bundle_checkers: Mapping[str, BundleChecker] = field(default_factory=dict)
