"""WS-Trust messages: reading a RequestSecurityToken, writing the RequestSecurityTokenResponse.

Wire format only: the token is bytes made elsewhere, and what the token
references in the answer say about it (its profile's TokenType and
KeyIdentifier ValueType) is plain data (:class:`TokenProfile`).

The answer's shape is stated once, as a tree (:func:`build_response`). The STS
sends it through :func:`response_envelope`, which fills a template made from
that tree's own serialization, one per response shape (see ``bench/README.md``
for why); the tests hold the tree serialized per message as the oracle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from lxml import etree

from .. import _xml, ns, soap
from .._time import format_datetime, parse_datetime
from ..errors import InvalidRequest, RequestFailed
from ..wssecurity.references import key_identifier_reference
from ._template import EnvelopeTemplate
from .dialects import Dialect, dialect_of
from .proof import key_kind

log = logging.getLogger("wstrust_wsgi.wstrust")

#: Stands where the token goes; the serialized envelope is spliced there so
#: the signed token's bytes are never re-serialized inside the response.
TOKEN_MARKER = b"<!--wstrust-wsgi:assertion-->"
_WSP = (ns.WSP12, ns.WSP15)
_WSA = (ns.WSA10, ns.WSA04)


class TokenProfile(Protocol):
    """What the RSTR's token references say about the token (a SAML version fits).

    WS-Security SAML Token Profile 1.1 section 3.4: the reference's
    ``wsse11:TokenType`` and its ``wsse:KeyIdentifier/@ValueType``.
    """

    @property
    def profile_token_type(self) -> str: ...

    @property
    def key_identifier_value_type(self) -> str: ...


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


def request_type_of(rst: etree._Element) -> str:
    """The RST's ``wst:RequestType`` URI (empty when absent); ``rst`` is a RequestSecurityToken of a known dialect."""
    return _xml.text(_xml.child(rst, _xml.namespace(rst), "RequestType"))


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
    request_type = request_type_of(rst)
    if request_type != dialect.request_type_issue:
        raise InvalidRequest(f"RequestType {request_type!r} is not {dialect.request_type_issue}",
                             reason=f"Only the Issue request type ({dialect.request_type_issue}) is supported.")
    applies_to, applies_ns = _applies_to(rst)
    token_type = _xml.text(_xml.child(rst, t, "TokenType")) or None
    key_type = _xml.text(_xml.child(rst, t, "KeyType")) or None
    if key_kind(dialect, key_type) is None:  # which kinds the STS issues is the binding's to say
        raise InvalidRequest(f"KeyType {key_type!r} is not a key type of WS-Trust {dialect.name}",
                             reason="KeyType must be Bearer, SymmetricKey or PublicKey.")
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


def _token_reference(parent: etree._Element, profile: TokenProfile, assertion_id: str) -> None:
    key_identifier_reference(parent, token_type=profile.profile_token_type,
                             value_type=profile.key_identifier_value_type, identifier=assertion_id)


def build_response(
    request: TokenRequest,
    *,
    token_type: str,
    version: TokenProfile,
    assertion_id: str,
    created: datetime | str,
    expires: datetime | str,
) -> etree._Element:
    """The RSTR (in a Collection for 1.3) with :data:`TOKEN_MARKER` where the token goes.

    ``version`` is the token's profile (a ``saml.SamlVersion``); the times are
    datetimes, or text already written (the template puts holes there).
    """
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
    _sub(lifetime, ns.WSU, "Created", created if isinstance(created, str) else format_datetime(created))
    _sub(lifetime, ns.WSU, "Expires", expires if isinstance(expires, str) else format_datetime(expires))
    _sub(rstr, t, "RequestType", d.request_type_issue)
    _sub(rstr, t, "KeyType", request.key_type or d.bearer_key_types[0])
    return top


#: What fixes a response's bytes apart from its values: SOAP version, WS-Trust
#: dialect, the token profile's two URIs, the AppliesTo namespaces echoed,
#: whether Context and an AppliesTo address are present, and the WS-Addressing
#: namespace of the reply headers (None: none). At most a few hundred exist.
_Shape = tuple[soap.SoapVersion, Dialect, str, str, tuple[str, str], bool, bool, str | None]
#: Every character the serializer treats specially, plus non-ASCII (BMP and astral).
_PROBE = "a&b<c>d\"e'f\tg\nh\ri ]]> \u00e9\u4e2d\U0001f600"


