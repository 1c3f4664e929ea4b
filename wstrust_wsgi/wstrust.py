"""WS-Trust RequestSecurityToken parsing and RequestSecurityTokenResponse building.

WS-Trust 1.3 and the February 2005 version differ in data only: namespace,
action URIs, the bearer KeyType URI and whether answers are wrapped in a
``RequestSecurityTokenResponseCollection`` (1.3) or not (2005). Each is one
frozen :class:`Dialect`; the answer always uses the request's dialect.

The answer is built twice over, on purpose: :func:`build_response` and
:func:`response_envelope_from_tree` make it as an lxml tree (the plain
statement of its shape, and the reference), while :func:`response_envelope`,
which the STS uses, fills a template made from that tree's serialization
(one per response shape), because after the RSA signature the tree was the
largest cost of minting a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from . import _xml, ns, soap
from ._time import format_datetime, parse_datetime
from .errors import InvalidRequest
from .saml import SamlVersion

log = logging.getLogger("wstrust_wsgi.wstrust")

#: Stands where the assertion goes; the serialized envelope is spliced there so
#: the signed assertion's bytes are never re-serialized inside the response.
TOKEN_MARKER = b"<!--wstrust-wsgi:assertion-->"


@dataclass(frozen=True)
class Dialect:
    """One WS-Trust version's wire facts."""

    name: str
    namespace: str
    issue_action: str
    issue_response_action: str
    request_type_issue: str
    bearer_key_types: tuple[str, ...]
    collection: bool

    def action(self, binding: str) -> str:
        return f"{self.namespace}/RST/{binding}"


WSTRUST13 = Dialect(
    "1.3", ns.WST13,
    issue_action=f"{ns.WST13}/RST/Issue",
    issue_response_action=f"{ns.WST13}/RSTRC/IssueFinal",
    request_type_issue=f"{ns.WST13}/Issue",
    bearer_key_types=(f"{ns.WST13}/Bearer", ns.WST14_BEARER),
    collection=True,
)
WSTRUST2005 = Dialect(
    "2005", ns.WST2005,
    issue_action=f"{ns.WST2005}/RST/Issue",
    issue_response_action=f"{ns.WST2005}/RSTR/Issue",
    request_type_issue=f"{ns.WST2005}/Issue",
    bearer_key_types=(ns.WST2005_NO_PROOF_KEY, f"{ns.WST13}/Bearer"),
    collection=False,
)
DIALECTS = {d.namespace: d for d in (WSTRUST13, WSTRUST2005)}
_WSP = (ns.WSP12, ns.WSP15)
_WSA = (ns.WSA10, ns.WSA04)


@dataclass(frozen=True)
class TokenRequest:
    """What an Issue RST asks for."""

    dialect: Dialect
    applies_to: str | None
    #: (wsp namespace, wsa namespace) the client used, so the answer echoes them.
    applies_to_ns: tuple[str, str]
    token_type: str | None
    key_type: str | None
    lifetime_expires: datetime | None
    context: str | None


def dialect_of(element: etree._Element) -> Dialect | None:
    if not isinstance(element.tag, str) or _xml.local_name(element) != "RequestSecurityToken":
        return None
    return DIALECTS.get(_xml.namespace(element))


def _applies_to(rst: etree._Element) -> tuple[str | None, tuple[str, str]]:
    applies = _xml.child(rst, _WSP, "AppliesTo")
    if applies is None:
        return None, (ns.WSP12, ns.WSA10)
    wsp_ns = _xml.namespace(applies)
    reference = _xml.child(applies, _WSA, "EndpointReference")
    if reference is not None:
        address = _xml.child(reference, _WSA, "Address")
    else:  # some clients put wsa:Address straight under AppliesTo
        address = _xml.child(applies, _WSA, "Address")
    if address is None:
        raise InvalidRequest("wsp:AppliesTo without wsa:EndpointReference/wsa:Address",
                             reason="wsp:AppliesTo must hold a wsa:EndpointReference with an Address.")
    return _xml.text(address) or None, (wsp_ns, _xml.namespace(address))


def parse_request(rst: etree._Element) -> TokenRequest:
    """Read an RST element; only the Issue binding is accepted."""
    dialect = dialect_of(rst)
    if dialect is None:
        raise InvalidRequest(f"body element {rst.tag} is not a RequestSecurityToken",
                             reason="The SOAP body must hold a wst:RequestSecurityToken.")
    t = dialect.namespace
    request_type = _xml.text(_xml.child(rst, t, "RequestType"))
    if request_type != dialect.request_type_issue:
        raise InvalidRequest(f"RequestType {request_type!r} is not {dialect.request_type_issue}",
                             reason=f"Only the Issue request type ({dialect.request_type_issue}) is supported.")
    applies_to, applies_ns = _applies_to(rst)
    token_type = _xml.text(_xml.child(rst, t, "TokenType")) or None
    key_type = _xml.text(_xml.child(rst, t, "KeyType")) or None
    if key_type is not None and key_type not in dialect.bearer_key_types:
        raise InvalidRequest(f"KeyType {key_type!r} is not a bearer key type",
                             reason="Only bearer tokens are issued (KeyType Bearer or NoProofKey).")
    expires = None
    lifetime = _xml.child(rst, t, "Lifetime")
    if lifetime is not None:
        expires_el = _xml.child(lifetime, ns.WSU, "Expires")
        if expires_el is not None:
            try:
                expires = parse_datetime(_xml.text(expires_el))
            except ValueError as exc:
                raise InvalidRequest(f"Lifetime/Expires: {exc}") from None
    return TokenRequest(dialect, applies_to, applies_ns, token_type, key_type, expires, rst.get("Context"))


