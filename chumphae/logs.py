"""Logging set-up: one line per event, times in Asia/Bangkok."""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime

from chumphae.timeutil import BANGKOK


class BangkokFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, BANGKOK).isoformat(timespec="seconds")


SECRET = re.compile(r"((?:token|access_token)=)[^&\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Access logs carry query strings; a page opened with ?token=... must not put it in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if SECRET.search(message):
            record.msg, record.args = SECRET.sub(r"\1<redacted>", message), None
        return True


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(BangkokFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
