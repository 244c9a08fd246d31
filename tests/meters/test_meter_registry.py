"""The meter registry in `ledger.meters.registration`: every change is a leaf, every refusal
changes nothing."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from meter_support import (
    EPOCH,
    add_meter,
    consumption_spec,
    generation_spec,
    new_key,
    new_organisation,
    snapshot,
)

from ledger.log.canonical import parse_entry
from ledger.meters.entries import MeterRole
from ledger.meters.readings import public_key_spki
from ledger.meters.registration import (
    KeyAlreadyRevokedError,
    KeyExistsError,
    KeyNotFoundError,
    MeterError,
    MeterExistsError,
    MeterNotFoundError,
    MeterNotOwnedError,
    MeterSpec,
    get_meter,
    register_key,
    register_meter,
    revoke_key,
)
from ledger.registry import Registry


def test_registering_a_generator_writes_its_registration_leaf(registry: Registry) -> None:
    organisation = new_organisation(registry)
    meter = register_meter(registry.log, organisation, generation_spec("pv-1", capacity_w=5_000))

    assert registry.log.head().size == 1
    assert parse_entry(registry.log.entry(meter.log_index)) == {
        "kind": "meter.registered/1",
        "meter": "pv-1",
        "organisation": organisation,
        "role": "generation",
        "province": "CN-JS",
        "gridRegion": "east",
        "energySource": "solar",
        "capacityW": 5_000,
        "registeredAt": meter.registered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    stored = get_meter(registry.database, "pv-1")
    assert (stored.organisation_id, stored.role, stored.capacity_w) == (
        organisation,
        MeterRole.GENERATION,
        5_000,
    )
    assert stored.keys == ()


def test_a_consumption_meter_leaf_has_no_source_or_capacity(registry: Registry) -> None:
    organisation = new_organisation(registry)
    meter = register_meter(registry.log, organisation, consumption_spec("home-1"))
    entry = parse_entry(registry.log.entry(meter.log_index))
    assert entry["role"] == "consumption"
    assert "energySource" not in entry and "capacityW" not in entry


@pytest.mark.parametrize(
    "spec",
    [
        MeterSpec("pv-x", MeterRole.GENERATION, "CN-JS", generation_spec("a").grid_region),
        generation_spec("bad id with spaces"),
        MeterSpec("pv-x", MeterRole.CONSUMPTION, "Jiangsu", generation_spec("a").grid_region),
        generation_spec("pv-x", capacity_w=0),
    ],
    ids=["generator-without-capacity", "bad-meter-id", "province-not-iso", "zero-capacity"],
)
def test_invalid_meters_are_refused_without_a_leaf(registry: Registry, spec: MeterSpec) -> None:
    organisation = new_organisation(registry)
    before = snapshot(registry)
    with pytest.raises(MeterError):
        register_meter(registry.log, organisation, spec)
    assert snapshot(registry) == before


def test_a_meter_id_is_registered_once_across_organisations(registry: Registry) -> None:
    first, second = new_organisation(registry), new_organisation(registry)
    add_meter(registry, first, generation_spec("pv-1"))
    before = snapshot(registry)
    with pytest.raises(MeterExistsError):
        register_meter(registry.log, second, generation_spec("pv-1"))
    assert snapshot(registry) == before
    assert get_meter(registry.database, "pv-1").organisation_id == first


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_a_key_leaf_names_meter_key_and_algorithm(registry: Registry, alg: str) -> None:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-1"))
    key = new_key(alg)
    valid_from = EPOCH - timedelta(days=30)

    record = register_key(
        registry.log, "pv-1", key.spki, organisation_id=organisation, valid_from=valid_from
    )

    assert (record.key_id, record.alg) == (key.key_id, alg)
    assert parse_entry(registry.log.entry(record.log_index)) == {
        "kind": "meter.key/1",
        "meter": "pv-1",
        "keyId": key.key_id,
        "alg": alg,
        "publicKey": base64.b64encode(key.spki).decode(),
        "organisation": organisation,
        "validFrom": valid_from.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert get_meter(registry.database, "pv-1").keys == (record,)


def test_keys_that_cannot_sign_readings_are_refused(registry: Registry) -> None:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-1"))
    p384 = public_key_spki(ec.generate_private_key(ec.SECP384R1()).public_key())
    before = snapshot(registry)
    for der in (p384, b"not DER at all"):
        with pytest.raises(MeterError, match=r"P-256|DER"):
            register_key(registry.log, "pv-1", der, organisation_id=organisation)
    assert snapshot(registry) == before


def test_a_key_belongs_to_one_meter_only(registry: Registry) -> None:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-1"))
    add_meter(registry, organisation, generation_spec("pv-2"))
    key = new_key()
    register_key(registry.log, "pv-1", key.spki, organisation_id=organisation)
    before = snapshot(registry)
    for meter in ("pv-1", "pv-2"):
        with pytest.raises(KeyExistsError):
            register_key(registry.log, meter, key.spki, organisation_id=organisation)
    assert snapshot(registry) == before


def test_another_organisation_cannot_touch_the_meter(registry: Registry) -> None:
    owner, other = new_organisation(registry), new_organisation(registry)
    add_meter(registry, owner, generation_spec("pv-1"))
    key = new_key()
    kid = register_key(registry.log, "pv-1", key.spki, organisation_id=owner).key_id
    before = snapshot(registry)
    with pytest.raises(MeterNotOwnedError):
        register_key(registry.log, "pv-1", new_key().spki, organisation_id=other)
    with pytest.raises(MeterNotOwnedError):
        revoke_key(registry.log, "pv-1", kid, organisation_id=other)
    assert snapshot(registry) == before
    assert get_meter(registry.database, "pv-1").keys[0].revoked_from is None


def test_revocation_writes_its_leaf_once(registry: Registry) -> None:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-1"))
    key = new_key()
    register_key(registry.log, "pv-1", key.spki, organisation_id=organisation, valid_from=EPOCH)
    revoked_from = EPOCH + timedelta(hours=5)

    record = revoke_key(
        registry.log, "pv-1", key.key_id, organisation_id=organisation, revoked_from=revoked_from
    )

    assert record.revoked_from == int(revoked_from.timestamp())
    assert record.revoked_log_index is not None
    assert parse_entry(registry.log.entry(record.revoked_log_index)) == {
        "kind": "meter.key-revoked/1",
        "meter": "pv-1",
        "keyId": key.key_id,
        "organisation": organisation,
        "revokedFrom": "2026-06-01T05:00:00Z",
    }
    assert not record.active_at(record.revoked_from)
    assert record.active_at(record.revoked_from - 1)
    before = snapshot(registry)
    with pytest.raises(KeyAlreadyRevokedError):
        revoke_key(registry.log, "pv-1", key.key_id, organisation_id=organisation)
    assert snapshot(registry) == before


def test_revocation_errors_change_nothing(registry: Registry) -> None:
    organisation = new_organisation(registry)
    add_meter(registry, organisation, generation_spec("pv-1"))
    key = new_key()
    register_key(registry.log, "pv-1", key.spki, organisation_id=organisation, valid_from=EPOCH)
    before = snapshot(registry)
    with pytest.raises(MeterError, match="before the key's validFrom"):
        revoke_key(
            registry.log,
            "pv-1",
            key.key_id,
            organisation_id=organisation,
            revoked_from=EPOCH - timedelta(seconds=1),
        )
    with pytest.raises(KeyNotFoundError):
        revoke_key(registry.log, "pv-1", "0" * 32, organisation_id=organisation)
    with pytest.raises(MeterNotFoundError):
        revoke_key(registry.log, "nope", key.key_id, organisation_id=organisation)
    assert snapshot(registry) == before
