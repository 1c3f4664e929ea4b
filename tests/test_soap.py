"""SOAP 1.1 / 1.2 envelopes: version detection, structure rules, the action, and fault rendering."""

from __future__ import annotations

import pytest
from lxml import etree

from _support.faults import assert_version_mismatch
from wstrust_wsgi import ns, soap
from wstrust_wsgi.client import raise_for_fault
from wstrust_wsgi.errors import (
    FailedAuthentication,
    InvalidRequest,
    InvalidSecurity,
    MalformedMessage,
    MessageExpired,
    MustUnderstand,
    NotAuthorized,
    RemoteFault,
    RequestFailed,
    VersionMismatch,
)

ISSUE_13 = f"{ns.WST13}/RST/Issue"
ISSUE_2005 = f"{ns.WST2005}/RST/Issue"
CT11 = "text/xml; charset=utf-8"
CT12 = "application/soap+xml; charset=utf-8"


def q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def envelope_xml(soap_ns: str, header: str | None = "", body: str = "<x:Op xmlns:x='urn:x'/>",
                 *, order: str = "hb") -> bytes:
    parts = {"h": f"<s:Header>{header}</s:Header>" if header is not None else "", "b": f"<s:Body>{body}</s:Body>"}
    inner = "".join(parts[c] for c in order)
    return f'<s:Envelope xmlns:s="{soap_ns}">{inner}</s:Envelope>'.encode()


def resolve(element: etree._Element) -> tuple[str, str | None, str]:
    prefix, _, local = element.text.partition(":")
    return prefix, element.nsmap.get(prefix), local


# ------------------------------------------------------------------ version detection


@pytest.mark.parametrize(("content_type", "soap_ns", "version"), [
    (CT11, ns.SOAP11, soap.SOAP11),
    ("text/xml", ns.SOAP11, soap.SOAP11),
    ("TEXT/XML; Charset=UTF-8", ns.SOAP11, soap.SOAP11),
    (CT12, ns.SOAP12, soap.SOAP12),
    (f'application/soap+xml; charset=utf-8; action="{ISSUE_13}"', ns.SOAP12, soap.SOAP12),
    ("Application/SOAP+XML", ns.SOAP12, soap.SOAP12),
])
def test_version_comes_from_the_content_type(content_type, soap_ns, version):
    parsed = soap.parse_envelope(envelope_xml(soap_ns), content_type=content_type)
    assert parsed.version is version
    assert parsed.root.tag == q(soap_ns, "Envelope")
    assert parsed.body.tag == q(soap_ns, "Body")
    assert parsed.header is not None and parsed.header.tag == q(soap_ns, "Header")


@pytest.mark.parametrize(("content_type", "version"), [
    ("text/xml", soap.SOAP11), ("application/soap+xml; charset=utf-8", soap.SOAP12),
    ("application/json", None), ("application/xml", None), ("", None), (None, None),
])
def test_version_for_content_type(content_type, version):
    assert soap.version_for_content_type(content_type) is version


@pytest.mark.parametrize(("envelope_ns", "content_type"), [(ns.SOAP12, CT11), (ns.SOAP11, CT12)])
def test_envelope_of_the_other_version_is_version_mismatch(envelope_ns, content_type):
    with pytest.raises(VersionMismatch):
        soap.parse_envelope(envelope_xml(envelope_ns), content_type=content_type)


@pytest.mark.parametrize("content_type", [CT11, CT12])
def test_an_envelope_in_an_unknown_namespace_is_a_version_mismatch(content_type):
    """SOAP 1.1 section 4.1.2 and SOAP 1.2 part 1 section 5.4.7: a version we do not read."""
    with pytest.raises(VersionMismatch):
        soap.parse_envelope(envelope_xml("urn:soap:2.0"), content_type=content_type)
    with pytest.raises(VersionMismatch):
        soap.parse_envelope(b'<s:Envelope xmlns:s="urn:not-soap"><s:Body/></s:Envelope>', content_type=content_type)
    with pytest.raises(MalformedMessage):  # an Envelope in no namespace names no SOAP version at all
        soap.parse_envelope(b"<Envelope><Body/></Envelope>", content_type=content_type)


@pytest.mark.parametrize("announced", [soap.SOAP11, soap.SOAP12])
def test_a_version_mismatch_is_answered_in_soap11_with_an_upgrade_header(announced):
    assert_version_mismatch(*soap.fault_response(announced, VersionMismatch("1.1 as soap+xml")))


def test_unsupported_content_type_is_malformed():
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(envelope_xml(ns.SOAP11), content_type="application/json")


