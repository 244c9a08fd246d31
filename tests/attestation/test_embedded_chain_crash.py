"""kill -9 in the middle of writing a block leaves the embedded chain at the last committed one.

A child process anchors on the embedded chain and prints each acknowledged anchor; on its
last block it dies by SIGKILL inside the state file's write, after the block's keys went in
and before the commit. The parent reopens the chain as the next `serve` would: it opens,
holds exactly the acknowledged anchors, and anchoring continues with the next nonce.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from attestation.chain.client import CarbonAnchor, log_id_for_origin
from attestation.chain.embedded import open_embedded_chain
from ledger.registry import initialise_registry, open_registry
from ledger.settings import LedgerSettings

ORIGIN = "test.carbonledger.local/crash"
ACKED = 3

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    from attestation.chain import statedb
    from attestation.chain.client import CarbonAnchor, log_id_for_origin
    from attestation.chain.deployment import embedded_admin, ensure_log_registered
    from attestation.chain.embedded import open_embedded_chain
    from ledger.registry import open_registry
    from ledger.settings import LedgerSettings

    data, log_dir, origin = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    acked = int(sys.argv[4])
    written = statedb._write
    commits = 0

    def dies_in_the_last_block(db, rows, deleted, meta):
        global commits
        commits += 1
        # 1: genesis, 2: deployment, 3: registration, then one per anchor; the one after
        # `acked` dies.
        if commits == 4 + acked:
            db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", rows)
            os.kill(os.getpid(), signal.SIGKILL)
        written(db, rows, deleted, meta)

    statedb._write = dies_in_the_last_block
    registry = open_registry(LedgerSettings(data_dir=log_dir, log_origin=origin))
    chain = open_embedded_chain(data)
    contract, _ = CarbonAnchor.deploy(chain, admin=embedded_admin(chain).address)
    log_id = log_id_for_origin(origin)
    ensure_log_registered(contract, log_id)
    print("contract", contract.address, flush=True)
    for n in range(acked + 1):
        previous = contract.latest(log_id).size
        registry.log.append([{"kind": "test/1", "n": n}])
        head = registry.log.head()
        proof = registry.log.consistency_proof(previous, head.size).hashes if previous else ()
        contract.anchor(log_id, head.size, head.root, proof)
        print("acked", head.size, flush=True)
    """
)


def test_kill_during_a_block_write_keeps_the_last_committed_block(tmp_path: Path) -> None:
    settings = LedgerSettings(data_dir=tmp_path / "log", log_origin=ORIGIN)
    initialise_registry(settings).close()
    data = tmp_path / "data"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(settings.data_dir), ORIGIN, str(ACKED)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    lines = child.stdout.split()
    address = lines[1]
    acked = [int(lines[i + 1]) for i, word in enumerate(lines) if word == "acked"]
    assert len(acked) == ACKED, child.stdout

    log_id = log_id_for_origin(ORIGIN)
    registry = open_registry(settings)
    chain = open_embedded_chain(data)
    try:
        contract = CarbonAnchor(chain, address)
        assert chain.w3.eth.block_number == 2 + ACKED, "the half-written block is not there"
        assert contract.latest(log_id).size == acked[-1]
        assert contract.latest(log_id).root == registry.log.root_at(acked[-1])
        # The log grew one more leaf before the crash; anchor it now, with the next nonce.
        head = registry.log.head()
        proof = registry.log.consistency_proof(acked[-1], head.size).hashes
        receipt = contract.anchor(log_id, head.size, head.root, proof)
        assert receipt.block == 3 + ACKED
    finally:
        chain.close()
        registry.close()
