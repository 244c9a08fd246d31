#!/usr/bin/env python3
"""Benchmark of signed-reading ingestion against the bare signature-verification rate.

Measures what DESIGN §8 sets a target for (issue 3, item 7): readings/s of the ledger's
ingestion (`ledger.meters.ingest.ingest`: parse → verify → sequence rules → commit → log) for
Ed25519 and ES256, batches of 100 / 1,000 / 5,000, through the Python function and through
HTTP (`POST /v1/readings` on a uvicorn bound to 127.0.0.1, bearer token), on SQLite and
PostgreSQL, on one core and on two; beside each figure the ratio to the bare verification
rate of the same key type measured in the same run (OpenSSL through `cryptography`, and
libsodium through PyNaCl for Ed25519).

How cores are used (Linux `sched_setaffinity`):
- 1 core, Python: one ingesting process pinned to core 0.
- 2 cores, Python: two ingesting processes, pinned to cores 0 and 1, each submitting batches
  for its own meters into the same registry at the same time (what two gateways or two API
  workers do). Verification runs outside the writer lock (decision 21), so it can overlap.
- 1 core, HTTP: uvicorn with one worker pinned to core 0; the client (which only sends
  pre-encoded bodies and reads the answers) is pinned to core 1, so the server's figure is
  that of one core.
- 2 cores, HTTP: uvicorn with two worker processes on cores 0 and 1 and two client
  processes on the same two cores: on a two-core machine the client's (small) share of CPU
  is charged to this figure, so it is a slight under-estimate.

Readings are signed, and HTTP bodies encoded, before the clock starts. Every figure is the
median of the repeats of its configuration; each configuration runs in a fresh process on a
fresh database (PostgreSQL: a throwaway database created and dropped like log.py does).

    .venv/bin/python scripts/bench/ingest.py > /tmp/bench-ingest.json    # full run (minutes)
    .venv/bin/python scripts/bench/ingest.py --quick                      # smoke test
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import multiprocessing
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
from _common import (
    DEFAULT_PG_URL,
    emit_json,
    machine_description,
    progress,
    rate,
    run_isolated,
    utc_timestamp,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from log import select_backends, throwaway_postgres_database

from api.security import ensure_token_secret
from api.settings import ApiSettings
from ledger.access.clients import create_client
from ledger.meters.entries import EnergySource, GridRegion, MeterRole
from ledger.meters.ingest import ingest, payload_bytes
from ledger.meters.readings import ReadingPayload, SignedReading
from ledger.meters.registration import MeterSpec, register_key
from ledger.meters.registration import register_meter as register_meter_row
from ledger.registry import initialise_registry, open_registry
from meter_signing.keys import MeterKey, generate_meter_key
from meter_signing.signing import signature_bytes

ALGS = ("Ed25519", "ES256")
FULL_BATCHES = (100, 1_000, 5_000)
FULL_READINGS = 10_000
FULL_REPEATS = 3
QUICK_BATCHES = (100,)
QUICK_READINGS = 400
QUICK_REPEATS = 1
MAX_READINGS = 1_000_000
"""Signed readings are held in memory before the clock starts (~0.5 KB each)."""
METERS_PER_WORKER = 10
"""A batch interleaves several meters, as a gateway's upload does."""
VERIFY_SAMPLES = 20_000
QUICK_VERIFY_SAMPLES = 2_000
FIRST_READING = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
KEYS_VALID_FROM = datetime(2023, 1, 1, tzinfo=UTC)
SERVER_START_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 300.0


# ------------------------------------------------------------------------- readings


def pin(cores: set[int]) -> list[int]:
    """Pin this process to `cores` (intersected with what exists); return the cores used."""
    available = os.sched_getaffinity(0)
    chosen = {core for core in cores if core in available} or available
    os.sched_setaffinity(0, chosen)
    return sorted(chosen)