def _sub(parent: etree._Element, namespace: str, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _xml.qname(namespace, local))
    if text is not None:
        element.text = text
    return element


def _token_reference(parent: etree._Element, version: SamlVersion, assertion_id: str) -> None:
    reference = etree.SubElement(
        parent, _xml.qname(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11}
    )
    reference.set(_xml.qname(ns.WSSE11, "TokenType"), version.profile_token_type)
    identifier = _sub(reference, ns.WSSE, "KeyIdentifier", assertion_id)
    identifier.set("ValueType", version.key_identifier_value_type)


def build_response(
    request: TokenRequest,
    *,
    token_type: str,
    version: SamlVersion,
    assertion_id: str,
    created: datetime,
    expires: datetime,
) -> etree._Element:
    """The RSTR (in a Collection for 1.3) with :data:`TOKEN_MARKER` where the assertion goes."""
    return _response_tree(request, token_type, version, assertion_id, format_datetime(created),
                          format_datetime(expires))


def _response_tree(
    request: TokenRequest, token_type: str, version: SamlVersion, assertion_id: str, created: str, expires: str
) -> etree._Element:
    """:func:`build_response` with the times already written (so a template can put holes there)."""
    d = request.dialect
    t = d.namespace
    nsmap = {"wst": t, "wsu": ns.WSU}
    if d.collection:
        top = etree.Element(_xml.qname(t, "RequestSecurityTokenResponseCollection"), nsmap=nsmap)
        rstr = _sub(top, t, "RequestSecurityTokenResponse")
    else:
        top = rstr = etree.Element(_xml.qname(t, "RequestSecurityTokenResponse"), nsmap=nsmap)
    if request.context is not None:
        rstr.set("Context", request.context)
    _sub(rstr, t, "TokenType", token_type)
    requested = _sub(rstr, t, "RequestedSecurityToken")
    requested.append(etree.Comment(TOKEN_MARKER[4:-3].decode()))
    _token_reference(_sub(rstr, t, "RequestedAttachedReference"), version, assertion_id)
    _token_reference(_sub(rstr, t, "RequestedUnattachedReference"), version, assertion_id)
    wsp_ns, wsa_ns = request.applies_to_ns
    applies = etree.SubElement(rstr, _xml.qname(wsp_ns, "AppliesTo"), nsmap={"wsp": wsp_ns})
    reference = etree.SubElement(applies, _xml.qname(wsa_ns, "EndpointReference"), nsmap={"wsa": wsa_ns})
    _sub(reference, wsa_ns, "Address", request.applies_to)
    lifetime = _sub(rstr, t, "Lifetime")
    _sub(lifetime, ns.WSU, "Created", created)
    _sub(lifetime, ns.WSU, "Expires", expires)
    _sub(rstr, t, "RequestType", d.request_type_issue)
    _sub(rstr, t, "KeyType", request.key_type or d.bearer_key_types[0])
    return top


def response_envelope_from_tree(
    soap_version: soap.SoapVersion,
    request: TokenRequest,
    assertion: bytes,
    *,
    token_type: str,
    version: SamlVersion,
    assertion_id: str,
    created: datetime,
    expires: datetime,
    relates_to: soap.RelatesTo | None = None,
) -> bytes:
    """The whole SOAP response, built as a tree: the reference for :func:`response_envelope`.

    :func:`build_response` in a :func:`soap.envelope` (with ``wsa:Action`` and
    ``wsa:RelatesTo`` when the request had a MessageID), the signed
    ``assertion`` spliced unchanged at :data:`TOKEN_MARKER`. Kept as the
    plain statement of what the STS answers; the tests compare the template
    path with it for every request shape.
    """
    return _tree_envelope(soap_version, request, assertion, token_type, version, assertion_id,
                          format_datetime(created), format_datetime(expires), relates_to)


def _tree_envelope(
    soap_version: soap.SoapVersion, request: TokenRequest, assertion: bytes, token_type: str, version: SamlVersion,
    assertion_id: str, created: str, expires: str, relates_to: soap.RelatesTo | None,
) -> bytes:
    top = _response_tree(request, token_type, version, assertion_id, created, expires)
    headers = relates_to.headers(request.dialect.issue_response_action) if relates_to is not None else []
    return soap.envelope(soap_version, top, headers).replace(TOKEN_MARKER, assertion, 1)


