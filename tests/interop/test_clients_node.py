"""The npm ``soap`` (1.13.0) and ``wstrust-client`` (0.0.1) clients, from ``tests/interop/node``, against a real STS.

``node issue_token.js`` loads the STS's ``?wsdl`` with ``soap.createClientAsync``,
sets ``soap.WSSecurity`` (PasswordText or PasswordDigest) and calls ``Issue``
on the port for the WS-Trust and SOAP versions asked. It talks to the STS
through a small recording proxy on loopback, which keeps every request as
sent (bytes and headers) so the client's quirks are pinned here and listed
in ``tests/interop/README.md``.

``node wstrust_client.js`` runs ``wstrust-client``'s ``requestSecurityToken``
as its README shows, against the same STS under gunicorn with TLS (the
package speaks https only); it finds the token by a text match on
``<Assertion``, and the token it cuts out is presented to the echo service.
Node or the installed packages missing is a failure, never a skip.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from demo_sts import roundtrip
from _support.deployment import free_port, make_tls_pair
from test_shapes import TRUST_NS, assert_our_signed_assertion, cut_assertion, q, rstr_element
from wstrust_wsgi import call_service, ns
from wstrust_wsgi.cli import ECHO_NS, echo_payload

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = "issue_token.js"


@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, values
        return values[0] if values else None


@dataclass
class RecordingProxy:
    """Loopback HTTP proxy in front of the STS: forwards as received (Host included), keeps each request."""

    upstream: str
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append(Recorded(self.command, self.path, list(self.headers.items()), body))
                target = urllib.parse.urlsplit(proxy.upstream)
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=20)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",
                                                                                          "keep-alive")}
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    answer = connection.getresponse()
                    payload = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "server", "date"):
                            self.send_header(name, value)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    connection.close()

            do_GET = _forward
            do_POST = _forward

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (quiet)
                pass

        return Handler


@pytest.fixture(scope="module")
def recording_sts(demo_servers) -> Iterator[tuple[RecordingProxy, str, str]]:  # noqa: F811
    """(proxy, sts_url, service_url): the real STS (its issuer is ``sts_url``) reached through ``proxy.url``."""
    sts_url, service_url, _ = demo_servers
    upstream = urllib.parse.urlsplit(sts_url)
    proxy = RecordingProxy(upstream=f"http://{upstream.netloc}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), proxy.handler())
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}{upstream.path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield proxy, sts_url, service_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def node_issue(proxy: RecordingProxy, service_url: str, *, trust: str, soap: str, password_type: str,
               password: str = "admin", **security: object) -> tuple[dict, Recorded]:
    """Run the npm soap client once; its JSON report and the POST it sent."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20+: Debian packages nodejs npm); the interop tests need it")
    if not (NODE_DIR / "node_modules" / "soap" / "package.json").exists():
        pytest.fail(f"the npm soap client is not installed: run `npm ci` in {NODE_DIR}")
    before = len(proxy.requests)
    arguments = {"wsdl": f"{proxy.url}?wsdl", "username": "admin", "password": password,
                 "passwordType": password_type, "trust": trust, "soap": soap, "appliesTo": service_url,
                 "security": security}
    result = subprocess.run([node, SCRIPT, json.dumps(arguments)], cwd=NODE_DIR, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    posts = [r for r in proxy.requests[before:] if r.method == "POST"]
    assert len(posts) == 1, [(r.method, r.path) for r in proxy.requests[before:]]
    assert posts[0].body.decode() == report["request"]  # what the client says it sent is what arrived
    return report, posts[0]


MATRIX = [(t, s) for t in ("1.3", "2005") for s in ("1.1", "1.2")]


@pytest.mark.parametrize(("trust", "soap"), MATRIX)
@pytest.mark.parametrize("password_type", ["PasswordText", "PasswordDigest"])
def test_npm_soap_client_gets_a_token_through_the_wsdl(recording_sts, trust, soap, password_type, tmp_path):
    proxy, sts_url, service_url = recording_sts
    report, sent = node_issue(proxy, service_url, trust=trust, soap=soap, password_type=password_type)
    assert report["ok"] and report["status"] == 200, report
    answer = report["response"].encode()
    rstr = rstr_element(answer, soap, trust)
    assert rstr.findtext(q(TRUST_NS[trust], "TokenType")) == ns.SAML2
    assert_our_signed_assertion(cut_assertion(answer), sts_url, tmp_path)
    assert f'Type="{ns.WSSE_PASSWORD_TEXT if password_type == "PasswordText" else ns.WSSE_PASSWORD_DIGEST}"'.encode() \
        in sent.body


@pytest.mark.parametrize("options", [
    {"mustUnderstand": True},
    {"hasTimeStamp": False},
    {"hasNonce": True},
    {"hasTokenCreated": False},
], ids=["mustUnderstand", "no-timestamp", "text-with-nonce", "text-without-created"])
def test_npm_soap_security_options_still_get_a_token(recording_sts, options):
    proxy, _, service_url = recording_sts
    report, sent = node_issue(proxy, service_url, trust="1.3", soap="1.2", password_type="PasswordText", **options)
    assert report["ok"] and report["status"] == 200, report
    assert b"Assertion" in report["response"].encode()


def test_npm_soap_digest_without_created_is_refused_as_failed_authentication(recording_sts):
    """hasTokenCreated:false with PasswordDigest hashes a Created it does not send: no STS can check it."""
    proxy, _, service_url = recording_sts
    report, sent = node_issue(proxy, service_url, trust="1.3", soap="1.1", password_type="PasswordDigest",
                              hasTokenCreated=False)
    assert b"<wsu:Created>" not in sent.body.split(b"</wsu:Timestamp>")[-1]
    assert not report["ok"] and report["status"] == 500
    assert "wst:FailedAuthentication" in report["response"] and "Assertion" not in report["response"]


def test_npm_soap_wrong_password_gets_a_fault_not_a_token(recording_sts):
    proxy, _, service_url = recording_sts
    report, _ = node_issue(proxy, service_url, trust="2005", soap="1.2", password_type="PasswordDigest",
                           password="wrong")
    assert not report["ok"] and report["status"] == 400  # SOAP 1.2 Sender fault
    fault = etree.fromstring(report["response"].encode()).find(f"{q(ns.SOAP12, 'Body')}/{q(ns.SOAP12, 'Fault')}")
    subcode = fault.findtext(f"{q(ns.SOAP12, 'Code')}/{q(ns.SOAP12, 'Subcode')}/{q(ns.SOAP12, 'Value')}")
    assert subcode == "wst:FailedAuthentication"


# ----------------------------------------------------------------- what the client sends (README table)

@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_npm_soap_request_quirks_are_as_documented(recording_sts, soap, tmp_path):
    """Pins each row of the table in tests/interop/README.md; the request is saved beside the test."""
    proxy, _, service_url = recording_sts
    report, sent = node_issue(proxy, service_url, trust="1.3", soap=soap, password_type="PasswordDigest")
    (tmp_path / f"npm-soap_s{soap}.xml").write_bytes(sent.body)
    (tmp_path / f"npm-soap_s{soap}.http.json").write_text(json.dumps(
        {"method": sent.method, "path": sent.path, "headers": sent.headers}, indent=2))
    body = sent.body
    root = etree.fromstring(body)
    content_type = sent.header("Content-Type") or ""
    action = f"{ns.WST13}/RST/Issue"
    if soap == "1.1":  # SOAP version by option only (forceSoap12Headers), never from the WSDL port
        assert root.tag == q(ns.SOAP11, "Envelope")
        assert content_type == "text/xml; charset=utf-8"
        assert sent.header("SOAPAction") == f'"{action}"'
    else:
        assert root.tag == q(ns.SOAP12, "Envelope")
        assert content_type == f'application/soap+xml; charset=utf-8; action="{action}"'
        assert sent.header("SOAPAction") is None
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope ')
    # every namespace of the WSDL document lands on the Envelope, the policy's sp: included
    assert root.nsmap["sp"] == "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
    assert root.nsmap["tns"] == "urn:wstrust-wsgi:sts"
    header = root.find(q(root.nsmap["soap"], "Header"))
    (security,) = list(header)  # no WS-Addressing headers at all
    assert security.tag == q(ns.WSSE, "Security")
    assert q(root.nsmap["soap"], "mustUnderstand") not in security.attrib  # off unless mustUnderstand: true
    stamp, token = list(security)
    created = stamp.findtext(q(ns.WSU, "Created"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)  # whole seconds, Z
    assert stamp.get(q(ns.WSU, "Id")) == f"Timestamp-{created}"  # colons: not an NCName, so not an xs:ID
    assert token.get(q(ns.WSU, "Id")) == f"SecurityToken-{created}"
    assert token.findtext(q(ns.WSU, "Created")) == created  # the UsernameToken's Created is the Timestamp's
    nonce = token.find(q(ns.WSSE, "Nonce"))
    assert nonce.get("EncodingType") == ns.WSSE_BASE64 and len(base64.b64decode(nonce.text)) == 16
    assert b'xmlns:wsu="' + ns.WSU.encode() + b'" wsu:Id="SecurityToken-' in body  # wsu redeclared on the token
    (rst,) = list(root.find(q(root.nsmap["soap"], "Body")))
    assert rst.tag == q(ns.WST13, "RequestSecurityToken")
    assert rst.nsmap[None] == ns.WST13  # a default namespace as well as the wst: prefix


# ----------------------------------------------------------------- wstrust-client (leandrob/wstrust-client)


@pytest.fixture(scope="module")
def tls_sts(demo_servers, tmp_path_factory) -> Iterator[tuple[str, str, str, Path]]:  # noqa: F811
    """(https_url, issuer, service_url, tls_cert): the demo STS again, under gunicorn with TLS, on port 443.

    wstrust-client 0.0.1 always connects to port 443 (it sends the URL's host:port as the host name
    and hard-codes the port), so the STS listens on 443 of a loopback address of its own
    (127.x.y.z, nothing else there), which needs root. Same issuer, key and relying party as
    ``demo_servers``' STS, so the echo service admits its tokens.
    """
    sts_url, service_url, _ = demo_servers
    if os.geteuid() != 0 and int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) > 443:
        pytest.fail("wstrust-client connects to port 443 only: run the interop tests as root (as run.sh does)")
    address = f"127.{secrets.randbelow(250) + 2}.{secrets.randbelow(256)}.{secrets.randbelow(250) + 2}"
    directory = tmp_path_factory.mktemp("tls-sts")
    tls_key, tls_cert = make_tls_pair(directory, address)
    env = roundtrip.demo_env(urllib.parse.urlsplit(sts_url).port, urllib.parse.urlsplit(service_url).port)
    assert env["WSTRUST_DEMO_ISSUER"] == sts_url and env["WSTRUST_DEMO_SERVICE_URL"] == service_url
    port = free_port()
    process = roundtrip.start_gunicorn("demo_sts.app:app", port, env, directory / "gunicorn.log",
                                       ("--bind", f"{address}:443", "--certfile", str(tls_cert),
                                        "--keyfile", str(tls_key)))
    try:
        assert roundtrip.wait_ready(process, port), (directory / "gunicorn.log").read_text()
        yield f"https://{address}/services/sts", sts_url, service_url, tls_cert
    finally:
        roundtrip.stop(process)


def wstrust_client(endpoint: str, scope: str, tls_cert: Path, *, password: str = "admin") -> dict:
    """Run wstrust-client's requestSecurityToken once; its JSON report."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Node 20+: Debian packages nodejs npm); the interop tests need it")
    if not (NODE_DIR / "node_modules" / "wstrust-client" / "package.json").exists():
        pytest.fail(f"the npm wstrust-client package is not installed: run `npm ci` in {NODE_DIR}")
    arguments = {"endpoint": endpoint, "username": "admin", "password": password, "scope": scope}
    result = subprocess.run([node, "wstrust_client.js", json.dumps(arguments)], cwd=NODE_DIR, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "NODE_EXTRA_CA_CERTS": str(tls_cert)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_npm_wstrust_client_cuts_out_a_token_the_service_admits(tls_sts, tmp_path):
    """The package cuts from ``<Assertion `` to ``</Assertion>``: only AD FS's serialization (SAML 2.0 in
    the default namespace) gives it the token; a prefixed assertion gives it the RSTR's first bytes."""
    endpoint, issuer, service_url, tls_cert = tls_sts
    report = wstrust_client(endpoint, service_url, tls_cert)
    assert report["error"] is None, report["error"]
    assert report["ok"] and report["status"] == 200, report
    assert report["contentType"].startswith("application/soap+xml"), report
    token = report["token"].encode()
    assert token.startswith(b'<Assertion xmlns="' + ns.SAML2.encode() + b'" '), token[:200]
    assert token.endswith(b"</Assertion>")
    assert_our_signed_assertion(token, issuer, tmp_path)
    reply = call_service(service_url, token, echo_payload("from wstrust-client"), soap_version="1.2")
    assert reply.findtext(f"{{{ECHO_NS}}}Message") == "from wstrust-client"
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


def test_npm_wstrust_client_with_a_wrong_password_gets_no_token(tls_sts):
    endpoint, _, service_url, tls_cert = tls_sts
    report = wstrust_client(endpoint, service_url, tls_cert, password="wrong")
    assert report["error"] is None, report["error"]
    assert report["ok"] and report["status"] == 400, report  # SOAP 1.2 Sender fault
    assert not report["token"].startswith("<Assertion"), report
