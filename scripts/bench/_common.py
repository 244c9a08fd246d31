"""Helpers shared by the benchmark scripts in `scripts/bench/`.

Conventions every benchmark follows, so results from different scripts read alike:
- one JSON document on stdout, progress on stderr;
- every figure names its unit in its key (`_ms`, `_s`, `_bytes`, `_per_s`);
- latencies are summarised by median and tail percentiles, never by means;
- each measured configuration runs in a fresh process (`run_isolated`), so its peak RSS
  is its own and not the high-water mark of an earlier, larger configuration.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
# Spawned measurement processes inherit the environment, so their progress lines are stamped
# from the same start as the parent's.
_STARTED = float(os.environ.setdefault("CARBONLEDGER_BENCH_STARTED", repr(time.time())))

T = TypeVar("T")


# ----------------------------------------------------------------------------- output


def progress(message: str) -> None:
    """One line on stderr, stamped with seconds since the script started."""
    print(f"[{time.time() - _STARTED:8.1f}s] {message}", file=sys.stderr, flush=True)


def emit_json(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------------- statistics


def percentile(sorted_samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually observed, never interpolated."""
    assert sorted_samples, "no samples"
    assert 0 < fraction <= 1
    rank = math.ceil(fraction * len(sorted_samples))
    return sorted_samples[max(rank, 1) - 1]


def latency_summary_ms(samples_ns: Sequence[int]) -> dict[str, float | int]:
    """Median and tail of latencies measured with `time.perf_counter_ns`, in milliseconds."""
    values = sorted(sample / 1e6 for sample in samples_ns)
    return {
        "count": len(values),
        "median_ms": round(statistics.median(values), 4),
        "p90_ms": round(percentile(values, 0.90), 4),
        "p99_ms": round(percentile(values, 0.99), 4),
        "min_ms": round(values[0], 4),
        "max_ms": round(values[-1], 4),
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else math.inf


# ----------------------------------------------------------------------------- memory


def current_rss_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set (Linux reports ru_maxrss in KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def mib(size_bytes: float) -> float:
    return round(size_bytes / (1 << 20), 1)


# ------------------------------------------------------------------------------- disk


def path_size_bytes(path: Path) -> int:
    """Size of a file, or of every file below a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(child.stat().st_size for child in path.rglob("*") if child.is_file())


def free_disk_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


# ---------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> dict[str, Any]:
    """The commit measured, and whether the work tree had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status.strip())}


def machine_description() -> dict[str, Any]:
    """What the figures were measured on. Database server versions are added by the caller."""
    import sqlite3  # noqa: PLC0415 - only its library version is wanted here

    memory = psutil.virtual_memory()
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable_cores,
        "ram_total_bytes": memory.total,
        "ram_available_bytes_at_start": memory.available,
        # Other work on the machine skews the figures; the load average makes that visible.
        "load_average_1_5_15_at_start": [round(value, 2) for value in os.getloadavg()],
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite_version": sqlite3.sqlite_version,
        "date_utc": utc_timestamp(),
        "git": git_revision(),
    }


# -------------------------------------------------------------------------- isolation


def run_isolated(function: Callable[..., T], *args: Any) -> T:
    """Run `function(*args)` in a fresh spawned process and return its (picklable) result.

    A new interpreter per configuration gives each one its own peak RSS and a cold start,
    so one configuration's memory or caches never flatter or burden the next.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(function, *args).result()


# ------------------------------------------------------------------------- profiling


class Profiler:
    """cProfile around selected phases, when asked for; a no-op otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.profile = cProfile.Profile() if enabled else None

    @contextmanager
    def active(self) -> Iterator[None]:
        if self.profile is None:
            yield
            return
        self.profile.enable()
        try:
            yield
        finally:
            self.profile.disable()

    def save(self, path: Path, title: str) -> None:
        if self.profile is None:
            return
        self.profile.dump_stats(path)
        text_out = io.StringIO()
        stats = pstats.Stats(self.profile, stream=text_out)
        stats.sort_stats("tottime").print_stats(15)
        progress(f"profile {title} -> {path}\n{text_out.getvalue()}")


ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_ADMIN_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
"""Account 2 of anvil's development mnemonic: the contract admin (never the anchorer)."""
"""Account 0 of anvil's public development mnemonic ("test test … junk"): a well-known key
that holds value only on throw-away local chains like the ones the benchmarks start."""

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""The local server the benchmarks create their throwaway databases on."""


def parse_count(text_value: str) -> int:
    """A positive count written as 1000, 1_000, 1e3 or 10^3 (for argparse `type=`)."""
    cleaned = text_value.strip().replace("_", "")
    try:
        if "^" in cleaned:
            base, _, exponent = cleaned.partition("^")
            value = int(int(base) ** int(exponent))  # int ** int is typed as Any
        elif "e" in cleaned.lower():
            as_float = float(cleaned)
            if not as_float.is_integer():
                raise ValueError(cleaned)
            value = int(as_float)
        else:
            value = int(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text_value!r} is not a count") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"counts are at least 1; got {value}")
    return value
