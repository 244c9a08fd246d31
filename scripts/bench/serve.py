"""Serving benchmark: proof reads and 1-reading ingest against `/healthz` of the same server.

One run starts `carbonledger serve --workers N` on a fresh SQLite registry and measures, one
after another with the same load generator (CLIENTS concurrent HTTP/1.1 keep-alive clients):

1. `GET /healthz` requests/s (no database: the ceiling of the server and this client);
2. `GET /v1/log/proofs/inclusion?index=i&size=n` requests/s (random i);
3. `POST /v1/readings` with ONE signed reading per request, readings/s and latency
   percentiles (each client its own meter, so every reading is accepted).

The figures of issue 10 are the ratios proof/healthz and ingest/healthz (target >= 0.5 with 2
workers) and the ingest p99 (target <= 100 ms). The load generator runs on the same machine,
so it takes CPU from the server alike in all three phases. Output: one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _common import emit_json, progress, utc_timestamp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.security import ensure_token_secret
from api.settings import ApiSettings
from attestation.chain.localnode import free_loopback_port
from ledger.access.clients import create_client
from ledger.log.canonical import canonical_json
from ledger.meters.entries import GridRegion, MeterRole
from ledger.meters.readings import b64url
from ledger.meters.registration import MeterSpec, register_key, register_meter
from ledger.registry import initialise_registry

SCRIPT = Path(sys.executable).with_name("carbonledger")
T0 = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def load(
    url: str,
    clients: int,
    seconds: float,
    request: Callable[[httpx.AsyncClient, int, int], Any],
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one(client_no: int) -> None:
        nonlocal errors
        n = 0
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await request(http, client_no, n)
                if response.status_code != 200:
                    errors += 1
                latencies.append(time.perf_counter() - started)
                n += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--entries", type=int, default=10_000, help="log size for proofs")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cl-bench-serve-") as tmp:
        data = Path(tmp) / "data"
        settings = ApiSettings(data_dir=data, anchor_enabled=False)
        registry = initialise_registry(settings)
        ensure_token_secret(settings)
        issued = create_client(registry.database, "Bench", ["readings:write"])
        keys = []
        for n in range(args.clients):
            spec = MeterSpec(
                meter_id=f"m-{n}",
                role=MeterRole.CONSUMPTION,
                province="CN-GD",
                grid_region=GridRegion.SOUTH,
            )
            register_meter(registry.log, issued.organisation_id, spec)
            key = Ed25519PrivateKey.generate()
            der = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            register_key(
                registry.log,
                f"m-{n}",
                der,
                organisation_id=issued.organisation_id,
                valid_from=datetime(2026, 1, 1, tzinfo=UTC),
            )
            keys.append(key)
        for start in range(0, args.entries, 1000):
            registry.log.append(
                [{"kind": "bench.filler/1", "n": i} for i in range(start, start + 1000)]
            )
        size = registry.log.head().size
        registry.close()

        port = free_loopback_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
        env.update(
            CARBONLEDGER_DATA_DIR=str(data),
            CARBONLEDGER_ANCHOR_ENABLED="false",
            CARBONLEDGER_EXPIRY_SWEEP_SECONDS="0",
        )
        server = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert server.stdout is not None and server.stdout.readline(), "serve did not start"
            url = f"http://127.0.0.1:{port}"
            token = httpx.post(
                f"{url}/auth/token",
                auth=(issued.client_id, issued.client_secret),
                data={"grant_type": "client_credentials"},
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            time.sleep(5)  # let every worker finish starting (imports take seconds)

            def healthz(http: httpx.AsyncClient, _c: int, _n: int) -> Any:
                return http.get("/healthz")

            def proof(http: httpx.AsyncClient, _c: int, _n: int) -> Any:
                index = random.randrange(size)
                return http.get(f"/v1/log/proofs/inclusion?index={index}&size={size}")

            def reading(http: httpx.AsyncClient, client_no: int, n: int) -> Any:
                payload = {
                    "meter": f"m-{client_no}",
                    "seq": n + 1,
                    "time": datetime.fromtimestamp(T0 + 60 * n, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "importWh": 10 * n,
                    "exportWh": 0,
                }
                signature = keys[client_no].sign(canonical_json(payload))
                envelope = {"payload": payload, "alg": "Ed25519", "sig": b64url(signature)}
                return http.post("/v1/readings", json={"readings": [envelope]}, headers=headers)

            results: dict[str, dict[str, float]] = {}
            asyncio.run(load(url, args.clients, 2, healthz))  # warm-up: connections, caches
            for name, request in (("healthz", healthz), ("proof", proof), ("ingest", reading)):
                progress(f"{name}: {args.clients} clients for {args.seconds:g} s")
                results[name] = asyncio.run(load(url, args.clients, args.seconds, request))
                progress(f"{name}: {results[name]['per_s']:.0f}/s")
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    health = results["healthz"]["per_s"]
    emit_json(
        {
            "benchmark": "serve",
            "at": utc_timestamp(),
            "workers": args.workers,
            "clients": args.clients,
            "seconds_per_phase": args.seconds,
            "log_size": size,
            "load_average": list(os.getloadavg()),
            "cpus": os.cpu_count(),
            **{f"{name}": figures for name, figures in results.items()},
            "proof_to_healthz": results["proof"]["per_s"] / health,
            "ingest_to_healthz": results["ingest"]["per_s"] / health,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