@dataclass(frozen=True)
class _Profile:
    profile_token_type: str
    key_identifier_value_type: str


def _shape(
    soap_version: soap.SoapVersion, request: TokenRequest, version: TokenProfile, relates_to: soap.RelatesTo | None
) -> _Shape:
    return (soap_version, request.dialect, version.profile_token_type, version.key_identifier_value_type,
            request.applies_to_ns, request.context is not None, request.applies_to is not None,
            relates_to.namespace if relates_to is not None else None)


def _serialize(shape: _Shape, value: dict[str, str], assertion: bytes) -> bytes:
    """The response of ``shape`` with ``value``s, serialized from the tree (what a template is made from)."""
    soap_version, dialect, token_reference_type, value_type, applies_to_ns, has_context, has_address, wsa = shape
    request = TokenRequest(dialect, value["applies_to"] if has_address else None, applies_to_ns, None,
                           value["key_type"], None, value["context"] if has_context else None)
    top = build_response(request, token_type=value["token_type"], version=_Profile(token_reference_type, value_type),
                         assertion_id=value["assertion_id"], created=value["created"], expires=value["expires"])
    headers = soap.RelatesTo(wsa, value["relates_to"]).headers(dialect.issue_response_action) if wsa else []
    return soap.envelope(soap_version, top, headers).replace(TOKEN_MARKER, assertion, 1)


_NAMES = ("token_type", "assertion_id", "created", "expires", "key_type", "context", "applies_to", "relates_to")


@lru_cache(maxsize=512)
def _template(shape: _Shape) -> EnvelopeTemplate:
    """The shape's template, made from the tree's serialization and checked against it with hostile values.

    A template that does not give the tree's bytes (an lxml that escaped
    differently) is refused: the request fails rather than answer bytes that
    nobody has checked.
    """
    holes = {name: EnvelopeTemplate.hole(name) for name in _NAMES}
    template = EnvelopeTemplate(_serialize(shape, holes, TOKEN_MARKER), raw={"assertion": TOKEN_MARKER})
    has_context, has_address, wsa = shape[5:]
    names = {"token_type", "assertion_id", "created", "expires", "key_type"}
    names |= {name for name, present in (("context", has_context), ("applies_to", has_address),
                                         ("relates_to", wsa is not None)) if present}
    probe = dict.fromkeys(names, _PROBE)
    if template.names != names or template.render(probe, {"assertion": b"<probe/>"}) != _serialize(
            shape, dict.fromkeys(_NAMES, _PROBE), b"<probe/>"):
        log.error("RSTR template for %s differs from the tree builder; refusing to answer that shape",
                  [getattr(part, "name", part) for part in shape])
        raise RequestFailed("RSTR template differs from the tree builder")
    return template


def response_envelope(
    soap_version: soap.SoapVersion,
    request: TokenRequest,
    assertion: bytes,
    *,
    token_type: str,
    version: TokenProfile,
    assertion_id: str,
    created: datetime,
    expires: datetime,
    relates_to: soap.RelatesTo | None = None,
) -> bytes:
    """The whole SOAP response carrying the RSTR and the signed ``assertion`` (what the STS sends).

    :func:`build_response` in a :func:`soap.envelope` (with ``wsa:Action`` and
    ``wsa:RelatesTo`` when the request had a MessageID), the ``assertion``
    spliced unchanged at :data:`TOKEN_MARKER`; filled into the template of the
    response's shape (``_Shape``), made on first use.
    """
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
    return _template(_shape(soap_version, request, version, relates_to)).render(values, {"assertion": assertion})


# ---------------------------------------------------------------------- wst:Claims (WS-Trust 1.3 section 4.1)

#: WSO2's claim names (``http://wso2.org/claims/<name>``) and the identity-dialect claims they stand for.
_WSO2_CLAIMS = {
    "emailaddress": "emailaddress", "givenname": "givenname", "lastname": "surname", "fullname": "name",
    "country": "country", "locality": "locality", "postalcode": "postalcode", "streetaddress": "streetaddress",
    "stateorprovince": "stateorprovince", "mobile": "mobilephone", "telephone": "homephone",
    "dob": "dateofbirth", "gender": "gender", "url": "webpage",
    "privatePersonalIdentifier": "privatepersonalidentifier",
}