def sign_stream(key: MeterKey, meters: Sequence[str], count: int) -> list[dict[str, Any]]:
    """`count` envelopes interleaving `meters`: each meter's seq, time and registers rise."""
    envelopes = []
    for n in range(count):
        meter = meters[n % len(meters)]
        step = n // len(meters)
        reading = ReadingPayload(
            meter=meter,
            seq=step + 1,
            time=datetime.fromtimestamp(FIRST_READING + 900 * step, UTC),
            import_wh=100 * step,
            export_wh=0,
        )
        signed = SignedReading(reading, key.alg, signature_bytes(key, payload_bytes(reading)))
        envelopes.append(signed.to_json())
    return envelopes


def spki_b64(key: MeterKey) -> str:
    return base64.b64encode(key.public_spki).decode()


# ------------------------------------------------------------------ bare verification


def measure_bare_verification(alg: str, samples: int, repeats: int) -> dict[str, Any]:
    """Verify `samples` real reading payloads with the parsed key, nothing else, on core 0.

    Ed25519: OpenSSL (cryptography) and libsodium (PyNaCl) over the same signatures.
    ES256: OpenSSL over DER signatures prepared beforehand (the r‖s → DER step the
    ingestion performs is part of ingestion, not of the floor).
    """
    cores = pin({0})
    key = generate_meter_key(alg)  # type: ignore[arg-type]
    messages = [
        payload_bytes(
            ReadingPayload(
                "bench-meter-0", n + 1, datetime.fromtimestamp(FIRST_READING + 900 * n, UTC), n, 0
            )
        )
        for n in range(samples)
    ]
    signatures = [signature_bytes(key, message) for message in messages]
    public = key.private_key.public_key()
    verifiers: dict[str, Callable[[], None]] = {}
    if isinstance(key.private_key, Ed25519PrivateKey):
        assert alg == "Ed25519"
        openssl_key = key.private_key.public_key()
        sodium_key = nacl.signing.VerifyKey(
            base64.b64decode(spki_b64(key))[-32:]  # the raw key ends the 44-byte SPKI
        )

        def openssl_ed25519() -> None:
            for message, signature in zip(messages, signatures, strict=True):
                openssl_key.verify(signature, message)

        def libsodium_ed25519() -> None:
            for message, signature in zip(messages, signatures, strict=True):
                sodium_key.verify(message, signature)

        verifiers = {"openssl": openssl_ed25519, "libsodium": libsodium_ed25519}
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        ders = [
            encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big"))
            for s in signatures
        ]
        algorithm = ec.ECDSA(hashes.SHA256())

        def openssl_es256() -> None:
            for message, der in zip(messages, ders, strict=True):
                public.verify(der, message, algorithm)

        verifiers = {"openssl": openssl_es256}
    result: dict[str, Any] = {"alg": alg, "samples": samples, "repeats": repeats, "cores": cores}
    for name, verify_all in verifiers.items():
        verify_all()  # warm-up, and proof that every signature verifies
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            verify_all()
            rates.append(samples / (time.perf_counter() - t0))
        result[name] = {
            "median_verifies_per_s": round(statistics.median(rates), 1),
            "all_verifies_per_s": [round(value, 1) for value in rates],
        }
    return result


# ------------------------------------------------------------------------ configuration


@dataclass(frozen=True, slots=True)
class IngestConfig:
    backend: str
    alg: str
    batch: int
    readings: int
    path: str  # "python" | "http"
    cores: int  # 1 | 2
    data_dir: str
    database_url: str | None
    profile: bool = False

    @property
    def label(self) -> str:
        return (
            f"{self.backend} {self.alg} batch {self.batch:,} {self.path} "
            f"{self.cores} core{'s' if self.cores > 1 else ''}"
        )


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """One ingesting (or, for HTTP, submitting) process's share of a configuration."""

    worker: int
    cores: tuple[int, ...]
    data_dir: str
    database_url: str | None
    batches: list[bytes] | list[list[dict[str, Any]]]
    warmup: list[dict[str, Any]]
    url: str | None
    token: str | None
    profile: bool


def _settings(data_dir: str, database_url: str | None) -> ApiSettings:
    return ApiSettings(data_dir=Path(data_dir), database_url=database_url)


