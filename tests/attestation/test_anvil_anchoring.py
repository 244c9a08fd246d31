"""Against a real anvil node: deploy from the artifact, anchor a growing ledger Log many
times with proofs from `Log.consistency_proof`, and watch the contract refuse every kind of
bad anchor with the custom error that names the check (decoded from JSON-RPC revert data).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from anchor_support import (
    ANVIL_CHAIN_ID,
    ANVIL_KEYS,
    admin_of,
    expect_revert,
    free_loopback_port,
    register_log,
)

from attestation.chain.client import (
    DEFAULT_MAX_GROWTH,
    CarbonAnchor,
    Chain,
    log_id_for_origin,
    open_rpc_chain,
)
from attestation.chain.errors import ChainError
from ledger.log.store import Log
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

ORIGIN = "test.carbonledger.local/anvil"


def _entries(start: int, count: int) -> list[dict[str, object]]:
    return [{"kind": "test/1", "n": n} for n in range(start, start + count)]


def _registry(path: Path, origin: str = ORIGIN) -> Registry:
    return initialise_registry(LedgerSettings(data_dir=path, log_origin=origin))


@pytest.fixture(scope="module")
def grown(
    anvil_anchor: CarbonAnchor, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Log, bytes, list[int]]]:
    """A log anchored 20 times as it grew in uneven batches; yields (log, logId, sizes)."""
    registry = _registry(tmp_path_factory.mktemp("anvil-log"))
    log_id = log_id_for_origin(ORIGIN)
    register_log(anvil_anchor, log_id)
    rng = random.Random(9162)
    sizes: list[int] = []
    for _ in range(20):
        head = registry.log.head()
        registry.log.append(_entries(head.size, rng.choice([1, 2, 3, 7, 16, 33, 100])))
        head = registry.log.head()
        previous = anvil_anchor.latest(log_id)
        proof = registry.log.consistency_proof(previous.size, head.size) if previous.size else None
        receipt = anvil_anchor.anchor(log_id, head.size, head.root, proof.hashes if proof else [])
        assert receipt.gas_used < 200_000, "DESIGN §8: at most 200k gas per anchor"
        sizes.append(head.size)
    yield registry.log, log_id, sizes
    registry.close()


def test_growing_log_is_anchored_at_every_size(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, sizes = grown
    assert sizes == sorted(set(sizes)) and len(sizes) == 20
    head = log.head()
    assert anvil_anchor.latest(log_id).size == head.size
    assert anvil_anchor.latest(log_id).root == head.root
    for size in sizes:
        assert anvil_anchor.root_at(log_id, size) == log.root_at(size)
    # Inclusion against anchored roots, as another contract would check a certificate.
    for index in (0, sizes[0] - 1, head.size // 2, head.size - 1):
        size = next(s for s in sizes if s > index)
        proof = log.inclusion_proof(index, size)
        assert anvil_anchor.verify_inclusion(log_id, size, proof.leaf_hash, index, proof.hashes)
        assert not anvil_anchor.verify_inclusion(
            log_id,
            size,
            log.inclusion_proof(index + 1, size).leaf_hash if index + 1 < size else b"\x00" * 32,
            index,
            proof.hashes,
        )


def test_unknown_size_is_reported(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    _, log_id, sizes = grown
    between = next(size for size in range(1, sizes[-1]) if size not in sizes)
    revert = expect_revert(lambda: anvil_anchor.root_at(log_id, between))
    assert revert.error == "UnknownAnchor"
    assert revert.arguments == {"logId": log_id, "size": between}


def test_rejects_non_growing_size(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, _ = grown
    head = log.head()
    for size in (head.size, head.size - 1):
        revert = expect_revert(lambda s=size: anvil_anchor.anchor(log_id, s, log.root_at(s), []))
        assert revert.error == "SizeNotGrowing"
        assert revert.arguments == {"previous": head.size, "given": size}


def test_rejects_forged_and_truncated_proofs(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, _ = grown
    old = log.head()
    log.append(_entries(old.size, 5))
    new = log.head()
    proof = list(log.consistency_proof(old.size, new.size).hashes)
    assert len(proof) >= 2
    for position in range(len(proof)):
        forged = list(proof)
        forged[position] = bytes([forged[position][0] ^ 0x80]) + forged[position][1:]
        revert = expect_revert(lambda f=forged: anvil_anchor.anchor(log_id, new.size, new.root, f))
        assert revert.error in {"OldRootMismatch", "NewRootMismatch"}, revert
    revert = expect_revert(lambda: anvil_anchor.anchor(log_id, new.size, new.root, proof[:-1]))
    assert revert.error == "ProofLengthMismatch"
    assert revert.arguments["got"] == len(proof) - 1
    assert revert.arguments["expected"] == len(proof)
    # A new root that the (genuine) proof does not lead to.
    revert = expect_revert(lambda: anvil_anchor.anchor(log_id, new.size, b"\x42" * 32, proof))
    assert revert.error == "NewRootMismatch"
    # Nothing was anchored by the refused attempts; the genuine one still goes through.
    assert anvil_anchor.latest(log_id).size == old.size
    anvil_anchor.anchor(log_id, new.size, new.root, proof)
    assert anvil_anchor.latest(log_id).root == new.root


def test_rejects_a_root_that_rewrites_an_anchored_entry(
    anvil_anchor: CarbonAnchor,
    grown: tuple[Log, bytes, list[int]],
    tmp_path: Path,
) -> None:
    log, log_id, _ = grown
    anchored = anvil_anchor.latest(log_id)
    # Same origin, same entries, except one entry well inside the anchored prefix.
    rewritten = _registry(tmp_path / "rewritten")
    try:
        victim = anchored.size // 3
        entries = _entries(0, anchored.size + 10)
        entries[victim] = {"kind": "test/1", "n": victim, "rewritten": True}
        for start in range(0, len(entries), 1000):
            rewritten.log.append(entries[start : start + 1000])
        forged_head = rewritten.log.head()
        assert rewritten.log.root_at(victim) == log.root_at(victim), "prefix before it is shared"
        assert rewritten.log.root_at(anchored.size) != anchored.root
        proof = rewritten.log.consistency_proof(anchored.size, forged_head.size)
        revert = expect_revert(
            lambda: anvil_anchor.anchor(log_id, forged_head.size, forged_head.root, proof.hashes)
        )
        assert revert.error == "OldRootMismatch"
    finally:
        rewritten.close()


def test_rejects_a_caller_that_is_not_the_logs_anchorer(
    anvil_anchor: CarbonAnchor, anvil_outsider: Chain, grown: tuple[Log, bytes, list[int]]
) -> None:
    log, log_id, _ = grown
    outsider = CarbonAnchor(anvil_outsider, anvil_anchor.address)
    head = anvil_anchor.latest(log_id)
    log.append(_entries(log.head().size, 1))
    new = log.head()
    proof = log.consistency_proof(head.size, new.size).hashes
    assert anvil_anchor.log_config(log_id).anchorer != anvil_outsider.account.address
    revert = expect_revert(lambda: outsider.anchor(log_id, new.size, new.root, proof))
    assert revert.error == "NotAnchorer"
    assert revert.arguments == {"logId": log_id, "caller": anvil_outsider.account.address}
    # Mined without the gas-estimate preflight, the revert is decoded from the failed
    # transaction and names it.
    revert = expect_revert(
        lambda: outsider.anchor(log_id, new.size, new.root, proof, preflight=False)
    )
    assert revert.error == "NotAnchorer"
    assert revert.tx_hash is not None
    assert anvil_anchor.latest(log_id) == head


# ----------------------------------------------- issue 11, attack 9: the anchorer key


def test_attack_a_stolen_anchorer_key_cannot_anchor_a_huge_fabricated_size(
    anvil_anchor: CarbonAnchor, grown: tuple[Log, bytes, list[int]]
) -> None:
    """The thief holds the service's anchorer key and sends size 2^62 with a made-up
    proof (which the RFC 9162 check alone could not tell from an honest extension)."""
    log, log_id, _ = grown
    head = anvil_anchor.latest(log_id)
    fabricated = [bytes([i]) * 32 for i in range(1, 63)]
    for preflight in (True, False):
        revert = expect_revert(
            lambda p=preflight: anvil_anchor.anchor(
                log_id, 1 << 62, b"\x66" * 32, fabricated, preflight=p
            )
        )
        assert revert.error == "GrowthAboveLimit"
        assert revert.arguments == {
            "previous": head.size,
            "given": 1 << 62,
            "maxGrowth": DEFAULT_MAX_GROWTH,
        }
    assert anvil_anchor.latest(log_id) == head
    assert log.head().size >= head.size  # the honest log can still anchor (next tests do)


def test_attack_an_unregistered_log_cannot_be_anchored(
    anvil_anchor: CarbonAnchor, anvil_outsider: Chain
) -> None:
    """A forked log (any origin nobody registered) has no free first anchor, for anyone."""
    log_id = log_id_for_origin("test.carbonledger.local/forked-and-never-registered")
    for contract in (anvil_anchor, CarbonAnchor(anvil_outsider, anvil_anchor.address)):
        revert = expect_revert(lambda c=contract: c.anchor(log_id, 5, b"\x01" * 32, []))
        assert revert.error == "LogNotRegistered"
        assert revert.arguments == {"logId": log_id}
    assert anvil_anchor.latest(log_id).size == 0


def test_attack_the_anchorer_key_cannot_rotate_itself_or_register_logs(
    anvil_anchor: CarbonAnchor, anvil_outsider: Chain, grown: tuple[Log, bytes, list[int]]
) -> None:
    _, log_id, _ = grown
    thief = anvil_anchor.chain.account  # the anchorer key itself
    accomplice = anvil_outsider.account.address
    attempts = {
        "rotate": lambda: anvil_anchor.set_anchorer(log_id, accomplice, admin=thief),
        "register": lambda: anvil_anchor.register_log(
            log_id_for_origin("test.carbonledger.local/thief"), thief.address, admin=thief
        ),
        "revoke": lambda: anvil_anchor.revoke_anchors_above(log_id, 0, admin=thief),
    }
    for what, attempt in attempts.items():
        revert = expect_revert(attempt)
        assert revert.error == "AccessControlUnauthorizedAccount", what
        assert revert.arguments["account"] == thief.address
    # Nor can the admin make an anchorer an admin: the keys stay separate.
    admin = admin_of(anvil_anchor.chain)
    role = anvil_anchor.contract.functions.DEFAULT_ADMIN_ROLE().call()
    grant = anvil_anchor.contract.functions.grantRole(role, thief.address)
    revert = expect_revert(lambda: anvil_anchor._transact(grant, admin))
    assert revert.error == "AnchorerIsAdmin"
    assert anvil_anchor.log_config(log_id).anchorer == thief.address
    assert not anvil_anchor.is_admin(thief.address)


def test_recovery_after_a_fabricated_anchor_within_the_bound(
    anvil_anchor: CarbonAnchor, anvil_outsider: Chain, tmp_path: Path
) -> None:
    """Within the growth bound the thief can still anchor a made-up extension; the cold
    admin key rotates the anchorer, revokes the fabricated anchor, and the honest log
    anchors again. The revoked anchor stays visible and is refused by `rootAt`."""
    registry = _registry(tmp_path / "victim", "test.carbonledger.local/anvil-recovery")
    try:
        log = registry.log
        log_id = log_id_for_origin(log.head().origin)
        register_log(anvil_anchor, log_id)
        log.append(_entries(0, 5))
        honest = log.head()
        anvil_anchor.anchor(log_id, honest.size, honest.root, [])
        # The thief's fork: the same 5 entries, then 3 fabricated ones.
        fork = _registry(tmp_path / "fork", log.head().origin)
        try:
            fork.log.append(
                _entries(0, 5) + [{"kind": "test/1", "fabricated": n} for n in range(3)]
            )
            fake = fork.log.head()
            fake_proof = fork.log.consistency_proof(honest.size, fake.size).hashes
            anvil_anchor.anchor(log_id, fake.size, fake.root, fake_proof)
        finally:
            fork.close()
        log.append(_entries(5, 7))
        now = log.head()
        revert = expect_revert(
            lambda: anvil_anchor.anchor(
                log_id, now.size, now.root, log.consistency_proof(fake.size, now.size).hashes
            )
        )
        assert revert.error in {"OldRootMismatch", "NewRootMismatch"}
        admin = admin_of(anvil_anchor.chain)
        anvil_anchor.set_anchorer(log_id, anvil_outsider.account.address, admin=admin)
        anvil_anchor.revoke_anchors_above(log_id, honest.size, admin=admin)
        revert = expect_revert(lambda: anvil_anchor.root_at(log_id, fake.size))
        assert revert.error == "AnchorRevokedAt"
        config = anvil_anchor.log_config(log_id)
        assert (config.size, config.revoked) == (honest.size, 1)
        rotated = CarbonAnchor(anvil_outsider, anvil_anchor.address)
        proof = log.consistency_proof(honest.size, now.size).hashes
        rotated.anchor(log_id, now.size, now.root, proof, map_root=b"\x07" * 32)
        entry = rotated.anchor_at(log_id, now.size)
        assert (entry.root, entry.map_root, entry.previous_size) == (now.root, b"\x07" * 32, 5)
    finally:
        registry.close()


def test_chain_id_is_checked(anvil_url: str) -> None:
    with pytest.raises(ChainError, match="chain id 31337"):
        open_rpc_chain(anvil_url, ANVIL_KEYS[0], expected_chain_id=ANVIL_CHAIN_ID + 1)


def test_unreachable_rpc_is_a_chain_error() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(ChainError, match="unreachable"):
        open_rpc_chain(url, ANVIL_KEYS[0], timeout=2)
