"""The STS as a WSGI app: what it answers, what it refuses and with which fault.

Requests are built with :class:`StsClient` (``build_request``) and changed with
lxml, or rebuilt from real clients' captured RSTs (``tests/data/vectors``), then
posted with WebTest so the HTTP status, headers and body are all visible.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import webtest
from lxml import etree

from _support import ISSUER, OTHER_URL, SERVICE_URL, STS_URL, vector
from _support.captures import CLIENT_CAPTURES, captured, q, rebuild_capture, rst_of
from _support.envelope_oracles import response_envelope_from_tree
from _support.faults import assert_version_mismatch
from wstrust_wsgi import ns, saml, wstrust
from wstrust_wsgi import soap as soap_module

SOAP_NS = {"1.1": ns.SOAP11, "1.2": ns.SOAP12}
MEDIA = {"1.1": "text/xml", "1.2": "application/soap+xml"}
TRUST_NS = {"1.3": ns.WST13, "2005": ns.WST2005}
ISSUE_ACTION = {"1.3": f"{ns.WST13}/RST/Issue", "2005": f"{ns.WST2005}/RST/Issue"}
BEARER = {"1.3": f"{ns.WST13}/Bearer", "2005": ns.WST2005_NO_PROOF_KEY}
SAML2_KEYID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"
SAML11_KEYID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
ROLE_CLAIM = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
SOAP_TRUST = [("1.1", "1.3"), ("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")]


def fmt(moment: datetime) -> str:
    """xs:dateTime as the STS writes it (milliseconds, Z)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@pytest.fixture
def web(sts_app) -> webtest.TestApp:  # type: ignore[no-untyped-def]
    return webtest.TestApp(sts_app)


# ------------------------------------------------------------------ posting and reading


def post_soap(web, body: bytes, soap: str = "1.2", *, action: str | None = None,
              path: str = "/services/sts", soap_action: str | None = None):  # type: ignore[no-untyped-def]
    """POST ``body`` as SOAP ``soap``; the action goes where that version's binding puts it."""
    headers = {}
    content_type = f"{MEDIA[soap]}; charset=utf-8"
    if soap == "1.2" and action:
        content_type += f'; action="{action}"'
    if soap == "1.1" and action:
        headers["SOAPAction"] = f'"{action}"'
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    return web.post(path, params=body, headers=headers, content_type=content_type, expect_errors=True)


