"""Group commit under SIGKILL: a real `carbonledger serve`, 32 clients sending one reading per
request, killed mid-stream. An operator whose process dies must not lose an acknowledged reading,
must not store one twice when clients resend, and must keep the log append-only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from meter_support import T0, MeterKeyPair, generation_spec, new_key, sign
from sqlalchemy import select

from api.security import ensure_token_secret
from api.settings import ApiSettings
from attestation.chain.localnode import free_loopback_port
from ledger.access.clients import create_client
from ledger.log.canonical import parse_entry
from ledger.log.checkpoint import open_checkpoint
from ledger.log.merkle import verify_consistency
from ledger.meters.models import Reading
from ledger.meters.registration import register_key, register_meter
from ledger.registry import Registry, open_registry
from ledger.settings import LedgerSettings

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("carbonledger")
CLIENTS = 32


def _serve(settings: LedgerSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
    env.update(
        CARBONLEDGER_DATA_DIR=str(settings.data_dir),
        CARBONLEDGER_DATABASE_URL=settings.resolved_database_url(),
        CARBONLEDGER_ANCHOR_ENABLED="false",
        CARBONLEDGER_EXPIRY_SWEEP_SECONDS="0",
    )
    return subprocess.Popen(
        [str(SCRIPT), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
    )


def test_sigkill_during_single_reading_stream_loses_and_duplicates_nothing(
    registry: Registry, settings: LedgerSettings, tmp_path: Path
) -> None:
    ensure_token_secret(ApiSettings(**settings.model_dump()))
    issued = create_client(registry.database, "Acme Energy", ["readings:write"])
    keys: dict[str, MeterKeyPair] = {}
    for n in range(CLIENTS):
        meter = register_meter(
            registry.log, issued.organisation_id, generation_spec(f"pv-{n}")
        ).meter_id
        keys[meter] = new_key()
        register_key(
            registry.log,
            meter,
            keys[meter].spki,
            organisation_id=issued.organisation_id,
            valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        )
    before_note = registry.log.checkpoint(registry.signer)
    before = open_checkpoint(before_note, registry.signer.verifier)

    port = free_loopback_port()
    server = _serve(settings, port, tmp_path / "serve.log")
    assert server.stdout is not None
    assert server.stdout.readline(), (tmp_path / "serve.log").read_text()
    url = f"http://127.0.0.1:{port}"
    token = httpx.post(
        f"{url}/auth/token",
        auth=(issued.client_id, issued.client_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]

    acknowledged: dict[str, set[int]] = {meter: set() for meter in keys}
    sent: Counter[tuple[str, int]] = Counter()
    stop = threading.Event()
    refusals: list[str] = []
    errors: list[str] = []

    def client(meter: str) -> None:
        seq = 1
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            while not stop.is_set():
                # Resend the same reading until it is answered: a retry after a lost answer
                # must be a duplicate, never a second row.
                reading = sign(keys[meter], meter, seq, T0 + seq * 900, seq * 100)
                for _ in range(2):
                    sent[meter, seq] += 1
                    try:
                        response = http.post(f"{url}/v1/readings", json={"readings": [reading]})
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
                        return
                    if response.status_code != 200:
                        refusals.append(response.text)
                        return
                    outcome = response.json()["results"][0]
                    if outcome["status"] not in ("accepted", "duplicate"):
                        refusals.append(str(outcome))
                        return
                    acknowledged[meter].add(seq)
                seq += 1

    threads = [threading.Thread(target=client, args=(meter,)) for meter in keys]
    for thread in threads:
        thread.start()
    # Kill once the stream is flowing (the first answers can take a while on a busy machine).
    deadline = time.monotonic() + 60
    while sum(map(len, acknowledged.values())) < 4 * CLIENTS and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    server.send_signal(signal.SIGKILL)  # no shutdown, no flush: the process just ends
    server.wait()
    stop.set()
    for thread in threads:
        thread.join(30)

    # The stream ran, and every refusal was the queue's back-pressure, not a rule.
    assert sum(len(seqs) for seqs in acknowledged.values()) > CLIENTS, (refusals[:3], errors[:3])
    assert all("ingest-busy" in text for text in refusals), refusals[:3]
    after = open_registry(settings, migrate=False)
    try:
        with after.database.read() as session:
            rows = session.execute(select(Reading.meter_id, Reading.seq, Reading.log_index)).all()
        stored = Counter((meter, seq) for meter, seq, _ in rows)
        assert all(count == 1 for count in stored.values()), "a reading stored twice"
        for meter, seqs in acknowledged.items():
            missing = {seq for seq in seqs if (meter, seq) not in stored}
            assert not missing, f"acknowledged but lost: {meter} {sorted(missing)}"
        # Every stored reading has exactly its own leaf, and no leaf repeats a reading.
        head = after.log.head()
        leaves = Counter()
        for start in range(before.size, head.size, 1000):
            for leaf in after.log.entries(start, min(head.size, start + 1000)):
                entry = parse_entry(leaf)
                if entry["kind"] in ("reading/1", "reading/2"):
                    leaves[entry["payload"]["meter"], entry["payload"]["seq"]] += 1
        assert leaves == stored
        # The log only grew: the tree from before the stream is a prefix of the one after.
        proof = after.log.consistency_proof(before.size, head.size)
        verify_consistency(before.size, head.size, proof.hashes, before.root_hash, head.root)
    finally:
        after.close()
