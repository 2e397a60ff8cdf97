"""Fixtures shared by the detect tests: scripts/bench_detect.py loaded as a module, and its tax map."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from chumphae.map.layers import MapLayers
from chumphae.timeutil import BANGKOK

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 6, 2, tzinfo=BANGKOK).astimezone(UTC)  # the benches' first day, midnight in Bangkok


def load_bench() -> ModuleType:
    """scripts/bench_detect.py (scripts/ is not a package): imported once, scripts/ on the path only meanwhile."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return importlib.import_module("bench_detect")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def layers() -> MapLayers:
    """The bench's tax map (scripts/bench_detect.py `MAP`), metric, once per module."""
    return MapLayers.from_file(load_bench().MAP)
