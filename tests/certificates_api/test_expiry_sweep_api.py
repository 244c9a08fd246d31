"""The certificate expiry sweep the app lifespan runs (CARBONLEDGER_EXPIRY_SWEEP_SECONDS)."""

from __future__ import annotations

import time

from certificate_support import producer_scenario
from fastapi.testclient import TestClient
from meter_support import T0
from sqlalchemy import select

from api.app import CertificateExpiryService, create_app
from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.certificates.issuance import issue_certificates
from ledger.certificates.models import Certificate
from ledger.certificates.rules import HOUR
from ledger.log.canonical import parse_entry
from ledger.registry import Registry
from ledger.settings import LedgerSettings


def _app_settings(settings: LedgerSettings, sweep_seconds: float) -> ApiSettings:
    api_settings = ApiSettings(**settings.model_dump(), expiry_sweep_seconds=sweep_seconds)
    ensure_token_secret(api_settings)
    return api_settings


def _statuses(registry: Registry) -> set[str]:
    with registry.database.read() as session:
        return set(session.scalars(select(Certificate.status)))


def test_sweep_thread_expires_due_certificates_and_stops(
    registry: Registry, settings: LedgerSettings
) -> None:
    scenario = producer_scenario(registry, hours=12)
    # One month of validity after production in June 2026: due at once.
    issued = issue_certificates(
        registry.log,
        registry.issuer(),
        organisation_id=scenario.producer,
        device_id=scenario.device,
        account_id=scenario.producer_account,
        start=T0,
        end=T0 + 12 * HOUR,
        anchored_size=registry.log.head().size,
        validity_months=1,
    )
    assert issued.issued and _statuses(registry) == {"active"}
    size = registry.log.head().size

    with TestClient(create_app(_app_settings(settings, 0.05))) as client:
        service = client.app.state.expiry  # type: ignore[attr-defined]
        assert isinstance(service, CertificateExpiryService) and service.running
        deadline = time.monotonic() + 20
        while _statuses(registry) != {"expired"}:
            assert time.monotonic() < deadline, service.last_error
            time.sleep(0.05)
        while service.sweeps < 2:  # it keeps sweeping; an idle sweep writes nothing
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert service.expired == len(issued.issued)
    assert not service.running, "the lifespan stops the sweep on shutdown"
    assert registry.log.head().size == size + len(issued.issued)
    kinds = {
        parse_entry(registry.log.entry(index))["kind"]
        for index in range(size, registry.log.head().size)
    }
    assert kinds == {"certificate.expired/1"}


def test_sweep_off_with_zero_and_default_sweeps_at_start_and_stops_at_once(
    registry: Registry, settings: LedgerSettings
) -> None:
    with TestClient(create_app(_app_settings(settings, 0))) as client:
        assert client.app.state.expiry is None  # type: ignore[attr-defined]
    started = time.monotonic()
    with TestClient(create_app(_app_settings(settings, 3600))) as client:
        service = client.app.state.expiry  # type: ignore[attr-defined]
        assert isinstance(service, CertificateExpiryService) and service.running
        while service.sweeps < 1:  # the first sweep runs at start-up, not after an hour
            assert time.monotonic() - started < 20, service.last_error
            time.sleep(0.02)
    assert not service.running
    assert time.monotonic() - started < 20, "shutdown does not wait for the next sweep"
    # Nothing was due: the sweep wrote nothing (not even the issuer's key declaration).
    assert service.sweeps == 1 and service.last_error is None
    assert registry.log.head().size == 0