@pytest.mark.parametrize("data", [  # an Envelope in another namespace is a VersionMismatch (below)
    b"<Envelope/>",
    f'<s:Body xmlns:s="{ns.SOAP11}"/>'.encode(),
    b"not xml at all",
])
def test_root_that_is_not_a_soap_envelope_is_malformed(data):
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(data, content_type=CT11)


def test_parse_media_type_splits_and_lower_cases():
    media, params = soap.parse_media_type(f'Application/SOAP+XML; Charset=UTF-8; action="{ISSUE_13}"')
    assert media == "application/soap+xml"
    assert params == {"charset": "UTF-8", "action": ISSUE_13}


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize("soap_ns", [ns.SOAP11, ns.SOAP12])
def test_header_after_body_is_refused(soap_ns):
    content_type = CT11 if soap_ns == ns.SOAP11 else CT12
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(envelope_xml(soap_ns, order="bh"), content_type=content_type)


def test_two_bodies_are_refused():
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(envelope_xml(ns.SOAP11, order="hbb"), content_type=CT11)


def test_two_headers_are_refused():
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(envelope_xml(ns.SOAP11, order="hhb"), content_type=CT11)


def test_missing_body_is_refused():
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(envelope_xml(ns.SOAP11, order="h"), content_type=CT11)


def test_foreign_element_beside_header_and_body_is_refused():
    data = (f'<s:Envelope xmlns:s="{ns.SOAP11}"><s:Header/><s:Body/><x:Extra xmlns:x="urn:x"/></s:Envelope>').encode()
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(data, content_type=CT11)


def test_envelope_without_header_is_accepted():
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP12, header=None), content_type=CT12)
    assert parsed.header is None
    assert parsed.header_blocks() == []
    assert parsed.body_child().tag == "{urn:x}Op"


def test_header_blocks_are_the_element_children_of_header():
    parsed = soap.parse_envelope(
        envelope_xml(ns.SOAP12, header="<a:One xmlns:a='urn:a'/> text <!-- c --><a:Two xmlns:a='urn:a'/>"),
        content_type=CT12,
    )
    assert [h.tag for h in parsed.header_blocks()] == ["{urn:a}One", "{urn:a}Two"]


@pytest.mark.parametrize("body", ["", "<a:One xmlns:a='urn:a'/><a:Two xmlns:a='urn:a'/>"])
def test_body_child_must_be_exactly_one_element(body):
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP11, body=body), content_type=CT11)
    with pytest.raises(MalformedMessage):
        parsed.body_child()


@pytest.mark.parametrize(("soap_ns", "content_type", "value", "expected"), [
    (ns.SOAP11, CT11, "1", True),
    (ns.SOAP11, CT11, "0", False),
    (ns.SOAP12, CT12, "true", True),
    (ns.SOAP12, CT12, " 1 ", True),
    (ns.SOAP12, CT12, "false", False),
    (ns.SOAP12, CT12, None, False),
])
def test_must_understand_flag(soap_ns, content_type, value, expected):
    attr = f' s:mustUnderstand="{value}"' if value is not None else ""
    parsed = soap.parse_envelope(envelope_xml(soap_ns, header=f"<a:H xmlns:a='urn:a'{attr}/>"),
                                 content_type=content_type)
    (header,) = parsed.header_blocks()
    assert parsed.must_understand(header) is expected


def test_must_understand_in_the_other_soap_namespace_does_not_count():
    header = f"<a:H xmlns:a='urn:a' xmlns:o='{ns.SOAP11}' o:mustUnderstand='1'/>"
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP12, header=header), content_type=CT12)
    (block,) = parsed.header_blocks()
    assert parsed.must_understand(block) is False


# ------------------------------------------------------------------ action


def test_action_from_the_content_type_action_parameter():
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP12), content_type=f'{CT12}; action="{ISSUE_13}"')
    assert parsed.action == ISSUE_13


def test_content_type_action_wins_over_soapaction_and_wsa_action():
    header = f"<wsa:Action xmlns:wsa='{ns.WSA10}'>urn:from-wsa</wsa:Action>"
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP12, header=header),
                                 content_type=f'{CT12}; action="{ISSUE_13}"', soap_action='"urn:from-soapaction"')
    assert parsed.action == ISSUE_13


@pytest.mark.parametrize("header_value", [f'"{ISSUE_2005}"', ISSUE_2005, f'  "{ISSUE_2005}" '])
def test_action_from_the_soapaction_header_without_quotes(header_value):
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP11), content_type=CT11, soap_action=header_value)
    assert parsed.action == ISSUE_2005