def build(make_client, soap: str = "1.2", trust: str = "1.3", applies_to: str = SERVICE_URL,
          token_type: str | None = None, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    client = make_client(soap_version=soap, trust_version=trust, **kwargs.pop("client", {}))
    return client.build_request(applies_to, token_type=token_type, **kwargs)


def request_rst(web, make_client, soap: str = "1.2", trust: str = "1.3", **kwargs):  # type: ignore[no-untyped-def]
    return post_soap(web, build(make_client, soap, trust, **kwargs), soap, action=ISSUE_ACTION[trust])


def edit(body: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    """Parse a request we built, let ``change(root)`` edit it, serialize it again."""
    root = etree.fromstring(body)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def header_of(root: etree._Element) -> etree._Element:
    soap_ns = etree.QName(root).namespace
    return root.find(q(soap_ns, "Header"))


def assert_no_token(response) -> None:  # type: ignore[no-untyped-def]
    assert b"Assertion" not in response.body
    assert b"Traceback" not in response.body
    assert b"RequestedSecurityToken" not in response.body


def resolve(element: etree._Element) -> tuple[str, str, str]:
    """A QName-valued element's text as (prefix, namespace bound to it there, local)."""
    prefix, _, local = element.text.strip().partition(":")
    return prefix, element.nsmap.get(prefix), local


def assert_fault(response, soap: str, code: str, namespace: str, *, sender: bool = True) -> str:  # type: ignore[no-untyped-def]
    """Check a fault answer; ``code`` is ``prefix:Local`` of the most specific code. Returns the reason.

    For ``wst``/``wsse`` codes under SOAP 1.2 the top code is Sender (or Receiver)
    and ``code`` is the Subcode. For SOAP-level codes (``s:...``) it is the top Value.
    """
    prefix, local = code.split(":")
    assert_no_token(response)
    assert response.content_type == MEDIA[soap]
    assert response.headers["Content-Type"].startswith(MEDIA[soap])
    root = etree.fromstring(response.body)
    env = SOAP_NS[soap]
    assert root.tag == q(env, "Envelope")
    fault = root.find(f"{q(env, 'Body')}/{q(env, 'Fault')}")
    assert fault is not None, response.body
    if soap == "1.1":
        assert response.status_int == 500
        faultcode = fault.find("faultcode")
        assert faultcode.text == code
        assert resolve(faultcode) == (prefix, namespace, local)
        return fault.findtext("faultstring")
    value = fault.find(f"{q(env, 'Code')}/{q(env, 'Value')}")
    subcode = fault.find(f"{q(env, 'Code')}/{q(env, 'Subcode')}/{q(env, 'Value')}")
    if prefix in ("wst", "wsse"):
        top = "Sender" if sender else "Receiver"
        assert resolve(value)[1:] == (env, top)
        assert subcode is not None and subcode.text == code
        assert resolve(subcode) == (prefix, namespace, local)
    else:
        top = local
        assert resolve(value)[1:] == (namespace, local)
        assert subcode is None
    assert response.status_int == (400 if top == "Sender" else 500)
    text = fault.find(f"{q(env, 'Reason')}/{q(env, 'Text')}")
    assert text.get(q(ns.XML, "lang")) == "en"
    return text.text


def assert_trust_fault(response, soap: str, local: str, trust: str = "1.3", *, sender: bool = True) -> str:  # type: ignore[no-untyped-def]
    return assert_fault(response, soap, f"wst:{local}", TRUST_NS[trust], sender=sender)


def assert_security_fault(response, soap: str, local: str) -> str:  # type: ignore[no-untyped-def]
    return assert_fault(response, soap, f"wsse:{local}", ns.WSSE)


def assert_client_fault(response, soap: str) -> str:  # type: ignore[no-untyped-def]
    return assert_fault(response, soap, "s:Client" if soap == "1.1" else "s:Sender", SOAP_NS[soap])


def rstr_of(response, soap: str, trust: str) -> etree._Element:  # type: ignore[no-untyped-def]
    """Check a success answer's envelope and return its RSTR."""
    assert response.status_int == 200, response.body
    assert response.content_type == MEDIA[soap]
    assert b"Traceback" not in response.body
    root = etree.fromstring(response.body)
    env = SOAP_NS[soap]
    assert root.tag == q(env, "Envelope")
    body = root.find(q(env, "Body"))
    (top,) = list(body)
    t = TRUST_NS[trust]
    if trust == "1.3":
        assert top.tag == q(t, "RequestSecurityTokenResponseCollection")
        (rstr,) = list(top)
    else:
        rstr = top
    assert rstr.tag == q(t, "RequestSecurityTokenResponse")
    return rstr


def assertion_of(rstr: etree._Element) -> etree._Element:
    requested = rstr.find(q(etree.QName(rstr).namespace, "RequestedSecurityToken"))
    assert requested is not None
    assert requested.text is None  # the assertion is the first child, nothing before it
    children = list(requested)
    assert len(children) == 1
    assert etree.QName(children[0]).localname == "Assertion"
    return children[0]


def add_message_id(root: etree._Element, message_id: str, wsa: str = ns.WSA10) -> None:
    element = etree.SubElement(header_of(root), q(wsa, "MessageID"), nsmap={"wsa": wsa})
    element.text = message_id


# ------------------------------------------------------------------ success


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
def test_issue_answers_in_the_request_versions_with_a_complete_rstr(web, make_client, clock, soap, trust):
    message_id = f"urn:uuid:{uuid.uuid4()}"

    def change(root):  # type: ignore[no-untyped-def]
        rst_of(root).set("Context", "ctx-42")
        add_message_id(root, message_id)

    body = edit(build(make_client, soap, trust), change)
    response = post_soap(web, body, soap, action=ISSUE_ACTION[trust])
    rstr = rstr_of(response, soap, trust)
    t = TRUST_NS[trust]
    assert rstr.get("Context") == "ctx-42"
    assert rstr.findtext(q(t, "TokenType")) == ns.SAML2
    assert rstr.findtext(q(t, "KeyType")) == BEARER[trust]
    assert rstr.findtext(q(t, "RequestType")) == f"{t}/Issue"
    assert rstr.findtext(f"{q(t, 'Lifetime')}/{q(ns.WSU, 'Created')}") == fmt(clock.now)
    assert rstr.findtext(f"{q(t, 'Lifetime')}/{q(ns.WSU, 'Expires')}") == fmt(clock.now + timedelta(minutes=5))
    address = rstr.find(f"{q(ns.WSP12, 'AppliesTo')}/{q(ns.WSA10, 'EndpointReference')}/{q(ns.WSA10, 'Address')}")
    assert address is not None and address.text == SERVICE_URL

    assertion = assertion_of(rstr)
    assert assertion.tag == q(ns.SAML2, "Assertion")
    assertion_id = assertion.get("ID")
    assert assertion_id
    for reference in ("RequestedAttachedReference", "RequestedUnattachedReference"):
        identifier = rstr.find(f"{q(t, reference)}/{q(ns.WSSE, 'SecurityTokenReference')}/{q(ns.WSSE, 'KeyIdentifier')}")
        assert identifier is not None, reference
        assert identifier.get("ValueType") == SAML2_KEYID
        assert identifier.text == assertion_id

    s = ns.SAML2
    assert assertion.findtext(q(s, "Issuer")) == ISSUER
    assert assertion.findtext(f"{q(s, 'Subject')}/{q(s, 'NameID')}") == "admin"
    confirmation = assertion.find(f"{q(s, 'Subject')}/{q(s, 'SubjectConfirmation')}")
    assert confirmation.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    audience = assertion.findtext(f"{q(s, 'Conditions')}/{q(s, 'AudienceRestriction')}/{q(s, 'Audience')}")
    assert audience == SERVICE_URL
    roles = [v.text for a in assertion.iter(q(s, "Attribute")) if a.get("Name") == ROLE_CLAIM
             for v in a.iter(q(s, "AttributeValue"))]
    assert roles == ["admin"]
    assert assertion.find(f".//{q(ns.DS, 'Signature')}") is not None

    header = etree.fromstring(response.body).find(q(SOAP_NS[soap], "Header"))
    assert header is not None
    assert header.findtext(q(ns.WSA10, "RelatesTo")) == message_id
    response_action = {"1.3": f"{ns.WST13}/RSTRC/IssueFinal", "2005": f"{ns.WST2005}/RSTR/Issue"}[trust]
    assert header.findtext(q(ns.WSA10, "Action")) == response_action


def test_assertion_follows_requested_security_token_without_whitespace_in_the_bytes(web, make_client):
    response = request_rst(web, make_client)
    body = response.body
    start = body.index(b"RequestedSecurityToken>") + len(b"RequestedSecurityToken>")
    assert body[start:start + 1] == b"<"
    assert b":Assertion " in body[start:start + 40] or body[start:].startswith(b"<Assertion")


def test_relates_to_echoes_a_2004_addressing_message_id_in_its_namespace(web, make_client):
    body = edit(build(make_client, "1.1", "2005"), lambda root: add_message_id(root, "uuid:old-wsa", ns.WSA04))
    response = post_soap(web, body, "1.1", action=ISSUE_ACTION["2005"])
    assert response.status_int == 200
    header = etree.fromstring(response.body).find(q(ns.SOAP11, "Header"))
    assert header.findtext(q(ns.WSA04, "RelatesTo")) == "uuid:old-wsa"


def test_a_request_without_message_id_gets_no_addressing_headers(web, make_client):
    response = request_rst(web, make_client)
    assert response.status_int == 200
    assert etree.fromstring(response.body).find(q(ns.SOAP12, "Header")) is None


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
@pytest.mark.parametrize("token_type", [None, ns.SAML11_TOKEN_PROFILE_TYPE])
@pytest.mark.parametrize("wsa", [None, ns.WSA10, ns.WSA04])
def test_the_answer_is_byte_for_byte_what_the_tree_builder_makes(web, make_client, clock, soap, trust, token_type, wsa):
    """The STS answers from a template (``wstrust.response_envelope``); the reference tree path, given the
    same request and the token the STS signed, makes the same bytes, hostile Context and MessageID included."""
    hostile = "a&b<c>d\"e'f\tg\nh\ri ]]> \u00e9\u4e2d\U0001f600"

    def change(root):  # type: ignore[no-untyped-def]
        rst_of(root).set("Context", hostile)
        if wsa is not None:
            add_message_id(root, "urn:uuid:" + hostile, wsa)

    body = edit(build(make_client, soap, trust, token_type=token_type), change)
    response = post_soap(web, body, soap, action=ISSUE_ACTION[trust])
    rstr = rstr_of(response, soap, trust)
    assert rstr.get("Context") == hostile
    version = saml.SAML11 if token_type else saml.SAML2
    assertion = response.body.split(b"<wst:RequestedSecurityToken>")[1].split(b"</wst:RequestedSecurityToken>")[0]
    request = wstrust.parse_request(soap_module.parse_envelope(body, content_type=MEDIA[soap]).body_child())
    expected = response_envelope_from_tree(
        soap_module.SOAP11 if soap == "1.1" else soap_module.SOAP12, request, assertion,
        token_type=token_type or saml.SAML2.token_type, version=version,
        assertion_id=etree.fromstring(assertion).get(version.id_attribute),
        created=clock.now, expires=clock.now + timedelta(minutes=5),
        relates_to=soap_module.RelatesTo(wsa, "urn:uuid:" + hostile) if wsa is not None else None,
    )
    assert response.body == expected


def test_each_issue_makes_a_fresh_assertion_id(web, make_client):
    ids = set()
    for _ in range(2):
        rstr = rstr_of(request_rst(web, make_client), "1.2", "1.3")
        ids.add(assertion_of(rstr).get("ID"))
    assert len(ids) == 2


def test_digest_password_gets_a_token(web, make_client):
    response = request_rst(web, make_client, client={"digest": True})
    assert assertion_of(rstr_of(response, "1.2", "1.3")).findtext(
        f"{q(ns.SAML2, 'Subject')}/{q(ns.SAML2, 'NameID')}") == "admin"


# ------------------------------------------------------------------ token type


def test_relying_party_default_token_type_is_saml2_for_the_service(web, make_client):
    rstr = rstr_of(request_rst(web, make_client), "1.2", "1.3")
    assert assertion_of(rstr).tag == q(ns.SAML2, "Assertion")


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
def test_relying_party_default_token_type_is_saml11_for_the_other_service(web, make_client, soap, trust):
    rstr = rstr_of(request_rst(web, make_client, soap, trust, applies_to=OTHER_URL), soap, trust)
    t = TRUST_NS[trust]
    assertion = assertion_of(rstr)
    assert assertion.tag == q(ns.SAML1, "Assertion")
    assert rstr.findtext(q(t, "TokenType")) == ns.SAML1
    assertion_id = assertion.get("AssertionID")
    assert assertion_id
    for reference in ("RequestedAttachedReference", "RequestedUnattachedReference"):
        identifier = rstr.find(f"{q(t, reference)}/{q(ns.WSSE, 'SecurityTokenReference')}/{q(ns.WSSE, 'KeyIdentifier')}")
        assert identifier.get("ValueType") == SAML11_KEYID
        assert identifier.text == assertion_id
    s = ns.SAML1
    assert assertion.get("Issuer") == ISSUER
    assert assertion.findtext(f".//{q(s, 'AudienceRestrictionCondition')}/{q(s, 'Audience')}") == OTHER_URL
    assert {e.text for e in assertion.iter(q(s, "NameIdentifier"))} == {"admin"}
    assert {e.text for e in assertion.iter(q(s, "ConfirmationMethod"))} == {"urn:oasis:names:tc:SAML:1.0:cm:bearer"}
    roles = [v.text for a in assertion.iter(q(s, "Attribute")) if a.get("AttributeName") == "role"
             for v in a.iter(q(s, "AttributeValue"))]
    assert roles == ["admin"]


@pytest.mark.parametrize(("token_type", "saml_ns", "applies_to"), [
    ("urn:oasis:names:tc:SAML:2.0:assertion", ns.SAML2, OTHER_URL),
    ("http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0", ns.SAML2, OTHER_URL),
    ("urn:oasis:names:tc:SAML:1.0:assertion", ns.SAML1, SERVICE_URL),
    ("http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1", ns.SAML1, SERVICE_URL),
])
def test_explicit_token_type_overrides_the_relying_party_default(web, make_client, token_type, saml_ns, applies_to):
    rstr = rstr_of(request_rst(web, make_client, applies_to=applies_to, token_type=token_type), "1.2", "1.3")
    assert assertion_of(rstr).tag == q(saml_ns, "Assertion")
    assert rstr.findtext(q(ns.WST13, "TokenType")) == token_type


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_unknown_token_type_is_invalid_request(web, make_client, soap):
    response = request_rst(web, make_client, soap, token_type="http://schemas.xmlsoap.org/ws/2005/02/sc/sct")
    assert_trust_fault(response, soap, "InvalidRequest")


# ------------------------------------------------------------------ authentication and authorization


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
def test_wrong_password_is_failed_authentication(web, make_client, soap, trust):
    response = request_rst(web, make_client, soap, trust, client={"password": "wrong"})
    assert_trust_fault(response, soap, "FailedAuthentication", trust)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_unknown_user_gets_the_same_fault_and_reason_as_a_wrong_password(web, make_client, soap):
    wrong = assert_trust_fault(request_rst(web, make_client, soap, client={"password": "wrong"}),
                               soap, "FailedAuthentication")
    unknown = assert_trust_fault(request_rst(web, make_client, soap, client={"username": "mallory"}),
                                 soap, "FailedAuthentication")
    assert wrong == unknown
    assert "mallory" not in unknown


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
def test_user_without_the_admin_role_is_refused_with_request_failed(web, make_client, soap, trust):
    refused = request_rst(web, make_client, soap, trust, client={"username": "alice", "password": "alice"})
    reason = assert_trust_fault(refused, soap, "RequestFailed", trust)
    bad_password = assert_trust_fault(
        request_rst(web, make_client, soap, trust, client={"password": "wrong"}), soap, "FailedAuthentication", trust)
    assert reason != bad_password


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_unregistered_applies_to_is_invalid_request(web, make_client, soap):
    response = request_rst(web, make_client, soap, applies_to="http://127.0.0.1:9999/not/registered")
    assert_trust_fault(response, soap, "InvalidRequest")


def test_applies_to_is_compared_exactly(web, make_client):
    response = request_rst(web, make_client, applies_to=SERVICE_URL + "/")
    assert_trust_fault(response, "1.2", "InvalidRequest")


@pytest.mark.parametrize(("wsp", "wsa"), [(ns.WSP15, ns.WSA10), (ns.WSP12, ns.WSA04), (ns.WSP15, ns.WSA04)])
def test_applies_to_in_other_policy_and_addressing_versions_is_echoed_in_them(web, make_client, wsp, wsa):
    def change(root):  # type: ignore[no-untyped-def]
        applies = rst_of(root).find(q(ns.WSP12, "AppliesTo"))
        applies.tag = q(wsp, "AppliesTo")
        for element in applies.iter():
            if etree.QName(element).namespace == ns.WSA10:
                element.tag = q(wsa, etree.QName(element).localname)

    response = post_soap(web, edit(build(make_client), change), action=ISSUE_ACTION["1.3"])
    rstr = rstr_of(response, "1.2", "1.3")
    address = rstr.find(f"{q(wsp, 'AppliesTo')}/{q(wsa, 'EndpointReference')}/{q(wsa, 'Address')}")
    assert address is not None and address.text == SERVICE_URL


def test_applies_to_with_a_bare_address_is_accepted(web, make_client):
    def change(root):  # type: ignore[no-untyped-def]
        applies = rst_of(root).find(q(ns.WSP12, "AppliesTo"))
        reference = applies.find(q(ns.WSA10, "EndpointReference"))
        address = reference.find(q(ns.WSA10, "Address"))
        applies.remove(reference)
        applies.append(address)

    response = post_soap(web, edit(build(make_client), change), action=ISSUE_ACTION["1.3"])
    audience = assertion_of(rstr_of(response, "1.2", "1.3")).findtext(f".//{q(ns.SAML2, 'Audience')}")
    assert audience == SERVICE_URL


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
def test_missing_applies_to_is_invalid_request(web, make_client, soap, trust):
    def drop(root):  # type: ignore[no-untyped-def]
        rst = rst_of(root)
        rst.remove(rst.find(q(ns.WSP12, "AppliesTo")))

    body = edit(build(make_client, soap, trust), drop)
    assert_trust_fault(post_soap(web, body, soap, action=ISSUE_ACTION[trust]), soap, "InvalidRequest", trust)


def test_applies_to_without_an_address_is_invalid_request(web, make_client):
    def empty(root):  # type: ignore[no-untyped-def]
        applies = rst_of(root).find(q(ns.WSP12, "AppliesTo"))
        for child in list(applies):
            applies.remove(child)

    body = edit(build(make_client), empty)
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "InvalidRequest")


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_replayed_digest_nonce_is_failed_authentication(web, make_client, soap):
    body = build(make_client, soap, client={"digest": True})
    first = post_soap(web, body, soap, action=ISSUE_ACTION["1.3"])
    assert first.status_int == 200
    second = post_soap(web, body, soap, action=ISSUE_ACTION["1.3"])
    assert_trust_fault(second, soap, "FailedAuthentication")


def test_digest_created_within_window_and_skew_is_accepted(web, make_client, clock):
    body = build(make_client, client={"digest": True, "timestamp": False})
    clock.advance(minutes=9, seconds=59)
    assert post_soap(web, body, action=ISSUE_ACTION["1.3"]).status_int == 200


def test_digest_created_older_than_window_and_skew_is_failed_authentication(web, make_client, clock):
    body = build(make_client, client={"digest": True, "timestamp": False})
    clock.advance(minutes=10, seconds=1)
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "FailedAuthentication")


