"""What an STS answers, as the client reads it: the issued token, the RSTR, SOAP faults.

:class:`IssuedToken` and :func:`parse_response` (an RSTR or RSTRC of WS-Trust
1.3 or 2005, the token cut out as the exact bytes received, so that its
signature survives; an encrypted token kept opaque, named by the RSTR's
reference), :func:`raise_for_fault` (a SOAP fault as a
:class:`~wstrust_wsgi.errors.RemoteFault`), and the sentences a person gets
for a reply that is not what was asked. Apart from :mod:`wstrust_wsgi.client`
so that each stays readable; the client re-exports the public names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.parsers import expat

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from . import _xml, ns, soap, wssecurity
from ._time import parse_datetime
from .errors import ConfigurationError, MalformedMessage, RemoteFault, TransportError, WsTrustError
from .saml import SAML2, version_for_token_type, version_of
from .wstrust.lifecycle import ENCRYPTED_TOKENS  # SAML 2.0's EncryptedAssertion, or SAML 1.1's EncryptedData
from .wstrust.proof import DEFAULT_KEY_SIZE, proof_key_of

__all__ = ["IssuedToken", "parse_response", "raise_for_fault", "reference_to", "reply_body"]


@dataclass(frozen=True)
class IssuedToken:
    """A token as the STS issued it.

    An encrypted token (``saml2:EncryptedAssertion``, or a bare
    ``xenc:EncryptedData`` for SAML 1.1) is opaque to the client: it is
    encrypted for the relying party's key, so its claims cannot be read here;
    :func:`call_service` passes its exact bytes on unchanged. Its
    ``assertion_id`` comes from the RSTR's reference to it.
    """

    #: The assertion (or the encrypted token) exactly as received.
    assertion: bytes
    token_type: str
    assertion_id: str
    created: datetime | None
    expires: datetime | None
    applies_to: str | None
    #: Whether the token is encrypted for the relying party (and so unreadable here).
    encrypted: bool = False
    #: Whom it is encrypted for, as its EncryptedKey names the certificate (a SHA-1 thumbprint
    #: where it can be known, else the issuer and serial or the SKI); None when not named.
    encrypted_for: str | None = None
    #: The holder-of-key proof key (computed or received); None for a bearer token. Never shown.
    proof_key: bytes | None = field(default=None, repr=False)
    #: ``"bearer"``, ``"symmetric"`` or ``"public"``: what was asked for, and what :func:`call_service` proves.
    key_type: str = "bearer"
    #: PublicKey: the client's own private key, which the token names and the calls are signed with.
    private_key: rsa.RSAPrivateKey | None = field(default=None, repr=False)


def _element_span(data: bytes, parent_tag: tuple[str, str]) -> tuple[int, int] | None:
    """Byte offsets of the first element child of the first ``parent_tag`` element."""
    parser = expat.ParserCreate(namespace_separator=" ")
    target = " ".join(parent_tag)
    state: dict[str, Any] = {"depth": 0, "parent": None, "start": None, "end": None}

    def start(name: str, _attrs: Any) -> None:
        state["depth"] += 1
        if state["parent"] is None and name == target:
            state["parent"] = state["depth"]
        elif state["parent"] is not None and state["start"] is None and state["depth"] == state["parent"] + 1:
            state["start"] = (parser.CurrentByteIndex, state["depth"])

    def end(_name: str) -> None:
        if state["start"] is not None and state["end"] is None and state["depth"] == state["start"][1]:
            # CurrentByteIndex is the '<' of the end tag (or of an empty element)
            state["end"] = data.index(b">", parser.CurrentByteIndex) + 1
        state["depth"] -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(data, True)
    if state["start"] is None or state["end"] is None:
        return None
    return state["start"][0], state["end"]


def raise_for_fault(root: etree._Element, status: int) -> None:
    """Raise :class:`RemoteFault` if ``root`` is a SOAP envelope holding a Fault."""
    for env_ns in (ns.SOAP11, ns.SOAP12):
        body = _xml.child(root, env_ns, "Body")
        fault = _xml.child(body, env_ns, "Fault") if body is not None else None
        if fault is None:
            continue
        if env_ns == ns.SOAP11:
            code_el = _xml.child(fault, "", "faultcode")
            code_text = _xml.text(code_el)
            reason = _xml.text(_xml.child(fault, "", "faultstring"))
            raise RemoteFault(_resolve_qname(code_el, code_text), reason, status=status)
        code = _xml.child(fault, env_ns, "Code")
        value = _xml.child(code, env_ns, "Value") if code is not None else None
        top = _resolve_qname(value, _xml.text(value))
        deepest = value
        sub = _xml.child(code, env_ns, "Subcode") if code is not None else None
        while sub is not None:
            deepest = _xml.child(sub, env_ns, "Value")
            sub = _xml.child(sub, env_ns, "Subcode")
        reason_el = _xml.child(fault, env_ns, "Reason")
        texts = _xml.children(reason_el, env_ns, "Text") if reason_el is not None else []
        reason = _xml.text(texts[0]) if texts else ""
        raise RemoteFault(_resolve_qname(deepest, _xml.text(deepest)), reason, status=status, soap_code=top)


def _resolve_qname(element: etree._Element | None, value: str) -> str:
    prefix, sep, local = value.rpartition(":")
    if not sep or element is None:
        return value
    uri = element.nsmap.get(prefix)
    return f"{{{uri}}}{local}" if uri else value


def parse_response(data: bytes, *, status: int = 200, key_type: str = "bearer", client_entropy: bytes | None = None,
                   key_size: int = DEFAULT_KEY_SIZE) -> IssuedToken:
    """Read an RSTR / RSTRC (WS-Trust 1.3 or 2005); raise RemoteFault for a fault.

    For a ``"symmetric"`` ``key_type`` the proof key is read or computed from
    the RSTR and the ``client_entropy`` sent (see :mod:`wstrust_wsgi.wstrust.proof`).
    """
    try:
        root = _xml.parse(data)
    except MalformedMessage as exc:
        raise TransportError(f"the STS answered HTTP {status} with something that is not XML ({exc})", url="") from None
    raise_for_fault(root, status)
    body = reply_body(root, f"the STS answered HTTP {status} with", url="", expected=None)
    rstr = None
    for trust_ns in (ns.WST13, ns.WST2005):
        rstr = next(body.iter(_xml.qname(trust_ns, "RequestSecurityTokenResponse")), None)
        if rstr is not None:
            break
    if rstr is None:
        first = next((c for c in body if isinstance(c.tag, str)), None)
        held = f"a {_shown_tag(first)}" if first is not None else "an empty Body"
        raise TransportError(f"the STS answer holds no RequestSecurityTokenResponse but {held}: this address "
                             "answers like a SOAP service, not like a WS-Trust STS endpoint", url="")
    trust_ns = _xml.namespace(rstr)
    requested = _xml.child(rstr, trust_ns, "RequestedSecurityToken")
    token_el = next((c for c in requested if isinstance(c.tag, str)), None) if requested is not None else None
    if token_el is None:
        raise TransportError("the RSTR holds no RequestedSecurityToken", url="")
    span = _element_span(data, (trust_ns, "RequestedSecurityToken"))
    assertion = data[span[0]:span[1]] if span else etree.tostring(token_el)
    version = version_of(token_el)
    token_type = _xml.text(_xml.child(rstr, trust_ns, "TokenType"))
    if not token_type and version is not None:
        token_type = version.token_type
    assertion_id = token_el.get(version.id_attribute, "") if version is not None else ""
    encrypted = token_el.tag in ENCRYPTED_TOKENS
    if encrypted:  # opaque: the ID is the one the RSTR's reference names
        assertion_id = _referenced_id(rstr, trust_ns)
    created = expires = None
    lifetime = _xml.child(rstr, trust_ns, "Lifetime")
    if lifetime is not None:
        created_el = _xml.child(lifetime, ns.WSU, "Created")
        expires_el = _xml.child(lifetime, ns.WSU, "Expires")
        created = parse_datetime(_xml.text(created_el)) if created_el is not None else None
        expires = parse_datetime(_xml.text(expires_el)) if expires_el is not None else None
    applies_to = None
    for wsp in (ns.WSP12, ns.WSP15):
        applies = _xml.child(rstr, wsp, "AppliesTo")
        if applies is not None:
            address = next((a for wsa in (ns.WSA10, ns.WSA04) for a in applies.iter(_xml.qname(wsa, "Address"))), None)
            applies_to = _xml.text(address) if address is not None else None
    proof_key = None
    if key_type == "symmetric":
        try:
            proof_key = proof_key_of(rstr, client_entropy, key_size)
        except (ValueError, WsTrustError) as exc:
            raise TransportError(f"the STS answer gives no usable proof key ({exc})", url="") from None
    return IssuedToken(assertion, token_type, assertion_id, created, expires, applies_to, encrypted=encrypted,
                       encrypted_for=_recipient(token_el) if encrypted else None, proof_key=proof_key,
                       key_type=key_type)


_KEY_IDENTIFIERS = {ns.WSSE_THUMBPRINT_SHA1: "SHA-1 thumbprint", ns.WSSE_X509_SKI: "SKI"}


def reference_to(token: IssuedToken, binding: str) -> bytes:
    """What names an encrypted token in a Validate or Cancel target: a SecurityTokenReference to its ID.

    The STS cannot read a token it encrypted for a relying party (only that
    party holds the key), so the token is named by the assertion ID the RSTR
    referenced, and the STS judges it on its record. (Renew sends the
    encrypted token itself, as received: the STS finds its record by the
    digest of those exact bytes.)
    """
    if not token.assertion_id:
        raise ConfigurationError(f"{binding.lower()}: the encrypted token's ID is unknown (the RSTR named none)")
    version = version_for_token_type(token.token_type) or SAML2
    holder = etree.Element("holder")
    wssecurity.key_identifier_reference(holder, token_type=version.profile_token_type,
                                        value_type=version.key_identifier_value_type, identifier=token.assertion_id)
    return etree.tostring(holder[0])


def _referenced_id(rstr: etree._Element, trust_ns: str) -> str:
    """The token ID the RSTR's RequestedAttachedReference names (WS-Security SAML Token Profile 3.4)."""
    path = (f"{{{trust_ns}}}RequestedAttachedReference/{{{ns.WSSE}}}SecurityTokenReference/"
            f"{{{ns.WSSE}}}KeyIdentifier")
    reference = rstr.find(path)
    return _xml.text(reference) if reference is not None else ""


