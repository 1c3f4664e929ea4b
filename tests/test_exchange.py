"""Issue 16: the messages to and from the STS and the service, shown and saved with secrets masked.

What is masked is checked on every secret-bearing element for both SOAP and
both WS-Trust versions; what is saved is checked byte for byte against what a
WSGI app received and answered; showing a message never changes what is sent.
The command's flags against real gunicorn servers are in test_roundtrip.py.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools

import pytest
from lxml import etree

from _support import SERVICE_URL, STS_URL
from wstrust_wsgi import RemoteFault, TransportError, WSGITransport, call_service, ns
from wstrust_wsgi.cli import echo_payload as _echo_payload
from wstrust_wsgi.exchange import (
    MASK,
    Exchange,
    MessageFiles,
    RecordingTransport,
    add_arguments,
    describe,
    indented,
    mask,
    token_text,
    token_text_from_args,
    transport_from_args,
)

VERSIONS = list(itertools.product(["1.1", "1.2"], ["1.3", "2005"]))


class Capture:
    """WSGI middleware keeping the exact bytes an app received and answered: the wire, seen from the server."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.seen: list[tuple[bytes, bytes]] = []

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        answer = b"".join(self.app(environ, start_response))
        self.seen.append((body, answer))
        return [answer]


def texts(data: bytes, local: str) -> list[str]:
    return [e.text or "" for e in etree.fromstring(data).iter() if etree.QName(e).localname == local]


# ----------------------------------------------------------------- what is masked

@pytest.mark.parametrize(("soap", "trust"), VERSIONS)
def test_password_text_is_masked_and_the_username_and_token_are_not(make_client, soap, trust):
    log: list[Exchange] = []
    client = make_client(soap_version=soap, trust_version=trust)
    client.transport = RecordingTransport(client.transport, log.append, masked=True)
    token = client.request_token(SERVICE_URL)
    (shown,) = log
    assert shown.masked
    assert texts(shown.request, "Password") == [MASK]
    assert texts(shown.request, "Username") == ["admin"]
    assert b">admin</wsse:Password>" not in shown.request
    # the token and its signature are shown as they are
    signature = etree.fromstring(token.assertion).find(f".//{{{ns.DS}}}SignatureValue").text
    assert texts(shown.response, "SignatureValue") == [signature]
    assert token.assertion_id.encode() in shown.response


@pytest.mark.parametrize(("soap", "trust"), VERSIONS)
def test_password_digest_and_nonce_are_masked(make_client, soap, trust):
    log: list[Exchange] = []
    client = make_client(soap_version=soap, trust_version=trust, digest=True)
    client.transport = RecordingTransport(client.transport, log.append)
    client.request_token(SERVICE_URL)
    (exact,) = log
    assert not exact.masked
    digest, nonce = texts(exact.request, "Password")[0], texts(exact.request, "Nonce")[0]
    assert len(base64.b64decode(digest)) == 20 and len(base64.b64decode(nonce)) == 16
    shown = exact.masked_copy()
    assert texts(shown.request, "Password") == [MASK] and texts(shown.request, "Nonce") == [MASK]
    assert digest.encode() not in shown.request and nonce.encode() not in shown.request
    assert ns.WSSE_PASSWORD_DIGEST.encode() in shown.request  # which kind it was stays visible
    assert texts(shown.request, "Created")  # not a secret
    text = describe(exact)
    assert digest not in text and nonce not in text and MASK in text


PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def entropy_messages(trust_ns: str, soap_ns: str) -> tuple[bytes, bytes]:
    """A hand-made RST with client entropy and an RSTR with server entropy and a proof key."""
    request = f"""<s:Envelope xmlns:s="{soap_ns}"><s:Body>
      <wst:RequestSecurityToken xmlns:wst="{trust_ns}">
        <wst:Entropy><wst:BinarySecret Type="{trust_ns}/Nonce">Q0xJRU5ULUVOVFJPUFk=</wst:BinarySecret></wst:Entropy>
        <wst:KeySize>256</wst:KeySize>
        <app:PrivateKey xmlns:app="urn:x">{PEM_KEY}</app:PrivateKey>
        <app:Note xmlns:app="urn:x">key follows {PEM_KEY} end</app:Note>
      </wst:RequestSecurityToken></s:Body></s:Envelope>""".encode()
    response = f"""<s:Envelope xmlns:s="{soap_ns}"><s:Body>
      <wst:RequestSecurityTokenResponse xmlns:wst="{trust_ns}">
        <wst:RequestedSecurityToken><a:Assertion xmlns:a="urn:oasis:names:tc:SAML:2.0:assertion" ID="_t">
          <ds:SignatureValue xmlns:ds="{ns.DS}">U0lHTkFUVVJF</ds:SignatureValue></a:Assertion>
        </wst:RequestedSecurityToken>
        <wst:RequestedProofToken><wst:ComputedKey>{trust_ns}/CK/PSHA1</wst:ComputedKey></wst:RequestedProofToken>
        <wst:Entropy><wst:BinarySecret>U0VSVkVSLUVOVFJPUFk=</wst:BinarySecret></wst:Entropy>
        <wst:RequestedProofToken><wst:BinarySecret>UFJPT0YtS0VZ</wst:BinarySecret></wst:RequestedProofToken>
      </wst:RequestSecurityTokenResponse></s:Body></s:Envelope>""".encode()
    return request, response


