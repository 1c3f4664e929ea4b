"""Protect any WSGI SOAP service with SAML bearer tokens from a trusted STS.

::

    app = RelyingPartyMiddleware(
        app,
        audience="https://service.example/soap",
        issuer="https://sts.example/services/sts",
        trusted_certs=["sts.crt"],
    )

For each request the middleware reads the body (bounded), parses it with the
hardened parser, takes the one ``wsse:Security`` header, requires exactly one
SAML 1.1 or 2.0 assertion in it, verifies the assertion (see
:func:`wstrust_wsgi.saml.verify_assertion`) and only then calls the app, with

* ``environ["REMOTE_USER"]``: the assertion's NameID / NameIdentifier;
* ``environ["wstrust_wsgi.assertion"]``: a frozen :class:`~wstrust_wsgi.saml.VerifiedAssertion`;
* the request body still readable from ``wsgi.input``.

On any failure the app is not called; the client gets a SOAP fault in its
SOAP version, the log (``wstrust_wsgi.middleware``) the precise reason.

The token is parsed once, alone: its bytes are cut out of the request and the
rest of the envelope is checked with a placeholder in their place, whenever
that provably reaches the verdict of parsing everything together (otherwise
everything is parsed together); a verified token's bytes are remembered, so a
token reused by its client is recognised by a byte comparison and only the
rest of the envelope is parsed. See :mod:`wstrust_wsgi._reuse`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from lxml import etree
from webob import Request

from . import _wsgi, _xml, soap, wssecurity
from ._log import TrustedProxies
from ._reuse import FastAdmission
from .soap import UNDERSTOOD_HEADERS
from ._time import Clock, utcnow
from .errors import (
    ConfigurationError,
    InvalidSecurity,
    InvalidSecurityToken,
    MustUnderstand,
    RequestFailed,
    SecurityWarning,
    SoapFault,
)
from .keys import PathLike, load_certificates
from .saml import VerificationCache, VerifiedAssertion, policy, verify_assertion, version_of
from .stores import ReplayCache

log = logging.getLogger("wstrust_wsgi.middleware")

#: The environ key holding the :class:`VerifiedAssertion` of an admitted request.
ENVIRON_KEY = "wstrust_wsgi.assertion"

WSGIApp = _wsgi.WSGIApplication


def get_assertion(environ: _wsgi.WSGIEnvironment) -> VerifiedAssertion | None:
    """The verified assertion of the current request, if the middleware admitted it."""
    return environ.get(ENVIRON_KEY)


def _as_set(value: str | Iterable[str], name: str) -> frozenset[str]:
    values = frozenset([value] if isinstance(value, str) else value)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(f"{name}: give one non-empty string or several")
    return values


class RelyingPartyMiddleware:
    """WSGI middleware admitting only requests that carry a valid SAML bearer token.

    :param app: the WSGI app to protect.
    :param audience: this service's endpoint address(es), compared exactly with the
        assertion's AudienceRestriction.
    :param issuer: the STS issuer name(s) accepted.
    :param trusted_certs: certificates (paths, PEM bytes or objects) whose keys may sign
        tokens; several for key rollover. Certificates in messages are never trusted.
    :param clock_skew: tolerance on NotBefore / NotOnOrAfter and wsu:Timestamp.
    :param allow_sha1: accept rsa-sha1 / sha1 signatures (some AD FS and WSO2
        deployments still use them). Off by default; turning it on issues a
        :class:`~wstrust_wsgi.errors.SecurityWarning`.
    :param allow_get: pass GET requests (e.g. ``?wsdl``) to the app unauthenticated;
        off by default, when any non-POST request is answered 405.
    :param max_body: largest request body read, in bytes.
    :param replay_cache: when given, each assertion ID is admitted once only
        (one-time-use tokens); see :mod:`wstrust_wsgi.stores`. Off by default,
        as in WIF: clients reuse a bearer token for its lifetime, and the
        audience, time window and signature still bind it. A cache that fails
        refuses the request (fail closed).
    :param understood_headers: header blocks (Clark names) the wrapped app
        processes itself; any other block marked mustUnderstand and addressed
        to this node is refused with a MustUnderstand fault.
    :param verified_cache_size: how many verified assertions to remember (by the
        SHA-256 of their exact bytes) so that a token reused for its lifetime
        is verified and parsed once; 0 turns this off. Each request still
        parses the rest of its envelope with the hardened parser and
        re-checks the time window, the audience, the certificate's validity
        and (when configured) the replay cache; see
        :class:`~wstrust_wsgi.saml.VerificationCache`.
    :param trusted_proxies: addresses or networks of the proxies in front of the
        service whose ``X-Forwarded-For`` and ``X-Request-ID`` the log lines
        believe; none by default: the client is ``REMOTE_ADDR``. The request id
        is in ``environ["wstrust_wsgi.request_id"]`` for the app's own lines.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        audience: str | Iterable[str],
        issuer: str | Iterable[str],
        trusted_certs: Iterable[PathLike | bytes | x509.Certificate],
        clock_skew: timedelta = timedelta(minutes=5),
        allow_sha1: bool = False,
        allow_get: bool = False,
        clock: Clock = utcnow,
        max_body: int = _xml.DEFAULT_MAX_BYTES,
        replay_cache: ReplayCache | None = None,
        understood_headers: Iterable[str] = (),
        verified_cache_size: int = 10_000,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        if clock_skew < timedelta(0):
            raise ConfigurationError("clock_skew: must not be negative")
        if not isinstance(verified_cache_size, int) or verified_cache_size < 0:
            raise ConfigurationError("verified_cache_size: must be an integer >= 0 (0 turns the cache off)")
        if allow_sha1:
            warnings.warn("RelyingPartyMiddleware: allow_sha1=True accepts SHA-1 signatures and digests, "
                          "which are deprecated (collisions are practical)", SecurityWarning, stacklevel=2)
        self.app = app
        self.policy = policy(
            trusted_certs=load_certificates(trusted_certs),
            issuers=_as_set(issuer, "issuer"),
            audiences=_as_set(audience, "audience"),
            clock_skew=clock_skew,
            allow_sha1=allow_sha1,
        )
        self._proxies = TrustedProxies(trusted_proxies)
        self._allow_get = allow_get
        self._clock = clock
        self._max_body = max_body
        self._replay = replay_cache
        self._understood = UNDERSTOOD_HEADERS | frozenset(understood_headers)
        self._verified = VerificationCache(max_entries=verified_cache_size) if verified_cache_size else None
        self._fast = FastAdmission(security=self._security, policy=self.policy, verified=self._verified,
                                   max_entries=verified_cache_size)
        #: Off only in tests, to compare with the path that parses the token with its envelope.
        self._cutting = True

    def __call__(self, environ: _wsgi.WSGIEnvironment, start_response: _wsgi.StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method != "POST":
            if self._allow_get and method in ("GET", "HEAD"):
                return self.app(environ, start_response)
            return _wsgi.plain(405, "This service accepts SOAP requests by POST only.", [("Allow", "POST")])(
                environ, start_response
            )
        about = self._proxies.request_info(environ)
        content_type = environ.get("CONTENT_TYPE")
        version = soap.version_for_content_type(content_type)
        if version is None:
            log.warning("refused: content type %r is not SOAP (%s)", content_type, about, extra=about.extra)
            return _wsgi.plain(415, "Use text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2).")(
                environ, start_response
            )
        try:
            verified = self._check(environ)
        except Exception as error:  # a fault, or internal: never a traceback to the client, never the app
            return _wsgi.fault_answer(version, error, log, request=about)(environ, start_response)
        environ["REMOTE_USER"] = verified.subject
        environ[ENVIRON_KEY] = verified
        log.info("admitted: %r with SAML %s token %s from %s (%s)",
                 verified.subject, verified.version, verified.assertion_id, verified.issuer, about, extra=about.extra)
        return self.app(environ, start_response)

    def check(self, request: Request) -> VerifiedAssertion:
        """Read, parse and verify the request; the verified assertion or a SoapFault."""
        return self._check(request.environ)

    def _check(self, environ: _wsgi.WSGIEnvironment) -> VerifiedAssertion:
        body = _wsgi.read_environ_body(environ, self._max_body)
        content_type = environ.get("CONTENT_TYPE")
        now = self._clock()
        verified = self._fast.admit(body, content_type, now) if self._cutting else None
        if verified is None:
            verified = self._verify(body, content_type, now)
        if self._replay is not None:
            key = f"saml:{verified.issuer}:{verified.assertion_id}"
            expires = verified.not_on_or_after + self.policy.clock_skew
            try:
                first = self._replay.add(key, expires=expires, now=now)
            except SoapFault:
                raise
            except Exception as exc:  # fail closed: an unavailable cache admits nobody
                raise RequestFailed(f"replay cache unavailable: {exc!r}",
                                    reason="The service cannot check tokens right now.") from None
            if not first:
                raise InvalidSecurityToken(f"assertion {verified.assertion_id} replayed",
                                           reason="The security token has already been used.")
        return verified

    def _security(self, body: bytes, content_type: str | None, now: datetime) -> etree._Element:
        """Parse the envelope and return its one Security header, its Timestamp checked."""
        envelope = soap.parse_envelope(body, content_type=content_type, max_bytes=self._max_body)
        headers = envelope.header_blocks()
        for header in headers:
            if header.tag not in self._understood and envelope.must_understand(header):
                raise MustUnderstand(f"header {header.tag} has mustUnderstand and is not understood")
        security = wssecurity.security_header(headers, envelope.version.namespace)
        if security is None:
            raise InvalidSecurity("no wsse:Security header",
                                  reason="A wsse:Security header with a SAML assertion is required.")
        timestamp = wssecurity.read_timestamp(security)
        if timestamp is not None:
            wssecurity.check_timestamp(timestamp, now=now, skew=self.policy.clock_skew)
        return security

    def _verify(self, body: bytes, content_type: str | None, now: datetime) -> VerifiedAssertion:
        """The full path: parse everything, verify the one assertion (or find it in the cache)."""
        security = self._security(body, content_type, now)
        assertions = [el for el in security if isinstance(el.tag, str) and version_of(el) is not None]
        if len(assertions) != 1:
            raise InvalidSecurity(
                f"{len(assertions)} SAML assertions in wsse:Security, expected exactly 1",
                reason="The wsse:Security header must carry exactly one SAML assertion.",
            )
        return verify_assertion(assertions[0], self.policy, now=now, cache=self._verified)
