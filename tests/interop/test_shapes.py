"""The wire shapes real clients depend on, checked on a real gunicorn STS over HTTP.

MSAL and ADAL cut the token out of the response with regular expressions
(``findall_content`` in ``msal/wstrust_response.py``) and hand those bytes on
unparsed; zeep and the npm ``soap`` client parse the envelope. So the bytes
matter: the RSTR must carry a TokenType, the assertion must stand alone (every
namespace it uses declared inside it) and sit right after the
RequestedSecurityToken start tag, and faults must be recognisable by status
and shape. Every captured client RST of ``tests/data/vectors/clients`` is also
replayed here over real HTTP with its captured headers.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import urllib.parse
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from lxml import etree
from msal.wstrust_response import parse_error

from _support import ROOT, vector, xmlsec1_verify
from _support.faults import assert_version_mismatch
from _support.captures import CLIENT_CAPTURES, q, rebuild_capture
from wstrust_wsgi import StsClient, ns

STS_CERT = ROOT / "certs" / "sts.crt"
SOAP_NS = {"1.1": ns.SOAP11, "1.2": ns.SOAP12}
MEDIA = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}
TRUST_NS = {"1.3": ns.WST13, "2005": ns.WST2005}
ISSUE_ACTION = {"1.3": f"{ns.WST13}/RST/Issue", "2005": f"{ns.WST2005}/RST/Issue"}
#: The assertion as bytes: SAML 2.0 or 1.1, whatever prefix the STS chose.
ASSERTION_BYTES = re.compile(rb"<(?P<prefix>(?:[A-Za-z_][\w.-]*:)?)Assertion\b.*?</(?P=prefix)Assertion>", re.S)


# ----------------------------------------------------------------- helpers shared by the interop tests

def http_post(url: str, body: bytes, headers: dict[str, str], *, timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    """POST exactly ``body`` with exactly ``headers`` (plus Host and Content-Length)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                           headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def http_get(url: str, *, timeout: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def cut_assertion(response: bytes) -> bytes:
    """The one assertion in a response, cut out as bytes (as MSAL and ADAL do)."""
    found = ASSERTION_BYTES.findall(response)
    assert len(found) == 1, response[:2000]
    match = ASSERTION_BYTES.search(response)
    assert match is not None
    return match.group(0)


def assert_our_signed_assertion(assertion: bytes, sts_url: str, tmp_path, *, subject: str = "admin") -> etree._Element:  # type: ignore[no-untyped-def]
    """xmlsec1 accepts it with the demo STS certificate; issuer and subject are ours. Returns it parsed."""
    verified = xmlsec1_verify(assertion, STS_CERT, tmp_path)
    assert verified.returncode == 0 and "OK" in verified.stderr, verified.stderr
    root = etree.fromstring(assertion)
    saml = etree.QName(root).namespace
    if saml == ns.SAML2:
        assert root.findtext(q(ns.SAML2, "Issuer")) == sts_url
        assert root.findtext(f"{q(ns.SAML2, 'Subject')}/{q(ns.SAML2, 'NameID')}") == subject
    else:
        assert saml == ns.SAML1
        assert root.get("Issuer") == sts_url
        assert root.findtext(f".//{q(ns.SAML1, 'NameIdentifier')}") == subject
    return root


def our_rst(sts_url: str, service_url: str, *, soap: str = "1.2", trust: str = "1.3", digest: bool = False,
            token_type: str | None = None) -> bytes:
    """An RST from this package's own client (no TokenType unless asked, no addressing headers)."""
    client = StsClient(sts_url, username="admin", password="admin", digest=digest, soap_version=soap,
                       trust_version=trust)
    return client.build_request(service_url, token_type=token_type)


def rstr_element(body: bytes, soap: str, trust: str) -> etree._Element:
    root = etree.fromstring(body)
    top = root.find(q(SOAP_NS[soap], "Body"))[0]
    t = TRUST_NS[trust]
    if trust == "1.3":
        assert top.tag == q(t, "RequestSecurityTokenResponseCollection")
        (top,) = list(top)
    assert top.tag == q(t, "RequestSecurityTokenResponse")
    return top


# ----------------------------------------------------------------- TokenType

@pytest.mark.parametrize(("soap", "trust"), [("1.2", "1.3"), ("1.2", "2005"), ("1.1", "1.3"), ("1.1", "2005")])
def test_rstr_carries_a_token_type_when_the_rst_has_none(demo_servers, soap, trust):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    body = our_rst(sts_url, service_url, soap=soap, trust=trust)
    assert b"TokenType" not in body
    status, headers, answer = http_post(sts_url, body, {"Content-Type": MEDIA[soap],
                                                        "SOAPAction": f'"{ISSUE_ACTION[trust]}"'})
    assert status == 200, answer
    rstr = rstr_element(answer, soap, trust)
    assert rstr.findtext(q(TRUST_NS[trust], "TokenType")) == ns.SAML2  # the relying party's default, SAML 2.0
    # and MSAL's regex reader finds it as well
    assert re.search(rb"<\w+:TokenType>urn:oasis:names:tc:SAML:2\.0:assertion</\w+:TokenType>", answer)


# ----------------------------------------------------------------- the assertion stands alone

def _undeclared_qname_values(assertion: etree._Element) -> list[str]:
    """QName-valued attributes (xsi:type) whose prefix is not in scope where they appear."""
    missing = []
    for element in assertion.iter():
        if not isinstance(element.tag, str):
            continue
        xsi_type = element.get(q(ns.XSI, "type"))
        if xsi_type and ":" in xsi_type and xsi_type.split(":", 1)[0] not in element.nsmap:
            missing.append(f"{element.tag} xsi:type={xsi_type}")
    return missing


@pytest.mark.parametrize("token_type", [ns.SAML2, ns.SAML1])
def test_the_assertion_cut_out_as_bytes_declares_every_namespace_it_uses(demo_servers, token_type, tmp_path):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    body = our_rst(sts_url, service_url, token_type=token_type)
    status, _, answer = http_post(sts_url, body, {"Content-Type": MEDIA["1.2"]})
    assert status == 200, answer
    assertion = cut_assertion(answer)
    # a strict namespace-aware parse of the bytes alone fails on any undeclared element or attribute prefix
    standalone = etree.fromstring(assertion, etree.XMLParser(recover=False, resolve_entities=False))
    assert etree.QName(standalone).namespace == token_type
    assert _undeclared_qname_values(standalone) == []
    assert standalone.find(f".//{q(ns.DS, 'Signature')}") is not None
    assert_our_signed_assertion(assertion, sts_url, tmp_path)


def test_no_whitespace_between_requested_security_token_and_the_assertion(demo_servers):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    for soap, trust in (("1.1", "1.3"), ("1.2", "2005")):
        status, _, answer = http_post(sts_url, our_rst(sts_url, service_url, soap=soap, trust=trust),
                                      {"Content-Type": MEDIA[soap]})
        assert status == 200, answer
        found = re.search(rb"<(\w+:)?RequestedSecurityToken(\s[^>]*)?>(.{0,40})", answer, re.S)
        assert found is not None
        assert re.match(rb"<(\w+:)?Assertion\b", found.group(3)), found.group(3)
        closing = re.search(rb"</(\w+:)?Assertion>(.{0,40})", answer, re.S)
        assert closing is not None and re.match(rb"</(\w+:)?RequestedSecurityToken>", closing.group(2))


# ----------------------------------------------------------------- faults

def _resolve(element: etree._Element, value: str) -> tuple[str | None, str]:
    prefix, _, local = value.strip().rpartition(":")
    return element.nsmap.get(prefix or None), local


@pytest.mark.parametrize(("username", "password", "status", "code", "subcode"), [
    ("admin", "wrong", 400, "Sender", "FailedAuthentication"),
    ("alice", "alice", 400, "Sender", "RequestFailed"),  # good password, no admin role
])
def test_soap12_fault_has_status_code_subcode_and_reason_with_bound_prefixes(
        demo_servers, username, password, status, code, subcode):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    client = StsClient(sts_url, username=username, password=password, soap_version="1.2")
    answered, headers, answer = http_post(sts_url, client.build_request(service_url), {"Content-Type": MEDIA["1.2"]})
    assert answered == status
    assert headers["content-type"].startswith("application/soap+xml")
    fault = etree.fromstring(answer).find(f"{q(ns.SOAP12, 'Body')}/{q(ns.SOAP12, 'Fault')}")
    assert fault is not None
    value = fault.find(f"{q(ns.SOAP12, 'Code')}/{q(ns.SOAP12, 'Value')}")
    assert _resolve(value, value.text) == (ns.SOAP12, code)
    sub_value = fault.find(f"{q(ns.SOAP12, 'Code')}/{q(ns.SOAP12, 'Subcode')}/{q(ns.SOAP12, 'Value')}")
    assert sub_value is not None and ":" in sub_value.text  # prefixed ...
    assert _resolve(sub_value, sub_value.text) == (ns.WST13, subcode)  # ... with a prefix bound where it is used
    reason = fault.find(f"{q(ns.SOAP12, 'Reason')}/{q(ns.SOAP12, 'Text')}")
    assert reason is not None and reason.text and reason.get(q(ns.XML, "lang")) == "en"
    # MSAL's own fault reader (ElementTree paths with its prefixes) finds both
    error = parse_error(answer.decode())
    assert error is not None and error["code"] == sub_value.text and error["reason"] == reason.text


def test_soap12_invalid_request_is_a_sender_fault_with_http_400(demo_servers):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    body = our_rst(sts_url, service_url).replace(f"{ns.WST13}/Bearer".encode(), f"{ns.WST13}/PublicKey".encode())
    status, _, answer = http_post(sts_url, body, {"Content-Type": MEDIA["1.2"]})
    assert status == 400, answer
    fault = etree.fromstring(answer).find(f"{q(ns.SOAP12, 'Body')}/{q(ns.SOAP12, 'Fault')}")
    value = fault.find(f"{q(ns.SOAP12, 'Code')}/{q(ns.SOAP12, 'Value')}")
    assert _resolve(value, value.text) == (ns.SOAP12, "Sender")
    sub_value = fault.find(f"{q(ns.SOAP12, 'Code')}/{q(ns.SOAP12, 'Subcode')}/{q(ns.SOAP12, 'Value')}")
    assert _resolve(sub_value, sub_value.text) == (ns.WST13, "InvalidRequest")


def test_soap11_fault_is_http_500_with_a_bound_faultcode_prefix(demo_servers):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    client = StsClient(sts_url, username="admin", password="wrong", soap_version="1.1", trust_version="2005")
    status, headers, answer = http_post(sts_url, client.build_request(service_url),
                                        {"Content-Type": MEDIA["1.1"], "SOAPAction": f'"{ISSUE_ACTION["2005"]}"'})
    assert status == 500
    assert headers["content-type"].startswith("text/xml")
    fault = etree.fromstring(answer).find(f"{q(ns.SOAP11, 'Body')}/{q(ns.SOAP11, 'Fault')}")
    code = fault.find("faultcode")
    assert _resolve(code, code.text) == (ns.WST2005, "FailedAuthentication")
    assert fault.findtext("faultstring")


@pytest.mark.parametrize("sent", ["1.1", "1.2"])
def test_an_envelope_of_the_other_soap_version_gets_a_soap11_version_mismatch_with_upgrade(
        demo_servers, sent):  # noqa: F811
    """Under gunicorn, from the STS and from the middleware alike (SOAP 1.2 part 1 appendix A)."""
    sts_url, service_url, _ = demo_servers
    announced = "1.2" if sent == "1.1" else "1.1"
    for url in (sts_url, service_url):
        status, headers, answer = http_post(url, our_rst(sts_url, service_url, soap=sent),
                                            {"Content-Type": MEDIA[announced]})
        assert_version_mismatch(status, headers["content-type"], answer)


# ----------------------------------------------------------------- dispatch without an action

def _with_wsa_action(body: bytes, soap: str, action: str) -> bytes:
    root = etree.fromstring(body)
    header = root.find(q(SOAP_NS[soap], "Header"))
    element = etree.Element(q(ns.WSA10, "Action"), nsmap={"wsa": ns.WSA10})
    element.text = action
    header.insert(0, element)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_request_without_soapaction_or_action_parameter_is_dispatched_from_wsa_action(demo_servers, soap):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    issue = _with_wsa_action(our_rst(sts_url, service_url, soap=soap), soap, ISSUE_ACTION["1.3"])
    status, _, answer = http_post(sts_url, issue, {"Content-Type": MEDIA[soap]})
    assert status == 200, answer
    assert rstr_element(answer, soap, "1.3") is not None
    # the action really is read from wsa:Action: a Cancel action there is refused
    cancel = _with_wsa_action(our_rst(sts_url, service_url, soap=soap), soap, f"{ns.WST13}/RST/Cancel")
    status, _, answer = http_post(sts_url, cancel, {"Content-Type": MEDIA[soap]})
    assert status == 500 if soap == "1.1" else status == 400
    assert b"InvalidRequest" in answer and b"Assertion" not in answer


@pytest.mark.parametrize(("soap", "trust"), [("1.1", "1.3"), ("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")])
def test_request_without_any_action_is_dispatched_from_the_body(demo_servers, soap, trust):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    body = our_rst(sts_url, service_url, soap=soap, trust=trust)
    assert b"Action" not in body
    status, _, answer = http_post(sts_url, body, {"Content-Type": MEDIA[soap]})
    assert status == 200, answer
    assert rstr_element(answer, soap, trust).findtext(q(TRUST_NS[trust], "TokenType")) == ns.SAML2


# ----------------------------------------------------------------- captured client RSTs over real HTTP

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?P<fraction>\.\d+)?(?P<zone>Z|[+-]\d\d:\d\d)$")


