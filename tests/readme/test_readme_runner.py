"""The README runner's own conventions: which blocks run, how, and what is skipped."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from readme_runner import blocks, commands, script

SAMPLE = """# Title

```sh
export GREETING=hello   # state carries to the next block
python3 -m http.server 18999 --bind 127.0.0.1   # keeps running: ready at http://127.0.0.1:18999/
```

```console
$ echo not run
```

```sh
make test   # what CI runs
echo "$GREETING from \\
  a continued line"
echo 'a quoted
newline'
```
"""


def test_only_sh_blocks_with_their_lines() -> None:
    found = blocks(SAMPLE)
    expected = [("sh", 4), ("console", 9), ("sh", 13)]
    assert [(block.language, block.line) for block in found] == expected
    assert [offset for offset, _ in commands(found[2].text)] == [0, 1, 3]


def test_the_script_runs_in_order_and_skips_the_ci_command(tmp_path: Path) -> None:
    text = script(SAMPLE, log_dir=tmp_path)
    assert "make test" not in text
    assert "echo not run" not in text
    result = subprocess.run(
        ["bash", "-c", text], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello from   a continued line", "a quoted", "newline"]


def test_a_failing_command_names_its_readme_line(tmp_path: Path) -> None:
    text = script("intro\n\n```sh\ntrue\nfalse   # fails\necho never\n```\n", log_dir=tmp_path)
    result = subprocess.run(
        ["bash", "-c", text], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "README line 5 failed" in result.stderr
    assert "never" not in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_tcp_service_is_waited_for_and_an_early_exit_fails_fast(tmp_path: Path) -> None:
    port = _free_port()
    server = (
        "python3 -c 'import socket, time; time.sleep(2); s = socket.socket(); "
        f's.bind(("127.0.0.1", {port})); s.listen(); time.sleep(60)\''
    )
    waits = script(
        f"```sh\n{server}   # keeps running: ready at tcp://127.0.0.1:{port}\n"
        f"(exec 3<>/dev/tcp/127.0.0.1/{port}) && echo connected\n```\n",
        log_dir=tmp_path,
    )
    result = subprocess.run(
        ["bash", "-c", waits], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "connected"

    dies = script(
        "```sh\nfalse   # keeps running: ready at http://127.0.0.1:9/\necho never\n```\n",
        log_dir=tmp_path,
    )
    result = subprocess.run(
        ["bash", "-c", dies], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "exited before it was ready" in result.stderr
    assert "never" not in result.stdout
