"""WS-Trust RequestSecurityToken parsing and RequestSecurityTokenResponse building.

WS-Trust 1.3 and the February 2005 version differ in data only: namespace,
action URIs, the bearer KeyType URI and whether answers are wrapped in a
``RequestSecurityTokenResponseCollection`` (1.3) or not (2005). Each is one
frozen :class:`Dialect`; the answer always uses the request's dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from . import _xml, ns
from ._time import format_datetime, parse_datetime
from .errors import InvalidRequest
from .saml import SamlVersion

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
    _sub(lifetime, ns.WSU, "Created", format_datetime(created))
    _sub(lifetime, ns.WSU, "Expires", format_datetime(expires))
    _sub(rstr, t, "RequestType", d.request_type_issue)
    _sub(rstr, t, "KeyType", request.key_type or d.bearer_key_types[0])
    return top
