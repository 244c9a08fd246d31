"""`scripts/demo_certificates.py` as a user runs it: from the repository root, with the
project's virtualenv (one line per step on a pipe, Rich bars on a terminal), and with a
Python that lacks the project, where it must say exactly what to run instead."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = Path("scripts/demo_certificates.py")
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CARBONLEDGER_")}
    env.update(extra)
    return env


def test_a_python_without_the_project_is_told_what_to_run() -> None:
    # -S: no site-packages, as in a system Python where the project was never installed.
    result = subprocess.run(
        [os.path.realpath(sys.executable), "-S", str(DEMO), "--days", "1"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "`.venv/bin/python scripts/demo_certificates.py`" in lines[0]
    assert "No module named" in lines[0] and "Traceback" not in result.stderr


def test_demo_reports_each_step_and_prints_the_journeys(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(DEMO), "--days", "1", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=_env(CARBONLEDGER_TIMEZONE="Asia/Shanghai"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Not a terminal: plain lines, a start and an end per step, no bar drawing.
    steps = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in steps[::2]] == [f"[{n}/9" for n in range(1, 10)]
    assert all("done in" in line for line in steps[1::2]), steps
    assert "\x1b[" not in result.stderr
    assert (data_dir / "certificate-bundle.json").exists()
    out = result.stdout
    # One whole local day in Asia/Shanghai: 16:00Z to 16:00Z.
    assert "T16:00:00Z to " in out and "00:00 Asia/Shanghai" in out
    assert f"export CARBONLEDGER_DATA_DIR={data_dir}" in out
    assert f"--out {data_dir / 'report'}" in out
    assert (
        str(Path(sys.executable).with_name("carbonledger")) in out
        or ".venv/bin/carbonledger" in out
    )


def test_demo_shows_rich_progress_on_a_terminal(tmp_path: Path) -> None:
    main, side = pty.openpty()
    # A 100-column terminal, whatever the one running the tests (if any) says.
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, str(DEMO), "--days", "1", "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT,
        env=_env(COLUMNS="100", LINES="40", TERM="xterm"),
        stdin=side,
        stdout=subprocess.DEVNULL,
        stderr=side,
    )
    os.close(side)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=300) == 0, seen[-2000:]
    text = seen.decode("utf-8", "replace")
    assert "[9/9] building a certificate bundle" in text
    assert "━" in text, ("a Rich progress bar", text[-1500:])
    assert "done in" not in text, "the plain lines are for pipes only"
