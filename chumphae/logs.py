"""Logging set-up: one line per event, times in Asia/Bangkok, and nothing personal or secret at any level.

PDPA: no CID, name, home position or token may reach a log. Our own code
never logs them; two filters guard what libraries log:
- `DropWireDetail` drops the WebSocket libraries' wire dumps (websockets
  and uvicorn log every frame, request line and header at DEBUG: feed
  frames carry patients' names, headers carry `Authorization: Bearer …`);
- `RedactSecrets` blanks tokens wherever they still appear (`?token=` in an
  access-log line, a `chu_…`/`chg_…` token or a bearer credential in text),
  a query string's point (`lat=`, `lon=`, `bbox=`: a map asked for around a home; a query name is
  matched as the server decodes it, so `?la%74=` is `lat=`; pairs split by `&` or `;`),
  and the query string and user-info of the provider URLs the HTTP client
  logs at INFO (`HTTP Request: POST https://sms…/send?key=…`: an SMS
  gateway's or a webhook's key may sit there).
`setup()` puts both on the handler (every record that propagates) and the
wire filter on the libraries' own loggers too, so a handler added later
(a test's, a log shipper's) gets the same protection.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from typing import TextIO
from urllib.parse import unquote_plus

from chumphae.timeutil import BANGKOK

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def known_level(value: str) -> str:
    """A level logging knows, any case (`info` is INFO); anything else is a ValueError, which the settings
    (CHUMPHAE_LOG_LEVEL, GATEWAY_LOG_LEVEL) turn into one line that stops the start."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"Input should be one of {', '.join(LOG_LEVELS)}")
    return level


class BangkokFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, BANGKOK).isoformat(timespec="seconds")


SECRET = re.compile(r"((?:token|access_token)=)[^&\s\"']+", re.IGNORECASE)
# A point in a query string (`GET /api/v1/map/routes?lat=…&lon=…`, `?bbox=…`): the app asks for the map
# around a patient's home, so the access log would carry the home position (outside20).
# Matched on the name as the server decodes it (starlette unquotes names: `?la%74=` is `lat`, small21).
# A `;` separates pairs too (`?a=1;lat=16.5`: servers and proxies that split on it read `lat`, debt27): a value
# ends at a `;` that starts another `name=`; else the `;` stays in the value (`?lat=16.5;102.1` all redacted).
QUERY_PAIR = re.compile(r"([?&;])([^=&;?#\s\"']+)=((?:[^&;\s\"']|;(?![^=&;?#\s\"']+=))+)")
QUERY_NAMES = frozenset({"lat", "lon", "bbox", "token", "access_token"})
TOKEN = re.compile(r"\bch[ug]_[A-Za-z0-9_\-]{6,}")
# A URL's user-info (`user:pass@`) and query string, blanked in what the HTTP client logs about outbound calls.
URL_QUERY = re.compile(r"(https?://[^\s?#\"']*)\?[^\s#\"']*", re.IGNORECASE)
URL_USERINFO = re.compile(r"(https?://)[^/\s@\"']*@", re.IGNORECASE)
HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")
BEARER = re.compile(r"((?:authorization|bearer)[\"']?\s*[:=]?\s*[\"']?(?:bearer\s+)?)[^\s\"',;]+", re.IGNORECASE)

# Loggers through which the WebSocket libraries dump frames and headers.
WIRE_LOGGERS = ("uvicorn.error", "websockets", "websockets.server", "websockets.client", "websockets.protocol",
                "sqlalchemy.engine.Engine")
WIRE_PREFIXES = ("< ", "> ")  # websockets: "> TEXT '…' [n bytes]", "< Authorization: Bearer …", "< GET /?token=…"


def _redact_pair(match: re.Match[str]) -> str:
    if unquote_plus(match[2]).lower() in QUERY_NAMES:
        return f"{match[1]}{match[2]}=<redacted>"
    return match[0]


def redact(text: str) -> str:
    text = SECRET.sub(r"\1<redacted>", text)
    text = QUERY_PAIR.sub(_redact_pair, text)
    text = BEARER.sub(r"\1<redacted>", text)
    return TOKEN.sub("<redacted>", text)


class RedactSecrets(logging.Filter):
    """Access logs carry query strings; a page opened with ?token=... must not put it in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a library's broken format string: keep the record, not its args
            record.msg, record.args = str(record.msg), None
            message = record.msg
        cleaned = redact(message)
        if record.name.startswith(HTTP_CLIENT_LOGGERS):
            cleaned = URL_USERINFO.sub(r"\1<redacted>@", URL_QUERY.sub(r"\1?<redacted>", cleaned))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class DropWireDetail(logging.Filter):
    """Drop frame, request-line and header dumps (below INFO), uvicorn's TRACE ASGI messages and the
    database rows SQLAlchemy logs at DEBUG (its parameters are hidden by the engine: `hide_parameters`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.DEBUG:  # uvicorn's TRACE: whole ASGI messages, bodies included
            return False
        if record.levelno <= logging.DEBUG and record.name.startswith("sqlalchemy.engine"):
            return False  # "Row (1, 'นาง', 'สมศรี', …)"
        if record.levelno <= logging.DEBUG and record.name.startswith(("websockets", "uvicorn")):
            return not (isinstance(record.msg, str) and record.msg.startswith(WIRE_PREFIXES))
        return True


def guard_library_loggers() -> None:
    """Put the wire filter on the libraries' loggers themselves (idempotent)."""
    for name in WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropWireDetail) for f in logger.filters):
            logger.addFilter(DropWireDetail())


def setup(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(BangkokFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(DropWireDetail())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    guard_library_loggers()


def protect_logs() -> None:
    """For a process that configured logging its own way (the gateway): the same two filters."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, DropWireDetail) for f in handler.filters):
            handler.addFilter(DropWireDetail())
            handler.addFilter(RedactSecrets())
    guard_library_loggers()
