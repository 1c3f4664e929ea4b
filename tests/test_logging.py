"""Log lines an operator can act on: who asked, which request, in text or JSON, set up in one call.

* Who asked: ``REMOTE_ADDR``; ``X-Forwarded-For`` (and ``X-Request-ID``) only
  through configured trusted proxies, read from the right, so a client cannot
  choose the address logged.
* Every ``issued:``, ``refused:`` and ``admitted:`` line of the STS and of the
  middleware ends with ``(client A, request ID)`` and carries both as record
  attributes; the wrapped app finds the id in ``environ``.
* :class:`~wstrust_wsgi.JsonFormatter` writes one object per line and
  :func:`~wstrust_wsgi.configure_logging` gives time, process, level and logger name.
* The README's set-up for a protected service, under real gunicorn with two
  workers: admitted and refused lines reach gunicorn's log, as text and as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from webtest import TestApp

from _support import ISSUER, ROOT, SERVICE_URL, FixedClock, KeyFiles
from demo_sts import roundtrip
from wstrust_wsgi import (
    ConfigurationError,
    JsonFormatter,
    MemoryUserStore,
    RelyingParty,
    RelyingPartyMiddleware,
    RemoteFault,
    StsClient,
    TokenService,
    UrllibTransport,
    WSGITransport,
    call_service,
    configure_logging,
)
from wstrust_wsgi._log import REQUEST_ID_KEY, TrustedProxies

RANDOM_ID = re.compile(r"[0-9a-f]{16}")
PAYLOAD = b'<m:Ping xmlns:m="urn:example:ping"/>'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes the wstrust_wsgi logger; undo it for other tests."""
    logger = logging.getLogger("wstrust_wsgi")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


# ---------------------------------------------------------------------- who asked


