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


def test_wire_dumps_and_bearer_tokens_never_reach_a_handler() -> None:
    import io

    from chumphae import logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    try:
        logs.setup("DEBUG", stream=out)
        logging.getLogger("websockets.client").debug("> Authorization: Bearer %s", "chg_secretsecret")
        logging.getLogger("uvicorn.error").debug("> TEXT %s [%d bytes]", '{"name_th": "สมศรี"}', 20)
        logging.getLogger("sqlalchemy.engine.Engine").debug("Row %r", (1, "สมศรี", "1409900000011"))
        logging.getLogger("chumphae.x").info("sent to %s", "Bearer chu_abcdefghijklmnop")
        logging.getLogger("chumphae.x").info("kept")
    finally:
        text = out.getvalue()
        root.handlers[:], root.level = saved
    assert "chg_secret" not in text and "สมศรี" not in text and "1409900000011" not in text
    assert "chu_abcdefghijklmnop" not in text and "<redacted>" in text and "kept" in text


def test_provider_url_secrets_the_http_client_logs_are_redacted() -> None:
    """httpx logs every outbound request at INFO with its URL: an SMS gateway's key in the query string or a
    webhook's user:password must not reach the log (the path and the answer stay, for the operator)."""
    import io

    import httpx

    from chumphae import logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    try:
        logs.setup("INFO", stream=out)
        with httpx.Client(transport=httpx.MockTransport(answer)) as client:
            client.post("https://sms.example.test/send?api_key=k3y5ecret&sender=CHP", data={"to": "0812345678"})
            client.post("https://hook:pa55word@hooks.example.test/chumphae")
        logging.getLogger("chumphae.x").info("see https://example.test/page?q=kept")
    finally:
        text = out.getvalue()
        root.handlers[:], root.level = saved
    assert "HTTP Request: POST https://sms.example.test/send?<redacted>" in text, text
    assert "https://<redacted>@hooks.example.test/chumphae" in text, text
    assert "k3y5ecret" not in text and "pa55word" not in text and "CHP" not in text
    assert "page?q=kept" in text  # only the HTTP client's own lines lose their query strings


def test_a_point_in_a_query_string_is_redacted() -> None:
    """outside20: the app asks for the map around a patient's home (`GET /api/v1/map/routes?lat=&lon=`, as
    docs/mobile-api.md says); uvicorn's access line carried the home position at INFO."""
    for query in ("/api/v1/map/routes?lat=16.545&lon=102.1001&radius_m=150",
                  "/api/v1/map/parcels?bbox=102.09,16.54,102.11,16.56&limit=5",
                  "/api/v1/map/landmarks?LON=102.1001&LAT=16.545"):
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/1.1" %d',
                                   ("127.0.0.1:5", "GET", query, 200), None)
        assert RedactSecrets().filter(record)
        message = record.getMessage()
        assert "16.545" not in message and "102.1001" not in message and "102.09" not in message, message
        assert "/api/v1/map/" in message and "=<redacted>" in message
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/1.1" %d',
                               ("127.0.0.1:5", "GET", "/api/v1/map/routes?lat=16.545&lon=102.1001&radius_m=150",
                                200), None)
    RedactSecrets().filter(record)
    assert "lat=<redacted>&lon=<redacted>&radius_m=150" in record.getMessage()


def test_a_percent_encoded_query_name_is_redacted_as_the_server_decodes_it() -> None:
    """small21: starlette decodes a query name (`?la%74=16.5` is `lat`), uvicorn's access line keeps it raw;
    the redaction matched the raw name only, so `la%74`, `%74oken`, `bbo%78` reached the log."""
    from starlette.datastructures import QueryParams

    for query, secret in (("la%74=16.545&lon=102.1001", "16.545"), ("lat=16.545&l%6Fn=102.1001", "102.1001"),
                          ("%74oken=chx-not-a-prefix-secret&lang=en", "chx-not-a-prefix-secret"),
                          ("%62bo%78=102.09,16.54,102.11,16.56", "102.09"),
                          ("%41ccess_%54oken=opaque5ecret", "opaque5ecret")):
        decoded = QueryParams(query)
        assert {"lat", "lon", "token", "bbox", "access_token"} & {k.lower() for k in decoded}, query
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/1.1" %d',
                                   ("127.0.0.1:5", "GET", f"/api/v1/map/routes?{query}", 200), None)
        assert RedactSecrets().filter(record)
        message = record.getMessage()
        assert secret not in message and "=<redacted>" in message, message
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/1.1" %d',
                               ("127.0.0.1:5", "GET", "/api/v1/map/routes?la%74=16.545&radius_m=150&latx=1", 200),
                               None)
    RedactSecrets().filter(record)
    assert "la%74=<redacted>&radius_m=150&latx=1" in record.getMessage()  # other names kept as they were


def test_a_point_after_a_semicolon_in_a_query_is_redacted() -> None:
    """debt27: a `;` separates query pairs for servers and proxies that split on it (`?a=1;lat=16.545`); the
    redaction split on `&` only, so `lat` after a `;` was read as part of `a`'s value and reached the log."""
    for query, secrets in (("?radius_m=150;lat=16.545;lon=102.1001", ("16.545", "102.1001")),
                           ("?limit=5;bbo%78=102.09,16.54,102.11,16.56", ("102.09", "16.56")),
                           ("?x;lat=16.545&lon=102.1001", ("16.545", "102.1001")),
                           ("?lat=16.545;102.1001", ("16.545", "102.1001"))):  # a `;` inside the value: all of it
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/1.1" %d',
                                   ("127.0.0.1:5", "GET", f"/api/v1/map/routes{query}", 200), None)
        assert RedactSecrets().filter(record)
        message = record.getMessage()
        assert not any(s in message for s in secrets) and "/api/v1/map/routes?" in message, message
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/1.1" %d',
                               ("127.0.0.1:5", "GET", "/api/v1/map/routes?radius_m=150;lat=16.545&limit=5;q=a;b",
                                200), None)
    RedactSecrets().filter(record)
    assert "?radius_m=150;lat=<redacted>&limit=5;q=a;b " in record.getMessage()  # other pairs kept as they were