def _recipient(token: etree._Element) -> str | None:
    """Whom the token's (first) EncryptedKey names: for a person to read, never trusted for anything."""
    encrypted_key = next(token.iter(_xml.qname(ns.XENC, "EncryptedKey")), None)
    key_info = _xml.child(encrypted_key, ns.DS, "KeyInfo") if encrypted_key is not None else None
    try:
        for element in key_info.iter() if key_info is not None else ():
            value = "".join((element.text or "").split()) if isinstance(element.tag, str) else ""
            if element.tag == _xml.qname(ns.DS, "X509Certificate"):
                der = base64.b64decode(value, validate=True)
                return "SHA-1 thumbprint " + hashlib.sha1(der).digest().hex(":").upper()
            if element.tag == _xml.qname(ns.WSSE, "KeyIdentifier") and element.get("ValueType") in _KEY_IDENTIFIERS:
                kind = _KEY_IDENTIFIERS[element.get("ValueType", "")]
                return f"{kind} {base64.b64decode(value, validate=True).hex(':').upper()}"
            if element.tag == _xml.qname(ns.DS, "X509SKI"):
                return f"SKI {base64.b64decode(value, validate=True).hex(':').upper()}"
            if element.tag == _xml.qname(ns.DS, "X509IssuerSerial"):
                issuer = _xml.text(_xml.child(element, ns.DS, "X509IssuerName"))
                serial = _xml.text(_xml.child(element, ns.DS, "X509SerialNumber"))
                return f"the certificate of issuer {issuer}, serial {serial}"
    except (binascii.Error, ValueError, MalformedMessage):  # a name that cannot be shown is not shown
        return None
    return None



