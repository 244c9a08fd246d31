"""A separate writer process for test_concurrency.py and test_crash.py (run as a script).

python ledger_writer.py appends --data-dir D --url U --writer K --count N
    Prints READY once the registry is open, waits for GO on stdin, then appends N
    entries {"kind": "test.writer/1", "writer": K, "seq": i}, one transaction each,
    and prints "DONE <JSON list of the indices the log returned>".

python ledger_writer.py batches --data-dir D --url U --batch B
    Appends B deterministic leaves (`crash_leaf(index)`) per transaction, forever,
    printing "ACK <size>" (and flushing) after every commit. Meant to be SIGKILLed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ledger.log.canonical import canonical_entry
from ledger.registry import open_registry
from ledger.settings import LedgerSettings

WRITER_KIND = "test.writer/1"
CRASH_KIND = "test.crash/1"


def writer_entry(writer: int, seq: int) -> dict[str, Any]:
    return {"kind": WRITER_KIND, "writer": writer, "seq": seq}


def crash_leaf(index: int) -> bytes:
    """The leaf every crash-test writer puts at `index`: a pure function of the index."""
    digest = hashlib.sha256(index.to_bytes(8, "big")).hexdigest()
    return canonical_entry({"kind": CRASH_KIND, "index": index, "digest": digest})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["appends", "batches"])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--writer", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args(argv)

    settings = LedgerSettings(data_dir=Path(args.data_dir), database_url=args.url)
    registry = open_registry(settings, migrate=False)
    log = registry.log
    if args.mode == "appends":
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "GO":
            return 2
        indices: list[int] = []
        for seq in range(args.count):
            indices.extend(log.append([writer_entry(args.writer, seq)]))
        print("DONE " + json.dumps(indices), flush=True)
        registry.close()
        return 0

    while True:
        with log.write() as transaction:
            start = transaction.next_index
            transaction.extend_canonical(
                [crash_leaf(index) for index in range(start, start + args.batch)]
            )
        print(f"ACK {start + args.batch}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
