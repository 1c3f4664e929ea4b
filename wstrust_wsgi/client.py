"""A WS-Trust client: request a token from an STS, then call a SOAP service with it.

The issued assertion is kept as the exact bytes the STS sent (re-serializing a
signed assertion can break its signature), located with expat's byte offsets
after the response has passed the hardened parser.

Transport is a parameter: :class:`UrllibTransport` speaks real HTTP,
:class:`WSGITransport` calls a WSGI app in-process with the same code path.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from webob import Request

from . import _arguments, _xml, ns, soap, wssecurity, wstrust
from ._time import Clock, utcnow
from .errors import ConfigurationError, MalformedMessage, RemoteFault, SecurityWarning, TransportError
from .saml import SAML2, SAML11, version_for_token_type
from ._issued import IssuedToken, parse_response, raise_for_fault, reference_to, reply_body
from .wstrust import delegation, lifecycle
from .wstrust.proof import DEFAULT_KEY_SIZE, EntropyMode, KeyKind, key_type_uri, request_elements, use_key_element
from .keys import SigningKey
from .xmldsig import HmacKey, certificate_base64
from .xmldsig.keyvalue import key_value_element

#: ``(url, body, headers) -> (status, content_type, body)``.
Transport = Callable[[str, bytes, dict[str, str]], tuple[int, str, bytes]]

_SOAP_VERSIONS = {"1.1": soap.SOAP11, "1.2": soap.SOAP12}
_DIALECTS = {"1.3": wstrust.WSTRUST13, "2005": wstrust.WSTRUST2005}
_TOKEN_TYPES = {"2.0": SAML2.token_type, "1.1": SAML11.token_type}
_KEY_TYPES: dict[str, KeyKind] = {"bearer": "bearer", "symmetric": "symmetric", "public": "public"}
_ENTROPY: dict[str, EntropyMode] = {"both": "both", "client": "client", "sts": "sts"}
#: How a PublicKey RST names the key in wst:UseKey (:meth:`StsClient.request_token`).
_USE_KEY = {"certificate": "certificate", "reference": "reference", "key-value": "key-value"}
#: Signature methods of a symmetric proof (HMAC-SHA1 for WCF and AD FS peers that use it).
_PROOF_METHODS = {"hmac-sha256": ns.ALG_HMAC_SHA256, "hmac-sha1": ns.ALG_HMAC_SHA1, "hmac-sha384": ns.ALG_HMAC_SHA384,
                  "hmac-sha512": ns.ALG_HMAC_SHA512}

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
    :param client_cert: authenticate by this certificate and key instead of a
        username and password (then give neither): each request carries the
        certificate as a BinarySecurityToken and is signed with its key over
        the Timestamp and Body, as AD FS ``certificatemixed`` expects. The STS
        must have the certificate registered to a user.

    A client that would send PasswordText over plain ``http`` to a host other
    than a loopback address (with any transport but :class:`WSGITransport`,
    which stays in-process) issues a :class:`~wstrust_wsgi.errors.SecurityWarning`
    here: the password would cross the network in clear.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        digest: bool = False,
        soap_version: str = "1.2",
        trust_version: str = "1.3",
        timestamp: bool = True,
        transport: Transport | None = None,
        clock: Clock = utcnow,
        client_cert: SigningKey | None = None,
    ) -> None:
        # Every argument checked here, so that a mistake is a ConfigurationError naming it now, not a
        # TypeError when the first token is requested (see wstrust_wsgi._arguments).
        self.url = _arguments.text(url, "url")
        if client_cert is not None and not isinstance(client_cert, SigningKey):
            raise ConfigurationError(f"client_cert: must be a SigningKey (SigningKey.from_files(key, cert)), "
                                     f"not {_arguments.given(client_cert)}")
        self.client_cert = client_cert
        if client_cert is not None and (username is not None or password is not None):
            raise ConfigurationError("client_cert: authenticate with a certificate or a username and password, "
                                     "not both (the STS refuses a request carrying both as ambiguous)")
        self.username = "" if client_cert is not None else _arguments.text(username, "username")
        if client_cert is None and not isinstance(password, str):
            raise ConfigurationError(f"password: must be a string, not {type(password).__name__}")
        self._password = password or ""
        self.digest = _arguments.flag(digest, "digest")
        self.soap = _choice(_SOAP_VERSIONS, soap_version, "soap_version")
        self.dialect = _choice(_DIALECTS, trust_version, "trust_version")
        self.timestamp = _arguments.flag(timestamp, "timestamp")
        self.transport: Transport = (UrllibTransport() if transport is None
                                     else _arguments.callable_(transport, "transport"))
        self._clock = _arguments.callable_(clock, "clock")
        if (client_cert is None and not digest and not isinstance(self.transport, WSGITransport)
                and _plain_http_to_another_host(url)):
            warnings.warn(f"StsClient: PasswordText to {url} over plain HTTP: the password crosses the network in "
                          "clear (use https, or digest=True)", SecurityWarning, stacklevel=2)

    def build_request(self, applies_to: str, *, token_type: str | None = None, key_type: str = "bearer",
                      key_size: int = DEFAULT_KEY_SIZE, entropy: str = "both", client_key: SigningKey | None = None,
                      allow_renewal: bool | None = None, renew_after_expiry: bool | None = None,
                      claims: Iterable[str | tuple[str, bool]] | None = None,
                      claims_dialect: str = ns.CLAIMS_IDENTITY, on_behalf_of: Delegated | None = None,
                      act_as: Delegated | None = None, use_key: str = "certificate") -> bytes:
        """The RST envelope, for inspection or for sending by other means (see :meth:`request_token`).

        ``allow_renewal`` and ``renew_after_expiry``, when given, ask for
        ``wst:Renewing Allow= OK=``: whether the token may be renewed, and
        after it expired (the STS's defaults: yes, and no). ``claims`` asks
        for these claim URIs only (``wst:Claims`` in ``claims_dialect``, the
        identity dialect by default): each a required URI, or a ``(URI,
        optional)`` pair. ``on_behalf_of``, ``act_as``: see :meth:`request_token`.
        """
        return self._build(applies_to, token_type, key_type, key_size, entropy, client_key,
                           renewing=(allow_renewal, renew_after_expiry), claims=claims, claims_dialect=claims_dialect,
                           on_behalf_of=on_behalf_of, act_as=act_as, use_key=use_key)[0]

    def _build(self, applies_to: str, token_type: str | None, key_type: str, key_size: int,
               entropy: str, client_key: SigningKey | None = None, *,
               renewing: tuple[bool | None, bool | None] = (None, None),
               claims: Iterable[str | tuple[str, bool]] | None = None,
               claims_dialect: str = ns.CLAIMS_IDENTITY, on_behalf_of: Delegated | None = None,
               act_as: Delegated | None = None, use_key: str = "certificate") -> tuple[bytes, bytes | None]:
        """The RST envelope and the client entropy it carries (None when it carries none)."""
        kind: KeyKind = _choice(_KEY_TYPES, key_type, "key_type")
        form = _choice(_USE_KEY, use_key, "use_key")
        mode: EntropyMode = _choice(_ENTROPY, entropy, "entropy")
        if not isinstance(key_size, int) or key_size % 8 or not 128 <= key_size <= 512:
            raise ConfigurationError(f"key_size: must be a multiple of 8 from 128 to 512 bits, not "
                                     f"{_arguments.given(key_size)}")
        if token_type is not None and not isinstance(token_type, str):
            raise ConfigurationError(f"token_type: must be '2.0', '1.1' or a URI (a string), "
                                     f"not {_arguments.given(token_type)}")
        now = self._clock()
        security = self._security(now)
        t = self.dialect.namespace
        rst = etree.Element(_xml.qname(t, "RequestSecurityToken"), nsmap={"wst": t})
        if token_type is not None:
            etree.SubElement(rst, _xml.qname(t, "TokenType")).text = _TOKEN_TYPES.get(token_type, token_type)
        etree.SubElement(rst, _xml.qname(t, "RequestType")).text = self.dialect.request_type_issue
        applies = etree.SubElement(rst, _xml.qname(ns.WSP12, "AppliesTo"), nsmap={"wsp": ns.WSP12})
        reference = etree.SubElement(applies, _xml.qname(ns.WSA10, "EndpointReference"), nsmap={"wsa": ns.WSA10})
        etree.SubElement(reference, _xml.qname(ns.WSA10, "Address")).text = applies_to
        etree.SubElement(rst, _xml.qname(t, "KeyType")).text = key_type_uri(self.dialect, kind)
        nonce = request_elements(rst, self.dialect, key_size=key_size, entropy=mode) if kind == "symmetric" else None
        allow_renewal, renew_after_expiry = renewing
        if allow_renewal is not None or renew_after_expiry is not None:
            asked = etree.SubElement(rst, _xml.qname(t, "Renewing"))
            for name, flag in (("Allow", allow_renewal), ("OK", renew_after_expiry)):
                if flag is not None:
                    asked.set(name, "true" if _arguments.flag(flag, name) else "false")
        if claims is not None:
            wanted = etree.SubElement(rst, _xml.qname(t, "Claims"), Dialect=claims_dialect,
                                      nsmap={"ic": ns.CLAIMS_IDENTITY})
            for claim in ([claims] if isinstance(claims, str) else claims):
                uri, optional = (claim, False) if isinstance(claim, str) else claim
                etree.SubElement(wanted, _xml.qname(ns.CLAIMS_IDENTITY, "ClaimType"), Uri=uri,
                                 Optional="true" if optional else "false")
        spliced = delegation.add_delegation(rst, on_behalf_of=_held(on_behalf_of, "on_behalf_of"),
                                            act_as=_held(act_as, "act_as"), digest=self.digest, now=now)
        if self.client_cert is not None and spliced:
            raise ConfigurationError("client_cert: a SAML token in on_behalf_of or act_as with a "
                                     "certificate-authenticated request is not supported (a spliced token would be "
                                     "signed as re-serialized)")
        if kind == "public":  # signed last: the signature covers the whole Body
            if spliced:
                raise ConfigurationError("key_type='public' with a SAML token in on_behalf_of or act_as is not "
                                         "supported (the token would have to be signed as re-serialized)")
            if self.client_cert is not None:  # the certificate that authenticates is the key bound
                if client_key is not None and client_key.certificate != self.client_cert.certificate:
                    raise ConfigurationError("client_cert: key_type='public' binds the client certificate; another "
                                             "client_key would need a second signature (one signature per request)")
                client_key = self.client_cert
            return self._signed_with_use_key(rst, security, client_key, now, form), None
        if self.client_cert is not None:
            return self._signed_with_certificate(_envelope_tree(self.soap, security, rst)), nonce
        envelope = soap.envelope(self.soap, rst, [security])
        return (envelope.replace(wstrust.TOKEN_MARKER, spliced, 1) if spliced else envelope), nonce

    def _security(self, now: datetime) -> etree._Element:
        """The Security header: a Timestamp (always when a certificate signs), and the UsernameToken (unless one
        signs)."""
        parts = [wssecurity.build_timestamp(now)] if self.timestamp or self.client_cert is not None else []
        if self.client_cert is None:
            parts.append(wssecurity.build_username_token(self.username, self._password, digest=self.digest, now=now))
        return wssecurity.security_element(self.soap.namespace, *parts)

    def _signed_with_certificate(self, envelope: etree._Element) -> bytes:
        """An X.509-authenticated request (AD FS ``certificatemixed``): the client certificate as a
        BinarySecurityToken, and a signature with its key over the Timestamp, the Body and addressing headers."""
        assert self.client_cert is not None
        security = _xml.child(_xml.child(envelope, self.soap.namespace, "Header"), ns.WSSE, "Security")
        wssecurity.sign_message(envelope, security, self.client_cert.private_key, method="rsa-sha256",
                                binary_token=self.client_cert.certificate)
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")

    def _signed_with_token_key(self, envelope: etree._Element, token: IssuedToken, now: datetime) -> bytes:
        """A Renew of a holder-of-key token: signed with its proof key over the Timestamp and the Body (which
        holds the token), its KeyInfo naming the token, as :func:`call_service` proves it to a service."""
        security = _xml.child(_xml.child(envelope, self.soap.namespace, "Header"), ns.WSSE, "Security")
        if security.find(_xml.qname(ns.WSU, "Timestamp")) is None:
            security.insert(0, wssecurity.build_timestamp(now))
        _sign_with_token_key(envelope, security, token, ns.ALG_HMAC_SHA256)
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")

    def _signed_with_use_key(self, rst: etree._Element, security: etree._Element, client_key: SigningKey | None,
                             now: datetime, form: str = "certificate") -> bytes:
        """A PublicKey RST: UseKey names ``client_key`` (its certificate, a reference to that certificate as a
        BinarySecurityToken of the Security header, or its bare ``ds:KeyValue``, as ``form`` says), and a
        signature with it over the Body (holding the UseKey) and a Timestamp proves possession (UseKey/@Sig
        names that signature). A certificate-authenticated client's one signature is both."""
        if not isinstance(client_key, SigningKey):
            raise ConfigurationError(f"client_key: key_type='public' needs the client's SigningKey "
                                     f"(SigningKey.from_files(key, cert)), not {_arguments.given(client_key)}")
        signature_id = f"SIG-{uuid.uuid4().hex}"
        token_id = f"X509-{uuid.uuid4().hex}" if form == "reference" or self.client_cert is not None else None
        key: str | etree._Element = certificate_base64(client_key.certificate)
        if form == "key-value":
            key = key_value_element(client_key.private_key.public_key())
        elif form == "reference":
            key = etree.Element(_xml.qname(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE})
            etree.SubElement(key, _xml.qname(ns.WSSE, "Reference"), URI=f"#{token_id}", ValueType=ns.WSSE_X509V3)
        use_key_element(rst, self.dialect, key, signature_id)
        if security.find(_xml.qname(ns.WSU, "Timestamp")) is None:
            security.insert(0, wssecurity.build_timestamp(now))
        envelope = _envelope_tree(self.soap, security, rst)
        signature = wssecurity.sign_message(
            envelope, security, client_key.private_key, method="rsa-sha256", signature_id=signature_id,
            certificate=client_key.certificate if token_id is None else None,
            binary_token=client_key.certificate if token_id is not None else None, binary_token_id=token_id)
        if form == "key-value" and token_id is None:  # KeyInfo is not signed: name the bare key, not a certificate
            key_info = signature.find(_xml.qname(ns.DS, "KeyInfo"))
            assert key_info is not None
            key_info[:] = [key_value_element(client_key.private_key.public_key())]
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")

    def request_token(self, applies_to: str, *, token_type: str | None = None, key_type: str = "bearer",
                      key_size: int = DEFAULT_KEY_SIZE, entropy: str = "both", client_key: SigningKey | None = None,
                      allow_renewal: bool | None = None, renew_after_expiry: bool | None = None,
                      claims: Iterable[str | tuple[str, bool]] | None = None,
                      claims_dialect: str = ns.CLAIMS_IDENTITY, on_behalf_of: Delegated | None = None,
                      act_as: Delegated | None = None, use_key: str = "certificate") -> IssuedToken:
        """Ask for a token for ``applies_to``; ``token_type`` is ``"2.0"``, ``"1.1"`` or a URI.

        ``key_type="symmetric"`` asks for a holder-of-key token whose proof key
        (``key_size`` bits) the returned token holds: made from both sides'
        entropy by P_SHA1 (``entropy="both"``, the default), the client's own
        (``"client"``) or the STS's (``"sts"``, sent back in clear: TLS only).
        ``key_type="public"`` binds the token to ``client_key`` (a
        :class:`~wstrust_wsgi.SigningKey`: the client's RSA key and certificate),
        whose possession the request proves by a signature; calls are then
        signed with that key (RSA-SHA256). ``use_key`` says how the RST names
        it: ``"certificate"`` (``ds:X509Data``, the default), ``"reference"``
        (a ``wsse:SecurityTokenReference`` to the certificate as a
        BinarySecurityToken in the Security header) or ``"key-value"`` (the
        bare key, ``ds:KeyValue``; the token then carries no certificate). A
        ``client_cert`` client binds its own certificate (``client_key`` may
        be omitted): the one signature authenticates and proves. ``allow_renewal=False`` asks for a
        token that cannot be renewed, ``renew_after_expiry=True`` for one that
        can be renewed for a while after it expired (see :meth:`renew`);
        ``claims`` asks for those claims only (see :meth:`build_request`).
        ``on_behalf_of`` asks for a token issued to the identity it carries,
        ``act_as`` for one of the requester's own recording that identity as
        actor (both only where the STS's delegation policy allows): an
        :class:`IssuedToken` or a SAML assertion's bytes (spliced unchanged), or
        a ``(username, password)`` pair.
        """
        body, nonce = self._build(applies_to, token_type, key_type, key_size, entropy, client_key,
                                  renewing=(allow_renewal, renew_after_expiry), claims=claims,
                                  claims_dialect=claims_dialect, on_behalf_of=on_behalf_of, act_as=act_as,
                                  use_key=use_key)
        status, answer = _post(self.transport, self.url, self.soap, self.dialect.issue_action, body)
        try:
            token = parse_response(answer, status=status, key_type=key_type, client_entropy=nonce, key_size=key_size)
            holder = self.client_cert if self.client_cert is not None else client_key
            if key_type == "public" and holder is not None:
                return dataclasses.replace(token, private_key=holder.private_key)
            return token
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
        """A new token in place of ``token`` (same subject and relying party, new ID and lifetime).

        A holder-of-key ``token`` (one :meth:`request_token` returned, holding its
        proof key or the client's private key) is renewed with a proof of
        possession: the request is signed with that key (HMAC-SHA256, or
        RSA-SHA256 for PublicKey) over its Body and a Timestamp, naming the
        token. The STS keeps the key binding and sends no new key; the token
        returned holds the same proof key, so :func:`call_service` proves it as before.

        An encrypted ``token`` (one the STS encrypted for the relying party) is
        sent exactly as received: the STS, which cannot decrypt it, finds its
        record by the digest of those bytes. The renewed token is encrypted too.
        """
        answer = self._ask("Renew", token, answer=lambda status, data: parse_response(data, status=status))
        if isinstance(token, IssuedToken) and token.key_type != "bearer":
            return dataclasses.replace(answer, proof_key=token.proof_key, private_key=token.private_key,
                                       key_type=token.key_type)
        return answer

    def cancel(self, token: IssuedToken | bytes) -> None:
        """Cancel ``token`` at the STS; returns when the STS answered ``RequestedTokenCancelled``."""
        if not lifecycle.read_cancelled(self._ask("Cancel", token)):
            raise TransportError(f"{self.url}: the Cancel answer holds no wst:RequestedTokenCancelled", url=self.url)

    def _certificate_is_the_key(self, token: IssuedToken) -> bool:
        """Whether ``token`` is bound to this client's certificate key: its X.509 signature then proves both."""
        if self.client_cert is None or token.private_key is None or token.key_type != "public":
            return False
        return token.private_key.public_key().public_numbers() == \
            self.client_cert.certificate.public_key().public_numbers()  # type: ignore[union-attr]

    def _ask(self, binding: str, token: IssuedToken | bytes, *, token_type: str | None = None,
             answer: Callable[[int, bytes], T] | None = None) -> Any:
        """Send a ``binding`` request naming ``token``; ``answer(status, bytes)``, or the reply's Body."""
        assertion = token.assertion if isinstance(token, IssuedToken) else token
        if not isinstance(assertion, bytes):
            raise ConfigurationError(f"token: must be an IssuedToken or the assertion's bytes, "
                                     f"not {_arguments.given(token)}")
        if isinstance(token, IssuedToken) and token.encrypted and binding != "Renew":
            assertion = reference_to(token, binding)  # Renew sends it as received (the STS knows its digest)
        now = self._clock()
        rst = lifecycle.target_request(self.dialect, binding, token_type=token_type)
        envelope = soap.envelope(self.soap, rst, [self._security(now)]).replace(wstrust.TOKEN_MARKER, assertion, 1)
        if binding == "Renew" and isinstance(token, IssuedToken) and _signing_key(token) is not None \
                and not self._certificate_is_the_key(token):
            if self.client_cert is not None:  # WS-Trust 1.3 section 5: prove possession of the token's key
                raise ConfigurationError("renew: this holder-of-key token's key is not the client certificate's, "
                                         "and a certificate-authenticated request carries one signature; "
                                         "authenticate by password to renew it")
            envelope = self._signed_with_token_key(_xml.parse(envelope), token, now)
        elif self.client_cert is not None:  # lxml keeps the spliced token's bytes as parsed: its signature holds
            envelope = self._signed_with_certificate(_xml.parse(envelope))
        status, data = _post(self.transport, self.url, self.soap, self.dialect.action(binding), envelope)
        if answer is not None:
            return answer(status, data)
        try:
            root = _xml.parse(data)
        except MalformedMessage as exc:
            raise TransportError(f"{self.url} answered HTTP {status} with something that is not XML ({exc})",
                                 url=self.url) from None
        raise_for_fault(root, status)
        return reply_body(root, f"{self.url} answered HTTP {status} with", url=self.url, expected=self.soap)


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
    signature_algorithm: str = "hmac-sha256",
    clock: Clock = utcnow,
) -> tuple[bytes, dict[str, str]]:
    """The envelope and headers :func:`call_service` posts: ``payload`` in the Body, the token in ``wsse:Security``.

    A token holding a proof key (holder-of-key) is proven: a fresh
    ``wsu:Timestamp`` and a signature with the key over the Body and the
    Timestamp (``signature_algorithm``: ``"hmac-sha256"``, or ``"hmac-sha1"``
    for WCF and AD FS peers), its KeyInfo a reference to the assertion
    (:func:`wstrust_wsgi.wssecurity.sign_message`).

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
    if isinstance(token, IssuedToken) and (token.proof_key is not None or token.private_key is not None):
        method = (ns.ALG_RSA_SHA256 if token.private_key is not None
                  else _choice(_PROOF_METHODS, signature_algorithm, "signature_algorithm"))
        return _proven(version, body_el, token, method, clock()), _headers(version, action)
    security = wssecurity.security_element(version.namespace)
    security.append(etree.Comment(wstrust.TOKEN_MARKER[4:-3].decode()))
    envelope = soap.envelope(version, body_el, [security]).replace(wstrust.TOKEN_MARKER, assertion, 1)
    return envelope, _headers(version, action)


def _proven(version: soap.SoapVersion, body: etree._Element, token: IssuedToken, method: str,
            now: datetime) -> bytes:
    """The envelope of :func:`service_request` for a holder-of-key token: signed with its proof key."""
    security = wssecurity.security_element(version.namespace, wssecurity.build_timestamp(now))
    security.append(etree.Comment(wstrust.TOKEN_MARKER[4:-3].decode()))
    envelope = _envelope_tree(version, security, body)
    _sign_with_token_key(envelope, security, token, method)
    serialized = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
    return serialized.replace(wstrust.TOKEN_MARKER, token.assertion, 1)


def _signing_key(token: IssuedToken) -> HmacKey | rsa.RSAPrivateKey | None:
    """What proves possession of ``token``: the client's private key (PublicKey), its proof key, or None."""
    if token.private_key is not None:
        return token.private_key
    return HmacKey(token.proof_key) if token.proof_key is not None else None


