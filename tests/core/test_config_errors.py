"""Bad configuration ends the command with one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from chumphae.cli import main; main()"]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")} | env
    return subprocess.run(CLI + args, env=full, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("not a url at all", "not a valid database URL"),
        ("mysql://root@127.0.0.1/test", "unsupported database"),
        ("postgresql://nobody:secret@127.0.0.1:1/none", "cannot reach database"),
    ],
)
def test_bad_database_url_is_one_line(url: str, expect: str, tmp_path: Path) -> None:
    result = run(["db", "upgrade"], {"CHUMPHAE_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chumphae: error:") and expect in lines[0]
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr  # passwords are never printed


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run(["db", "upgrade"], {"CHUMPHAE_PORT": "eighty"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "CHUMPHAE_PORT" in line
    ]


def test_unknown_role_is_one_line(tmp_path: Path) -> None:
    result = run(["users", "create", "--role", "doctor", "--name", "x"],
                 {"CHUMPHAE_DATA_DIR": str(tmp_path / "d")}, tmp_path)
    assert result.returncode == 2
    assert "unknown role 'doctor'" in result.stderr and "Traceback" not in result.stderr


def test_users_create_prints_a_working_token(tmp_path: Path) -> None:
    env = {"CHUMPHAE_DATA_DIR": str(tmp_path / "d")}
    result = run(["users", "create", "--role", "admin", "--name", "ผู้ดูแลระบบ"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    token = next(line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("token: "))
    from fastapi.testclient import TestClient

    from chumphae.api.app import create_app
    from chumphae.config import Settings

    settings = Settings(data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["role"] == "admin"
        assert client.get("/api/v1/me").status_code == 401
