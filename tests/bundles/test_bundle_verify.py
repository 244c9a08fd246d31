"""Building proof bundles from the registry and verifying them end to end (embedded chain,
and once on anvil): what a bundle holds, which anchor it uses, and what the verifier says.
"""

from __future__ import annotations

import base64
import json
import statistics
from pathlib import Path

import pytest
from bundle_support import (
    Anchored,
    CachingReader,
    add_readings,
    anchor,
    free_port,
    open_test_registry,
    register_meter_with_key,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from meter_support import EPOCH

from attestation.bundles.build import BundleRequestError, NotYetAnchoredError, build_bundle
from attestation.bundles.chain_reader import ChainAnchorReader, rpc_anchor_reader
from attestation.bundles.format import (
    BUNDLE_FORMAT,
    BUNDLE_MEDIA_TYPE,
    MAX_REQUESTED_ENTRIES,
    ProofBundle,
    bundle_bytes,
    parse_bundle,
)
from attestation.bundles.report import (
    CheckStatus,
    EntryContext,
    Product,
    UnusableInputError,
    Verdict,
    report_lines,
)
from attestation.bundles.verify import PRODUCTS, verify_bundle
from attestation.chain.client import CarbonAnchor, log_id_for_origin
from attestation.chain.deployment import embedded_admin
from attestation.chain.embedded import Chain, open_embedded_chain
from ledger.log.canonical import canonical_json
from ledger.log.checkpoint import NoteSigner
from ledger.log.store import EntryNotFoundError
from ledger.meters.registration import revoke_key


def _names(report_checks: object) -> list[str]:
    assert isinstance(report_checks, tuple)
    return [check.name for check in report_checks]


def test_a_reading_bundle_verifies_end_to_end(anchored: Anchored) -> None:
    reading = anchored.meter.readings[0]
    bundle = build_bundle(anchored.registry.log, anchored.registry.signer, [reading])

    # The reading plus the proven registration of its key, in tree order.
    key_index = anchored.meter.key_index
    assert [entry.index for entry in bundle.entries] == [key_index, reading]
    assert bundle.keys.keys() == {anchored.meter.key.key_id}
    assert bundle.keys[anchored.meter.key.key_id].spki() == anchored.meter.key.spki
    head = anchored.registry.log.head()
    assert bundle.anchor.size == head.size and bundle.anchor.root == "0x" + head.root.hex()
    assert bundle.anchor.log_id == "0x" + log_id_for_origin(head.origin).hex()
    assert bundle.anchor.contract == anchored.contract.address
    assert base64.b64decode(bundle.entries[1].leaf) == anchored.registry.log.entry(reading)

    wire = bundle_bytes(bundle)
    assert json.loads(wire)["bundle"] == BUNDLE_FORMAT and "chainId" in json.loads(wire)["anchor"]
    assert parse_bundle(wire) == bundle, "the wire form parses back to the same bundle"
    assert BUNDLE_MEDIA_TYPE == "application/vnd.carbonledger.bundle+json"

    report = verify_bundle(
        wire,
        anchor_reader=anchored.reader,
        log_verifier_key=anchored.log_key,
        trusted_contract=anchored.contract.address,
        trusted_chain_id=anchored.contract.chain.chain_id,
    )
    assert report.ok and report.complete, report_lines(report)
    assert _names(report.checks) == [
        "format",
        "log-id",
        "checkpoint",
        f"inclusion[{key_index}]",
        f"inclusion[{reading}]",
        "keys",
        f"entry[{key_index}]",
        f"entry[{reading}]",
        "chain-id",
        "contract",
        "chain",
    ]
    reading_check = report.check(f"entry[{reading}]")
    assert reading_check is not None and "Ed25519 signature by key" in reading_check.message
    assert report.chain_seconds is not None and report.offline_seconds > 0
    lines = report_lines(report)
    assert lines[-1].startswith("VERIFIED ") and all(line[0] == "✓" for line in lines[:-1])


def test_several_entries_in_one_bundle_and_unknown_kinds(anchored: Anchored) -> None:
    readings = anchored.meter.readings
    registration = anchored.meter.key_index - 1  # the meter.registered/1 entry before the key
    bundle = build_bundle(
        anchored.registry.log, anchored.registry.signer, [readings[2], readings[0], registration]
    )
    indices = [entry.index for entry in bundle.entries]
    assert indices == sorted({registration, anchored.meter.key_index, readings[0], readings[2]})
    report = verify_bundle(bundle, anchor_reader=anchored.reader, log_verifier_key=anchored.log_key)
    assert report.ok, report_lines(report)
    # meter.registered/1 is checked (its capacity is what plausibility is judged by); no
    # chain or contract was pinned: not made, not failed.
    unchecked = {c.name for c in report.checks if c.status is CheckStatus.NOT_CHECKED}
    assert unchecked == {"chain-id", "contract"}
    (registered,) = [c for c in report.checks if c.name == f"entry[{registration}]"]
    assert registered.status is CheckStatus.PASSED and "meter.registered/1" in registered.message
    assert not report.complete
    assert report_lines(report)[-1].startswith("VERIFIED (some checks not made")


def test_an_es256_meter_and_two_meters_in_one_bundle(
    bundle_contract: CarbonAnchor, tmp_path: Path
) -> None:
    registry = open_test_registry(tmp_path, "test.carbonledger.local/bundles-es256")
    try:
        first = register_meter_with_key(registry, "meter-ed", "Ed25519")
        second = register_meter_with_key(registry, "meter-p256", "ES256")
        add_readings(registry, first, 1, meter="meter-ed")
        add_readings(registry, second, 2, meter="meter-p256")
        anchor(registry, bundle_contract)
        bundle = build_bundle(
            registry.log, registry.signer, [first.readings[0], second.readings[1]]
        )
        assert {key.alg for key in bundle.keys.values()} == {"Ed25519", "ES256"}
        assert [entry.index for entry in bundle.entries] == [
            first.key_index,
            second.key_index,
            first.readings[0],
            second.readings[1],
        ]
        report = verify_bundle(
            bundle,
            anchor_reader=ChainAnchorReader(bundle_contract.chain.w3),
            log_verifier_key=registry.signer.verifier,
            trusted_contract=bundle_contract.address,
            trusted_chain_id=bundle_contract.chain.chain_id,
        )
        assert report.complete, report_lines(report)
        message = report.check(f"entry[{second.readings[1]}]")
        assert message is not None and "ES256 signature" in message.message

        # Each reading must be signed by the key of its own meter: swap the keyIds.
        swapped = _swap_key_ids(bundle, first.key.key_id, second.key.key_id)
        report = verify_bundle(
            swapped,
            anchor_reader=ChainAnchorReader(bundle_contract.chain.w3),
            log_verifier_key=registry.signer.verifier,
        )
        failed = {check.name for check in report.failures}
        # The leaves changed, so their inclusion fails; and their signatures do not verify.
        assert failed == {
            f"inclusion[{first.readings[0]}]",
            f"inclusion[{second.readings[1]}]",
            f"entry[{first.readings[0]}]",
            f"entry[{second.readings[1]}]",
        }
    finally:
        registry.close()


def _swap_key_ids(bundle: ProofBundle, one: str, other: str) -> ProofBundle:
    document = bundle.to_json()
    for entry in document["entries"]:
        value = json.loads(base64.b64decode(entry["leaf"]))
        if value["kind"] in ("reading/1", "reading/2"):
            value["keyId"] = other if value["keyId"] == one else one
            entry["leaf"] = base64.b64encode(canonical_json(value)).decode()
    return parse_bundle(document)


def test_the_newest_covering_anchor_is_used(
    bundle_contract: CarbonAnchor, tmp_path: Path, database_url: str
) -> None:
    """On SQLite and PostgreSQL (the root conftest's `database_url`)."""
    # One origin per test instance: the contract is shared, and a logId anchors one history.
    origin = f"test.carbonledger.local/bundles-newest-{tmp_path.name}"
    registry = open_test_registry(tmp_path, origin, database_url)
    try:
        meter = register_meter_with_key(registry)
        add_readings(registry, meter, 1)
        first = anchor(registry, bundle_contract)
        add_readings(registry, meter, 2)
        second = anchor(registry, bundle_contract)
        bundle = build_bundle(registry.log, registry.signer, [meter.readings[0]])
        assert bundle.anchor.size == second.size > first.size
        assert bundle.anchor.tx == "0x" + second.tx_hash.hex()
        assert bundle.anchor.block == second.block
        reader = ChainAnchorReader(bundle_contract.chain.w3)
        report = verify_bundle(
            bundle, anchor_reader=reader, log_verifier_key=registry.signer.verifier
        )
        assert report.ok, report_lines(report)
    finally:
        registry.close()


def test_entries_not_yet_anchored_raise_a_typed_error(
    bundle_contract: CarbonAnchor, tmp_path: Path
) -> None:
    registry = open_test_registry(tmp_path, "test.carbonledger.local/bundles-pending")
    try:
        meter = register_meter_with_key(registry)
        add_readings(registry, meter, 1)
        with pytest.raises(NotYetAnchoredError) as nothing:
            build_bundle(registry.log, registry.signer, [meter.readings[0]])
        assert nothing.value.anchored_size is None
        assert nothing.value.indices == (meter.readings[0],)
        record = anchor(registry, bundle_contract)
        add_readings(registry, meter, 1)
        late = meter.readings[1]
        with pytest.raises(NotYetAnchoredError, match=f"at least {late + 1}") as pending:
            build_bundle(registry.log, registry.signer, [meter.readings[0], late])
        assert pending.value.anchored_size == record.size
        assert pending.value.log_size == registry.log.head().size == late + 1
        # The earlier reading alone is covered.
        assert build_bundle(registry.log, registry.signer, [meter.readings[0]]).anchor.size == (
            record.size
        )
    finally:
        registry.close()


def test_bad_requests(anchored: Anchored) -> None:
    log, signer = anchored.registry.log, anchored.registry.signer
    with pytest.raises(BundleRequestError, match="at least one"):
        build_bundle(log, signer, [])
    with pytest.raises(BundleRequestError, match="not negative"):
        build_bundle(log, signer, [-1])
    with pytest.raises(BundleRequestError, match=f"at most {MAX_REQUESTED_ENTRIES}"):
        build_bundle(log, signer, range(MAX_REQUESTED_ENTRIES + 1))
    with pytest.raises(EntryNotFoundError):
        build_bundle(log, signer, [log.head().size])


def test_a_revocation_in_the_bundle_fails_later_readings(
    bundle_contract: CarbonAnchor, tmp_path: Path
) -> None:
    registry = open_test_registry(tmp_path, "test.carbonledger.local/bundles-revoked")
    try:
        meter = register_meter_with_key(registry)
        add_readings(registry, meter, 3)
        # A compromise found late: revoked from the time of the second reading.
        revoked = revoke_key(
            registry.log,
            "bundle-meter-1",
            meter.key.key_id,
            organisation_id=meter.organisation,
            revoked_from=EPOCH.replace(minute=15),
        )
        anchor(registry, bundle_contract)
        reader = ChainAnchorReader(bundle_contract.chain.w3)
        key = registry.signer.verifier
        before = build_bundle(registry.log, registry.signer, [meter.readings[0]])
        assert revoked.revoked_log_index in [entry.index for entry in before.entries]
        assert verify_bundle(before, anchor_reader=reader, log_verifier_key=key).ok
        after = verify_bundle(
            build_bundle(registry.log, registry.signer, [meter.readings[1]]),
            anchor_reader=reader,
            log_verifier_key=key,
        )
        assert [check.name for check in after.failures] == [f"entry[{meter.readings[1]}]"]
        assert "revoked from 2026-06-01T00:15:00Z" in after.failures[0].message
    finally:
        registry.close()


def test_the_log_key_comes_from_the_verifier_not_the_bundle(anchored: Anchored) -> None:
    bundle = build_bundle(
        anchored.registry.log, anchored.registry.signer, [anchored.meter.readings[0]]
    )
    stranger = NoteSigner(anchored.log_key.name, Ed25519PrivateKey.generate()).verifier
    report = verify_bundle(bundle, anchor_reader=anchored.reader, log_verifier_key=stranger)
    assert [check.name for check in report.failures] == ["checkpoint"]
    assert "no signature by the trusted key" in report.failures[0].message

    # A checkpoint re-signed by the bundle's author under another key does not help either.
    forger = NoteSigner(anchored.log_key.name, Ed25519PrivateKey.generate())
    forged = bundle.model_copy(
        update={"checkpoint": anchored.registry.log.checkpoint(forger, bundle.anchor.size)}
    )
    report = verify_bundle(forged, anchor_reader=anchored.reader, log_verifier_key=anchored.log_key)
    assert [check.name for check in report.failures] == ["checkpoint"]


def test_pinned_contract_and_wrong_chain(anchored: Anchored, bundle_chain: Chain) -> None:
    bundle = build_bundle(
        anchored.registry.log, anchored.registry.signer, [anchored.meter.readings[0]]
    )
    other, _ = CarbonAnchor.deploy(bundle_chain, admin=embedded_admin(bundle_chain).address)
    report = verify_bundle(
        bundle,
        anchor_reader=anchored.reader,
        log_verifier_key=anchored.log_key,
        trusted_contract=other.address.lower(),
    )
    assert [check.name for check in report.failures] == ["contract"]

    # The same anchor claim against another contract: it holds no such root.
    moved = bundle.model_copy(
        update={"anchor": bundle.anchor.model_copy(update={"contract": other.address})}
    )
    report = verify_bundle(moved, anchor_reader=anchored.reader, log_verifier_key=anchored.log_key)
    assert [check.name for check in report.failures] == ["chain"]
    assert "holds no root" in report.failures[0].message


def test_unreachable_chain_is_a_failed_check(anchored: Anchored) -> None:
    bundle = build_bundle(
        anchored.registry.log, anchored.registry.signer, [anchored.meter.readings[0]]
    )
    reader = rpc_anchor_reader(f"http://127.0.0.1:{free_port()}", timeout=2)
    report = verify_bundle(bundle, anchor_reader=reader, log_verifier_key=anchored.log_key)
    assert [check.name for check in report.failures] == ["chain"]
    assert "could not be read" in report.failures[0].message


def test_unusable_input_raises(anchored: Anchored) -> None:
    with pytest.raises(UnusableInputError):
        verify_bundle(42, anchor_reader=anchored.reader, log_verifier_key=anchored.log_key)  # type: ignore[arg-type]
    with pytest.raises(UnusableInputError):
        verify_bundle(b"{}", anchor_reader=anchored.reader, log_verifier_key="key")  # type: ignore[arg-type]
    # Not JSON at all is a bundle that fails its format check, not an exception.
    reader = CachingReader(anchored.reader)
    report = verify_bundle(b"\xff", anchor_reader=reader, log_verifier_key=anchored.log_key)
    assert [check.name for check in report.checks] == ["format"] and not report.ok
    assert reader.calls == 0, "no chain lookup for a bundle that does not parse"


def test_offline_verification_is_fast(anchored: Anchored) -> None:
    """DESIGN §8: ≤ 5 ms for a one-reading bundle, excluding the chain lookup."""
    wire = bundle_bytes(
        build_bundle(anchored.registry.log, anchored.registry.signer, [anchored.meter.readings[0]])
    )
    reader = CachingReader(anchored.reader)
    times = []
    for _ in range(200):
        report = verify_bundle(wire, anchor_reader=reader, log_verifier_key=anchored.log_key)
        assert report.ok
        times.append(report.offline_seconds)
    median = statistics.median(times)
    print(f"offline bundle verification: median {median * 1000:.3f} ms over {len(times)} runs")
    assert median < 0.005


def test_a_restarted_embedded_chain_keeps_bundles_verifiable(tmp_path: Path) -> None:
    chain = open_embedded_chain(tmp_path / "node")
    registry = open_test_registry(tmp_path / "log", "test.carbonledger.local/bundles-restart")
    try:
        contract, _ = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
        meter = register_meter_with_key(registry)
        add_readings(registry, meter, 2)
        anchor(registry, contract)
        wire = bundle_bytes(build_bundle(registry.log, registry.signer, meter.readings))
        before = verify_bundle(
            wire,
            anchor_reader=ChainAnchorReader(chain.w3),
            log_verifier_key=registry.signer.verifier,
        )
        assert before.ok
        chain.close()
        # A fresh process: the chain is reopened from its state file.
        chain = open_embedded_chain(tmp_path / "node")
        after = verify_bundle(
            wire,
            anchor_reader=ChainAnchorReader(chain.w3),
            log_verifier_key=registry.signer.verifier,
            trusted_contract=contract.address,
            trusted_chain_id=contract.chain.chain_id,
        )
        assert after.complete, report_lines(after)
    finally:
        chain.close()
        registry.close()


def test_a_reading_bundle_verifies_on_anvil(anvil_anchored: Anchored) -> None:
    bundle = build_bundle(
        anvil_anchored.registry.log,
        anvil_anchored.registry.signer,
        anvil_anchored.meter.readings[1:],
    )
    assert bundle.anchor.chain_id == 31337
    report = verify_bundle(
        bundle_bytes(bundle),
        anchor_reader=anvil_anchored.reader,
        log_verifier_key=anvil_anchored.log_key,
        trusted_contract=anvil_anchored.contract.address,
        trusted_chain_id=anvil_anchored.contract.chain.chain_id,
    )
    assert report.complete, report_lines(report)
    tampered = ProofBundle.model_validate(
        {
            **bundle.to_json(),
            "anchor": {**bundle.to_json()["anchor"], "block": bundle.anchor.block + 1},
        },
        by_alias=True,
        by_name=False,
    )
    report = verify_bundle(
        tampered, anchor_reader=anvil_anchored.reader, log_verifier_key=anvil_anchored.log_key
    )
    assert [check.name for check in report.failures] == ["chain"]
    assert f"not {bundle.anchor.block + 1}" in report.failures[0].message


def accept_one(context: EntryContext) -> Verdict:
    assert context.included and context.entry["value"] == 1
    return Verdict(CheckStatus.PASSED, "value 1 is fine")


def refuse(context: EntryContext) -> Verdict:
    return Verdict(CheckStatus.FAILED, f"value {context.entry['value']} is wrong")


def crash(context: EntryContext) -> Verdict:
    raise KeyError("bug in a plug-in")


TEST_PRODUCT = Product(
    name="test",
    entry_checkers={
        "test.plugin-ok/1": accept_one,
        "test.plugin-bad/1": refuse,
        "test.plugin-crash/1": crash,
    },
)


def test_entry_kinds_plug_in(bundle_contract: CarbonAnchor, tmp_path: Path) -> None:
    registry = open_test_registry(tmp_path, "test.carbonledger.local/bundles-plugins")
    try:
        first, second, third = registry.log.append(
            [
                {"kind": "test.plugin-ok/1", "value": 1},
                {"kind": "test.plugin-bad/1", "value": 2},
                {"kind": "test.plugin-crash/1", "value": 3},
            ]
        )
        anchor(registry, bundle_contract)
        bundle = build_bundle(registry.log, registry.signer, [first, second, third])
        without = verify_bundle(
            bundle,
            anchor_reader=ChainAnchorReader(bundle_contract.chain.w3),
            log_verifier_key=registry.signer.verifier,
        )
        # The registry's own products know no test.* kind: an unknown kind FAILS (attack 7 of
        # issue 11: a forger would otherwise pick a kind no checker looks at).
        unknown = [check for check in without.checks if check.name.startswith("entry[")]
        assert {check.status for check in unknown} == {CheckStatus.FAILED}
        assert all("unknown entry kind" in check.message for check in unknown)
        assert not without.ok
        with pytest.raises(ValueError, match="checkers in two products"):
            verify_bundle(
                bundle,
                anchor_reader=ChainAnchorReader(bundle_contract.chain.w3),
                log_verifier_key=registry.signer.verifier,
                products=(*PRODUCTS, TEST_PRODUCT, TEST_PRODUCT),
            )
        report = verify_bundle(
            bundle,
            anchor_reader=ChainAnchorReader(bundle_contract.chain.w3),
            log_verifier_key=registry.signer.verifier,
            products=(*PRODUCTS, TEST_PRODUCT),
        )
        statuses = {check.name: check.status for check in report.checks}
        assert statuses[f"entry[{first}]"] is CheckStatus.PASSED
        assert statuses[f"entry[{second}]"] is CheckStatus.FAILED
        assert statuses[f"entry[{third}]"] is CheckStatus.FAILED
        crashed = report.check(f"entry[{third}]")
        assert crashed is not None and "checker failed: KeyError" in crashed.message
        assert {check.name for check in report.failures} == {f"entry[{second}]", f"entry[{third}]"}
    finally:
        registry.close()
