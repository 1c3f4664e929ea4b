"""Validate, Renew and Cancel on the wire (WS-Trust 1.3 sections 5 to 7, and the 2005 submission's twins).

Each request names its token in a target element (``wst:ValidateTarget``,
``wst:RenewTarget``, ``wst:CancelTarget``): the token itself, or a
``wsse:SecurityTokenReference`` to it (a ``KeyIdentifier`` holding the
assertion ID, or a ``Reference URI="#ID"``). The answers:

* Validate: TokenType ``.../RSTR/Status`` and ``wst:Status`` with a Code
  (``.../status/valid`` or ``.../status/invalid``) and a Reason;
* Renew: a new token, in the RSTR of an Issue answer with RequestType Renew;
* Cancel: ``wst:RequestedTokenCancelled``.

A target may also hold an encrypted token as the STS issued it
(``saml2:EncryptedAssertion``, or ``xenc:EncryptedData`` for SAML 1.1); the
STS then finds its record by the digest of that element
(:mod:`wstrust_wsgi.sts.lifecycle`).

Issue requests may carry ``wst:Renewing Allow= OK=`` (section 5): may the
token be renewed at all, and after it expired. Both sides use this module:
the STS reads requests and writes answers, the client the reverse. Answers are
in a Collection for WS-Trust 1.3, as PicketLink's samples are, a bare RSTR for
2005; the client reads either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from .. import _xml, ns, soap
from ..errors import InvalidRequest
from .dialects import Dialect
from .messages import TOKEN_MARKER, TokenProfile, TokenRequest, build_response

__all__ = ["ENCRYPTED_TOKENS", "Status", "Target", "cancelled_envelope", "read_cancelled", "read_status", "read_target",
           "renewed_envelope", "renewing_of", "response_action", "status_envelope", "status_token_type",
           "target_request"]

#: KeyIdentifier ValueTypes naming a SAML assertion by ID: SAML 2.0 (``#SAMLID``) and 1.1 (``#SAMLAssertionID``).
_REFERENCE_TYPES = (ns.SAML20_KEYID_VALUE_TYPE, ns.SAML11_KEYID_VALUE_TYPE)
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def response_action(dialect: Dialect, binding: str) -> str:
    """The answer's action: 1.3 ``.../RSTR/<Binding>Final`` (section 5 to 7), 2005 ``.../RSTR/<Binding>``."""
    if dialect.collection:
        return f"{dialect.namespace}/RSTR/{binding}Final"
    return f"{dialect.namespace}/RSTR/{binding}"


def status_token_type(dialect: Dialect) -> str:
    """The TokenType asking for (and answering with) a status: ``.../RSTR/Status``."""
    return f"{dialect.namespace}/RSTR/Status"


@dataclass(frozen=True)
class Target:
    """The token a request names: the element itself, or only its ID (by reference)."""

    element: etree._Element | None
    #: The ID the request names: read from the element (unverified) or from the reference; empty for an
    #: encrypted token (whose ID is inside the ciphertext: the STS finds it by the element's digest).
    assertion_id: str
    #: Whether ``element`` is an encrypted token: ``saml2:EncryptedAssertion``, or ``xenc:EncryptedData``
    #: (SAML 1.1, as AD FS and this STS send it).
    encrypted: bool = False


#: The encrypted forms of a token a target may hold.
ENCRYPTED_TOKENS = frozenset({_xml.qname(ns.SAML2, "EncryptedAssertion"), _xml.qname(ns.XENC, "EncryptedData")})


def read_target(rst: etree._Element, dialect: Dialect, binding: str) -> Target:
    """The token in ``wst:<binding>Target``; InvalidRequest when it is missing or names nothing we read."""
    t = dialect.namespace
    holder = _xml.child(rst, t, f"{binding}Target")
    children = [c for c in holder if isinstance(c.tag, str)] if holder is not None else []
    if len(children) != 1:
        raise InvalidRequest(f"wst:{binding}Target missing or holding {len(children)} elements",
                             reason=f"wst:{binding}Target must hold the token or a reference to it.")
    token = children[0]
    if token.tag == _xml.qname(ns.WSSE, "SecurityTokenReference"):
        return Target(None, _referenced_id(token, binding))
    if token.tag in ENCRYPTED_TOKENS:
        return Target(token, "", encrypted=True)
    assertion_id = token.get("ID") or token.get("AssertionID") or ""
    if not assertion_id:
        raise InvalidRequest(f"wst:{binding}Target holds {token.tag} without an ID",
                             reason=f"wst:{binding}Target must hold a SAML assertion or a reference to one.")
    return Target(token, assertion_id)


def _referenced_id(reference: etree._Element, binding: str) -> str:
    """The assertion ID of a SecurityTokenReference: KeyIdentifier (SAMLID, SAMLAssertionID) or Reference URI."""
    identifier = _xml.child(reference, ns.WSSE, "KeyIdentifier")
    if identifier is not None and identifier.get("ValueType") in _REFERENCE_TYPES and _xml.text(identifier):
        return _xml.text(identifier)
    direct = _xml.child(reference, ns.WSSE, "Reference")
    uri = direct.get("URI", "") if direct is not None else ""
    if uri.startswith("#") and len(uri) > 1:
        return uri[1:]
    raise InvalidRequest(f"wst:{binding}Target reference names no assertion ID",
                         reason="The token reference must be a SAML KeyIdentifier or a Reference URI=\"#ID\".")


def _flag(element: etree._Element, name: str, default: bool) -> bool:
    value = element.get(name)
    if value is None:
        return default
    if value.strip() in _TRUE:
        return True
    if value.strip() in _FALSE:
        return False
    raise InvalidRequest(f"wst:Renewing/@{name} {value!r} is not an xs:boolean",
                         reason=f"wst:Renewing/@{name} must be true or false.")