@pytest.mark.parametrize(("soap", "trust"), VERSIONS)
def test_entropy_proof_keys_and_private_keys_are_masked_computed_key_and_signature_are_not(soap, trust):
    soap_ns = ns.SOAP11 if soap == "1.1" else ns.SOAP12
    trust_ns = ns.WST13 if trust == "1.3" else ns.WST2005
    request, response = entropy_messages(trust_ns, soap_ns)
    masked_request, masked_response = mask(request), mask(response)
    for secret in (b"Q0xJRU5ULUVOVFJPUFk=", b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"):
        assert secret in request and secret not in masked_request
    for secret in (b"U0VSVkVSLUVOVFJPUFk=", b"UFJPT0YtS0VZ"):
        assert secret in response and secret not in masked_response
    assert texts(masked_request, "KeySize") == ["256"]
    assert texts(masked_request, "Note") == [f"key follows {MASK} end"]
    assert texts(masked_response, "ComputedKey") == [f"{trust_ns}/CK/PSHA1"]
    assert texts(masked_response, "SignatureValue") == ["U0lHTkFUVVJF"]
    assert request == entropy_messages(trust_ns, soap_ns)[0]  # the input is never touched


def test_a_password_inside_a_comment_split_value_is_masked_whole():
    data = (b'<s:Envelope xmlns:s="%s"><s:Header><wsse:Password xmlns:wsse="%s">ad<!---->min</wsse:Password>'
            b"</s:Header><s:Body/></s:Envelope>" % (ns.SOAP12.encode(), ns.WSSE.encode()))
    assert b"min" not in mask(data) and texts(mask(data), "Password") == [MASK]


# ----------------------------------------------------------------- what is not XML

def test_text_that_is_not_xml_is_shown_with_secret_tags_pem_keys_and_given_secrets_masked():
    page = (b"<html><body>500: could not read <wsse:Password Type='x'>hunter2</wsse:Password> "
            b"<Nonce>bm9uY2U=</Nonce> truncated <BinarySecret>c2VjcmV0 " + PEM_KEY.encode() +
            b" user hunter2 again</body>")
    shown = mask(page, secrets=["hunter2"]).decode()
    assert "hunter2" not in shown and "bm9uY2U=" not in shown and "c2VjcmV0" not in shown
    assert "MIIEvQ" not in shown
    assert "500: could not read" in shown and "<wsse:Password Type='x'>" + MASK in shown


def test_a_doctype_bearing_message_is_refused_by_the_parser_and_masked_as_text():
    data = b'<!DOCTYPE x [<!ENTITY e "y">]><Envelope><Password>s3cret</Password>&e;</Envelope>'
    assert b"s3cret" not in mask(data)


def test_a_non_xml_answer_echoing_the_password_learnt_from_the_request_is_masked(make_client):
    """A server that echoes the request in an HTML error page must not show the password either."""
    def echoing_app(environ, start_response):  # type: ignore[no-untyped-def]
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        start_response("500 Internal Server Error", [("Content-Type", "text/html")])
        return [b"<html><pre>" + body.replace(b"<", b"&lt;") + b"</pre></html>"]

    log: list[Exchange] = []
    client = make_client(password="pa55-word", transport=RecordingTransport(WSGITransport(echoing_app), log.append))
    with pytest.raises(TransportError):
        client.request_token(SERVICE_URL)
    (exchange,) = log
    assert b"pa55-word" in exchange.response  # the exact answer does echo it
    assert b"pa55-word" not in exchange.masked_copy().response
    assert "pa55-word" not in describe(exchange)
    assert "<<< HTTP 500" in describe(exchange) and "Content-Type: text/html" in describe(exchange)


def test_an_empty_body_and_no_answer_at_all_are_described():
    def refusing(url, body, headers):  # type: ignore[no-untyped-def]
        raise TransportError(f"could not connect to {url}: is the service running? (refused)", url=url)

    log: list[Exchange] = []
    transport = RecordingTransport(refusing, log.append)
    with pytest.raises(TransportError):
        transport(STS_URL, b"", {"Content-Type": "text/xml", "X-Other": "not shown"})
    (exchange,) = log
    assert exchange.status is None and exchange.request_headers == {"Content-Type": "text/xml"}
    text = describe(exchange)
    assert "(empty body)" in text and f"<<< no answer from {STS_URL}: could not connect" in text


# ----------------------------------------------------------------- the exact bytes

def test_saved_exact_files_are_the_bytes_the_apps_received_and_answered(make_client, sts_app, service_app, tmp_path):
    sts, service = Capture(sts_app), Capture(service_app)
    files = MessageFiles(tmp_path / "messages", secrets=["admin"])
    client = make_client(digest=True, transport=RecordingTransport(WSGITransport(sts), files))
    token = client.request_token(SERVICE_URL)
    call_service(SERVICE_URL, token, _echo_payload("saved"),
                 transport=RecordingTransport(WSGITransport(service), files))
    folder = tmp_path / "messages"
    wire = [sts.seen[0][0], sts.seen[0][1], service.seen[0][0], service.seen[0][1]]
    for number, (kind, data) in enumerate(zip(["request", "response"] * 2, wire), start=1):
        assert (folder / f"{number:02d}-{kind}.xml").read_bytes() == data
        masked = (folder / f"{number:02d}-{kind}.masked.xml").read_bytes()
        assert texts(masked, "Password") in ([], [MASK]) and texts(masked, "Nonce") in ([], [MASK])
    assert texts((folder / "01-request.masked.xml").read_bytes(), "Password") == [MASK]
    listing = (folder / "exchanges.txt").read_text()
    assert f"01-request.xml  POST {STS_URL}" in listing and "04-response.xml  HTTP 200" in listing
    # a second run into the same folder continues the numbering
    MessageFiles(folder)(Exchange("POST", STS_URL, {}, b"<a/>", 200, "text/xml", b"<b/>"))
    assert (folder / "05-request.xml").read_bytes() == b"<a/>" and (folder / "06-response.xml").exists()


def test_the_callback_gets_each_exchange_in_order_and_the_inner_transport_the_same_bytes_object(
        make_client, sts_app, service_app):
    sent: list[bytes] = []
    log: list[Exchange] = []

    def routed(url, body, headers):  # type: ignore[no-untyped-def]
        sent.append(body)
        return WSGITransport(sts_app if url == STS_URL else service_app)(url, body, headers)

    transport = RecordingTransport(routed, log.append)
    token = make_client(soap_version="1.1", transport=transport).request_token(SERVICE_URL)
    call_service(SERVICE_URL, token, _echo_payload("in order"), transport=transport)
    assert [(e.url, e.status) for e in log] == [(STS_URL, 200), (SERVICE_URL, 200)]
    assert [e.request for e in log][0] is sent[0] and log[1].request is sent[1]
    assert b"RequestSecurityToken" in log[0].request and b"RequestSecurityTokenResponse" in log[0].response
    assert log[0].request_headers["SOAPAction"].startswith('"http') and b"in order" in log[1].response


def test_showing_the_messages_never_changes_what_is_sent_and_the_token_still_verifies(
        make_client, service_app, sts_app):
    out = io.StringIO()
    args = argparse.Namespace(show_messages=True, save_messages=None, raw=False)
    sts = Capture(sts_app)
    transport = transport_from_args(args, WSGITransport(sts), secrets=["admin"], out=out)
    token = make_client(transport=transport).request_token(SERVICE_URL)
    assert token.assertion in sts.seen[0][1]  # exactly what the STS sent
    reply = call_service(SERVICE_URL, token, _echo_payload("still verifies"),
                         transport=transport_from_args(args, WSGITransport(service_app), out=out))
    assert reply.findtext("{urn:wstrust-wsgi:demo:echo}Caller") == "admin"
    shown = out.getvalue()
    assert shown.count(">>> POST") == 2 and shown.count("<<< HTTP 200") == 2
    assert "\n  <s:Header>" in shown  # indented for reading
    # why the indented form is for display only: the same token, indented, no longer verifies
    pretty = token_text(token.assertion, indent=True).encode()
    assert pretty != token.assertion and etree.fromstring(pretty).get("ID") == token.assertion_id
    with pytest.raises(RemoteFault):
        call_service(SERVICE_URL, pretty, _echo_payload("indented"), transport=WSGITransport(service_app))


# ----------------------------------------------------------------- the command line's pieces

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_arguments_and_token_display_follow_the_flags(make_client):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    plain = parser.parse_args([])
    inner = make_client().transport
    assert transport_from_args(plain, inner) is inner  # nothing asked: nothing wrapped
    assert isinstance(transport_from_args(parser.parse_args(["--show-messages"]), inner), RecordingTransport)
    token = make_client().request_token(SERVICE_URL)
    assert token_text_from_args(plain, token.assertion, out=io.StringIO()) == token.assertion.decode()
    assert "\n  <ds:Signature" in token_text_from_args(plain, token.assertion, out=Terminal())
    raw = parser.parse_args(["--raw"])
    assert token_text_from_args(raw, token.assertion, out=Terminal()) == token.assertion.decode()
    assert indented(b"not xml") == "not xml"


def test_given_secrets_are_replaced_in_a_fault_but_not_in_the_rest_of_an_envelope(make_client):
    log: list[Exchange] = []
    client = make_client(password="admin")
    client.transport = RecordingTransport(client.transport, log.append)
    client.request_token(SERVICE_URL)
    text = describe(log[0], secrets=["admin"])
    assert ">admin</NameID>" in text and f">{MASK}</wsse:Password>" in text
    fault = (b'<s:Envelope xmlns:s="%s"><s:Body><s:Fault><faultcode>s:Client</faultcode>'
             b"<faultstring>bad password admin for admin</faultstring></s:Fault></s:Body></s:Envelope>"
             % ns.SOAP11.encode())
    assert texts(mask(fault, secrets=["admin"]), "faultstring") == [f"bad password {MASK} for {MASK}"]
