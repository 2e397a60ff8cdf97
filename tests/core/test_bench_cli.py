"""`scripts/bench --only`: repeated, each names benchmarks to run; a name matching none is refused (docs18 found
`--only A --only B` ran only B, and `--only typo` ran nothing, said `benchmarks=0` and exited 0)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cli_under_test", ROOT / "scripts" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_only_repeated_runs_each_named_benchmark(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    ran: list[str] = []

    def fake_run(b: Any, args: Any) -> tuple[dict[str, float], str | None, float]:
        ran.append(b.name)
        return {}, "not run in this test", 0.0

    monkeypatch.setattr(bench, "run", fake_run)
    bench.main(["--only", "delivery", "--only", "daily summary"])
    assert ran == [b.name for b in bench.BENCHES if b.name in ("delivery", "daily summary")] and len(ran) == 2
    assert "SUMMARY bench benchmarks=2 " in capsys.readouterr().out


def test_only_with_a_name_matching_nothing_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    monkeypatch.setattr(bench, "run", lambda b, args: pytest.fail(f"ran {b.name}"))
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--only", "delivery", "--only", "delivry"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--only delivry: no benchmark's name contains it" in err and "delivery" in err