def _sign_with_token_key(envelope: etree._Element, security: etree._Element, token: IssuedToken,
                         hmac_method: str) -> None:
    """Sign ``envelope``'s Body, Timestamp and addressing headers with ``token``'s key, naming the token."""
    saml_version = version_for_token_type(token.token_type)
    key = _signing_key(token)
    if saml_version is None or key is None:
        raise ConfigurationError(f"token: a proof key is used with SAML 2.0 or 1.1 tokens, not {token.token_type!r}")
    wssecurity.sign_message(envelope, security, key,
                            method=ns.ALG_RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else hmac_method,
                            token_type=saml_version.profile_token_type,
                            value_type=saml_version.key_identifier_value_type, token_id=token.assertion_id)


def _envelope_tree(version: soap.SoapVersion, security: etree._Element, body: etree._Element) -> etree._Element:
    """An envelope with ``security`` as its one header and ``body`` in its Body, declaring wsu for the Ids."""
    envelope = etree.Element(_xml.qname(version.namespace, "Envelope"), nsmap={"s": version.namespace, "wsu": ns.WSU})
    etree.SubElement(envelope, _xml.qname(version.namespace, "Header")).append(security)
    etree.SubElement(envelope, _xml.qname(version.namespace, "Body")).append(body)
    return envelope