def _values(
    request: TokenRequest, token_type: str, assertion_id: str, created: datetime, expires: datetime,
    relates_to: soap.RelatesTo | None,
) -> dict[str, str]:
    """Every value a response carries that is not fixed by its shape (:func:`_shape`), by hole name."""
    values = {
        "token_type": token_type,
        "assertion_id": assertion_id,
        "created": format_datetime(created),
        "expires": format_datetime(expires),
        "key_type": request.key_type or request.dialect.bearer_key_types[0],
    }
    if request.context is not None:
        values["context"] = request.context
    if request.applies_to is not None:
        values["applies_to"] = request.applies_to
    if relates_to is not None:
        values["relates_to"] = relates_to.message_id
    return values


#: What fixes a response's bytes apart from its values: SOAP version, WS-Trust
#: dialect, SAML version (the token references' TokenType and ValueType), the
#: AppliesTo namespaces echoed, whether Context and an AppliesTo address are
#: present, and the WS-Addressing namespace of the reply headers (None: none).
_Shape = tuple[soap.SoapVersion, Dialect, SamlVersion, tuple[str, str], bool, bool, str | None]
#: One template per shape met so far (at most a few hundred shapes exist);
#: None marks a shape whose template failed its check, answered from the tree.
_TEMPLATES: dict[_Shape, soap.EnvelopeTemplate | None] = {}
#: Every character the serializer treats specially, plus non-ASCII (BMP and astral).
_PROBE = "a&b<c>d\"e'f\tg\nh\ri ]]> \u00e9\u4e2d\U0001f600"


def _shape(
    soap_version: soap.SoapVersion, request: TokenRequest, version: SamlVersion, relates_to: soap.RelatesTo | None
) -> _Shape:
    return (soap_version, request.dialect, version, request.applies_to_ns, request.context is not None,
            request.applies_to is not None, relates_to.namespace if relates_to is not None else None)


def _template(shape: _Shape) -> soap.EnvelopeTemplate | None:
    """The shape's template, made from the tree path's output and checked against it with hostile values."""
    soap_version, dialect, version, applies_to_ns, has_context, has_address, wsa = shape

    def tree(value: Callable[[str], str], assertion: bytes) -> bytes:
        request = TokenRequest(dialect, value("applies_to") if has_address else None, applies_to_ns, None,
                               value("key_type"), None, value("context") if has_context else None)
        relates_to = soap.RelatesTo(wsa, value("relates_to")) if wsa is not None else None
        return _tree_envelope(soap_version, request, assertion, value("token_type"), version, value("assertion_id"),
                              value("created"), value("expires"), relates_to)

    template = soap.EnvelopeTemplate(tree(soap.EnvelopeTemplate.hole, TOKEN_MARKER), raw={"assertion": TOKEN_MARKER})
    names = {"token_type", "assertion_id", "created", "expires", "key_type"}
    names |= {name for name, present in (("context", has_context), ("applies_to", has_address),
                                         ("relates_to", wsa is not None)) if present}
    probe = dict.fromkeys(names, _PROBE)
    rendered = template.render(probe, {"assertion": b"<probe/>"})
    if template.names != names or rendered != tree(probe.__getitem__, b"<probe/>"):
        log.warning("RSTR template for %s differs from the tree builder; answering that shape from the tree",
                    [getattr(part, "name", part) for part in shape])
        return None
    return template


def response_envelope(
    soap_version: soap.SoapVersion,
    request: TokenRequest,
    assertion: bytes,
    *,
    token_type: str,
    version: SamlVersion,
    assertion_id: str,
    created: datetime,
    expires: datetime,
    relates_to: soap.RelatesTo | None = None,
) -> bytes:
    """The whole SOAP response carrying the RSTR and the signed ``assertion`` (what the STS sends).

    The same bytes as :func:`response_envelope_from_tree`, from a
    :class:`soap.EnvelopeTemplate` per response shape (see ``_Shape``) made on
    first use. Why: after the RSA signature, building and serializing the
    RSTR tree was the largest cost of minting a token, and the shape of the
    answer is one of a few; filling a template costs a few microseconds. Each
    template is made from the tree path's own output and checked against it
    with hostile values before use; a shape that fails the check is answered
    from the tree.
    """
    values = _values(request, token_type, assertion_id, created, expires, relates_to)
    shape = _shape(soap_version, request, version, relates_to)
    try:
        template = _TEMPLATES[shape]
    except KeyError:  # two threads may both make it: the same template, either one kept
        template = _TEMPLATES[shape] = _template(shape)
    if template is None:
        return response_envelope_from_tree(soap_version, request, assertion, token_type=token_type, version=version,
                                           assertion_id=assertion_id, created=created, expires=expires,
                                           relates_to=relates_to)
    return template.render(values, {"assertion": assertion})
