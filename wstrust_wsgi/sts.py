"""The Security Token Service: a WSGI app answering the WS-Trust Issue binding.

Modelled on WSO2 Identity Server's STS: secured with a UsernameToken policy,
only users holding an allowed role (``admin`` by default) get tokens, and
relying parties are registered by endpoint address, which the client names in
``wsp:AppliesTo`` and which becomes the token's audience.

One request, in order: HTTP checks (POST, SOAP media type, size) -> SOAP
envelope (version from the Content-Type) -> mustUnderstand headers -> action ->
``wst:RequestSecurityToken`` (WS-Trust 1.3 or 2005) -> ``wsse:Security``
(Timestamp, UsernameToken, digest nonce replay) -> password -> role -> RST
content (RequestType, KeyType, TokenType, AppliesTo) -> sign -> RSTR.
Every refusal is a SOAP fault with a client-safe reason; the precise reason is
logged on ``wstrust_wsgi.sts``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from lxml import etree
from webob import Request, Response

from . import _http, _xml, ns, soap, wsdl, wssecurity, wstrust
from ._time import Clock, utcnow
from .errors import (
    ConfigurationError,
    FailedAuthentication,
    InvalidRequest,
    InvalidSecurity,
    MustUnderstand,
    NotAuthorized,
    RequestFailed,
    SoapFault,
)
from .keys import SigningKey
from .saml import SAML2, SAML11, AssertionContent, AssertionSigner, SamlVersion, version_for_token_type
from .stores import (
    SIGNATURE_ALGORITHMS,
    Principal,
    RelyingParty,
    RelyingPartyStore,
    ReplayCache,
    SettingsStore,
    StsSettings,
    UserStore,
)
from .stores.memory import MemoryRelyingPartyStore, MemoryReplayCache

log = logging.getLogger("wstrust_wsgi.sts")

_KNOWN_ACTIONS = {d.issue_action: d for d in wstrust.DIALECTS.values()}
_SAML_BY_NAME = {SAML2.name: SAML2, SAML11.name: SAML11}


class TokenService:
    """A WS-Trust STS as a WSGI application (mount it at any path).

    All options are keyword-only and checked here, at construction; the
    request path only looks things up.

    The STS settings (issuer, allowed roles, default lifetime, clock skew,
    signature algorithm, PasswordText over plain HTTP) come either from the
    keyword arguments below or, when ``settings`` is a
    :class:`~wstrust_wsgi.stores.SettingsStore` (such as the SQL registry), from
    that store, re-read at most every ``settings_ttl`` (1 s) so that a change made
    with the CLI reaches a running STS without a restart.

    :param issuer: the Issuer written into every assertion.
    :param signing_key: the STS key and certificate (:meth:`SigningKey.from_files`).
    :param users: a :class:`~wstrust_wsgi.stores.UserStore`.
    :param relying_parties: registered relying parties, or a store of them.
    :param allowed_roles: roles that may request tokens (WSO2's "admin" checkbox).
    :param clock_skew: tolerance applied to every time comparison.
    :param digest_window: how old a PasswordDigest's Created may be.
    :param nonce_cache: replay cache for digest nonces (default: in-process).
    :param role_claim: the attribute name roles are released under.
    :param default_lifetime: lifetime for relying parties without their own.
    :param allow_plaintext_http: accept PasswordText over plain HTTP from a
        non-loopback peer (refused by default; a warning is logged when allowed).
    :param settings: a settings store overriding the settings arguments.
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        signing_key: SigningKey,
        users: UserStore,
        relying_parties: Iterable[RelyingParty] | RelyingPartyStore,
        allowed_roles: Iterable[str] = ("admin",),
        clock: Clock = utcnow,
        clock_skew: timedelta = timedelta(minutes=5),
        digest_window: timedelta = timedelta(minutes=5),
        nonce_cache: ReplayCache | None = None,
        role_claim: str = ns.CLAIM_ROLE,
        max_body: int = 256 * 1024,
        default_lifetime: timedelta = timedelta(minutes=5),
        allow_plaintext_http: bool = False,
        settings: SettingsStore | None = None,
        settings_ttl: float = 1.0,
    ) -> None:
        if settings is None:
            if not issuer:
                raise ConfigurationError("issuer: must be a non-empty string (or give a settings store)")
            settings = _Fixed(StsSettings(
                issuer=issuer, allowed_roles=frozenset(allowed_roles), default_lifetime=default_lifetime,
                clock_skew=clock_skew, allow_plaintext_http=allow_plaintext_http,
            ))
        elif issuer is not None:
            raise ConfigurationError("issuer: give it in the settings store, not beside it")
        if digest_window <= timedelta(0):
            raise ConfigurationError("digest_window: must be positive")
        self._settings_store = settings
        self._settings_ttl = settings_ttl
        self._settings_cache: tuple[float, StsSettings] | None = None
        current = self.settings()  # fails at start-up if the store cannot be read
        if current.allow_plaintext_http:
            log.warning("PasswordText over plain HTTP from non-loopback peers is ALLOWED: passwords may cross "
                        "the network in clear")
        self._signer = AssertionSigner(signing_key)
        self._users = users
        self._parties: RelyingPartyStore = (
            cast(RelyingPartyStore, relying_parties) if hasattr(relying_parties, "get")
            else MemoryRelyingPartyStore(cast(Iterable[RelyingParty], relying_parties))
        )
        self._clock = clock
        self._digest_window = digest_window
        self._nonces = nonce_cache if nonce_cache is not None else MemoryReplayCache()
        self._role_claim = role_claim
        self._max_body = max_body

    def settings(self) -> StsSettings:
        """The settings in force (cached for ``settings_ttl`` seconds), checked for sense."""
        cached = self._settings_cache
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._settings_ttl:
            return cached[1]
        current = self._settings_store.get_settings()
        if not current.issuer:
            raise ConfigurationError("settings: issuer must be a non-empty string")
        if current.clock_skew < timedelta(0) or current.default_lifetime <= timedelta(0):
            raise ConfigurationError("settings: clock_skew must be >= 0 and default_lifetime > 0")
        if current.signature_algorithm not in SIGNATURE_ALGORITHMS:
            raise ConfigurationError(f"settings: signature_algorithm must be one of {SIGNATURE_ALGORITHMS}")
        self._settings_cache = (now, current)
        return current

    @property
    def issuer(self) -> str:
        return self.settings().issuer

    @property
    def allowed_roles(self) -> frozenset[str]:
        return self.settings().allowed_roles

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        return self.respond(request)(environ, start_response)

    def respond(self, request: Request) -> Response:
        if request.method == "GET" and wsdl.is_wsdl_query(request.query_string):
            return _http.soap_response(200, "text/xml; charset=utf-8", wsdl.document(request.path_url))
        if request.method != "POST":
            return _http.plain(405, "The STS accepts SOAP requests by POST only.", [("Allow", "POST")])
        version = soap.version_for_content_type(request.content_type)
        if version is None:
            log.warning("refused: content type %r is not SOAP", request.content_type)
            return _http.plain(415, "Use text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2).")
        trust_ns = ns.WST13
        try:
            body = _http.read_body(request, self._max_body)
            envelope = soap.parse_envelope(
                body,
                content_type=request.headers.get("Content-Type"),
                soap_action=request.headers.get("SOAPAction"),
            )
            rst = envelope.body_child()
            dialect = wstrust.dialect_of(rst)
            if dialect is not None:
                trust_ns = dialect.namespace
            answer = self._issue(envelope, rst, request)
        except SoapFault as fault:
            log.warning("refused: %s: %s", type(fault).__name__, fault.detail)
            return _http.soap_response(*soap.fault_response(version, fault, trust_ns=trust_ns))
        except Exception:  # never a traceback to the client
            log.exception("refused: internal error")
            internal = RequestFailed("internal error")
            return _http.soap_response(*soap.fault_response(version, internal, trust_ns=trust_ns))
        return _http.soap_response(200, version.content_type(), answer)

    # ------------------------------------------------------------------ steps

    def _issue(self, envelope: soap.Envelope, rst: etree._Element, http: Request) -> bytes:
        now = self._clock()
        settings = self.settings()
        for header in envelope.header_blocks():
            if envelope.must_understand(header) and header.tag not in soap.UNDERSTOOD_HEADERS:
                raise MustUnderstand(f"header {header.tag} has mustUnderstand and is not understood")
        if envelope.action and envelope.action not in _KNOWN_ACTIONS:
            raise InvalidRequest(f"action {envelope.action!r} is not an Issue action",
                                 reason="Only the WS-Trust Issue binding is supported.")
        if wstrust.dialect_of(rst) is None:
            raise InvalidRequest(f"body element {rst.tag} is not a RequestSecurityToken",
                                 reason="The SOAP body must hold a wst:RequestSecurityToken.")
        principal = self._authenticate(envelope, now, settings, http)
        allowed = settings.allowed_roles
        if allowed and not (principal.roles & allowed):
            raise NotAuthorized(
                f"user {principal.name!r} holds roles {sorted(principal.roles)}, none of {sorted(allowed)}"
            )
        request = wstrust.parse_request(rst)
        party = self._relying_party(request)
        version = self._saml_version(request, party)
        lifetime = party.lifetime or settings.default_lifetime
        if request.lifetime_expires is not None and now < request.lifetime_expires < now + lifetime:
            lifetime = request.lifetime_expires - now
        content = AssertionContent(
            issuer=settings.issuer,
            subject=principal.name,
            audience=party.address,
            issue_instant=now,
            not_before=now,
            not_on_or_after=now + lifetime,
            attributes=self._attributes(principal, party),
        )
        assertion = self._signer.sign(version, content, algorithm=settings.signature_algorithm)
        answer = wstrust.response_envelope(
            envelope.version,
            request,
            assertion,
            token_type=request.token_type or version.token_type,
            version=version,
            assertion_id=content.assertion_id,
            created=now,
            expires=content.not_on_or_after,
            relates_to=self._relates_to(envelope),
        )
        log.info(
            "issued: SAML %s token %s to %r for %s (WS-Trust %s, SOAP %s, valid until %s)",
            version.name, content.assertion_id, principal.name, party.address,
            request.dialect.name, envelope.version.name, content.not_on_or_after.isoformat(),
        )
        return answer

    def _authenticate(self, envelope: soap.Envelope, now: datetime, settings: StsSettings, http: Request) -> Principal:
        skew = settings.clock_skew
        security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
        if security is None:
            raise InvalidSecurity("no wsse:Security header", reason="A wsse:Security header with a UsernameToken is required.")
        timestamp = wssecurity.read_timestamp(security)
        if timestamp is not None:
            wssecurity.check_timestamp(timestamp, now=now, skew=skew)
        token = wssecurity.read_username_token(security)
        if token is None:
            raise FailedAuthentication("no wsse:UsernameToken in the Security header",
                                       reason="A wsse:UsernameToken is required.")
        if not token.digest and not settings.allow_plaintext_http and not _protected_transport(http):
            raise FailedAuthentication(
                f"PasswordText from {http.remote_addr} over plain HTTP refused (allow_plaintext_http is off)",
                reason="PasswordText requires HTTPS; use HTTPS or PasswordDigest.",
            )
        if token.created is not None:
            if token.created > now + skew:
                raise FailedAuthentication(f"UsernameToken Created {token.created_text} is in the future")
            if token.created < now - self._digest_window - skew:
                raise FailedAuthentication(f"UsernameToken Created {token.created_text} is older than the window")
        principal = self._users.authenticate(token)
        if principal is None:
            raise FailedAuthentication(f"wrong password or unknown user {token.username!r}")
        if token.nonce is not None and token.created is not None:
            expires = token.created + self._digest_window + 2 * skew
            if not self._nonces.add(f"ut:{token.nonce.hex()}", expires=expires, now=now):
                raise FailedAuthentication(f"nonce replayed by {token.username!r}")
        return principal

    def _relying_party(self, request: wstrust.TokenRequest) -> RelyingParty:
        if request.applies_to is None:
            raise InvalidRequest("no wsp:AppliesTo", reason="wsp:AppliesTo naming the relying party is required.")
        party = self._parties.get(request.applies_to)
        if party is None:
            raise InvalidRequest(f"AppliesTo {request.applies_to!r} is not a registered relying party",
                                 reason="The AppliesTo address is not a registered relying party.")
        return party

    def _saml_version(self, request: wstrust.TokenRequest, party: RelyingParty) -> SamlVersion:
        if request.token_type is None:
            return _SAML_BY_NAME[party.token_type]
        version = version_for_token_type(request.token_type)
        if version is None:
            raise InvalidRequest(f"TokenType {request.token_type!r} not supported",
                                 reason="Only SAML 2.0 and SAML 1.1 tokens are issued.")
        return version

    def _attributes(self, principal: Principal, party: RelyingParty) -> dict[str, tuple[str, ...]]:
        attributes = {
            claim: values for claim, values in principal.claims.items()
            if party.claims is None or claim in party.claims
        }
        if principal.roles:
            attributes[self._role_claim] = tuple(sorted(principal.roles))
        return attributes

    @staticmethod
    def _relates_to(envelope: soap.Envelope) -> soap.RelatesTo | None:
        """The request's wsa:MessageID (1.0, else 2004/08), which the answer's wsa:RelatesTo echoes."""
        if envelope.header is None:
            return None
        for wsa in (ns.WSA10, ns.WSA04):
            message_id = _xml.child(envelope.header, wsa, "MessageID")
            if message_id is not None:
                return soap.RelatesTo(wsa, _xml.text(message_id))
        return None


class _Fixed:
    """Settings given as constructor arguments."""

    def __init__(self, settings: StsSettings) -> None:
        self._settings = settings

    def get_settings(self) -> StsSettings:
        return self._settings


def _protected_transport(http: Request) -> bool:
    """HTTPS, a loopback peer, or no network peer at all (an in-process call)."""
    if http.scheme == "https":
        return True
    peer = http.remote_addr
    if not peer:
        return True
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
