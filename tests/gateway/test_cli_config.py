"""The gateway command refuses bad configuration with one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")} | env
    return subprocess.run(CLI + args, env=full, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "env", "expect"), [
    ([], {}, "GATEWAY_TOKEN is not set"),
    (["--simulate", "demo"], {"GATEWAY_HEARTBEAT_S": "often"}, "bad setting GATEWAY_HEARTBEAT_S"),
    (["--simulate", "no-such-scenario"], {}, "no-such-scenario"),
])
def test_bad_configuration_is_one_line(args: list[str], env: dict[str, str], expect: str, tmp_path: Path) -> None:
    result = run(args, env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.stderr
    assert "Traceback" not in result.stderr