@pytest.mark.parametrize(("proxies", "environ", "client"), [
    ((), {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, "203.0.113.9"),
    (("10.0.0.0/8",), {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, "203.0.113.9"),
    (("127.0.0.1",), {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, "198.51.100.1"),
    (("127.0.0.1", "10.0.0.0/8"), {"REMOTE_ADDR": "127.0.0.1",
                                   "HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.1, 10.0.0.2"}, "198.51.100.1"),
    (("10.0.0.0/8",), {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "10.0.0.3,10.0.0.2"}, "10.0.0.3"),
    (("10.0.0.1",), {"REMOTE_ADDR": "10.0.0.1"}, "10.0.0.1"),
    (("10.0.0.1",), {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1:5555"}, "198.51.100.1"),
    (("::1",), {"REMOTE_ADDR": "::1", "HTTP_X_FORWARDED_FOR": "[2001:db8::7]:443"}, "2001:db8::7"),
    (("10.0.0.1",), {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1\nrefused: forged"},
     "10.0.0.1"),
    (("10.0.0.1",), {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.1, unknown"}, "10.0.0.1"),
    ((), {}, "-"),
], ids=["no proxies", "untrusted peer", "one proxy", "spoofed entry left of ours", "only proxies",
        "no header", "v4 with port", "v6 bracketed", "newline", "not an address", "no peer"])
def test_the_client_is_the_peer_unless_a_trusted_proxy_forwarded_it(
    proxies: tuple[str, ...], environ: dict[str, Any], client: str,
) -> None:
    assert TrustedProxies(proxies).request_info(environ).client == client


def test_a_request_id_from_a_trusted_proxy_is_kept_otherwise_one_is_made() -> None:
    proxies = TrustedProxies(["10.0.0.1"])
    environ: dict[str, Any] = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_REQUEST_ID": "edge-42"}
    assert proxies.request_info(environ).request_id == "edge-42" and environ[REQUEST_ID_KEY] == "edge-42"
    for sent in ("has spaces", "x" * 65, "a\nb"):
        made = proxies.request_info({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_REQUEST_ID": sent}).request_id
        assert RANDOM_ID.fullmatch(made), sent
    untrusted = proxies.request_info({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_REQUEST_ID": "edge-42"})
    assert RANDOM_ID.fullmatch(untrusted.request_id)
    again = {"REMOTE_ADDR": "10.0.0.1", REQUEST_ID_KEY: "set-outside"}  # an outer layer already chose it
    assert proxies.request_info(again).request_id == "set-outside"


def test_trusted_proxies_that_are_not_addresses_are_refused_at_construction(sts_keys: KeyFiles,
                                                                         users: MemoryUserStore) -> None:
    with pytest.raises(ConfigurationError, match=r"trusted_proxies: 'proxy\.example\.org' is not an IP address"):
        TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, relying_parties=[],
                     trusted_proxies=["10.0.0.1", "proxy.example.org"])
    with pytest.raises(ConfigurationError, match=r"trusted_proxies: '10\.0\.0\.0/33' is not an IP address"):
        RelyingPartyMiddleware(lambda e, s: [], audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                               trusted_proxies=["10.0.0.0/33"])


# ---------------------------------------------------------------------- every line says who and which


def _ending(record: logging.LogRecord, client: str, request_id: str | re.Pattern[str]) -> None:
    text = record.getMessage()
    match = re.search(r" \(client (\S+), request (\S+)\)$", text)
    assert match is not None, text
    assert match[1] == client and record.client == client, text  # type: ignore[attr-defined]
    if isinstance(request_id, str):
        assert match[2] == request_id == record.request_id, text  # type: ignore[attr-defined]
    else:
        assert request_id.fullmatch(match[2]) and match[2] == record.request_id, text  # type: ignore[attr-defined]


def _lines(caplog: pytest.LogCaptureFixture, start: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(start)]


def test_sts_issued_and_refused_lines_name_the_client_and_the_request(
    sts_keys: KeyFiles, users: MemoryUserStore, clock: FixedClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wstrust_wsgi")
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL)], trusted_proxies=["10.0.0.0/8"])
    web = TestApp(sts, extra_environ={"REMOTE_ADDR": "10.0.0.5", "wsgi.url_scheme": "https"})
    forwarded = {"X-Forwarded-For": "198.51.100.7", "X-Request-ID": "rq-1"}

    def post(password: str, **headers: str) -> Any:
        client = StsClient("https://sts.invalid/services/sts", username="admin", password=password, clock=clock)
        headers["Content-Type"] = client.soap.content_type(client.dialect.issue_action)
        return web.post("/", client.build_request(SERVICE_URL), headers=headers, expect_errors=True)

    assert post("admin", **forwarded).status_int == 200
    assert post("wrong", **forwarded).status_int != 200
    assert post("wrong").status_int != 200  # straight from the peer: no header to believe
    web.post("/", b"x", headers={"Content-Type": "text/plain"}, expect_errors=True)
    [issued] = _lines(caplog, "issued: SAML 2.0 token")
    _ending(issued, "198.51.100.7", "rq-1")
    forwarded_refusal, direct_refusal = _lines(caplog, "refused: FailedAuthentication")
    _ending(forwarded_refusal, "198.51.100.7", "rq-1")
    _ending(direct_refusal, "10.0.0.5", RANDOM_ID)
    [not_soap] = _lines(caplog, "refused: content type 'text/plain")
    _ending(not_soap, "10.0.0.5", RANDOM_ID)


def test_middleware_admitted_and_refused_lines_name_the_client_and_the_request(
    sts_app: TokenService, make_client: Callable[..., StsClient], sts_keys: KeyFiles, clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ[REQUEST_ID_KEY])  # the app logs under the same id
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ok/></s:Body>'
                b"</s:Envelope>"]

    service = RelyingPartyMiddleware(app, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                     clock=clock, trusted_proxies=["127.0.0.1"])

    def from_peer(peer: str, **headers: str) -> WSGITransport:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
            environ.update(REMOTE_ADDR=peer, **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
            return service(environ, start_response)
        return WSGITransport(wrapped)

    caplog.set_level(logging.INFO, logger="wstrust_wsgi")
    token = make_client().request_token(SERVICE_URL)
    call_service(SERVICE_URL, token, PAYLOAD, transport=from_peer("127.0.0.1", x_forwarded_for="198.51.100.7"))
    [admitted] = _lines(caplog, "admitted: 'admin' with SAML 2.0 token")
    _ending(admitted, "198.51.100.7", RANDOM_ID)
    assert seen == [admitted.request_id]  # type: ignore[attr-defined]
    forged = token.assertion.replace(b"admin", b"root!", 1)
    with pytest.raises(RemoteFault):
        call_service(SERVICE_URL, forged, PAYLOAD, transport=from_peer("203.0.113.9", x_forwarded_for="10.9.9.9",
                                                                       x_request_id="mine"))
    [refused] = _lines(caplog, "refused: ")
    _ending(refused, "203.0.113.9", RANDOM_ID)  # not a proxy of ours: neither header believed


# ---------------------------------------------------------------------- formats and set-up


def test_the_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord("wstrust_wsgi.sts", logging.WARNING, __file__, 1,
                               "refused: %s (%s)", ("bad\nthing", "client 192.0.2.1, request r1"), None)
    record.client, record.request_id = "192.0.2.1", "r1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "refused: bad\nthing" and entry["level"] == "WARNING"
    assert (entry["logger"], entry["client"], entry["request_id"]) == ("wstrust_wsgi.sts", "192.0.2.1", "r1")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("wstrust_wsgi", logging.ERROR, __file__, 1, "start-up", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(failed))
    assert "client" not in entry and "ValueError: boom" in entry["exception"]


def test_configure_logging_shows_time_level_and_logger_name_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    configure_logging()  # a second call replaces its handler: still one line per record
    logging.getLogger("wstrust_wsgi.middleware").info("admitted: 'admin' (client 192.0.2.1, request r1)")
    logging.getLogger("wstrust_wsgi.middleware").debug("not shown at info")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] wstrust_wsgi\.middleware: "
                        r"admitted: 'admin' \(client 192\.0\.2\.1, request r1\)", lines[0]), lines
    configure_logging("warning", json=True)
    logging.getLogger("wstrust_wsgi.sts").warning("refused: x")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "refused: x"


# ---------------------------------------------------------------------- the README's set-up under gunicorn

SERVICE_MODULE = '''
import os

from wstrust_wsgi import RelyingPartyMiddleware, configure_logging

configure_logging(json=os.environ.get("TEST_LOG_JSON") == "1")


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
    return [b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ok/></s:Body></s:Envelope>']


application = RelyingPartyMiddleware(
    hello, audience=os.environ["TEST_AUDIENCE"], issuer=os.environ["TEST_ISSUER"],
    trusted_certs=[os.environ["TEST_STS_CERT"]], trusted_proxies=["127.0.0.1"],
)
'''


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_a_protected_service_under_gunicorn_logs_admitted_and_refused_lines(
    tmp_path: Path, sts_keys: KeyFiles, users: MemoryUserStore, json_lines: bool,
) -> None:
    (tmp_path / "protected.py").write_text(SERVICE_MODULE)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), TEST_AUDIENCE=SERVICE_URL,
               TEST_ISSUER=ISSUER, TEST_STS_CERT=str(sts_keys.cert), TEST_LOG_JSON="1" if json_lines else "0")
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "protected:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--worker-class", "gthread", "--threads", "2", "--graceful-timeout", "5"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/soap"
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users,
                       relying_parties=[RelyingParty(SERVICE_URL)])
    token = StsClient("http://sts.invalid/services/sts", username="admin", password="admin",
                      transport=WSGITransport(sts)).request_token(SERVICE_URL)
    plain = UrllibTransport(timeout=30)

    def forwarded(target: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        return plain(target, body, {**headers, "X-Forwarded-For": "198.51.100.7", "X-Request-ID": "edge-7"})

    try:
        assert roundtrip.wait_ready(process, port), log.read_text()
        assert etree.QName(call_service(url, token, PAYLOAD, transport=forwarded)).localname == "ok"
        with pytest.raises(RemoteFault):
            call_service(url, token.assertion.replace(b"admin", b"root!", 1), PAYLOAD, transport=plain)
    finally:
        roundtrip.stop(process)
    text = log.read_text()
    if json_lines:
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        admitted = next(r for r in records if r["message"].startswith("admitted: 'admin'"))
        assert (admitted["client"], admitted["request_id"], admitted["logger"]) == (
            "198.51.100.7", "edge-7", "wstrust_wsgi.middleware"), admitted
        refused = next(r for r in records if r["message"].startswith("refused: "))
        assert refused["client"] == "127.0.0.1" and RANDOM_ID.fullmatch(refused["request_id"]), refused
        assert refused["level"] == "WARNING" and refused["time"]
    else:
        stamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] "
        assert re.search(stamp + r"\[INFO\] wstrust_wsgi\.middleware: admitted: 'admin' with SAML 2\.0 token .*"
                                 r" \(client 198\.51\.100\.7, request edge-7\)$", text, re.M), text
        assert re.search(stamp + r"\[WARNING\] wstrust_wsgi\.middleware: refused: \w+: .*"
                                 r" \(client 127\.0\.0\.1, request [0-9a-f]{16}\)$", text, re.M), text
