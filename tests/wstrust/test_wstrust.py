"""The RSTR the STS sends: the template path gives the tree builder's bytes for every request shape.

:func:`wstrust.response_envelope` (a template per response shape, values
escaped into it) is what the STS sends; ``response_envelope_from_tree`` in
``tests/_support/envelope_oracles.py`` (the RSTR built as an lxml tree,
serialized in a SOAP envelope) is the reference. Both are run on the same inputs, over every SOAP version, WS-Trust
version, SAML version, AppliesTo namespace pair, with and without AppliesTo,
Context and a wsa:MessageID to answer, with values full of characters that
need escaping, and compared by canonical form and byte for byte.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from _support.envelope_oracles import response_envelope_from_tree
from wstrust_wsgi import ns, saml, soap, wstrust
from wstrust_wsgi.errors import RequestFailed
from wstrust_wsgi.wstrust import _template, messages

HOSTILE = "a&b<c>d\"e'f\tg\nh\ri ]]> --> <!-- &amp; \u00e9\u4e2d\U0001f600"
CREATED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
#: A zone other than UTC: both paths must write the same UTC time.
EXPIRES = datetime(2026, 1, 2, 4, 9, 5, 1000, tzinfo=timezone(timedelta(hours=1)))


def assertion_for(version: saml.SamlVersion, assertion_id: str = "_a1") -> bytes:
    """A stand-in for the signed assertion: the paths splice it unchanged, so it need not be signed."""
    root = etree.Element(f"{{{version.namespace}}}Assertion", nsmap={"saml": version.namespace})
    root.set(version.id_attribute, assertion_id)
    etree.SubElement(root, f"{{{version.namespace}}}Issuer").text = "urn:issuer"
    return etree.tostring(root)


def c14n(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data), method="c14n")


def both(soap_version: soap.SoapVersion, request: wstrust.TokenRequest, version: saml.SamlVersion,
         **kwargs: Any) -> tuple[bytes, bytes]:
    """(template path, tree path) for the same inputs."""
    kwargs.setdefault("token_type", version.token_type)
    kwargs.setdefault("assertion_id", "_a1")
    kwargs.setdefault("created", CREATED)
    kwargs.setdefault("expires", EXPIRES)
    assertion = kwargs.pop("assertion", assertion_for(version, kwargs["assertion_id"]))
    fast = wstrust.response_envelope(soap_version, request, assertion, version=version, **kwargs)
    tree = response_envelope_from_tree(soap_version, request, assertion, version=version, **kwargs)
    shape = messages._shape(soap_version, request, version, kwargs.get("relates_to"))
    assert messages._template(shape) is not None, "the template path was not taken"
    return fast, tree


SOAPS = [soap.SOAP11, soap.SOAP12]
DIALECTS = [wstrust.WSTRUST13, wstrust.WSTRUST2005]
SAMLS = [saml.SAML2, saml.SAML11]
APPLIES_TO_NS = [(ns.WSP12, ns.WSA10), (ns.WSP15, ns.WSA10), (ns.WSP12, ns.WSA04), (ns.WSP15, ns.WSA04)]
ADDRESSES = [None, "http://127.0.0.1:8081/services/echo", "https://rp.example/a?x=1&y=<2>&z=\"'\u00e9'\"", HOSTILE]
CONTEXTS = [None, "", "ctx-42", HOSTILE]
RELATES_TO = [None, soap.RelatesTo(ns.WSA10, "urn:uuid:0b1e"), soap.RelatesTo(ns.WSA04, HOSTILE),
              soap.RelatesTo(ns.WSA10, "")]


@pytest.mark.parametrize("version", SAMLS, ids=lambda v: f"saml{v.name}")
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"wst{d.name}")
@pytest.mark.parametrize("soap_version", SOAPS, ids=lambda v: f"soap{v.name}")
def test_template_path_gives_the_tree_paths_bytes_for_every_shape(
    soap_version: soap.SoapVersion, dialect: wstrust.Dialect, version: saml.SamlVersion
) -> None:
    for applies_ns, address, context, relates_to in itertools.product(APPLIES_TO_NS, ADDRESSES, CONTEXTS, RELATES_TO):
        request = wstrust.TokenRequest(dialect, address, applies_ns, None, None, None, context)
        fast, tree = both(soap_version, request, version, relates_to=relates_to)
        assert c14n(fast) == c14n(tree), (applies_ns, address, context, relates_to)
        assert fast == tree, (applies_ns, address, context, relates_to)


@pytest.mark.parametrize("version", SAMLS, ids=lambda v: f"saml{v.name}")
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"wst{d.name}")
@pytest.mark.parametrize("soap_version", SOAPS, ids=lambda v: f"soap{v.name}")
@pytest.mark.parametrize("field", ["token_type", "assertion_id", "key_type"])
def test_every_value_is_escaped_as_the_tree_path_escapes_it(
    soap_version: soap.SoapVersion, dialect: wstrust.Dialect, version: saml.SamlVersion, field: str
) -> None:
    request = wstrust.TokenRequest(dialect, HOSTILE, (ns.WSP12, ns.WSA10), None,
                                   HOSTILE if field == "key_type" else None, None, HOSTILE)
    kwargs: dict[str, Any] = {field: HOSTILE} if field != "key_type" else {}
    fast, tree = both(soap_version, request, version, relates_to=soap.RelatesTo(ns.WSA10, HOSTILE), **kwargs)
    assert c14n(fast) == c14n(tree)
    assert fast == tree


@pytest.mark.parametrize("key_type", [None, f"{ns.WST13}/Bearer", ns.WST14_BEARER, ns.WST2005_NO_PROOF_KEY])
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"wst{d.name}")
def test_key_type_is_the_requests_or_the_dialects_bearer_type(dialect: wstrust.Dialect, key_type: str | None) -> None:
    request = wstrust.TokenRequest(dialect, "urn:rp", (ns.WSP12, ns.WSA10), None, key_type, None, None)
    fast, tree = both(soap.SOAP12, request, saml.SAML2)
    assert fast == tree
    rstr = etree.fromstring(fast).find(f".//{{{dialect.namespace}}}RequestSecurityTokenResponse")
    assert rstr is not None
    assert rstr.findtext(f"{{{dialect.namespace}}}KeyType") == (key_type or dialect.bearer_key_types[0])


@pytest.mark.parametrize("version", SAMLS, ids=lambda v: f"saml{v.name}")
def test_other_token_type_uris_and_times_are_carried_alike(version: saml.SamlVersion) -> None:
    request = wstrust.TokenRequest(wstrust.WSTRUST13, "urn:rp", (ns.WSP12, ns.WSA10), None, None, None, None)
    for token_type in version.token_types:
        for created in (CREATED, CREATED.replace(microsecond=0), CREATED.astimezone(timezone(timedelta(hours=-7)))):
            fast, tree = both(soap.SOAP11, request, version, token_type=token_type, created=created,
                              expires=created + timedelta(minutes=5))
            assert fast == tree


def test_the_assertion_is_spliced_unchanged_right_after_requested_security_token() -> None:
    assertion = saml.build_saml2(saml.AssertionContent(
        issuer="urn:i", subject="admin", audience="urn:rp", issue_instant=CREATED, not_before=CREATED,
        not_on_or_after=EXPIRES, attributes={ns.CLAIM_ROLE: ("admin",)},
    ))
    data = etree.tostring(assertion)
    request = wstrust.TokenRequest(wstrust.WSTRUST13, "urn:rp", (ns.WSP12, ns.WSA10), None, None, None, "c")
    fast, tree = both(soap.SOAP12, request, saml.SAML2, assertion=data)
    assert fast == tree
    opening = b"<wst:RequestedSecurityToken>"
    assert fast.count(data) == 1
    assert fast[fast.index(opening) + len(opening):].startswith(data)
    assert wstrust.TOKEN_MARKER not in fast


def test_a_marker_like_value_is_text_not_the_assertions_place() -> None:
    """Values are escaped, so a value spelling the marker cannot move where the assertion goes."""
    marker = wstrust.TOKEN_MARKER.decode()
    request = wstrust.TokenRequest(wstrust.WSTRUST2005, marker, (ns.WSP12, ns.WSA10), None, None, None, marker)
    fast, tree = both(soap.SOAP11, request, saml.SAML11, relates_to=soap.RelatesTo(ns.WSA04, marker))
    assert fast == tree
    root = etree.fromstring(fast)
    assert root.find(f".//{{{ns.WSA10}}}Address").text == marker  # type: ignore[union-attr]
    token = root.find(f".//{{{ns.WST2005}}}RequestedSecurityToken")
    assert token is not None and len(token) == 1 and token[0].tag == f"{{{ns.SAML1}}}Assertion"


@pytest.mark.parametrize("bad", ["\x00", "a\x01b", "\x0b", "\x1f", "\ufffe", "\uffff", "\ud800"])
@pytest.mark.parametrize("where", ["context", "applies_to", "token_type", "assertion_id", "relates_to"])
def test_characters_xml_cannot_carry_are_refused_by_both_paths(where: str, bad: str) -> None:
    request = wstrust.TokenRequest(wstrust.WSTRUST13, bad if where == "applies_to" else "urn:rp", (ns.WSP12, ns.WSA10),
                                   None, None, None, bad if where == "context" else None)
    kwargs: dict[str, Any] = {
        "token_type": bad if where == "token_type" else saml.SAML2.token_type,
        "assertion_id": bad if where == "assertion_id" else "_a1",
        "created": CREATED, "expires": EXPIRES,
        "relates_to": soap.RelatesTo(ns.WSA10, bad) if where == "relates_to" else None,
    }
    for path in (wstrust.response_envelope, response_envelope_from_tree):
        with pytest.raises(ValueError):
            path(soap.SOAP11, request, b"<a/>", version=saml.SAML2, **kwargs)


def test_every_shapes_template_passes_its_check() -> None:
    """No shape is refused on this lxml (a refused shape answers a fault: this test says so)."""
    shapes = itertools.product(SOAPS, DIALECTS, SAMLS, APPLIES_TO_NS, [False, True], [False, True],
                               [None, ns.WSA10, ns.WSA04])
    for soap_version, dialect, version, applies_ns, context, address, wsa in shapes:
        shape = (soap_version, dialect, version.profile_token_type, version.key_identifier_value_type, applies_ns,
                 context, address, wsa)
        assert messages._template(shape) is not None, shape


def test_a_template_that_fails_its_check_is_not_used(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """If lxml ever escaped differently, the template is dropped and the request refused (never unchecked bytes)."""
    monkeypatch.setattr(_template, "_escape_text", lambda value: value.encode("utf-8"))  # escapes nothing
    messages._template.cache_clear()
    request = wstrust.TokenRequest(wstrust.WSTRUST13, "urn:rp?a=1&b=2", (ns.WSP12, ns.WSA10), None, None, None, None)
    kwargs: dict[str, Any] = {"token_type": saml.SAML2.token_type, "version": saml.SAML2, "assertion_id": "_a1",
                              "created": CREATED, "expires": EXPIRES}
    try:
        with pytest.raises(RequestFailed):
            wstrust.response_envelope(soap.SOAP11, request, b"<a/>", **kwargs)
        assert messages._template.cache_info().currsize == 0
        assert "differs from the tree builder" in caplog.text
    finally:
        monkeypatch.undo()
        messages._template.cache_clear()


def test_build_response_still_gives_the_rstr_tree_with_the_marker() -> None:
    request = wstrust.TokenRequest(wstrust.WSTRUST13, "urn:rp", (ns.WSP12, ns.WSA10), None, None, None, None)
    top = wstrust.build_response(request, token_type=saml.SAML2.token_type, version=saml.SAML2, assertion_id="_a1",
                                 created=CREATED, expires=EXPIRES)
    assert top.tag == f"{{{ns.WST13}}}RequestSecurityTokenResponseCollection"
    assert wstrust.TOKEN_MARKER in etree.tostring(top)
    assert top.findtext(f".//{{{ns.WSU}}}Created") == "2026-01-02T03:04:05.678Z"
    assert top.findtext(f".//{{{ns.WSU}}}Expires") == "2026-01-02T03:09:05.001Z"


# ------------------------------------------------------------------ envelope templates


MARKER = b"<!--raw-->"


def holey(version: soap.SoapVersion, attribute: str, text: str) -> bytes:
    """An envelope with ``attribute`` as an attribute value, ``text`` as a text and MARKER in its body."""
    body = etree.Element("{urn:x}Op", nsmap={"x": "urn:x"})
    body.set("a", attribute)
    etree.SubElement(body, "{urn:x}V").text = text
    body.append(etree.Comment(MARKER[4:-3].decode()))
    header = etree.Element("{urn:x}H", nsmap={"x": "urn:x"})
    header.set("{urn:x}b", attribute)
    return soap.envelope(version, body, [header])


def template_for(version: soap.SoapVersion) -> _template.EnvelopeTemplate:
    hole = _template.EnvelopeTemplate.hole
    return _template.EnvelopeTemplate(holey(version, hole("attr"), hole("text")), raw={"raw": MARKER})


def lxml_or_error(version: soap.SoapVersion, value: str) -> bytes | type[Exception]:
    try:
        return holey(version, value, value).replace(MARKER, b"<r/>")
    except ValueError:
        return ValueError


def render_or_error(template: _template.EnvelopeTemplate, value: str) -> bytes | type[Exception]:
    try:
        return template.render({"attr": value, "text": value}, {"raw": b"<r/>"})
    except ValueError:
        return ValueError


@pytest.mark.parametrize("version", [soap.SOAP11, soap.SOAP12])
def test_template_escapes_every_character_as_lxml_serializes_it(version):
    """Each code point below U+3000, the edges of XML's Char range and surrogates, alone and among text."""
    template = template_for(version)
    assert template.names == {"attr", "text"} and template.raw_names == {"raw"}
    points = list(range(0x3000)) + [0xD7FF, 0xD800, 0xDFFF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF]
    for point in points:
        for value in (chr(point), f"a{chr(point)}b&<>\"'"):
            assert render_or_error(template, value) == lxml_or_error(version, value), hex(point)


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_template_renders_any_text_as_lxml_does(value):
    template = template_for(soap.SOAP11)
    assert render_or_error(template, value) == lxml_or_error(soap.SOAP11, value)