def call_service(
    url: str,
    token: IssuedToken | bytes,
    payload: etree._Element | bytes,
    *,
    soap_version: str = "1.1",
    action: str = "",
    transport: Transport | None = None,
    signature_algorithm: str = "hmac-sha256",
) -> etree._Element:
    """Call a SOAP service with the token in ``wsse:Security``; the response Body's first child.

    The assertion bytes are spliced into the envelope unchanged (:func:`service_request`);
    a holder-of-key token's request is signed with its proof key.
    """
    version = _choice(_SOAP_VERSIONS, soap_version, "soap_version")
    envelope, _ = service_request(token, payload, soap_version=soap_version, action=action,
                                  signature_algorithm=signature_algorithm)
    status, answer = _post(transport or UrllibTransport(), url, version, action, envelope)
    try:
        root = _xml.parse(answer)
    except MalformedMessage as exc:
        raise TransportError(f"{url} answered HTTP {status} with something that is not XML ({exc})", url=url) from None
    raise_for_fault(root, status)
    response_body = reply_body(root, f"{url} answered HTTP {status} with", url=url, expected=version)
    first = next((c for c in response_body if isinstance(c.tag, str)), None)
    if first is None:
        raise TransportError(f"{url} answered an empty SOAP body", url=url)
    return first



__all__ = [
    "IssuedToken", "RemoteFault", "StsClient", "Transport", "UrllibTransport", "WSGITransport",
    "call_service", "parse_response", "raise_for_fault", "service_request",
]
