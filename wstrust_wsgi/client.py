"""A WS-Trust client: request a token from an STS, then call a SOAP service with it.

The issued assertion is kept as the exact bytes the STS sent (re-serializing a
signed assertion can break its signature), located with expat's byte offsets
after the response has passed the hardened parser.

Transport is a parameter: :class:`UrllibTransport` speaks real HTTP,
:class:`WSGITransport` calls a WSGI app in-process with the same code path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import ipaddress
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from xml.parsers import expat

from lxml import etree
from webob import Request

from . import _arguments, _xml, ns, soap, wssecurity, wstrust
from ._time import Clock, parse_datetime, utcnow
from .errors import ConfigurationError, MalformedMessage, RemoteFault, SecurityWarning, TransportError
from .saml import SAML2, SAML11, version_for_token_type, version_of
from .wstrust import delegation, lifecycle

#: ``(url, body, headers) -> (status, content_type, body)``.
Transport = Callable[[str, bytes, dict[str, str]], tuple[int, str, bytes]]

_SOAP_VERSIONS = {"1.1": soap.SOAP11, "1.2": soap.SOAP12}
_DIALECTS = {"1.3": wstrust.WSTRUST13, "2005": wstrust.WSTRUST2005}
_TOKEN_TYPES = {"2.0": SAML2.token_type, "1.1": SAML11.token_type}

T = TypeVar("T")


class UrllibTransport:
    """Real HTTP(S) with the standard library; connection failures become one plain sentence.

    :param cafile: PEM file of the CA (or self-signed certificate) to trust for
        HTTPS instead of the system store; read here, so that a missing or
        unreadable file is a :class:`ConfigurationError` naming it.
    """

    def __init__(self, *, timeout: float = 10.0, cafile: str | os.PathLike[str] | None = None) -> None:
        self.timeout = _arguments.seconds(timeout, "timeout", positive=True)
        self._context = _tls_context(cafile) if cafile is not None else None

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as exc:  # faults arrive with 4xx/5xx
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, refused, timeout, bad URL
            reason = getattr(exc, "reason", exc)
            raise TransportError(
                f"could not connect to {url}: is the service running? ({reason})", url=url
            ) from None


def _tls_context(cafile: str | os.PathLike[str]) -> ssl.SSLContext:
    """A default client context trusting ``cafile``; a file that cannot serve is one sentence naming it."""
    if not isinstance(cafile, (str, os.PathLike)) or not os.fspath(cafile):
        raise ConfigurationError(f"cafile: must be the path of a PEM file, not {_arguments.given(cafile)}")
    try:
        return ssl.create_default_context(cafile=os.fspath(cafile))
    except ssl.SSLError as exc:  # before OSError, its base
        raise ConfigurationError(f"cafile {os.fspath(cafile)}: holds no usable PEM certificate "
                                 f"({exc.reason or exc})") from None
    except OSError as exc:
        raise ConfigurationError(f"cafile {os.fspath(cafile)}: cannot be read ({exc.strerror or exc})") from None


class WSGITransport:
    """Send requests to a WSGI app in-process (tests, embedding)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        request = Request.blank(url, method="POST", body=body, headers=headers)
        response = request.get_response(self.app)
        return response.status_code, response.headers.get("Content-Type", ""), response.body


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


def parse_response(data: bytes, *, status: int = 200) -> IssuedToken:
    """Read an RSTR / RSTRC (WS-Trust 1.3 or 2005); raise RemoteFault for a fault."""
    try:
        root = _xml.parse(data)
    except MalformedMessage as exc:
        raise TransportError(f"the STS answered HTTP {status} with something that is not XML ({exc})", url="") from None
    raise_for_fault(root, status)
    body = _reply_body(root, f"the STS answered HTTP {status} with", url="", expected=None)
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
    encrypted = token_el.tag in _ENCRYPTED_TOKENS
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
    return IssuedToken(assertion, token_type, assertion_id, created, expires, applies_to, encrypted,
                       _recipient(token_el) if encrypted else None)


