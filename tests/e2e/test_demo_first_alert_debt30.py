"""`scripts/demo_first_alert.py` removes its `demo-first-alert-*` data folder when it ends, also on Ctrl-C or
SIGTERM, unless `--keep` (debt30: every run left one in /tmp, with a demo database in it).

The real script runs with its real `scripts/demo`; `--timeout 0` makes it give up at once (no alert), which is
still a run that started the demo and must stop it and clean up. TMPDIR points at the test's folder, so the
folder the script makes is found there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "demo_first_alert.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def demo_installed() -> None:
    """`scripts/demo` first (re)installs the package when its stamp is stale: let that finish here, so no test
    interrupts a pip install half-way (that could break the venv)."""
    done = subprocess.run([str(REPO / "scripts" / "demo"), "--help"], capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(tmp: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.Popen([sys.executable, str(SCRIPT), "--port", str(_free_port()), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("demo-first-alert-*"))


def _processes_using(folder: Path) -> list[int]:
    """Our own processes whose environment names the folder (the demo and what it started)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if str(folder).encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_a_run_that_ends_removes_its_folder_and_stops_the_demo(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--timeout", "0")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "no alert within the timeout" in out, (out, err)
    assert _folders(tmp_path) == []


def test_keep_leaves_the_folder_and_says_where(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--timeout", "0", "--keep")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    (folder,) = _folders(tmp_path)
    assert (folder / "demo.log").is_file()
    assert f"kept the demo's data folder: {folder}" in err
    assert _processes_using(folder) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_while_waiting_removes_the_folder_and_stops_the_demo(tmp_path: Path,
                                                                              signum: signal.Signals) -> None:
    proc = _start(tmp_path, "--timeout", "600")
    try:
        for _ in range(600):  # the folder, its log, and the demo started with it
            folders = _folders(tmp_path)
            if folders and (folders[0] / "demo.log").exists() and _processes_using(folders[0]):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the script never started the demo")
        (folder,) = folders
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    assert not folder.exists() and _folders(tmp_path) == []
    assert _processes_using(folder) == []


def test_help_names_keep() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0
    words = " ".join(done.stdout.split())
    assert "--keep" in words and "removed on exit" in words and "Ctrl-C" in words, words