def renewing_of(rst: etree._Element, dialect: Dialect) -> tuple[bool, bool]:
    """``wst:Renewing``'s (Allow, OK) as asked at issue; absent, (True, False) as CXF takes it."""
    renewing = _xml.child(rst, dialect.namespace, "Renewing")
    if renewing is None:
        return True, False
    return _flag(renewing, "Allow", True), _flag(renewing, "OK", False)


# ---------------------------------------------------------------------- answers (the STS)


def _rstr(dialect: Dialect, context: str | None) -> tuple[etree._Element, etree._Element]:
    t = dialect.namespace
    if dialect.collection:
        top = etree.Element(_xml.qname(t, "RequestSecurityTokenResponseCollection"), nsmap={"wst": t})
        rstr = etree.SubElement(top, _xml.qname(t, "RequestSecurityTokenResponse"))
    else:
        top = rstr = etree.Element(_xml.qname(t, "RequestSecurityTokenResponse"), nsmap={"wst": t})
    if context is not None:
        rstr.set("Context", context)
    return top, rstr


def _envelope(version: soap.SoapVersion, top: etree._Element, action: str, relates_to: soap.RelatesTo | None) -> bytes:
    return soap.envelope(version, top, relates_to.headers(action) if relates_to is not None else [])


def status_envelope(version: soap.SoapVersion, dialect: Dialect, *, valid: bool, reason: str, context: str | None,
                    relates_to: soap.RelatesTo | None) -> bytes:
    """The Validate answer: TokenType RSTR/Status, ``wst:Status`` with its Code and Reason."""
    t = dialect.namespace
    top, rstr = _rstr(dialect, context)
    etree.SubElement(rstr, _xml.qname(t, "TokenType")).text = status_token_type(dialect)
    status = etree.SubElement(rstr, _xml.qname(t, "Status"))
    etree.SubElement(status, _xml.qname(t, "Code")).text = f"{t}/status/{'valid' if valid else 'invalid'}"
    etree.SubElement(status, _xml.qname(t, "Reason")).text = reason
    return _envelope(version, top, response_action(dialect, "Validate"), relates_to)


def cancelled_envelope(version: soap.SoapVersion, dialect: Dialect, *, context: str | None,
                       relates_to: soap.RelatesTo | None) -> bytes:
    """The Cancel answer: ``wst:RequestedTokenCancelled``."""
    top, rstr = _rstr(dialect, context)
    etree.SubElement(rstr, _xml.qname(dialect.namespace, "RequestedTokenCancelled"))
    return _envelope(version, top, response_action(dialect, "Cancel"), relates_to)


def renewed_envelope(version: soap.SoapVersion, request: TokenRequest, assertion: bytes, *, token_type: str,
                     profile: TokenProfile, assertion_id: str, created: datetime, expires: datetime,
                     relates_to: soap.RelatesTo | None) -> bytes:
    """The Renew answer: the Issue RSTR (:func:`build_response`) with RequestType Renew and the new token spliced."""
    top = build_response(request, token_type=token_type, version=profile, assertion_id=assertion_id,
                         created=created, expires=expires)
    t = request.dialect.namespace
    for request_type in top.iter(_xml.qname(t, "RequestType")):
        request_type.text = request.dialect.request_type("Renew")
    answer = _envelope(version, top, response_action(request.dialect, "Renew"), relates_to)
    return answer.replace(TOKEN_MARKER, assertion, 1)


# ---------------------------------------------------------------------- requests and answers (the client)


def target_request(dialect: Dialect, binding: str, *, token_type: str | None = None) -> etree._Element:
    """An RST of ``binding`` whose target holds :data:`TOKEN_MARKER`, where the client splices the token's bytes."""
    t = dialect.namespace
    rst = etree.Element(_xml.qname(t, "RequestSecurityToken"), nsmap={"wst": t})
    if token_type is not None:
        etree.SubElement(rst, _xml.qname(t, "TokenType")).text = token_type
    etree.SubElement(rst, _xml.qname(t, "RequestType")).text = dialect.request_type(binding)
    target = etree.SubElement(rst, _xml.qname(t, f"{binding}Target"))
    target.append(etree.Comment(TOKEN_MARKER[4:-3].decode()))
    return rst


@dataclass(frozen=True)
class Status:
    """What a Validate answer says of a token."""

    valid: bool
    #: The ``wst:Code`` URI as received.
    code: str
    reason: str


def _answer(body: etree._Element) -> etree._Element | None:
    for t in (ns.WST13, ns.WST2005):
        rstr = next(body.iter(_xml.qname(t, "RequestSecurityTokenResponse")), None)
        if rstr is not None:
            return rstr
    return None


def read_status(body: etree._Element) -> Status | None:
    """The ``wst:Status`` of a Validate answer's Body; None if it holds none."""
    rstr = _answer(body)
    status = _xml.child(rstr, _xml.namespace(rstr), "Status") if rstr is not None else None
    if rstr is None or status is None:
        return None
    t = _xml.namespace(rstr)
    code = _xml.text(_xml.child(status, t, "Code"))
    return Status(code == f"{t}/status/valid", code, _xml.text(_xml.child(status, t, "Reason")))


def read_cancelled(body: etree._Element) -> bool:
    """Whether a Cancel answer's Body says ``wst:RequestedTokenCancelled``."""
    rstr = _answer(body)
    return rstr is not None and _xml.child(rstr, _xml.namespace(rstr), "RequestedTokenCancelled") is not None
