"""The client: reading real STS answers, faults, byte-exact tokens, transports, the RST it builds.

Real peer output comes from ``tests/data/vectors`` (AD FS, a WIF-based STS);
our own STS and echo service run in-process over :class:`WSGITransport` or on
loopback HTTP through :class:`UrllibTransport`. Transports are wrapped, never
replaced, to see the exact bytes on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from lxml import etree

from _support import ISSUER, OTHER_URL, SERVICE_URL, STS_URL, vector
from wstrust_wsgi import (
    ConfigurationError,
    IssuedToken,
    RemoteFault,
    StsClient,
    TransportError,
    UrllibTransport,
    WSGITransport,
    WsTrustError,
    call_service,
    parse_response,
)
from wstrust_wsgi.cli import ECHO_NS, echo_payload as _echo_payload
from wstrust_wsgi.errors import SecurityWarning

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WST13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WST2005 = "http://schemas.xmlsoap.org/ws/2005/02/trust"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSA = "http://www.w3.org/2005/08/addressing"
FED = "http://schemas.xmlsoap.org/ws/2006/12/federation"
SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

SAML11_START = b"<saml:Assertion"
SAML11_END = b"</saml:Assertion>"


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_assertion(data: bytes, start: bytes = SAML11_START, end: bytes = SAML11_END) -> bytes:
    """The bytes of a file from the assertion's start tag to its end tag, found by hand."""
    first = data.index(start)
    last = data.index(end, first) + len(end)
    assert data.count(start) == 1, "the vector holds one assertion"
    return data[first:last]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