def test_digest_created_in_the_future_is_failed_authentication(web, make_client, clock):
    future = clock.now + timedelta(minutes=6)
    body = build(make_client, client={"digest": True, "timestamp": False, "clock": lambda: future})
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "FailedAuthentication")


def test_digest_with_wrong_password_is_failed_authentication(web, make_client):
    body = build(make_client, client={"digest": True, "password": "wrong"})
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "FailedAuthentication")


def test_wrong_digest_with_a_seen_nonce_does_not_burn_it_for_the_valid_request(web, make_client):
    """Replay is judged after the password: a wrong guess reusing a nonce in flight must not record it."""
    valid = build(make_client, client={"digest": True})
    nonce = etree.fromstring(valid).findtext(f".//{q(ns.WSSE, 'Nonce')}")

    def same_nonce(root):  # type: ignore[no-untyped-def]
        root.find(f".//{q(ns.WSSE, 'Nonce')}").text = nonce

    forged = edit(build(make_client, client={"digest": True, "password": "wrong"}), same_nonce)
    assert_trust_fault(post_soap(web, forged, action=ISSUE_ACTION["1.3"]), "1.2", "FailedAuthentication")
    assert post_soap(web, valid, action=ISSUE_ACTION["1.3"]).status_int == 200


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_expired_timestamp_is_message_expired(web, make_client, clock, soap):
    body = build(make_client, soap)
    clock.advance(minutes=11)
    assert_security_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap, "MessageExpired")


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_timestamp_with_an_out_of_range_time_is_invalid_security(web, make_client, soap):
    """A time that overflows when converted to UTC is the sender's error, not an internal one."""
    def change(root):  # type: ignore[no-untyped-def]
        root.find(f".//{q(ns.WSU, 'Timestamp')}/{q(ns.WSU, 'Created')}").text = "0001-01-01T00:00:00+01:00"

    body = edit(build(make_client, soap), change)
    assert_security_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap, "InvalidSecurity")