def test_soapaction_wins_over_wsa_action():
    header = f"<wsa:Action xmlns:wsa='{ns.WSA10}'>urn:from-wsa</wsa:Action>"
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP11, header=header), content_type=CT11,
                                 soap_action=f'"{ISSUE_13}"')
    assert parsed.action == ISSUE_13


@pytest.mark.parametrize("wsa", [ns.WSA10, ns.WSA04])
def test_action_from_wsa_action_when_the_http_layer_names_none(wsa):
    header = f"<wsa:Action xmlns:wsa='{wsa}'> {ISSUE_13} </wsa:Action>"
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP12, header=header), content_type=CT12, soap_action='""')
    assert parsed.action == ISSUE_13


def test_no_action_anywhere_is_empty():
    parsed = soap.parse_envelope(envelope_xml(ns.SOAP11), content_type=CT11)
    assert parsed.action == ""


def test_two_wsa_actions_are_refused():
    header = f"<wsa:Action xmlns:wsa='{ns.WSA10}'>a</wsa:Action><wsa:Action xmlns:wsa='{ns.WSA10}'>b</wsa:Action>"
    with pytest.raises(MalformedMessage):
        soap.parse_envelope(envelope_xml(ns.SOAP12, header=header), content_type=CT12)


# ------------------------------------------------------------------ faults


def test_soap11_trust_fault_binds_the_wst_prefix_to_the_given_namespace():
    fault = soap.fault_element(soap.SOAP11, FailedAuthentication("wrong password for 'bob'"), trust_ns=ns.WST2005)
    assert fault.tag == q(ns.SOAP11, "Fault")
    assert [c.tag for c in fault] == ["faultcode", "faultstring"]  # unqualified, in this order
    code = fault.find("faultcode")
    assert code.text == "wst:FailedAuthentication"
    assert resolve(code) == ("wst", ns.WST2005, "FailedAuthentication")
    assert fault.findtext("faultstring") == "Authentication failed."


def test_soap11_security_fault_uses_the_wsse_namespace():
    code = soap.fault_element(soap.SOAP11, MessageExpired("expired at ...")).find("faultcode")
    assert resolve(code) == ("wsse", ns.WSSE, "MessageExpired")


@pytest.mark.parametrize(("fault", "local"), [
    (MalformedMessage("bad xml"), "Client"),
    (MustUnderstand("urn:x header"), "MustUnderstand"),
    (VersionMismatch("1.2 as text/xml"), "VersionMismatch"),
])
def test_soap11_soap_level_fault_codes(fault, local):
    code = soap.fault_element(soap.SOAP11, fault).find("faultcode")
    assert code.text == f"s:{local}"
    assert resolve(code) == ("s", ns.SOAP11, local)


def test_soap12_trust_fault_has_sender_and_a_bound_subcode():
    fault = soap.fault_element(soap.SOAP12, InvalidRequest("no AppliesTo", reason="AppliesTo is required."),
                               trust_ns=ns.WST13)
    env = ns.SOAP12
    assert [c.tag for c in fault] == [q(env, "Code"), q(env, "Reason")]
    value = fault.find(f"{q(env, 'Code')}/{q(env, 'Value')}")
    assert resolve(value) == ("s", env, "Sender")
    subcode = fault.find(f"{q(env, 'Code')}/{q(env, 'Subcode')}/{q(env, 'Value')}")
    assert subcode.text == "wst:InvalidRequest"
    assert resolve(subcode) == ("wst", ns.WST13, "InvalidRequest")
    text = fault.find(f"{q(env, 'Reason')}/{q(env, 'Text')}")
    assert text.get(q(ns.XML, "lang")) == "en"
    assert text.text == "AppliesTo is required."


def test_soap12_receiver_trust_fault():
    fault = soap.fault_element(soap.SOAP12, RequestFailed("internal error"), trust_ns=ns.WST2005)
    env = ns.SOAP12
    assert resolve(fault.find(f"{q(env, 'Code')}/{q(env, 'Value')}")) == ("s", env, "Receiver")
    assert resolve(fault.find(f"{q(env, 'Code')}/{q(env, 'Subcode')}/{q(env, 'Value')}")) == (
        "wst", ns.WST2005, "RequestFailed")


def test_soap12_security_fault_subcode_is_in_the_wsse_namespace():
    fault = soap.fault_element(soap.SOAP12, InvalidSecurity("no header"))
    env = ns.SOAP12
    assert resolve(fault.find(f"{q(env, 'Code')}/{q(env, 'Value')}")) == ("s", env, "Sender")
    assert resolve(fault.find(f"{q(env, 'Code')}/{q(env, 'Subcode')}/{q(env, 'Value')}")) == (
        "wsse", ns.WSSE, "InvalidSecurity")