class RecordingTransport:
    """Wraps a real transport and keeps every request and answer it carried."""

    def __init__(self, inner: Callable[[str, bytes, dict[str, str]], tuple[int, str, bytes]]) -> None:
        self.inner = inner
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        self.responses: list[tuple[int, str, bytes]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        self.requests.append((url, body, dict(headers)))
        answer = self.inner(url, body, headers)
        self.responses.append(answer)
        return answer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@contextmanager
def serve_on_loopback(app: Any) -> Iterator[str]:
    """Serve a WSGI app over real HTTP on 127.0.0.1; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def non_http_peer(greeting: bytes) -> Iterator[str]:
    """A loopback TCP peer that reads the request and answers ``greeting`` (not HTTP)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def answer_once() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(greeting)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/services/sts"
    finally:
        listener.close()
        thread.join(timeout=5)


def static_app(status: str, content_type: str, body: bytes) -> Any:
    """A WSGI peer that always gives the same answer (stands in for a broken server)."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


def parsed(request: bytes) -> etree._Element:
    return etree.fromstring(request)


def security_of(envelope: etree._Element, soap_ns: str) -> etree._Element:
    security = envelope.find(f"{{{soap_ns}}}Header/{{{WSSE}}}Security")
    assert security is not None
    return security


def rst_of(envelope: etree._Element, soap_ns: str, trust_ns: str) -> etree._Element:
    rst = envelope.find(f"{{{soap_ns}}}Body/{{{trust_ns}}}RequestSecurityToken")
    assert rst is not None
    return rst


# ----------------------------------------------------------------------------- real STS answers


def test_parse_response_reads_adfs_wstrust13_collection_single_line():
    data = vector("adal-node_adfs_rstrc_wstrust13_saml11_with_references.xml").read_bytes()
    token = parse_response(data)
    assert token.token_type == SAML1
    assert token.assertion_id == "_bf137f90-7dd7-4668-8a39-8bf55eb52017"
    assert token.created == utc("2014-01-27T08:15:45.003Z")
    assert token.expires == utc("2014-01-27T09:15:45.003Z")
    assert token.created.tzinfo is not None
    assert token.applies_to == "urn:federation:MicrosoftOnline"


def test_parse_response_keeps_the_adfs_wstrust13_assertion_byte_for_byte():
    data = vector("adal-node_adfs_rstrc_wstrust13_saml11_with_references.xml").read_bytes()
    token = parse_response(data)
    assert token.assertion == raw_assertion(data)


def test_parse_response_reads_adfs_wstrust2005_rstr_with_bom_and_declaration():
    data = vector("adal-node_adfs_rstr_wstrust2005_saml11.xml").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf<?xml")
    token = parse_response(data)
    assert token.token_type == SAML1
    assert token.assertion_id == "_f8ce7751-1854-4c97-bb4e-5393d730bb46"
    assert token.created == utc("2015-07-31T05:45:47.269Z")
    assert token.expires == utc("2015-07-31T06:45:47.269Z")
    assert token.applies_to == "urn:federation:MicrosoftOnline"


def test_parse_response_keeps_the_pretty_printed_2005_assertion_byte_for_byte_after_the_bom():
    data = vector("adal-node_adfs_rstr_wstrust2005_saml11.xml").read_bytes()
    token = parse_response(data)
    assert token.assertion == raw_assertion(data)
    assert b"\n" in token.assertion  # the indentation is kept, not normalised


def test_parse_response_reads_msal_adfs_pretty_printed_collection():
    data = vector("msal-python_adfs_rstr_saml11_bearer.xml").read_bytes()
    token = parse_response(data)
    assert token.token_type == SAML1
    assert token.assertion_id == "_9bd2b280-f153-471a-9b73-c1df0d555075"
    assert token.created == utc("2013-11-15T03:08:25.205Z")
    assert token.expires == utc("2013-11-15T04:08:25.205Z")
    assert token.applies_to == "https://login.microsoftonline.com/extSTS.srf"
    assert token.assertion == raw_assertion(data)


def test_parse_response_refuses_a_bare_wsfed_wresult_as_not_a_soap_envelope():
    data = vector("passport-wsfed-saml2_rstrc_wstrust13_saml11_rsasha256_signed.xml").read_bytes()
    assert data.startswith(b"<trust:RequestSecurityTokenResponseCollection")  # a wresult, no SOAP
    with pytest.raises(TransportError) as caught:
        parse_response(data)
    assert "not a SOAP envelope" in str(caught.value)


def test_parse_response_reads_the_wsfed_collection_once_wrapped_in_a_soap_body():
    wresult = vector("passport-wsfed-saml2_rstrc_wstrust13_saml11_rsasha256_signed.xml").read_bytes()
    data = (f'<s:Envelope xmlns:s="{SOAP12}"><s:Body>'.encode() + wresult + b"</s:Body></s:Envelope>")
    token = parse_response(data)
    assert token.token_type == SAML1
    assert token.assertion_id == "_b996a6d2-0556-4292-ab63-bcbb183a1eca"
    assert token.created == utc("2015-07-23T15:40:26.113Z")
    assert token.expires == utc("2015-07-23T16:40:26.113Z")
    assert token.applies_to == "http://dev.pms.baxon.net/"  # wsa in the default namespace
    assert token.assertion == raw_assertion(wresult)


# ----------------------------------------------------------------------------- faults


def test_adfs_soap12_fault_msis3127_is_a_remote_fault_with_the_trust_subcode():
    data = vector("msal-python_adfs_soap12_fault_msis3127.xml").read_bytes()
    with pytest.raises(RemoteFault) as caught:
        parse_response(data, status=500)
    fault = caught.value
    assert fault.code == f"{{{WST13}}}RequestFailed"
    assert fault.local_code == "RequestFailed"
    assert "MSIS3127" in fault.reason
    assert fault.soap_code == f"{{{SOAP12}}}Sender"
    assert fault.status == 500


def test_wsfed_soap12_fault_is_a_remote_fault_with_the_fed_badrequest_subcode():
    data = vector("passport-wsfed-saml2_soap12_fault_fed_badrequest.xml").read_bytes()
    with pytest.raises(RemoteFault) as caught:
        parse_response(data, status=400)
    fault = caught.value
    assert fault.code == f"{{{FED}}}BadRequest"
    assert fault.local_code == "BadRequest"
    assert fault.reason == "User cancelled"
    assert fault.soap_code == f"{{{SOAP12}}}Sender"
    assert fault.status == 400


SOAP_AND_TRUST = [("1.1", "1.3"), ("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")]
TRUST_NS = {"1.3": WST13, "2005": WST2005}


@pytest.mark.parametrize(("soap", "trust"), SOAP_AND_TRUST)
def test_our_sts_wrong_password_is_a_failed_authentication_remote_fault(make_client, soap, trust):
    client = make_client(password="not-the-password", soap_version=soap, trust_version=trust)
    with pytest.raises(RemoteFault) as caught:
        client.request_token(SERVICE_URL)
    fault = caught.value
    assert fault.local_code == "FailedAuthentication"
    assert fault.code == f"{{{TRUST_NS[trust]}}}FailedAuthentication"
    assert fault.reason == "Authentication failed."
    assert fault.status == (500 if soap == "1.1" else 400)


@pytest.mark.parametrize(("soap", "trust"), SOAP_AND_TRUST)
def test_our_sts_refuses_alice_without_the_admin_role_with_request_failed(make_client, soap, trust):
    client = make_client(username="alice", password="alice", soap_version=soap, trust_version=trust)
    with pytest.raises(RemoteFault) as caught:
        client.request_token(SERVICE_URL)
    fault = caught.value
    assert fault.local_code == "RequestFailed"
    assert fault.code == f"{{{TRUST_NS[trust]}}}RequestFailed"
    assert fault.reason  # the STS's client-safe sentence reaches the caller
    assert "alice" not in fault.reason


def test_soap12_fault_from_our_sts_names_sender_as_the_soap_code(make_client):
    with pytest.raises(RemoteFault) as caught:
        make_client(password="wrong", soap_version="1.2").request_token(SERVICE_URL)
    assert caught.value.soap_code == f"{{{SOAP12}}}Sender"


# ----------------------------------------------------------------------------- byte-exact tokens


TOKEN_MATRIX = [
    (soap, trust, token_type)
    for soap in ("1.1", "1.2") for trust in ("1.3", "2005") for token_type in ("2.0", "1.1")
]
_REQUESTED = re.compile(
    rb"<(?P<p>[A-Za-z_][\w.-]*):RequestedSecurityToken(?:\s[^>]*)?>(?P<token>.*?)</(?P=p):RequestedSecurityToken>",
    re.DOTALL,
)


def requested_token_bytes(response_body: bytes) -> bytes:
    match = _REQUESTED.search(response_body)
    assert match is not None, response_body[:500]
    return match.group("token")


@pytest.mark.parametrize(("soap", "trust", "token_type"), TOKEN_MATRIX)
def test_issued_assertion_is_exactly_the_bytes_inside_requested_security_token(
    make_client, sts_app, soap, trust, token_type
):
    recorder = RecordingTransport(WSGITransport(sts_app))
    client = make_client(soap_version=soap, trust_version=trust, transport=recorder)
    token = client.request_token(SERVICE_URL, token_type=token_type)
    (status, _content_type, body), = recorder.responses
    assert status == 200
    assert token.assertion == requested_token_bytes(body)


def test_issued_assertion_over_real_loopback_http_is_byte_identical_to_the_wire(make_client, sts_app):
    with serve_on_loopback(sts_app) as base:
        recorder = RecordingTransport(UrllibTransport(timeout=30))
        client = make_client(transport=recorder)
        client.url = base + "/services/sts"
        token = client.request_token(SERVICE_URL)
    (_status, _content_type, body), = recorder.responses
    assert token.assertion == requested_token_bytes(body)


@pytest.mark.parametrize(
    ("token_type", "saml_ns", "id_attribute"), [("2.0", SAML2, "ID"), ("1.1", SAML1, "AssertionID")]
)
def test_issued_assertion_parses_standalone_with_every_namespace_declared(
    make_client, token_type, saml_ns, id_attribute
):
    token = make_client().request_token(SERVICE_URL, token_type=token_type)
    root = etree.fromstring(token.assertion)  # raises on an undeclared prefix
    assert root.tag == f"{{{saml_ns}}}Assertion"
    assert root.get(id_attribute) == token.assertion_id
    assert root.getparent() is None
    # every prefix used on an element or attribute is declared inside the assertion itself
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.prefix is not None:
            assert element.nsmap[element.prefix] == etree.QName(element).namespace


def test_token_for_a_saml11_relying_party_carries_its_issuer_and_audience(make_client):
    token = make_client().request_token(OTHER_URL)
    assert token.token_type == SAML1
    assert token.applies_to == OTHER_URL
    root = etree.fromstring(token.assertion)
    assert root.get("Issuer") == ISSUER
    assert root.findtext(f".//{{{SAML1}}}Audience") == OTHER_URL


# ----------------------------------------------------------------------------- call_service


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_call_service_splices_the_token_bytes_unchanged_into_wsse_security(make_client, service_app, soap):
    token = make_client(soap_version=soap).request_token(SERVICE_URL)
    recorder = RecordingTransport(WSGITransport(service_app))
    reply = call_service(SERVICE_URL, token, _echo_payload("spliced"), soap_version=soap, transport=recorder)
    assert reply.findtext(f"{{{ECHO_NS}}}Message") == "spliced"
    (_url, body, _headers), = recorder.requests
    assert body.count(token.assertion) == 1
    assert b"wstrust-wsgi:assertion" not in body  # the placeholder comment is gone
    soap_ns = SOAP11 if soap == "1.1" else SOAP12
    envelope = parsed(body)
    security = security_of(envelope, soap_ns)
    children = [c for c in security if isinstance(c.tag, str)]
    assert len(children) == 1
    assert children[0].get("ID") == token.assertion_id
    # the spliced bytes sit inside the Security element's start and end tags
    start = body.index(b":Security")
    assert start < body.index(token.assertion) < body.index(b"</wsse:Security>")


def test_call_service_splices_a_pretty_printed_adfs_assertion_verbatim(service_app):
    data = vector("msal-python_adfs_rstr_saml11_bearer.xml").read_bytes()
    assertion = raw_assertion(data)
    recorder = RecordingTransport(WSGITransport(service_app))
    with pytest.raises(RemoteFault):  # the echo service does not trust AD FS, and says so
        call_service(SERVICE_URL, assertion, _echo_payload("x"), soap_version="1.2", transport=recorder)
    (_url, body, _headers), = recorder.requests
    assert assertion in body


def test_call_service_accepts_raw_token_bytes_as_well_as_an_issued_token(make_client, service_app):
    token = make_client().request_token(SERVICE_URL)
    reply = call_service(SERVICE_URL, token.assertion, _echo_payload("bytes"), transport=WSGITransport(service_app))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


# ----------------------------------------------------------------------------- transports and broken peers


def test_urllib_transport_to_a_closed_port_says_could_not_connect_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/services/sts"
    with pytest.raises(TransportError) as caught:
        UrllibTransport(timeout=5)(url, b"<x/>", {"Content-Type": "text/xml"})
    message = str(caught.value)
    assert message.startswith(f"could not connect to {url}: is the service running?")
    assert "\n" not in message
    assert caught.value.url == url


def test_sts_client_to_a_closed_port_raises_the_could_not_connect_transport_error():
    url = f"http://127.0.0.1:{free_port()}/services/sts"
    client = StsClient(url, username="admin", password="admin", transport=UrllibTransport(timeout=5))
    with pytest.raises(TransportError) as caught:
        client.request_token(SERVICE_URL)
    assert str(caught.value).startswith(f"could not connect to {url}: is the service running?")


def test_call_service_to_a_closed_port_raises_the_could_not_connect_transport_error(make_client):
    token = make_client().request_token(SERVICE_URL)
    url = f"http://127.0.0.1:{free_port()}/services/echo"
    with pytest.raises(TransportError) as caught:
        call_service(url, token, _echo_payload("x"))
    assert str(caught.value).startswith(f"could not connect to {url}: is the service running?")
    assert caught.value.url == url


def test_urllib_transport_to_a_peer_that_does_not_speak_http_raises_transport_error():
    with non_http_peer(b"SSH-2.0-OpenSSH_9.6\r\n") as url:
        with pytest.raises(TransportError) as caught:
            UrllibTransport(timeout=5)(url, b"<x/>", {"Content-Type": "text/xml"})
    assert url in str(caught.value)


HTML_500 = static_app("500 Internal Server Error", "text/html; charset=utf-8",
                      b"<html><body><h1>Internal Server Error</h1></body></html>")


@pytest.mark.parametrize("over", ["in-process", "loopback-http"])
def test_sts_answering_http_500_html_gives_transport_error_naming_the_status(over):
    def attempt(url: str, transport: Any) -> None:
        StsClient(url, username="admin", password="admin", transport=transport).request_token(SERVICE_URL)

    if over == "in-process":
        with pytest.raises(TransportError) as caught:
            attempt(STS_URL, WSGITransport(HTML_500))
    else:
        with serve_on_loopback(HTML_500) as base, pytest.raises(TransportError) as caught:
            attempt(base + "/services/sts", UrllibTransport(timeout=30))
    assert "500" in str(caught.value)
    assert not isinstance(caught.value, RemoteFault)


@pytest.mark.parametrize("over", ["in-process", "loopback-http"])
def test_service_answering_http_500_html_gives_transport_error_naming_the_status(make_client, over):
    token = make_client().request_token(SERVICE_URL)
    if over == "in-process":
        with pytest.raises(TransportError) as caught:
            call_service(SERVICE_URL, token, _echo_payload("x"), transport=WSGITransport(HTML_500))
    else:
        with serve_on_loopback(HTML_500) as base, pytest.raises(TransportError) as caught:
            call_service(base + "/services/echo", token, _echo_payload("x"), transport=UrllibTransport(timeout=30))
    assert "HTTP 500" in str(caught.value)


@pytest.mark.parametrize("status", ["200 OK", "502 Bad Gateway"])
def test_sts_answering_an_empty_body_gives_transport_error(status):
    empty = static_app(status, "application/soap+xml; charset=utf-8", b"")
    client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(empty))
    with pytest.raises(TransportError) as caught:
        client.request_token(SERVICE_URL)
    assert "empty body" in str(caught.value)
    assert status.split()[0] in str(caught.value)


def test_service_answering_an_empty_body_over_http_gives_transport_error(make_client):
    token = make_client().request_token(SERVICE_URL)
    empty = static_app("200 OK", "text/xml; charset=utf-8", b"")
    with serve_on_loopback(empty) as base, pytest.raises(TransportError) as caught:
        call_service(base + "/services/echo", token, _echo_payload("x"), transport=UrllibTransport(timeout=30))
    assert "empty body" in str(caught.value)


def test_sts_answering_html_with_status_200_gives_transport_error():
    broken = static_app("200 OK", "text/html", b"<html><p>Welcome to nginx!</html>")
    client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(broken))
    with pytest.raises(TransportError) as caught:
        client.request_token(SERVICE_URL)
    assert STS_URL in str(caught.value)


def test_service_answering_html_with_status_200_gives_transport_error(make_client):
    token = make_client().request_token(SERVICE_URL)
    broken = static_app("200 OK", "text/html", b"<html><p>Welcome to nginx!</html>")
    with pytest.raises(TransportError) as caught:
        call_service(SERVICE_URL, token, _echo_payload("x"), transport=WSGITransport(broken))
    assert SERVICE_URL in str(caught.value)


# An "empty SOAP body" only when it is one (issue 10, item 13): every other reply says what it is.
SOAP11_REPLY = f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><r:Echo xmlns:r="urn:r">hi</r:Echo></s:Body></s:Envelope>'
SOAP12_REPLY = SOAP11_REPLY.replace(SOAP11, SOAP12)


@pytest.mark.parametrize(
    ("reply", "said", "soap"),
    [
        (b'<r:Echo xmlns:r="urn:r">hi</r:Echo>', "XML that is not a SOAP envelope (a <Echo> element in urn:r)", "1.1"),
        (b"<Envelope><Body><Echo/></Body></Envelope>", "XML that is not a SOAP envelope (a <Envelope> element)",
         "1.1"),
        (SOAP12_REPLY.encode(), "a SOAP 1.2 envelope to a SOAP 1.1 request", "1.1"),
        (SOAP11_REPLY.encode(), "a SOAP 1.1 envelope to a SOAP 1.2 request", "1.2"),
        (f'<s:Envelope xmlns:s="{SOAP11}"><s:Header/></s:Envelope>'.encode(), "a SOAP envelope without a Body",
         "1.1"),
        (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body> </s:Body></s:Envelope>'.encode(), "an empty SOAP body", "1.1"),
    ],
    ids=["plain-xml", "unqualified-envelope", "soap12-to-soap11", "soap11-to-soap12", "no-body", "empty-body"],
)
def test_a_service_reply_that_is_not_the_expected_envelope_is_said_for_what_it_is(make_client, reply, said, soap):
    token = make_client().request_token(SERVICE_URL)
    peer = static_app("200 OK", "text/xml; charset=utf-8", reply)
    with pytest.raises(TransportError) as caught:
        call_service(SERVICE_URL, token, _echo_payload("x"), soap_version=soap, transport=WSGITransport(peer))
    message = str(caught.value)
    assert message.startswith(SERVICE_URL) and said in message, message
    if said != "an empty SOAP body":
        assert "empty" not in message, message


def test_a_reply_in_the_expected_soap_version_is_read(make_client):
    token = make_client().request_token(SERVICE_URL)
    for soap, reply in (("1.1", SOAP11_REPLY), ("1.2", SOAP12_REPLY)):
        peer = static_app("200 OK", "text/xml; charset=utf-8", reply.encode())
        assert call_service(SERVICE_URL, token, _echo_payload("x"), soap_version=soap,
                            transport=WSGITransport(peer)).text == "hi"


def test_an_sts_address_that_answers_like_a_soap_service_gets_a_hint(make_client):
    peer = static_app("200 OK", "application/soap+xml; charset=utf-8", SOAP12_REPLY.encode())
    client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(peer))
    with pytest.raises(TransportError) as caught:
        client.request_token(SERVICE_URL)
    message = str(caught.value)
    assert "no RequestSecurityTokenResponse but a <Echo> element in urn:r" in message, message
    assert "not like a WS-Trust STS endpoint" in message, message


def test_sts_path_that_is_not_the_endpoint_gives_transport_error_with_404(sts_app):
    from wstrust_wsgi._wsgi import mount

    app = mount("/services/sts", sts_app)
    client = StsClient("http://127.0.0.1:8080/wrong/path", username="admin", password="admin",
                       transport=WSGITransport(app))
    with pytest.raises(TransportError) as caught:
        client.request_token(SERVICE_URL)
    assert "HTTP 404" in str(caught.value)


# ----------------------------------------------------------------------------- the RST the client builds


def build(clock, **options: Any) -> etree._Element:
    token_type = options.pop("_token_type", None)
    options.setdefault("clock", clock)
    client = StsClient(STS_URL, username="admin", password="s3cret", **options)
    return parsed(client.build_request(SERVICE_URL, token_type=token_type))


def formatted(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.mark.parametrize(("soap", "soap_ns"), [("1.1", SOAP11), ("1.2", SOAP12)])
def test_build_request_uses_the_envelope_namespace_of_the_soap_version(clock, soap, soap_ns):
    envelope = build(clock, soap_version=soap)
    assert envelope.tag == f"{{{soap_ns}}}Envelope"
    security = security_of(envelope, soap_ns)
    assert security.get(f"{{{soap_ns}}}mustUnderstand") == "1"
    assert envelope.find(f"{{{soap_ns}}}Body") is not None


def test_build_request_password_text_shape(clock):
    envelope = build(clock, digest=False)
    token = security_of(envelope, SOAP12).find(f"{{{WSSE}}}UsernameToken")
    assert token.findtext(f"{{{WSSE}}}Username") == "admin"
    password = token.find(f"{{{WSSE}}}Password")
    assert password.get("Type") == PASSWORD_TEXT
    assert password.text == "s3cret"
    assert token.find(f"{{{WSSE}}}Nonce") is None
    assert token.find(f"{{{WSU}}}Created") is None


def test_build_request_password_digest_shape_with_nonce_and_created(clock):
    envelope = build(clock, digest=True)
    token = security_of(envelope, SOAP12).find(f"{{{WSSE}}}UsernameToken")
    password = token.find(f"{{{WSSE}}}Password")
    nonce = token.find(f"{{{WSSE}}}Nonce")
    created = token.findtext(f"{{{WSU}}}Created")
    assert password.get("Type") == PASSWORD_DIGEST
    assert nonce is not None and nonce.get("EncodingType") == BASE64_BINARY
    assert created == formatted(clock.now)
    raw_nonce = base64.b64decode(nonce.text, validate=True)
    assert len(raw_nonce) >= 16
    # UsernameToken Profile 1.1: Base64(SHA-1(nonce + created + password))
    expected = base64.b64encode(hashlib.sha1(raw_nonce + created.encode() + b"s3cret").digest()).decode()
    assert password.text == expected
    assert b"s3cret" not in etree.tostring(envelope)


def test_build_request_digest_nonce_is_fresh_for_every_request(clock):
    client = StsClient(STS_URL, username="admin", password="s3cret", digest=True, clock=clock)
    nonces = {
        parsed(client.build_request(SERVICE_URL)).findtext(f".//{{{WSSE}}}Nonce")
        for _ in range(5)
    }
    assert len(nonces) == 5


def test_build_request_adds_a_five_minute_timestamp_by_default(clock):
    envelope = build(clock)
    stamp = security_of(envelope, SOAP12).find(f"{{{WSU}}}Timestamp")
    assert stamp is not None
    assert stamp.findtext(f"{{{WSU}}}Created") == formatted(clock.now)
    assert stamp.findtext(f"{{{WSU}}}Expires") == formatted(clock.now + timedelta(minutes=5))


def test_build_request_without_timestamp_has_none(clock):
    envelope = build(clock, timestamp=False)
    security = security_of(envelope, SOAP12)
    assert security.find(f"{{{WSU}}}Timestamp") is None
    assert security.find(f"{{{WSSE}}}UsernameToken") is not None


def test_build_request_sends_token_type_only_when_asked(clock):
    assert rst_of(build(clock), SOAP12, WST13).find(f"{{{WST13}}}TokenType") is None
    for asked, uri in (("2.0", SAML2), ("1.1", SAML1), ("urn:example:custom", "urn:example:custom")):
        rst = rst_of(build(clock, _token_type=asked), SOAP12, WST13)
        assert rst.findtext(f"{{{WST13}}}TokenType") == uri


@pytest.mark.parametrize(
    ("trust", "trust_ns", "key_type"),
    [
        ("1.3", WST13, f"{WST13}/Bearer"),
        ("2005", WST2005, "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"),
    ],
)
def test_build_request_uses_the_trust_namespace_request_type_and_bearer_key_type(clock, trust, trust_ns, key_type):
    rst = rst_of(build(clock, trust_version=trust), SOAP12, trust_ns)
    assert rst.findtext(f"{{{trust_ns}}}RequestType") == f"{trust_ns}/Issue"
    assert rst.findtext(f"{{{trust_ns}}}KeyType") == key_type
    address = rst.findtext(f"{{{WSP}}}AppliesTo/{{{WSA}}}EndpointReference/{{{WSA}}}Address")
    assert address == SERVICE_URL


@pytest.mark.parametrize(("soap", "trust"), SOAP_AND_TRUST)
def test_request_token_announces_the_issue_action_in_the_http_headers(make_client, sts_app, soap, trust):
    recorder = RecordingTransport(WSGITransport(sts_app))
    make_client(soap_version=soap, trust_version=trust, transport=recorder).request_token(SERVICE_URL)
    (_url, _body, headers), = recorder.requests
    action = f"{TRUST_NS[trust]}/RST/Issue"
    if soap == "1.1":
        assert headers["Content-Type"].startswith("text/xml")
        assert headers["SOAPAction"] == f'"{action}"'
    else:
        assert headers["Content-Type"].startswith("application/soap+xml")
        assert f'action="{action}"' in headers["Content-Type"]


def test_sts_client_refuses_an_unknown_soap_or_trust_version_with_a_configuration_error():
    for options in ({"soap_version": "1.0"}, {"trust_version": "1.4"}):
        with pytest.raises(ConfigurationError) as caught:
            StsClient(STS_URL, username="admin", password="admin", **options)
        assert isinstance(caught.value, WsTrustError)
        assert next(iter(options)) in str(caught.value)


def test_issued_token_is_frozen(make_client):
    token = make_client().request_token(SERVICE_URL)
    assert isinstance(token, IssuedToken)
    with pytest.raises(AttributeError):
        token.assertion = b"<forged/>"  # type: ignore[misc]


# ------------------------------------------------------------------ SecurityWarning


@pytest.mark.parametrize("url", ["http://sts.example/services/sts", "http://10.0.0.5:8080/sts", "HTTP://[2001:db8::1]/s"])
def test_password_text_over_plain_http_to_another_host_warns(url: str) -> None:
    with pytest.warns(SecurityWarning, match="PasswordText"):
        StsClient(url, username="admin", password="admin")


@pytest.mark.parametrize(("url", "options"), [
    ("https://sts.example/services/sts", {}),
    ("http://sts.example/services/sts", {"digest": True}),
    ("http://127.0.0.1:8080/services/sts", {}),
    ("http://[::1]:8080/services/sts", {}),
    ("http://localhost:8080/services/sts", {}),
    ("http://sts.example/services/sts", {"transport": WSGITransport(lambda environ, start_response: [])}),
])
def test_no_warning_when_the_password_does_not_cross_the_network_in_clear(url: str, options: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        StsClient(url, username="admin", password="admin", **options)
