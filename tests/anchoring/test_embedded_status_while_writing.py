"""`carbonledger anchor status` reads the embedded chain while another process writes it.

Before decision 76 it reported the chain as "in use" whenever `serve` ran; now it opens a
read-only snapshot, and a write command is still refused with one line and exit 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from attestation.chain.client import ChainSettings, log_id_for_origin
from attestation.chain.deployment import ensure_log_registered, resolve_contract
from attestation.chain.embedded import open_embedded_chain
from ledger.registry import open_registry
from ledger.settings import LedgerSettings

CLI = Path(sys.executable).with_name("carbonledger")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_anchor_status_reads_while_the_writer_holds_the_chain(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
    env.update(NO_COLOR="1", CARBONLEDGER_DATA_DIR=str(data))
    assert _cli(env, "init", "--json").returncode == 0
    registry = open_registry(LedgerSettings(data_dir=data))
    writer = open_embedded_chain(data)  # what `serve` holds
    try:
        contract = resolve_contract(writer, ChainSettings(), data)
        log_id = log_id_for_origin(registry.log.head().origin)
        ensure_log_registered(contract, log_id)
        registry.log.append([{"kind": "test/1", "n": 0}])
        head = registry.log.head()
        contract.anchor(log_id, head.size, head.root, [])

        status = _cli(env, "anchor", "status", "--json")
        assert status.returncode == 0, status.stderr
        answer = json.loads(status.stdout)
        assert answer["chainError"] is None
        assert answer["chain"]["size"] == 1
        assert answer["chain"]["root"] == "0x" + head.root.hex()

        refused = _cli(env, "anchor", "now")
        assert refused.returncode == 3
        assert "in use by another process" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        writer.close()
        registry.close()