def _worker(job: WorkerJob, barrier: Any) -> dict[str, Any]:
    """Wait for every worker, then submit the batches; return timings (perf_counter is
    CLOCK_MONOTONIC on Linux, comparable across processes)."""
    pin(set(job.cores))
    profiler = cProfile.Profile() if job.profile else None
    batch_s: list[float] = []
    accepted = 0
    if job.url is None:
        registry = open_registry(_settings(job.data_dir, job.database_url), migrate=False)
        # An untimed batch first: imports, connection pool and statement caches warm up.
        assert ingest(registry.log, job.warmup, organisation_id=None).count("accepted") == len(
            job.warmup
        )
        barrier.wait()
        started = time.perf_counter()
        for batch in job.batches:
            assert isinstance(batch, list)
            t0 = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            result = ingest(registry.log, batch, organisation_id=None)
            if profiler is not None:
                profiler.disable()
            batch_s.append(time.perf_counter() - t0)
            accepted += result.count("accepted")
        finished = time.perf_counter()
        registry.close()
    else:
        headers = {"Authorization": f"Bearer {job.token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=job.url, timeout=HTTP_TIMEOUT_S) as client:
            warm = client.post("/v1/readings", json={"readings": job.warmup}, headers=headers)
            assert warm.status_code == 200 and warm.json()["accepted"] == len(job.warmup), (
                warm.text[:500]
            )
            barrier.wait()
            started = time.perf_counter()
            for body in job.batches:
                assert isinstance(body, bytes)
                t0 = time.perf_counter()
                response = client.post("/v1/readings", content=body, headers=headers)
                batch_s.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:500]
                accepted += response.json()["accepted"]
            finished = time.perf_counter()
    outcome: dict[str, Any] = {
        "started": started,
        "finished": finished,
        "batch_s": batch_s,
        "accepted": accepted,
    }
    if profiler is not None:
        outcome["profile"] = summarise_profile(profiler)
    return outcome


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_server(config: IngestConfig, cores: set[int]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    environment = os.environ | {
        "CARBONLEDGER_DATA_DIR": config.data_dir,
        "CARBONLEDGER_MAX_READINGS_PER_BATCH": str(max(config.batch, 5_000)),
        # The anchoring scheduler (on by default for the embedded chain) would run py-evm
        # transactions inside the server every 1,000 entries: that is anchoring's cost
        # (scripts/bench/anchor.py), not ingestion's.
        "CARBONLEDGER_ANCHOR_ENABLED": "false",
    }
    if config.database_url:
        environment["CARBONLEDGER_DATABASE_URL"] = config.database_url
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(config.cores),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # The affinity is set before exec, so uvicorn's worker processes inherit it.
    server = subprocess.Popen(
        command,
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=lambda: os.sched_setaffinity(0, cores),  # noqa: PLW1509 - no threads yet
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code < 500:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise RuntimeError("uvicorn did not start in time")


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def run_ingest_benchmark(config: IngestConfig) -> dict[str, Any]:
    """One configuration: set up meters, sign, then time the workers' batches."""
    settings = _settings(config.data_dir, config.database_url)
    registry = initialise_registry(settings)
    ensure_token_secret(settings)
    issued = create_client(registry.database, "Bench Power", ["readings:write"])
    organisation = issued.organisation_id
    workers = config.cores
    per_worker = config.readings // workers
    jobs_input = []
    for worker in range(workers):
        meters = [f"bench-w{worker}-m{m}" for m in range(METERS_PER_WORKER)]
        warm_meter = f"bench-w{worker}-warmup"
        for meter in [*meters, warm_meter]:
            register_meter_row(
                registry.log,
                organisation,
                MeterSpec(
                    meter_id=meter,
                    role=MeterRole.GENERATION,
                    province="CN-JS",
                    grid_region=GridRegion.EAST,
                    energy_source=EnergySource.SOLAR,
                    # Plausible for 100 Wh per 15 min, so no reading is flagged implausible.
                    capacity_w=10_000,
                ),
            )
        # Every meter gets its own key: a key serves one meter (decision 18).
        keys = {meter: generate_meter_key(config.alg) for meter in meters}  # type: ignore[arg-type]
        for meter, meter_key in keys.items():
            register_key(
                registry.log,
                meter,
                meter_key.public_spki,
                organisation_id=organisation,
                valid_from=KEYS_VALID_FROM,
            )
        warm_key = generate_meter_key(config.alg)  # type: ignore[arg-type]
        register_key(
            registry.log,
            warm_meter,
            warm_key.public_spki,
            organisation_id=organisation,
            valid_from=KEYS_VALID_FROM,
        )
        envelopes = sign_streams(keys, per_worker)
        warmup = sign_stream(warm_key, [warm_meter], min(config.batch, 100))
        jobs_input.append((worker, envelopes, warmup))
    size_before = registry.log.head().size
    registry.close()

    server = None
    url = token = None
    if config.path == "http":
        server_cores = {0} if workers == 1 else {0, 1}
        server, url = _start_server(config, server_cores)
        response = httpx.post(
            url + "/auth/token",
            auth=(issued.client_id, issued.client_secret),
            data={"grant_type": "client_credentials"},
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
    try:
        jobs = []
        for worker, envelopes, warmup in jobs_input:
            chunks = [
                envelopes[start : start + config.batch]
                for start in range(0, len(envelopes), config.batch)
            ]
            # Bodies are encoded before the clock starts, like the signing.
            batches: list[bytes] | list[list[dict[str, Any]]] = (
                [json.dumps({"readings": chunk}).encode() for chunk in chunks]
                if config.path == "http"
                else chunks
            )
            if config.path == "http" and workers == 1:
                cores: tuple[int, ...] = (1,)  # the client stays off the server's core
            else:
                cores = (worker,)
            jobs.append(
                WorkerJob(
                    worker,
                    cores,
                    config.data_dir,
                    config.database_url,
                    batches,
                    warmup,
                    url,
                    token,
                    config.profile,
                )
            )
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            barrier = manager.Barrier(len(jobs))
            with context.Pool(len(jobs)) as pool:
                outcomes = pool.starmap(_worker, [(job, barrier) for job in jobs])
    finally:
        if server is not None:
            _stop_server(server)

    registry = open_registry(settings, migrate=False)
    size_after = registry.log.head().size
    registry.close()
    timed = sum(len(e) for _, e, _ in jobs_input)
    warm = sum(len(w) for _, _, w in jobs_input)
    accepted = sum(outcome["accepted"] for outcome in outcomes)
    # Every reading must have become exactly one leaf, or the rate would flatter a failure.
    assert accepted == timed, (accepted, timed)
    assert size_after - size_before == timed + warm, (size_after, size_before, timed, warm)
    elapsed = max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes)
    batch_rates = sorted(
        len_batch / seconds
        for outcome in outcomes
        for len_batch, seconds in zip(
            _batch_lengths(timed // workers, config.batch), outcome["batch_s"], strict=True
        )
    )
    result: dict[str, Any] = {
        "config": {k: v for k, v in asdict(config).items() if k not in ("data_dir", "database_url")}
        | {"meters": METERS_PER_WORKER * workers, "workers": workers},
        "readings": timed,
        "accepted": accepted,
        "timed_s": round(elapsed, 4),
        "readings_per_s": rate(timed, elapsed),
        "median_batch_readings_per_s": round(statistics.median(batch_rates), 1),
    }
    if config.profile:
        result["profile"] = [outcome.get("profile") for outcome in outcomes]
    return result


def describe(backend: str, spec: dict[str, Any]) -> str:
    return IngestConfig(backend, data_dir="", database_url=None, **spec).label


def _batch_lengths(total: int, batch: int) -> list[int]:
    return [min(batch, total - start) for start in range(0, total, batch)]


def sign_streams(keys: dict[str, MeterKey], count: int) -> list[dict[str, Any]]:
    """`count` envelopes round-robin over the meters, each signed with its meter's key."""
    meters = list(keys)
    envelopes = []
    for n in range(count):
        meter = meters[n % len(meters)]
        step = n // len(meters)
        payload = ReadingPayload(
            meter=meter,
            seq=step + 1,
            time=datetime.fromtimestamp(FIRST_READING + 900 * step, UTC),
            import_wh=100 * step,
            export_wh=0,
        )
        key = keys[meter]
        signed = SignedReading(payload, key.alg, signature_bytes(key, payload_bytes(payload)))
        envelopes.append(signed.to_json())
    return envelopes


# ------------------------------------------------------------------------- profiling

PHASES: dict[str, tuple[str, str]] = {
    # Cumulative time of these functions; they nest (verification is inside key choice), so
    # the shares do not add up to 100 %. "~" is how cProfile files C methods: those match on
    # a fragment of the method's description instead of a name.
    "parse (_parse: envelope checks, JCS bytes)": ("ingest.py", "_parse"),
    "key choice incl. verification (_resolve_key)": ("ingest.py", "_resolve_key"),
    "signature verification (verify_with_public_key)": ("readings.py", "verify_with_public_key"),
    "OpenSSL verify calls alone": ("~", "'verify' of 'cryptography"),
    "locked state loads (_Batch.load)": ("ingest.py", "load"),
    "sequence rules and leaf bytes (_Batch.decide)": ("ingest.py", "decide"),
    "row and meter writes (_Batch.commit)": ("ingest.py", "commit"),
    "log leaves, tree nodes, head (Log._flush)": ("log.py", "_flush"),
    "database commits (DBAPI commit)": ("~", "'commit' of"),
}


def summarise_profile(profiler: cProfile.Profile) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    phases: dict[str, float] = {}
    for name, (file_part, function) in PHASES.items():
        seconds = 0.0
        for (filename, _line, func), (_cc, _nc, _tt, cumulative, _callers) in raw.items():
            if file_part == "~":
                matches = filename == "~" and function in func
            else:
                matches = func == function and filename.endswith(file_part)
            if matches:
                seconds += cumulative
        phases[name] = round(100 * seconds / total, 1) if total else 0.0
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:15]
    return {
        "profiled_s": round(total, 3),
        "phase_cumulative_pct": phases,
        "top_tottime": [
            {
                "function": f"{Path(filename).name}:{line}:{func}",
                "tottime_pct": round(100 * tt / total, 1) if total else 0.0,
                "calls": nc,
            }
            for (filename, line, func), (_cc, nc, tt, _cum, _callers) in top
        ],
    }


# ------------------------------------------------------------------------ the whole run


def summary_rows(
    runs: list[dict[str, Any]], bare: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per configuration with its ratios to the same-run floors and to 1 core."""
    one_core = {
        (r["config"]["backend"], r["config"]["alg"], r["config"]["batch"], r["config"]["path"]): r
        for r in runs
        if r["config"]["cores"] == 1
    }
    rows = []
    for run in runs:
        config = run["config"]
        floor = bare[config["alg"]]
        row: dict[str, Any] = {
            "backend": config["backend"],
            "alg": config["alg"],
            "batch": config["batch"],
            "path": config["path"],
            "cores": config["cores"],
            "readings_per_s": run["readings_per_s"],
            "over_openssl_verify_1core": round(
                run["readings_per_s"] / floor["openssl"]["median_verifies_per_s"], 3
            ),
        }
        if "libsodium" in floor:
            row["over_libsodium_verify_1core"] = round(
                run["readings_per_s"] / floor["libsodium"]["median_verifies_per_s"], 3
            )
        if config["cores"] == 2:
            single = one_core.get(
                (config["backend"], config["alg"], config["batch"], config["path"])
            )
            if single is not None:
                row["over_same_config_1core"] = round(
                    run["readings_per_s"] / single["readings_per_s"], 3
                )
        rows.append(row)
    return rows


def design_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """DESIGN §8 next to the measurement (reported, not enforced)."""
    python_one = [r for r in rows if r["path"] == "python" and r["cores"] == 1]
    python_two = [r for r in rows if r["path"] == "python" and r["cores"] == 2]
    return {
        "one_core_over_bare_openssl": {
            "target": 0.5,
            "measured_min": min((r["over_openssl_verify_1core"] for r in python_one), default=None),
            "measured_max": max((r["over_openssl_verify_1core"] for r in python_one), default=None),
            "met_by": [
                f"{r['backend']} {r['alg']} {r['batch']}"
                for r in python_one
                if r["over_openssl_verify_1core"] >= 0.5
            ],
        },
        "two_cores_over_one_core": {
            "target": 1.6,
            "measured_min": min(
                (r.get("over_same_config_1core", 0) for r in python_two), default=None
            ),
            "measured_max": max(
                (r.get("over_same_config_1core", 0) for r in python_two), default=None
            ),
            "met_by": [
                f"{r['backend']} {r['alg']} {r['batch']}"
                for r in python_two
                if r.get("over_same_config_1core", 0) >= 1.6
            ],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.perf_counter()
    started_at = utc_timestamp()
    machine = machine_description()
    backends, postgres, error = select_backends(
        args.pg_url, skip_postgres=args.no_pg, optional=args.pg_optional, machine=machine
    )
    if error is not None:
        print(error, file=sys.stderr)
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        progress("fewer than 2 usable cores: the 2-core figures share one core")

    bare: dict[str, dict[str, Any]] = {}
    for alg in args.algs:
        progress(f"bare verification {alg}, {args.verify_samples:,} signatures x {args.repeats}")
        bare[alg] = run_isolated(measure_bare_verification, alg, args.verify_samples, args.repeats)

    workdir = Path(tempfile.mkdtemp(prefix="carbonledger-bench-ingest-", dir=args.workdir))
    runs: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    counter = 0
    try:

        def measure(config_args: dict[str, Any], backend: str) -> dict[str, Any]:
            nonlocal counter
            counter += 1
            data_dir = workdir / f"run-{counter}"
            if backend == "postgresql":
                with throwaway_postgres_database(args.pg_url, keep=False) as url:
                    config = IngestConfig(
                        backend, data_dir=str(data_dir), database_url=url, **config_args
                    )
                    outcome = run_isolated(run_ingest_benchmark, config)
            else:
                config = IngestConfig(
                    backend, data_dir=str(data_dir), database_url=None, **config_args
                )
                outcome = run_isolated(run_ingest_benchmark, config)
            shutil.rmtree(data_dir, ignore_errors=True)
            return outcome

        for backend in backends:
            for alg in args.algs:
                for batch in args.batches:
                    for path in args.paths:
                        for cores in args.cores:
                            spec = {
                                "alg": alg,
                                "batch": batch,
                                "readings": args.readings,
                                "path": path,
                                "cores": cores,
                            }
                            repeats = [measure(spec, backend) for _ in range(args.repeats)]
                            figures = sorted(r["readings_per_s"] for r in repeats)
                            run = repeats[0] | {
                                "readings_per_s": statistics.median(figures),
                                "repeats_readings_per_s": figures,
                            }
                            runs.append(run)
                            progress(f"{describe(backend, spec)}: {run['readings_per_s']:,.0f}/s")
        if args.profile:
            for backend in backends:
                for alg in args.algs:
                    spec = {
                        "alg": alg,
                        "batch": args.profile_batch,
                        "readings": args.readings,
                        "path": "python",
                        "cores": 1,
                        "profile": True,
                    }
                    outcome = measure(spec, backend)
                    profiles.append(
                        {
                            "backend": backend,
                            "alg": alg,
                            "batch": args.profile_batch,
                            "readings_per_s_under_profiler": outcome["readings_per_s"],
                            **outcome["profile"][0],
                        }
                    )
                    progress(f"profiled {backend} {alg}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = summary_rows(runs, bare)
    total_s = round(time.perf_counter() - started, 1)
    progress(f"done in {total_s} s")
    emit_json(
        {
            "benchmark": "carbonledger signed-reading ingestion vs bare signature verification",
            "format_version": 1,
            "started_at_utc": started_at,
            "finished_at_utc": utc_timestamp(),
            "total_wall_time_s": total_s,
            "command": [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)],
            "config": {
                "quick": args.quick,
                "backends": backends,
                "postgresql": postgres,
                "algs": list(args.algs),
                "batches": list(args.batches),
                "paths": list(args.paths),
                "cores": list(args.cores),
                "readings_per_configuration": args.readings,
                "repeats": args.repeats,
                "meters_per_worker": METERS_PER_WORKER,
                "notes": [
                    "readings are signed and HTTP bodies encoded before the clock starts",
                    "1 core: ingesting process (or uvicorn worker) pinned to core 0; "
                    "the HTTP client runs on core 1",
                    "2 cores: two processes (Python) or two uvicorn workers plus two client "
                    "processes (HTTP) on cores 0 and 1, each for its own meters, same registry",
                    "HTTP: the server runs with CARBONLEDGER_ANCHOR_ENABLED=false (anchoring "
                    "is measured by anchor.py)",
                    "bare verification: one process pinned to core 0, parsed key, "
                    "precomputed messages; ES256 with DER signatures prepared beforehand",
                    "readings_per_s is the median over repeats of readings / wall time from "
                    "the first worker's start to the last worker's end",
                    "profiles come from separate runs under cProfile: their rates are slower "
                    "and not comparable",
                ],
            },
            "machine": machine
            | {"load_average_1_5_15_at_end": [round(value, 2) for value in os.getloadavg()]},
            "bare_verification": bare,
            "summary": rows,
            "targets": design_targets(rows),
            "runs": runs,
            "profiles": profiles,
        }
    )
    return 0


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for the smoke test")
    parser.add_argument(
        "--readings", type=int, help=f"readings per configuration ({FULL_READINGS:,})"
    )
    parser.add_argument("--batches", help="comma-separated batch sizes (100,1000,5000)")
    parser.add_argument("--algs", default=",".join(ALGS), help="Ed25519,ES256")
    parser.add_argument("--paths", default="python,http", help="python,http")
    parser.add_argument("--cores", default="1,2", help="1,2")
    parser.add_argument("--repeats", type=int, help=f"repeats per configuration ({FULL_REPEATS})")
    parser.add_argument("--verify-samples", type=int, help=f"bare verifies ({VERIFY_SAMPLES:,})")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL admin URL")
    parser.add_argument("--no-pg", action="store_true", help="measure SQLite only")
    parser.add_argument(
        "--pg-optional", action="store_true", help="skip PostgreSQL when unreachable"
    )
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument(
        "--no-profile", dest="profile", action="store_false", help="skip the cProfile runs"
    )
    parser.add_argument("--profile-batch", type=int, default=1_000, help="batch size profiled")
    args = parser.parse_args(argv)
    # `is None`, not `or`: an explicit 0 must reach the range checks below, not the default.
    if args.readings is None:
        args.readings = QUICK_READINGS if args.quick else FULL_READINGS
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.verify_samples is None:
        args.verify_samples = QUICK_VERIFY_SAMPLES if args.quick else VERIFY_SAMPLES
    args.batches = (
        tuple(int(part) for part in args.batches.split(",") if part.strip())
        if args.batches
        else (QUICK_BATCHES if args.quick else FULL_BATCHES)
    )
    args.algs = tuple(part for part in args.algs.split(",") if part)
    args.paths = tuple(part for part in args.paths.split(",") if part)
    args.cores = tuple(int(part) for part in args.cores.split(",") if part)
    if args.quick:
        args.profile_batch = min(args.profile_batch, QUICK_BATCHES[0])
    if not set(args.algs) <= set(ALGS):
        parser.error(f"--algs: choose from {', '.join(ALGS)}")
    if not set(args.paths) <= {"python", "http"}:
        parser.error("--paths: choose from python, http")
    if not set(args.cores) <= {1, 2}:
        parser.error("--cores: 1 and/or 2")
    if args.repeats < 1 or args.verify_samples < 1:
        parser.error("--repeats and --verify-samples are at least 1")
    if not 1 <= args.readings <= MAX_READINGS:
        parser.error(f"--readings is 1..{MAX_READINGS:,} (signed readings are held in memory)")
    if any(not 1 <= batch <= 50_000 for batch in args.batches):
        parser.error("batch sizes are 1..50,000 (CARBONLEDGER_MAX_READINGS_PER_BATCH's bound)")
    if args.readings < 2 * max(args.batches):
        progress("note: fewer readings than two batches per worker at the largest batch size")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    return args


if __name__ == "__main__":
    sys.exit(main())