def test_lifetime_with_an_out_of_range_expires_is_invalid_request(web, clock):
    body = _pyvmomi_request(clock, lifetime=timedelta(minutes=2), applies_to=SERVICE_URL)
    body = body.replace(f"<ns3:Expires>{fmt(clock.now + timedelta(minutes=2))}".encode(),
                        b"<ns3:Expires>9999-12-31T23:59:59-05:00")
    assert b"9999-12-31" in body
    assert_trust_fault(post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"]), "1.1", "InvalidRequest")


def test_timestamp_created_in_the_future_is_message_expired(web, make_client, clock):
    future = clock.now + timedelta(minutes=6)
    body = build(make_client, client={"clock": lambda: future})
    assert_security_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "MessageExpired")


@pytest.mark.parametrize(("soap", "trust"), SOAP_TRUST)
def test_missing_security_header_is_invalid_security(web, make_client, soap, trust):
    def drop(root):  # type: ignore[no-untyped-def]
        header = header_of(root)
        header.remove(header.find(q(ns.WSSE, "Security")))

    body = edit(build(make_client, soap, trust), drop)
    assert_security_fault(post_soap(web, body, soap, action=ISSUE_ACTION[trust]), soap, "InvalidSecurity")


def test_security_header_without_username_token_is_failed_authentication(web, make_client):
    def drop(root):  # type: ignore[no-untyped-def]
        security = root.find(f".//{q(ns.WSSE, 'Security')}")
        security.remove(security.find(q(ns.WSSE, "UsernameToken")))

    body = edit(build(make_client), drop)
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "FailedAuthentication")