@pytest.mark.parametrize(("fault", "local"), [
    (MalformedMessage("bad xml"), "Sender"),
    (MustUnderstand("urn:x header"), "MustUnderstand"),
    (VersionMismatch("1.1 as soap+xml"), "VersionMismatch"),
])
def test_soap12_soap_level_fault_codes_have_no_subcode(fault, local):
    element = soap.fault_element(soap.SOAP12, fault)
    env = ns.SOAP12
    assert resolve(element.find(f"{q(env, 'Code')}/{q(env, 'Value')}")) == ("s", env, local)
    assert element.find(f"{q(env, 'Code')}/{q(env, 'Subcode')}") is None


@pytest.mark.parametrize("version", [soap.SOAP11, soap.SOAP12])
def test_fault_shows_the_reason_and_never_the_detail(version):
    fault = FailedAuthentication("wrong password 'hunter2' for user 'bob'")
    body = soap.fault_response(version, fault)[2]
    assert b"hunter2" not in body and b"bob" not in body
    assert b"Authentication failed." in body


@pytest.mark.parametrize(("fault", "status11", "status12"), [
    (MalformedMessage("x"), 500, 400),
    (InvalidRequest("x"), 500, 400),
    (FailedAuthentication("x"), 500, 400),
    (NotAuthorized("x"), 500, 400),
    (InvalidSecurity("x"), 500, 400),
    (MessageExpired("x"), 500, 400),
    (RequestFailed("x"), 500, 500),
    (MustUnderstand("x"), 500, 500),
    (VersionMismatch("x"), 500, 500),
])
def test_fault_status(fault, status11, status12):
    assert soap.fault_status(soap.SOAP11, fault) == status11
    assert soap.fault_status(soap.SOAP12, fault) == status12


@pytest.mark.parametrize(("version", "media"), [(soap.SOAP11, "text/xml"), (soap.SOAP12, "application/soap+xml")])
def test_fault_response_is_a_parseable_envelope_in_the_version(version, media):
    status, content_type, body = soap.fault_response(version, InvalidRequest("x"), trust_ns=ns.WST13)
    assert content_type == f"{media}; charset=utf-8"
    assert body.startswith(b"<?xml")
    root = etree.fromstring(body)
    assert root.tag == q(version.namespace, "Envelope")
    assert root.find(q(version.namespace, "Header")) is None
    assert root.find(f"{q(version.namespace, 'Body')}/{q(version.namespace, 'Fault')}") is not None
    assert status == (500 if version is soap.SOAP11 else 400)


@pytest.mark.parametrize("version", [soap.SOAP11, soap.SOAP12])
def test_fault_response_reads_back_with_its_code_and_reason(version):
    """What the STS writes, the package's own client reads: code resolved to its namespace, and reason."""
    status, _, body = soap.fault_response(version, FailedAuthentication("x"), trust_ns=ns.WST2005)
    with pytest.raises(RemoteFault) as info:
        raise_for_fault(etree.fromstring(body), status)
    assert info.value.code == q(ns.WST2005, "FailedAuthentication")
    assert info.value.reason == "Authentication failed."
    assert info.value.status == status


def test_content_type_carries_the_action_only_for_soap12():
    assert soap.SOAP12.content_type(ISSUE_13) == f'application/soap+xml; charset=utf-8; action="{ISSUE_13}"'
    assert soap.SOAP11.content_type(ISSUE_13) == "text/xml; charset=utf-8"


def test_envelope_puts_headers_before_the_body():
    body = etree.Element("{urn:x}Op")
    header = etree.Element("{urn:x}H")
    root = etree.fromstring(soap.envelope(soap.SOAP12, body, [header]))
    assert [c.tag for c in root] == [q(ns.SOAP12, "Header"), q(ns.SOAP12, "Body")]
    assert root[0][0].tag == "{urn:x}H"
    assert root[1][0].tag == "{urn:x}Op"
    bare = etree.fromstring(soap.envelope(soap.SOAP11, etree.Element("{urn:x}Op")))
    assert [c.tag for c in bare] == [q(ns.SOAP11, "Body")]


@pytest.mark.parametrize("wsa", [ns.WSA10, ns.WSA04])
def test_relates_to_headers_are_action_then_relates_to_in_the_requests_addressing_version(wsa):
    headers = soap.RelatesTo(wsa, "urn:uuid:1").headers("urn:action")
    assert [(h.tag, h.text) for h in headers] == [(q(wsa, "Action"), "urn:action"), (q(wsa, "RelatesTo"), "urn:uuid:1")]
    assert all(h.nsmap == {"wsa": wsa} for h in headers)