#: What an encrypted token is: SAML 2.0's EncryptedAssertion, or (SAML 1.1, as AD FS sends it) the EncryptedData.
_ENCRYPTED_TOKENS = frozenset({_xml.qname(ns.SAML2, "EncryptedAssertion"), _xml.qname(ns.XENC, "EncryptedData")})
_KEY_IDENTIFIERS = {ns.WSSE_THUMBPRINT_SHA1: "SHA-1 thumbprint", ns.WSSE_X509_SKI: "SKI"}


def _reference_to(token: IssuedToken, binding: str) -> bytes:
    """What names an encrypted token in a Validate or Cancel target: a SecurityTokenReference to its ID.

    The STS cannot read a token it encrypted for a relying party (only that
    party holds the key), so the token is named by the assertion ID the RSTR
    referenced, and the STS judges it on its record. Renew needs the signed
    token itself (its signature is checked), so an encrypted token is not
    renewed: ask for a new one.
    """
    if binding == "Renew":
        raise ConfigurationError("renew: an encrypted token cannot be renewed (the STS cannot read it back to check "
                                 "its signature); request a new token instead")
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


def _headers(version: soap.SoapVersion, action: str) -> dict[str, str]:
    """The HTTP headers of a SOAP request: Content-Type (with the action in SOAP 1.2), SOAPAction in 1.1."""
    headers = {"Content-Type": version.content_type(action)}
    if version is soap.SOAP11:
        headers["SOAPAction"] = f'"{action}"'
    return headers


def _post(transport: Transport, url: str, version: soap.SoapVersion, action: str, body: bytes) -> tuple[int, bytes]:
    status, content_type, answer = transport(url, body, _headers(version, action))
    if not answer.strip():
        raise TransportError(f"{url} answered HTTP {status} with an empty body", url=url)
    if soap.version_for_content_type(content_type) is None and status >= 400:
        text = answer[:200].decode("utf-8", "replace").strip()
        raise TransportError(f"{url} answered HTTP {status}: {text}", url=url)
    return status, answer