def test_two_security_headers_are_invalid_security(web, make_client):
    def duplicate(root):  # type: ignore[no-untyped-def]
        security = root.find(f".//{q(ns.WSSE, 'Security')}")
        header_of(root).append(etree.fromstring(etree.tostring(security)))

    body = edit(build(make_client), duplicate)
    assert_security_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "InvalidSecurity")


def test_security_header_for_another_role_is_not_used(web, make_client):
    def readdress(root):  # type: ignore[no-untyped-def]
        root.find(f".//{q(ns.WSSE, 'Security')}").set(q(ns.SOAP12, "role"), "http://example.org/intermediary")

    body = edit(build(make_client), readdress)
    assert_security_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "InvalidSecurity")


# ------------------------------------------------------------------ what the RST asks for


@pytest.mark.parametrize(("trust", "key_type"), [
    ("1.3", f"{ns.WST13}/SymmetricKey"),
    ("1.3", f"{ns.WST13}/PublicKey"),
    ("2005", f"{ns.WST2005}/SymmetricKey"),
])
def test_non_bearer_key_type_is_invalid_request(web, make_client, trust, key_type):
    def change(root):  # type: ignore[no-untyped-def]
        rst_of(root).find(q(TRUST_NS[trust], "KeyType")).text = key_type

    body = edit(build(make_client, "1.1", trust), change)
    assert_trust_fault(post_soap(web, body, "1.1", action=ISSUE_ACTION[trust]), "1.1", "InvalidRequest", trust)


@pytest.mark.parametrize("binding", ["Renew", "Validate", "Cancel"])
@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_request_types_other_than_issue_are_invalid_request(web, make_client, trust, binding):
    t = TRUST_NS[trust]

    def change(root):  # type: ignore[no-untyped-def]
        rst_of(root).find(q(t, "RequestType")).text = f"{t}/{binding}"

    body = edit(build(make_client, "1.2", trust), change)
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION[trust]), "1.2", "InvalidRequest", trust)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_cancel_action_is_invalid_request(web, make_client, soap):
    body = build(make_client, soap)
    response = post_soap(web, body, soap, action=f"{ns.WST13}/RST/Cancel")
    assert_trust_fault(response, soap, "InvalidRequest")


def test_cancel_wsa_action_is_invalid_request(web, make_client):
    def add_action(root):  # type: ignore[no-untyped-def]
        action = etree.SubElement(header_of(root), q(ns.WSA10, "Action"), nsmap={"wsa": ns.WSA10})
        action.text = f"{ns.WST13}/RST/Cancel"

    body = edit(build(make_client), add_action)
    assert_trust_fault(post_soap(web, body), "1.2", "InvalidRequest")


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_body_that_is_not_an_rst_is_invalid_request(web, make_client, soap):
    def replace(root):  # type: ignore[no-untyped-def]
        body = root.find(q(SOAP_NS[soap], "Body"))
        body.remove(rst_of(root))
        etree.SubElement(body, "{urn:example:echo}Echo").text = "hello"

    body = edit(build(make_client, soap), replace)
    assert_trust_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap, "InvalidRequest")


def test_rst_in_an_unknown_trust_namespace_is_invalid_request(web, make_client):
    def rename(root):  # type: ignore[no-untyped-def]
        rst_of(root).tag = q(ns.WST14, "RequestSecurityToken")

    body = edit(build(make_client), rename)
    assert_trust_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "InvalidRequest")


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_body_with_two_elements_is_a_client_fault(web, make_client, soap):
    def twice(root):  # type: ignore[no-untyped-def]
        rst = rst_of(root)
        rst.getparent().append(etree.fromstring(etree.tostring(rst)))

    body = edit(build(make_client, soap), twice)
    assert_client_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap)


def test_duplicated_applies_to_is_refused(web, make_client):
    def twice(root):  # type: ignore[no-untyped-def]
        rst = rst_of(root)
        applies = rst.find(q(ns.WSP12, "AppliesTo"))
        rst.append(etree.fromstring(etree.tostring(applies)))

    body = edit(build(make_client), twice)
    assert_client_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2")


