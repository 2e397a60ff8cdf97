"""Logging set-up: one line per event, times in Asia/Bangkok."""

from __future__ import annotations

import logging
import sys
from datetime import datetime

from chumphae.timeutil import BANGKOK


class BangkokFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, BANGKOK).isoformat(timespec="seconds")


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(BangkokFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