@dataclass(frozen=True)
class RequestedClaims:
    """What ``wst:Claims`` asks for: its dialect, and each claim URI (as the STS names it) and whether optional."""

    dialect: str
    claims: tuple[tuple[str, bool], ...]

    @property
    def known(self) -> bool:
        """Whether the dialect is one the STS reads (identity, WSO2); other dialects' claims are unknown."""
        return self.dialect in (ns.CLAIMS_IDENTITY, ns.CLAIMS_WSO2)


def _claim_uri(dialect: str, uri: str) -> str:
    """A claim URI of ``dialect`` as the STS names it: WSO2's are mapped to the identity claims, others kept."""
    if dialect == ns.CLAIMS_WSO2 and uri.startswith(ns.CLAIMS_WSO2 + "/"):
        name = uri[len(ns.CLAIMS_WSO2) + 1:]
        if name == "role":
            return ns.CLAIM_ROLE
        if name in _WSO2_CLAIMS:
            return ns.IDENTITY_CLAIM + _WSO2_CLAIMS[name]
    return uri


def requested_claims(rst: etree._Element) -> RequestedClaims | None:
    """The RST's ``wst:Claims`` (a direct child, else the one in ``wst:SecondaryParameters``, as CXF reads them).

    ``Dialect`` is unqualified, as the schema says, and read leniently when
    ``wst:``-qualified (as Rahas and WSO2 write it). Each child with a ``Uri``
    is a claim; ``Optional`` is an xs:boolean, absent meaning false in the
    identity dialect (Information Card semantics) and true in WSO2's (WSO2
    Identity Server reads it so). None when no claims are asked for.
    """
    t = _xml.namespace(rst)
    claims = _xml.child(rst, t, "Claims")
    if claims is None:
        secondary = _xml.child(rst, t, "SecondaryParameters")
        claims = _xml.child(secondary, t, "Claims") if secondary is not None else None
    if claims is None:
        return None
    dialect = (claims.get("Dialect") or claims.get(_xml.qname(t, "Dialect")) or "").strip()
    if not dialect:
        raise InvalidRequest("wst:Claims without a Dialect", reason="wst:Claims must name its Dialect.")
    found = []
    for element in claims:
        if not isinstance(element.tag, str) or element.get("Uri") is None:
            continue
        optional = (element.get("Optional") or ("true" if dialect == ns.CLAIMS_WSO2 else "false")).strip()
        if optional not in ("true", "false", "1", "0"):
            raise InvalidRequest(f"ClaimType Optional {optional!r} is not an xs:boolean",
                                 reason="A ClaimType's Optional must be true or false.")
        found.append((_claim_uri(dialect, element.get("Uri", "").strip()), optional in ("true", "1")))
    return RequestedClaims(dialect, tuple(found))


# ---------------------------------------------------------------------- OnBehalfOf (1.3, 2005) and ActAs (1.4)


def delegation_of(rst: etree._Element) -> tuple[str, etree._Element | None] | None:
    """``("OnBehalfOf" | "ActAs", the token it carries)`` when the RST asks to act for someone else, else None.

    ``wst:OnBehalfOf`` is in the RST's own namespace; ``ActAs`` is WS-Trust
    1.4's (``ns.WST14``), also found inside a 1.3 or 2005 RST (Rahas ignores it
    there: notes section 6), and read in the RST's namespace too, so no
    spelling of it is ever silently ignored.
    """
    t = _xml.namespace(rst)
    found = [(local, holder) for local, namespaces in (("OnBehalfOf", (t,)), ("ActAs", (ns.WST14, t)))
             if (holder := _xml.child(rst, namespaces, local)) is not None]
    if len(found) > 1:  # one identity is represented: taking either would silently ignore the other
        raise InvalidRequest("both OnBehalfOf and ActAs", reason="Give OnBehalfOf or ActAs, not both.")
    if not found:
        return None
    local, holder = found[0]
    return local, next((c for c in holder if isinstance(c.tag, str)), None)
