"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.gateway.bluez import BlueZ


@pytest.fixture
def bluez() -> Iterator[BlueZ]:
    """BlueZ as python-dbusmock plays it, on a private system bus (never the machine's). When python-dbusmock,
    dbus-python or dbus-daemon is missing, the test that asked for it is skipped with the reason; the other tests
    of its module still run."""
    pytest.importorskip("dbusmock", reason="python-dbusmock not installed (pip install -e '.[test]')")
    pytest.importorskip("dbus", reason="dbus-python not installed (needs Debian libdbus-1-dev libglib2.0-dev)")
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon missing (Debian package dbus)")
    old = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    b = BlueZ()
    try:
        yield b
    finally:
        b.close()
        if old is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = old
