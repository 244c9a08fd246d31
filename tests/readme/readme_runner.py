"""Run the README's shell blocks top to bottom, as a new user pasting them would.

Conventions of the README (stated in it, checked here):
- a fenced block whose info string is `sh` is run; `console` (a transcript), `text` and
  every other block are shown, not run;
- the blocks run in document order in one bash session (`set -euo pipefail`), so a
  variable defined in one block is there in the next, from the repository root;
- a command whose line ends with a comment starting `# keeps running` is started in the
  background, as in a terminal of its own; when the comment names a URL
  (`# keeps running: ready at http://…`), the next command waits until that URL answers
  (any HTTP status: a JSON-RPC node answers a plain GET with 400), or for `tcp://host:port`
  until it accepts a connection;
- a line whose comment says `# what CI runs` (the quick start's test command) is skipped:
  it is the command that runs this test.

`run_readme(readme, repo, env, ...)` returns the finished process; on failure its stderr
ends with the README line that failed. By hand, in a clone you can throw away:
`.venv/bin/python tests/readme/readme_runner.py README.md`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
KEEPS_RUNNING = re.compile(r"#\s*keeps running(?::\s*ready at (?P<url>\S+))?")
CI_COMMAND = re.compile(r"#\s*what CI runs")
READY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Block:
    line: int
    """The README line of the block's first command (after the fence)."""
    language: str
    text: str


def blocks(markdown: str) -> list[Block]:
    return [
        Block(markdown.count("\n", 0, match.start()) + 2, match.group(1), match.group(2))
        for match in FENCE.finditer(markdown)
    ]


def commands(text: str) -> list[tuple[int, str]]:
    """(line offset, command) per shell command: lines joined across a trailing backslash
    or an open quote."""
    found: list[tuple[int, str]] = []
    current, start = "", 0
    for offset, line in enumerate(text.splitlines()):
        if not current:
            start = offset
        current = f"{current}\n{line}" if current else line
        if current.endswith("\\") or _open_quote(current):
            continue
        found.append((start, current))
        current = ""
    if current:
        found.append((start, current))
    return found


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def script(markdown: str, *, log_dir: Path) -> str:
    """The bash script that runs the README's `sh` blocks as the conventions say."""
    out = [
        "set -euo pipefail",
        "__background=()",
        '__cleanup() { for pid in "${__background[@]}"; do kill -TERM -- -"$pid" 2>/dev/null'
        " || true; done; wait 2>/dev/null || true; }",
        "trap __cleanup EXIT",
        "trap 'echo \"README line $__readme_line failed: $BASH_COMMAND\" >&2' ERR",
        "__readme_line=0",
    ]
    background = 0
    for block in blocks(markdown):
        if block.language != "sh":
            continue
        for offset, command in commands(block.text):
            if not command.strip() or command.lstrip().startswith("#"):
                continue
            out.append(f"__readme_line={block.line + offset}")
            if CI_COMMAND.search(command):
                continue
            running = KEEPS_RUNNING.search(command)
            if running is None:
                out.append(command)
                continue
            background += 1
            log = shlex.quote(str(log_dir / f"background-{background}.log"))
            bare = command[: running.start()].rstrip()
            out.append(f"set -m; ( {bare} ) > {log} 2>&1 & __background+=($!); set +m")
            url = running.group("url")
            if url:
                if url.startswith("tcp://"):  # a TCP service (Modbus): a connection is enough
                    host, _, port = url.removeprefix("tcp://").rstrip("/").rpartition(":")
                    probe = f"(exec 3<>/dev/tcp/{host}/{port}) 2>/dev/null"
                else:
                    probe = f"curl -sS -o /dev/null {shlex.quote(url)} 2>/dev/null"
                out.append(
                    f"for __i in $(seq {READY_TIMEOUT_SECONDS}); do "
                    f"if {probe}; then break; fi; "
                    'if ! kill -0 "${__background[-1]}" 2>/dev/null; then '
                    f"echo 'exited before it was ready: {url}' >&2; cat {log} >&2; exit 1; fi; "
                    f"if [ $__i = {READY_TIMEOUT_SECONDS} ]; then "
                    f"echo 'never ready: {url}' >&2; cat {log} >&2; exit 1; fi; sleep 1; done"
                )
    return "\n".join(out) + "\n"


def run_readme(
    readme: Path, repo: Path, env: dict[str, str], *, log_dir: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "readme.sh"
    path.write_text(script(readme.read_text(encoding="utf-8"), log_dir=log_dir), "utf-8")
    process = subprocess.Popen(
        ["bash", str(path)],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += f"\nthe README run took longer than {timeout} s"
    finally:
        # Anything the script left behind (its EXIT trap normally stops them).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md").resolve()
    result = run_readme(
        target,
        target.parent,
        dict(os.environ),
        log_dir=target.parent / "work" / "readme-run",
        timeout=3600,
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)
