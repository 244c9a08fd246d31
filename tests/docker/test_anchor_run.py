"""`carbonledger anchor run`: the stack's one anchoring process (decision 101)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CARBONLEDGER = str(Path(sys.executable).parent / "carbonledger")


def registry_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
    env.update({"CARBONLEDGER_DATA_DIR": str(tmp_path / "registry"), **extra})
    subprocess.run([CARBONLEDGER, "init"], env=env, capture_output=True, check=True, timeout=120)
    return env


def test_without_an_anchorer_key_it_refuses_in_one_line(tmp_path: Path) -> None:
    env = registry_env(tmp_path, CARBONLEDGER_CHAIN_RPC="http://127.0.0.1:9")
    result = subprocess.run(
        [CARBONLEDGER, "anchor", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: anchoring cannot start"), lines
    assert "CARBONLEDGER_CHAIN_ANCHORER_KEY" in lines[0]


def test_it_connects_to_the_embedded_chain_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = registry_env(tmp_path, CARBONLEDGER_ANCHOR_INTERVAL_SECONDS="1")
    log = tmp_path / "anchorer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CARBONLEDGER, "anchor", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            # An empty log has nothing to anchor; anchoring itself is test_stack_native's.
            while "anchoring to 0x" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.3)
            assert "anchoring to 0x" in log.read_text(), log.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
    assert code == 0, log.read_text()
    # The embedded chain's lock is released: a second command can open it now.
    status = subprocess.run(
        [CARBONLEDGER, "anchor", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert status.returncode == 0, status.stderr