class StsClient:
    """Requests bearer SAML tokens from a WS-Trust STS with a UsernameToken.

    :param url: the STS endpoint.
    :param digest: send PasswordDigest (nonce + created) instead of PasswordText.
    :param soap_version: ``"1.1"`` or ``"1.2"``.
    :param trust_version: ``"1.3"`` or ``"2005"``.
    :param timestamp: add a ``wsu:Timestamp`` to the Security header.

    A client that would send PasswordText over plain ``http`` to a host other
    than a loopback address (with any transport but :class:`WSGITransport`,
    which stays in-process) issues a :class:`~wstrust_wsgi.errors.SecurityWarning`
    here: the password would cross the network in clear.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str,
        password: str,
        digest: bool = False,
        soap_version: str = "1.2",
        trust_version: str = "1.3",
        timestamp: bool = True,
        transport: Transport | None = None,
        clock: Clock = utcnow,
    ) -> None:
        # Every argument checked here, so that a mistake is a ConfigurationError naming it now, not a
        # TypeError when the first token is requested (see wstrust_wsgi._arguments).
        self.url = _arguments.text(url, "url")
        self.username = _arguments.text(username, "username")
        if not isinstance(password, str):
            raise ConfigurationError(f"password: must be a string, not {type(password).__name__}")
        self._password = password
        self.digest = _arguments.flag(digest, "digest")
        self.soap = _choice(_SOAP_VERSIONS, soap_version, "soap_version")
        self.dialect = _choice(_DIALECTS, trust_version, "trust_version")
        self.timestamp = _arguments.flag(timestamp, "timestamp")
        self.transport: Transport = (UrllibTransport() if transport is None
                                     else _arguments.callable_(transport, "transport"))
        self._clock = _arguments.callable_(clock, "clock")
        if not digest and not isinstance(self.transport, WSGITransport) and _plain_http_to_another_host(url):
            warnings.warn(f"StsClient: PasswordText to {url} over plain HTTP: the password crosses the network in "
                          "clear (use https, or digest=True)", SecurityWarning, stacklevel=2)

    def build_request(self, applies_to: str, *, token_type: str | None = None, allow_renewal: bool | None = None,
                      renew_after_expiry: bool | None = None, claims: Iterable[str | tuple[str, bool]] | None = None,
                      claims_dialect: str = ns.CLAIMS_IDENTITY, on_behalf_of: Delegated | None = None,
                      act_as: Delegated | None = None) -> bytes:
        """The RST envelope, for inspection or for sending by other means.

        ``allow_renewal`` and ``renew_after_expiry``, when given, ask for
        ``wst:Renewing Allow= OK=``: whether the token may be renewed, and
        after it expired (the STS's defaults: yes, and no). ``claims`` asks
        for these claim URIs only (``wst:Claims`` in ``claims_dialect``, the
        identity dialect by default): each a required URI, or a ``(URI,
        optional)`` pair. ``on_behalf_of``, ``act_as``: see :meth:`request_token`.
        """
        if token_type is not None and not isinstance(token_type, str):
            raise ConfigurationError(f"token_type: must be '2.0', '1.1' or a URI (a string), "
                                     f"not {_arguments.given(token_type)}")
        now = self._clock()
        parts = []
        if self.timestamp:
            parts.append(wssecurity.build_timestamp(now))
        parts.append(wssecurity.build_username_token(self.username, self._password, digest=self.digest, now=now))
        security = wssecurity.security_element(self.soap.namespace, *parts)
        t = self.dialect.namespace
        rst = etree.Element(_xml.qname(t, "RequestSecurityToken"), nsmap={"wst": t})
        if token_type is not None:
            etree.SubElement(rst, _xml.qname(t, "TokenType")).text = _TOKEN_TYPES.get(token_type, token_type)
        etree.SubElement(rst, _xml.qname(t, "RequestType")).text = self.dialect.request_type_issue
        applies = etree.SubElement(rst, _xml.qname(ns.WSP12, "AppliesTo"), nsmap={"wsp": ns.WSP12})
        reference = etree.SubElement(applies, _xml.qname(ns.WSA10, "EndpointReference"), nsmap={"wsa": ns.WSA10})
        etree.SubElement(reference, _xml.qname(ns.WSA10, "Address")).text = applies_to
        etree.SubElement(rst, _xml.qname(t, "KeyType")).text = self.dialect.bearer_key_types[0]
        if allow_renewal is not None or renew_after_expiry is not None:
            renewing = etree.SubElement(rst, _xml.qname(t, "Renewing"))
            for name, flag in (("Allow", allow_renewal), ("OK", renew_after_expiry)):
                if flag is not None:
                    renewing.set(name, "true" if _arguments.flag(flag, name) else "false")
        if claims is not None:
            wanted = etree.SubElement(rst, _xml.qname(t, "Claims"), Dialect=claims_dialect,
                                      nsmap={"ic": ns.CLAIMS_IDENTITY})
            for claim in ([claims] if isinstance(claims, str) else claims):
                uri, optional = (claim, False) if isinstance(claim, str) else claim
                etree.SubElement(wanted, _xml.qname(ns.CLAIMS_IDENTITY, "ClaimType"), Uri=uri,
                                 Optional="true" if optional else "false")
        spliced = delegation.add_delegation(rst, on_behalf_of=_held(on_behalf_of, "on_behalf_of"),
                                            act_as=_held(act_as, "act_as"), digest=self.digest, now=now)
        return soap.envelope(self.soap, rst, [security]).replace(wstrust.TOKEN_MARKER, spliced, 1)

    def request_token(self, applies_to: str, *, token_type: str | None = None, allow_renewal: bool | None = None,
                      renew_after_expiry: bool | None = None, claims: Iterable[str | tuple[str, bool]] | None = None,
                      claims_dialect: str = ns.CLAIMS_IDENTITY, on_behalf_of: Delegated | None = None,
                      act_as: Delegated | None = None) -> IssuedToken:
        """Ask for a token for ``applies_to``; ``token_type`` is ``"2.0"``, ``"1.1"`` or a URI.

        ``allow_renewal=False`` asks for a token that cannot be renewed,
        ``renew_after_expiry=True`` for one that can be renewed for a while
        after it expired (see :meth:`renew`); ``claims`` asks for those
        claims only (see :meth:`build_request`). ``on_behalf_of`` asks for a
        token issued to the identity it carries, ``act_as`` for one of the
        requester's own recording that identity as actor (both only where the
        STS's delegation policy allows): an :class:`IssuedToken` or a SAML
        assertion's bytes (spliced unchanged), or a ``(username, password)`` pair.
        """
        body = self.build_request(applies_to, token_type=token_type, allow_renewal=allow_renewal,
                                  renew_after_expiry=renew_after_expiry, claims=claims, claims_dialect=claims_dialect,
                                  on_behalf_of=on_behalf_of, act_as=act_as)
        status, answer = _post(self.transport, self.url, self.soap, self.dialect.issue_action, body)
        try:
            return parse_response(answer, status=status)
        except TransportError as exc:
            raise TransportError(f"{self.url}: {exc}", url=self.url) from None

    # Validate, Renew, Cancel (WS-Trust 1.3 sections 5 to 7): the token goes in the target as received

    def validate(self, token: IssuedToken | bytes) -> lifecycle.Status:
        """Ask the STS whether ``token`` is valid: a :class:`~wstrust_wsgi.wstrust.lifecycle.Status`."""
        body = self._ask("Validate", token, token_type=lifecycle.status_token_type(self.dialect))
        status = lifecycle.read_status(body)
        if status is None:
            raise TransportError(f"{self.url}: the Validate answer holds no wst:Status", url=self.url)
        return status

    def renew(self, token: IssuedToken | bytes) -> IssuedToken:
        """A new token in place of ``token`` (same subject and relying party, new ID and lifetime)."""
        return self._ask("Renew", token, answer=lambda status, data: parse_response(data, status=status))

    def cancel(self, token: IssuedToken | bytes) -> None:
        """Cancel ``token`` at the STS; returns when the STS answered ``RequestedTokenCancelled``."""
        if not lifecycle.read_cancelled(self._ask("Cancel", token)):
            raise TransportError(f"{self.url}: the Cancel answer holds no wst:RequestedTokenCancelled", url=self.url)

    def _ask(self, binding: str, token: IssuedToken | bytes, *, token_type: str | None = None,
             answer: Callable[[int, bytes], T] | None = None) -> Any:
        """Send a ``binding`` request naming ``token``; ``answer(status, bytes)``, or the reply's Body."""
        assertion = token.assertion if isinstance(token, IssuedToken) else token
        if not isinstance(assertion, bytes):
            raise ConfigurationError(f"token: must be an IssuedToken or the assertion's bytes, "
                                     f"not {_arguments.given(token)}")
        if isinstance(token, IssuedToken) and token.encrypted:
            assertion = _reference_to(token, binding)
        now = self._clock()
        parts = [wssecurity.build_timestamp(now)] if self.timestamp else []
        parts.append(wssecurity.build_username_token(self.username, self._password, digest=self.digest, now=now))
        rst = lifecycle.target_request(self.dialect, binding, token_type=token_type)
        envelope = soap.envelope(self.soap, rst, [wssecurity.security_element(self.soap.namespace, *parts)])
        status, data = _post(self.transport, self.url, self.soap, self.dialect.action(binding),
                             envelope.replace(wstrust.TOKEN_MARKER, assertion, 1))
        if answer is not None:
            return answer(status, data)
        try:
            root = _xml.parse(data)
        except MalformedMessage as exc:
            raise TransportError(f"{self.url} answered HTTP {status} with something that is not XML ({exc})",
                                 url=self.url) from None
        raise_for_fault(root, status)
        return _reply_body(root, f"{self.url} answered HTTP {status} with", url=self.url, expected=self.soap)


#: What OnBehalfOf or ActAs may carry (:mod:`.wstrust.delegation`): a token the caller holds, or (username, password).
Delegated = IssuedToken | bytes | tuple[str, str]


def _held(value: Delegated | None, name: str) -> bytes | tuple[str, str] | None:
    """An IssuedToken's bytes; an encrypted one cannot be presented (the STS cannot read what it encrypted)."""
    if isinstance(value, IssuedToken) and value.encrypted:
        raise ConfigurationError(f"{name}: an encrypted token cannot be presented (only its relying party can read "
                                 "it): request one for the STS's own address instead")
    return value.assertion if isinstance(value, IssuedToken) else value


def _choice(options: dict[str, T], value: str, name: str) -> T:
    """One of ``options`` by its name; a number (``1.2``) is refused with the string to write instead."""
    if isinstance(value, str) and value in options:
        return options[value]
    written = " or ".join(repr(option) for option in options)
    raise ConfigurationError(f"{name}: must be {written} (a string), not {_arguments.given(value)}")


def _plain_http_to_another_host(url: str) -> bool:
    """Whether ``url`` is plain http to a host that is not this machine's loopback."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def service_request(
    token: IssuedToken | bytes | None,
    payload: etree._Element | bytes,
    *,
    soap_version: str = "1.1",
    action: str = "",
) -> tuple[bytes, dict[str, str]]:
    """The envelope and headers :func:`call_service` posts: ``payload`` in the Body, the token in ``wsse:Security``.

    The assertion bytes are spliced in unchanged, since re-serializing a signed
    assertion can break its signature. With no token, the envelope has no
    header at all (what an unauthenticated caller sends). The testing kit
    (:func:`wstrust_wsgi.testing.soap_request`) builds its requests here too,
    so that a test sends exactly what a client would.
    """
    version = _choice(_SOAP_VERSIONS, soap_version, "soap_version")
    body_el = _xml.parse(payload) if isinstance(payload, bytes) else payload
    if token is None:
        return soap.envelope(version, body_el), _headers(version, action)
    assertion = token.assertion if isinstance(token, IssuedToken) else token
    security = wssecurity.security_element(version.namespace)
    security.append(etree.Comment(wstrust.TOKEN_MARKER[4:-3].decode()))
    envelope = soap.envelope(version, body_el, [security]).replace(wstrust.TOKEN_MARKER, assertion, 1)
    return envelope, _headers(version, action)


def call_service(
    url: str,
    token: IssuedToken | bytes,
    payload: etree._Element | bytes,
    *,
    soap_version: str = "1.1",
    action: str = "",
    transport: Transport | None = None,
) -> etree._Element:
    """Call a SOAP service with the token in ``wsse:Security``; the response Body's first child.

    The assertion bytes are spliced into the envelope unchanged (:func:`service_request`).
    """
    version = _choice(_SOAP_VERSIONS, soap_version, "soap_version")
    envelope, _ = service_request(token, payload, soap_version=soap_version, action=action)
    status, answer = _post(transport or UrllibTransport(), url, version, action, envelope)
    try:
        root = _xml.parse(answer)
    except MalformedMessage as exc:
        raise TransportError(f"{url} answered HTTP {status} with something that is not XML ({exc})", url=url) from None
    raise_for_fault(root, status)
    response_body = _reply_body(root, f"{url} answered HTTP {status} with", url=url, expected=version)
    first = next((c for c in response_body if isinstance(c.tag, str)), None)
    if first is None:
        raise TransportError(f"{url} answered an empty SOAP body", url=url)
    return first


def _reply_body(root: etree._Element, answer: str, *, url: str, expected: soap.SoapVersion | None) -> etree._Element:
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


__all__ = [
    "IssuedToken", "StsClient", "Transport", "UrllibTransport", "WSGITransport",
    "call_service", "parse_response", "raise_for_fault", "service_request",
]
