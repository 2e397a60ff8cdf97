"""`scripts/demo_first_alert.py`'s `stop`: the demo's process group may leave between the SIGINT's wait giving up
(15 s, or a second Ctrl-C) and the SIGKILL; that SIGKILL must not raise ProcessLookupError (debt33)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo_first_alert.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_first_alert", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _LeavesWhileWaited(subprocess.Popen[str]):
    """A real process in its own group whose first wait reaps it (the SIGINT ended it) and then gives up as the
    15 s wait or a second Ctrl-C does: by the SIGKILL its group has left."""

    def __init__(self, give_up: BaseException) -> None:
        super().__init__([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True, text=True)
        self.give_up, self.waits = give_up, 0

    def wait(self, timeout: float | None = None) -> int:
        self.waits += 1
        code = super().wait(timeout)
        if self.waits == 1:
            raise self.give_up
        return code


@pytest.mark.parametrize("give_up", [subprocess.TimeoutExpired("demo", 15), KeyboardInterrupt()])
def test_stop_does_not_raise_when_the_group_left_before_the_sigkill(give_up: BaseException) -> None:
    proc = _LeavesWhileWaited(give_up)
    _script().stop(proc)
    assert proc.waits == 2 and proc.returncode is not None and proc.returncode < 0  # ended by the SIGINT