def test_template_fills_a_hole_used_twice_and_raw_bytes_unchanged():
    hole = _template.EnvelopeTemplate.hole
    template = _template.EnvelopeTemplate(holey(soap.SOAP12, hole("v"), hole("v")), raw={"raw": MARKER})
    out = template.render({"v": "x&y"}, {"raw": b"<r a='&amp;'/>"})
    assert out == holey(soap.SOAP12, "x&y", "x&y").replace(MARKER, b"<r a='&amp;'/>")
    assert out.count(b"x&amp;y") == 3


@pytest.mark.parametrize("source", [
    # a hole sharing its text or attribute with other characters cannot be escaped on its own terms
    lambda hole: holey(soap.SOAP11, "pre" + hole("a"), "t"),
    lambda hole: holey(soap.SOAP11, "a", hole("t") + "post"),
])
def test_template_refuses_a_hole_that_is_not_a_whole_value(source):
    with pytest.raises(ValueError, match="whole"):
        _template.EnvelopeTemplate(source(_template.EnvelopeTemplate.hole), raw={"raw": MARKER})


@pytest.mark.parametrize("count", [0, 2])
def test_template_refuses_a_raw_marker_not_found_exactly_once(count):
    body = etree.Element("{urn:x}Op")
    for _ in range(count):
        body.append(etree.Comment(MARKER[4:-3].decode()))
    with pytest.raises(ValueError, match="exactly once"):
        _template.EnvelopeTemplate(soap.envelope(soap.SOAP11, body), raw={"raw": MARKER})
