"""Which modules a `carbonledger` process loads (imported by name; never collected).

Read from `sys.modules` as the process exits, so a module counts however it was imported:
`-X importtime` misses modules loaded through `importlib.import_module`, which is how the
CLI loads its commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping

REPORT_AT_EXIT = (
    "import atexit, json, runpy, sys\n"
    "def report():\n"
    "    print('MODULES ' + json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    "atexit.register(report)\n"
    "sys.argv = ['carbonledger', *sys.argv[1:]]\n"
    "runpy.run_module('api.cli.main', run_name='__main__')\n"
)


def loaded_modules(
    args: list[str], env: Mapping[str, str], stdin: str | None = None
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules loaded by `carbonledger ARGS…` when it exits, and the process."""
    completed = subprocess.run(
        [sys.executable, "-c", REPORT_AT_EXIT, *args],
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reports = [line for line in completed.stderr.splitlines() if line.startswith("MODULES ")]
    assert len(reports) == 1, completed.stderr[-2000:]
    return set(json.loads(reports[0].removeprefix("MODULES "))), completed


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}
