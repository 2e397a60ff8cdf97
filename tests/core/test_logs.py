"""Tokens in query strings never reach the log."""

from __future__ import annotations

import logging

from chumphae.logs import RedactSecrets


def test_query_token_is_redacted() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/1.1" %d', ("127.0.0.1:5", "GET", "/?token=chu_secret&lang=en", 200),
                               None)
    assert RedactSecrets().filter(record)
    assert "chu_secret" not in record.getMessage()
    assert "token=<redacted>&lang=en" in record.getMessage()