def reply_body(root: etree._Element, answer: str, *, url: str, expected: soap.SoapVersion | None) -> etree._Element:
    """The Body of a reply envelope; a reply that is no such envelope is said for what it is.

    "An empty SOAP body" is then only said of a Body without an element: a
    plain XML document, an envelope of the other SOAP version (``expected``;
    None accepts either) and an envelope without a Body each get their own sentence.
    """
    envelope_ns = _xml.namespace(root)
    if _xml.local_name(root) != "Envelope" or envelope_ns not in (ns.SOAP11, ns.SOAP12):
        raise TransportError(f"{answer} XML that is not a SOAP envelope (a {_shown_tag(root)})", url=url)
    version = soap.SOAP11 if envelope_ns == ns.SOAP11 else soap.SOAP12
    if expected is not None and version is not expected:
        raise TransportError(f"{answer} a SOAP {version.name} envelope to a SOAP {expected.name} request "
                             f"(call it with SOAP {version.name})", url=url)
    body = _xml.child(root, envelope_ns, "Body")
    if body is None:
        raise TransportError(f"{answer} a SOAP envelope without a Body", url=url)
    return body


def _shown_tag(element: etree._Element) -> str:
    """``<local>`` with its namespace, as a person reads it in a message."""
    namespace = _xml.namespace(element)
    return f"<{_xml.local_name(element)}> element" + (f" in {namespace}" if namespace else "")