# ------------------------------------------------------------------ SOAP processing


@pytest.mark.parametrize(("soap", "flag"), [("1.1", "1"), ("1.2", "1"), ("1.2", "true")])
def test_unknown_must_understand_header_is_a_must_understand_fault(web, make_client, soap, flag):
    def add(root):  # type: ignore[no-untyped-def]
        extra = etree.SubElement(header_of(root), "{urn:example:ext}Unknown")
        extra.set(q(SOAP_NS[soap], "mustUnderstand"), flag)
        extra.text = "x"

    body = edit(build(make_client, soap), add)
    response = post_soap(web, body, soap, action=ISSUE_ACTION["1.3"])
    assert_fault(response, soap, "s:MustUnderstand", SOAP_NS[soap])


@pytest.mark.parametrize(("soap", "attribute"), [("1.1", "actor"), ("1.2", "role")])
def test_unknown_must_understand_header_for_another_role_is_not_a_fault(web, make_client, soap, attribute):
    """Only header blocks targeted at this node are mandatory (SOAP 1.1 s4.2.3, SOAP 1.2 part 1 s5.2.3)."""
    def add(root):  # type: ignore[no-untyped-def]
        extra = etree.SubElement(header_of(root), "{urn:example:ext}ForTheProxy")
        extra.set(q(SOAP_NS[soap], "mustUnderstand"), "1")
        extra.set(q(SOAP_NS[soap], attribute), "http://example.org/some-intermediary")

    body = edit(build(make_client, soap), add)
    response = post_soap(web, body, soap, action=ISSUE_ACTION["1.3"])
    assert response.status_int == 200, response.body
    assertion_of(rstr_of(response, soap, "1.3"))


def test_unknown_must_understand_header_for_the_next_role_is_a_must_understand_fault(web, make_client):
    def add(root):  # type: ignore[no-untyped-def]
        extra = etree.SubElement(header_of(root), "{urn:example:ext}Unknown")
        extra.set(q(ns.SOAP12, "mustUnderstand"), "true")
        extra.set(q(ns.SOAP12, "role"), "http://www.w3.org/2003/05/soap-envelope/role/next")

    body = edit(build(make_client), add)
    assert_fault(post_soap(web, body, action=ISSUE_ACTION["1.3"]), "1.2", "s:MustUnderstand", ns.SOAP12)


def test_unknown_header_without_must_understand_is_ignored(web, make_client):
    def add(root):  # type: ignore[no-untyped-def]
        extra = etree.SubElement(header_of(root), "{urn:example:ext}Unknown")
        extra.set(q(ns.SOAP12, "mustUnderstand"), "0")

    body = edit(build(make_client), add)
    assert post_soap(web, body, action=ISSUE_ACTION["1.3"]).status_int == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_methods_other_than_post_get_405_with_allow_post(web, method):
    response = web.request("/services/sts", method=method, expect_errors=True)
    assert response.status_int == 405
    assert response.headers["Allow"] == "POST"
    assert b"Assertion" not in response.body


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml"])
def test_non_soap_content_type_is_415(web, make_client, content_type):
    response = web.post("/services/sts", params=build(make_client), content_type=content_type,
                        expect_errors=True)
    assert response.status_int == 415
    assert_no_token(response)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
@pytest.mark.parametrize("body", [b"this is not xml", b"<unclosed>", b"", b'{"json": true}'])
def test_body_that_is_not_xml_is_a_client_fault(web, soap, body):
    assert_client_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_xml_that_is_not_an_envelope_is_a_client_fault(web, soap):
    body = b'<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512"/>'
    assert_client_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap)