def _now_like(sample: str, now: datetime) -> str:
    """``now`` written the way the client wrote ``sample`` (fraction digits, Z or an offset)."""
    shape = _TIME.match(sample.strip())
    assert shape is not None, sample
    text = now.strftime("%Y-%m-%dT%H:%M:%S")
    if shape.group("fraction"):
        text += f".{now.microsecond:06d}"[: len(shape.group("fraction"))]
    return text + ("Z" if shape.group("zone") == "Z" else "+00:00")


def refresh_capture(data: bytes) -> bytes:
    """A captured RST made current: fresh Timestamp, Created and Nonce in the client's own formats,
    then our credentials and relying party (``tests/sts/test_sts.py``'s rebuild, which recomputes a digest)."""
    root = etree.fromstring(data)
    now = datetime.now(timezone.utc)
    stamp = root.find(f".//{q(ns.WSU, 'Timestamp')}")
    if stamp is not None:
        created, expires = stamp.find(q(ns.WSU, "Created")), stamp.find(q(ns.WSU, "Expires"))
        lifetime = datetime.fromisoformat(expires.text.strip().replace("Z", "+00:00")) - \
            datetime.fromisoformat(created.text.strip().replace("Z", "+00:00"))
        created.text, expires.text = _now_like(created.text, now), _now_like(expires.text, now + lifetime)
    token = root.find(f".//{q(ns.WSSE, 'UsernameToken')}")
    token_created = token.find(q(ns.WSU, "Created"))
    if token_created is not None:
        token_created.text = _now_like(token_created.text, now)
    nonce = token.find(q(ns.WSSE, "Nonce"))
    if nonce is not None:
        nonce.text = base64.b64encode(os.urandom(len(base64.b64decode(nonce.text)))).decode()
    fresh = etree.tostring(root, xml_declaration=data.startswith(b"<?xml"), encoding="utf-8")
    # _rebuild_capture also moves an in-process test clock to the capture's time; the real STS keeps its own
    return rebuild_capture(fresh, SimpleNamespace(now=now))


def _captured_headers(http: dict) -> dict[str, str]:
    """The captured request headers, minus those that name the capture host or length."""
    return {name: value for name, value in http["headers"] if name.lower() not in ("host", "content-length")}


@pytest.mark.parametrize("name", CLIENT_CAPTURES)
def test_captured_client_rst_gets_a_token_over_real_http(demo_servers, name, tmp_path):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    data = vector(f"clients/{name}.xml").read_bytes()
    http = json.loads(vector(f"clients/{name}.http.json").read_text())
    body = refresh_capture(data).replace(b"http://127.0.0.1:8081/services/echo", service_url.encode())
    status, headers, answer = http_post(sts_url, body, _captured_headers(http))
    assert status == 200, answer[:1500]
    soap = "1.2" if dict((k.lower(), v) for k, v in http["headers"])["content-type"].startswith(
        "application/soap+xml") else "1.1"
    trust = "2005" if ns.WST2005.encode() in data else "1.3"
    assert headers["content-type"].startswith(MEDIA[soap].split(";")[0])
    rstr = rstr_element(answer, soap, trust)
    assert rstr.findtext(q(TRUST_NS[trust], "TokenType")) == ns.SAML2
    assert_our_signed_assertion(cut_assertion(answer), sts_url, tmp_path)
