"""Fixtures the documents' tests borrow: the small world with the tiny tax map (tests/mobile)."""

import socket
from pathlib import Path

from chumphae.config import Settings
from chumphae.db import init_engine
from tests.mobile.conftest import mapped  # noqa: F401  (a fixture, used by name)


def demo_settings(tmp_path: Path) -> Settings:
    """Settings for `chumphae.demo._serve` on a free loopback port, its engine opened (the caller sets the
    engine back to None when done)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(data_dir=tmp_path, host="127.0.0.1", port=port)
    init_engine(settings.effective_database_url)
    return settings