def _with_dtd(request: bytes, dtd: str, reference: str) -> bytes:
    """Put ``dtd`` before the envelope and ``reference`` as the username."""
    text = request.decode("utf-8")
    if text.startswith("<?xml"):
        text = text[text.index("?>") + 2:]
    text = text.replace("<wsse:Username>admin</wsse:Username>", f"<wsse:Username>{reference}</wsse:Username>")
    assert reference in text
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{dtd}\n{text}').encode("utf-8")


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_billion_laughs_is_refused_without_a_token(web, make_client, soap):
    dtd = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                     for i in range(1, 10))
           + "]>")
    body = _with_dtd(build(make_client, soap), dtd.replace("<!DOCTYPE lolz", "<!DOCTYPE Envelope"), "&lol9;")
    response = post_soap(web, body, soap, action=ISSUE_ACTION["1.3"])
    assert_client_fault(response, soap)
    assert b"lollol" not in response.body


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_internal_entity_standing_for_the_username_is_refused(web, make_client, soap):
    body = _with_dtd(build(make_client, soap), '<!DOCTYPE Envelope [<!ENTITY u "admin">]>', "&u;")
    assert_client_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_external_system_entity_is_refused_and_does_not_leak(web, make_client, soap, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    dtd = f'<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    body = _with_dtd(build(make_client, soap), dtd, "&xxe;")
    response = post_soap(web, body, soap, action=ISSUE_ACTION["1.3"])
    assert_client_fault(response, soap)
    assert b"TOP-SECRET-CONTENT" not in response.body


def test_external_entity_in_utf16_is_refused(web, make_client):
    dtd = '<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    text = _with_dtd(build(make_client, "1.1"), dtd, "&xxe;").decode("utf-8")
    body = text.replace('encoding="utf-8"', 'encoding="UTF-16"').encode("utf-16")
    response = post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"])
    assert_client_fault(response, "1.1")
    assert b"root:" not in response.body


def _padded(request: bytes, size: int) -> bytes:
    """The request with a comment in the Body that makes it ``size`` bytes long."""
    marker = b"<wst:RequestSecurityToken"
    padding = size - len(request) - len(b"<!---->")
    assert padding > 0
    return request.replace(marker, b"<!--" + b"x" * padding + b"-->" + marker, 1)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_body_over_256_kib_is_refused(web, make_client, soap):
    body = _padded(build(make_client, soap), 256 * 1024 + 1)
    assert len(body) == 256 * 1024 + 1
    reason = assert_client_fault(post_soap(web, body, soap, action=ISSUE_ACTION["1.3"]), soap)
    assert "too large" in reason


def test_body_of_exactly_256_kib_gets_a_token(web, make_client):
    body = _padded(build(make_client), 256 * 1024)
    assert len(body) == 256 * 1024
    assert post_soap(web, body, action=ISSUE_ACTION["1.3"]).status_int == 200


def test_soap12_envelope_sent_as_text_xml_is_version_mismatch(web, make_client):
    body = build(make_client, "1.2")
    response = post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"])
    assert_fault(response, "1.1", "s:VersionMismatch", ns.SOAP11)
    assert_version_mismatch(response.status_int, response.headers["Content-Type"], response.body)


def test_soap11_envelope_sent_as_soap12_is_a_soap11_version_mismatch_with_upgrade(web, make_client):
    """SOAP 1.2 part 1 appendix A: the fault is SOAP 1.1 (text/xml) although SOAP 1.2 was announced."""
    body = build(make_client, "1.1")
    response = post_soap(web, body, "1.2", action=ISSUE_ACTION["1.3"])
    assert_no_token(response)
    assert_version_mismatch(response.status_int, response.headers["Content-Type"], response.body)


def test_soap12_request_with_soapaction_and_no_action_parameter_is_accepted(web, make_client):
    body = build(make_client, "1.2")
    response = post_soap(web, body, "1.2", soap_action=ISSUE_ACTION["1.3"])
    assert response.status_int == 200


def test_soap11_request_without_any_action_is_accepted(web, make_client):
    response = post_soap(web, build(make_client, "1.1"), "1.1")
    assert response.status_int == 200


# ------------------------------------------------------------------ logging


def test_issue_is_logged(web, make_client, caplog):
    caplog.set_level(logging.INFO, logger="wstrust_wsgi.sts")
    assert request_rst(web, make_client).status_int == 200
    messages = [r.getMessage() for r in caplog.records if r.name == "wstrust_wsgi.sts"]
    assert any(m.startswith("issued") and "'admin'" in m and SERVICE_URL in m for m in messages)


def test_bad_password_and_missing_role_are_logged_as_refusals_with_distinct_reasons(web, make_client, caplog):
    caplog.set_level(logging.INFO, logger="wstrust_wsgi.sts")
    request_rst(web, make_client, client={"password": "wrong"})
    bad_password = [r.getMessage() for r in caplog.records if r.name == "wstrust_wsgi.sts"]
    caplog.clear()
    request_rst(web, make_client, client={"username": "alice", "password": "alice"})
    no_role = [r.getMessage() for r in caplog.records if r.name == "wstrust_wsgi.sts"]
    assert len(bad_password) == 1 and bad_password[0].startswith("refused")
    assert len(no_role) == 1 and no_role[0].startswith("refused")
    assert "password" in bad_password[0]
    assert "role" in no_role[0] and "alice" in no_role[0]
    assert bad_password[0] != no_role[0]
    assert not any(m.startswith("issued") for m in bad_password + no_role)


def test_refusal_log_never_holds_the_password(web, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="wstrust_wsgi")
    request_rst(web, make_client, client={"password": "S3cr3t-Guess"})
    assert "S3cr3t-Guess" not in caplog.text


# ------------------------------------------------------------------ real client shapes


@pytest.mark.parametrize("name", CLIENT_CAPTURES)
def test_real_client_request_shape_gets_a_token(web, clock, name):
    data, http = captured(name)
    body = rebuild_capture(data, clock)
    headers = {k.lower(): v for k, v in http["headers"]}
    extra = {"SOAPAction": headers["soapaction"]} if "soapaction" in headers else {}
    response = web.request(http["path"], method=http["method"], body=body, headers=extra,
                           content_type=headers["content-type"], expect_errors=True)
    soap = "1.2" if headers["content-type"].startswith("application/soap+xml") else "1.1"
    trust = "2005" if ns.WST2005.encode() in data else "1.3"
    rstr = rstr_of(response, soap, trust)
    assertion = assertion_of(rstr)
    assert assertion.tag == q(ns.SAML2, "Assertion")
    assert assertion.findtext(f"{q(ns.SAML2, 'Subject')}/{q(ns.SAML2, 'NameID')}") == "admin"
    address = rstr.find(f".//{q(ns.WSA10, 'Address')}")
    assert address.text == SERVICE_URL
    message_id = etree.fromstring(data).find(f".//{q(ns.WSA10, 'MessageID')}")
    if message_id is not None:
        header = etree.fromstring(response.body).find(q(SOAP_NS[soap], "Header"))
        assert header.findtext(q(ns.WSA10, "RelatesTo")) == message_id.text


@pytest.mark.parametrize("name", ["adal13", "zeep_s11_digest"])
def test_real_client_request_with_wrong_password_is_refused(web, clock, name):
    data, http = captured(name)
    body = rebuild_capture(data, clock).replace(b">admin</wsse:Password>", b">nope</wsse:Password>")
    if b"PasswordDigest" in body:
        body = body.replace(b"#PasswordDigest\">", b"#PasswordDigest\">AAAA", 1)
    headers = {k.lower(): v for k, v in http["headers"]}
    response = web.post(http["path"], params=body, headers={"SOAPAction": headers["soapaction"]},
                        content_type=headers["content-type"], expect_errors=True)
    soap = "1.2" if headers["content-type"].startswith("application/soap+xml") else "1.1"
    assert_trust_fault(response, soap, "FailedAuthentication")


@pytest.mark.parametrize(("template", "trust"), [
    ("adal-node_rst_wstrust13_usernamemixed_template.xml", "1.3"),
    ("adal-node_rst_wstrust2005_usernamemixed_template.xml", "2005"),
])
def test_adal_template_filled_gets_a_token(web, clock, template, trust):
    raw = vector(template).read_bytes()
    assert b"<wsa:messageID>%MESSAGE_ID%</wsa:messageID>" in raw  # ADAL's lower-case quirk, kept
    values = {
        "MESSAGE_ID": f"urn:uuid:{uuid.uuid4()}",
        "WSTRUST_ENDPOINT": STS_URL,
        "CREATED": fmt(clock.now),
        "EXPIRES": fmt(clock.now + timedelta(minutes=10)),
        "USERNAME": "admin",
        "PASSWORD": "admin",
        "APPLIES_TO": SERVICE_URL,
    }
    body = raw
    for key, value in values.items():
        body = body.replace(f"%{key}%".encode(), value.encode())
    assert b"%" not in body
    assert body.startswith(b"\xef\xbb\xbf") == raw.startswith(b"\xef\xbb\xbf")
    response = web.post("/adfs/services/trust/usernamemixed", params=body,
                        headers={"SOAPAction": ISSUE_ACTION[trust]},
                        content_type="application/soap+xml; charset=utf-8", expect_errors=True)
    rstr = rstr_of(response, "1.2", trust)
    assert assertion_of(rstr).tag == q(ns.SAML2, "Assertion")
    assert rstr.findtext(q(TRUST_NS[trust], "KeyType")) == BEARER[trust]


def test_adal_2005_template_keeps_its_utf8_bom():
    assert vector("adal-node_rst_wstrust2005_usernamemixed_template.xml").read_bytes().startswith(b"\xef\xbb\xbf")


def _pyvmomi_request(clock, *, lifetime: timedelta, applies_to: str | None) -> bytes:  # type: ignore[no-untyped-def]
    template = vector("pyvmomi_rst_template_soap11_lifetime_renewing_delegatable.xml.tmpl").read_text()
    use_key = ""
    if applies_to is not None:  # the template's optional-children slot, where pyVmomi splices UseKey
        use_key = (f'<wsp:AppliesTo xmlns:wsp="{ns.WSP12}"><ns2:EndpointReference>'
                   f"<ns2:Address>{applies_to}</ns2:Address></ns2:EndpointReference></wsp:AppliesTo>")
    return (template % {
        "_timestamp": (f"<ns3:Timestamp><ns3:Created>{fmt(clock.now)}</ns3:Created>"
                       f"<ns3:Expires>{fmt(clock.now + timedelta(minutes=10))}</ns3:Expires></ns3:Timestamp>"),
        "_security_token": ("<ns6:UsernameToken><ns6:Username>admin</ns6:Username>"
                            "<ns6:Password>admin</ns6:Password></ns6:UsernameToken>"),
        "_request_id": f"_{uuid.uuid4().hex}",
        "_created": fmt(clock.now),
        "_expires": fmt(clock.now + lifetime),
        "_renewable": "false",
        "_delegatable": "false",
        "_key_type": f"{ns.WST13}/Bearer",
        "_use_key": use_key,
    }).encode("utf-8")


def test_pyvmomi_template_without_applies_to_gets_a_clear_invalid_request_fault(web, clock):
    body = _pyvmomi_request(clock, lifetime=timedelta(minutes=2), applies_to=None)
    response = post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"])
    reason = assert_trust_fault(response, "1.1", "InvalidRequest")
    assert "AppliesTo" in reason


def test_pyvmomi_template_with_applies_to_honours_a_shorter_requested_lifetime(web, clock):
    body = _pyvmomi_request(clock, lifetime=timedelta(minutes=2), applies_to=SERVICE_URL)
    rstr = rstr_of(post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"]), "1.1", "1.3")
    expires = fmt(clock.now + timedelta(minutes=2))
    assert rstr.findtext(f"{q(ns.WST13, 'Lifetime')}/{q(ns.WSU, 'Expires')}") == expires
    assertion = assertion_of(rstr)
    assert assertion.find(q(ns.SAML2, "Conditions")).get("NotOnOrAfter") == expires


def test_requested_lifetime_longer_than_the_relying_party_limit_is_capped(web, clock):
    body = _pyvmomi_request(clock, lifetime=timedelta(hours=8), applies_to=SERVICE_URL)
    rstr = rstr_of(post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"]), "1.1", "1.3")
    expires = fmt(clock.now + timedelta(minutes=5))
    assert rstr.findtext(f"{q(ns.WST13, 'Lifetime')}/{q(ns.WSU, 'Expires')}") == expires
    assert assertion_of(rstr).find(q(ns.SAML2, "Conditions")).get("NotOnOrAfter") == expires


def test_pyvmomi_template_with_public_key_type_is_invalid_request(web, clock):
    body = _pyvmomi_request(clock, lifetime=timedelta(minutes=2), applies_to=SERVICE_URL)
    body = body.replace(f"{ns.WST13}/Bearer".encode(), f"{ns.WST13}/PublicKey".encode())
    assert_trust_fault(post_soap(web, body, "1.1", action=ISSUE_ACTION["1.3"]), "1.1", "InvalidRequest")


@pytest.mark.parametrize("soap_action", [f'"{ns.WST2005}/RST/SCT"', None])
def test_rampart_sct_request_gets_a_clear_fault(web, soap_action):
    body = vector("rampart_rst_wstrust2005_sct_entropy_psha1.xml").read_bytes()
    headers = {"SOAPAction": soap_action} if soap_action else {}
    response = web.post("/services/sts", params=body, headers=headers, content_type="text/xml; charset=utf-8",
                        expect_errors=True)
    assert_trust_fault(response, "1.1", "InvalidRequest", "2005")


def test_rampart_request_sent_with_the_issue_action_still_gets_no_token(web):
    body = vector("rampart_rst_wstrust2005_sct_entropy_psha1.xml").read_bytes()
    response = web.post("/services/sts", params=body, headers={"SOAPAction": f'"{ISSUE_ACTION["2005"]}"'},
                        content_type="text/xml; charset=utf-8", expect_errors=True)
    assert_no_token(response)
    assert response.status_int == 500
    fault = etree.fromstring(response.body).find(f"{q(ns.SOAP11, 'Body')}/{q(ns.SOAP11, 'Fault')}")
    assert fault is not None
    _, namespace, _ = resolve(fault.find("faultcode"))
    assert namespace in (ns.WSSE, ns.WST2005)
