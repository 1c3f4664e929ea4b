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

from lxml import etree
from webob import Request

from . import _arguments, _wsgi, _xml, soap, wssecurity
from ._checks import Trace, record
from ._encrypted import DecryptionKeys, encrypted_tokens, is_encrypted_token, refuse_encrypted
from ._health import Health, Probe, replay_probe
from ._log import TrustedProxies
from ._proof import REQUIRES, Confirmation, ProofOfPossession
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
from .federation import follow
from .keys import CertificateSource, load_certificates
from .saml import (VerificationCache, VerifiedAssertion, check_client_address, check_unique_id, policy,
                   verify_assertion, version_of)
from .stores import ReplayCache
from .stores.tokens import IssuedTokenStore, refuse_revoked

log = logging.getLogger("wstrust_wsgi.middleware")

#: The environ key holding the :class:`VerifiedAssertion` of an admitted request.
ENVIRON_KEY = "wstrust_wsgi.assertion"

WSGIApp = _wsgi.WSGIApplication


def get_assertion(environ: _wsgi.WSGIEnvironment) -> VerifiedAssertion | None:
    """The verified assertion of the current request, if the middleware admitted it."""
    return environ.get(ENVIRON_KEY)


class RelyingPartyMiddleware:
    """WSGI middleware admitting only requests that carry a valid SAML bearer token.

    :param app: the WSGI app to protect.
    :param audience: this service's endpoint address(es), compared exactly with the
        assertion's AudienceRestriction.
    :param issuer: the STS issuer name(s) accepted.
    :param trusted_certs: the certificate (a path, PEM bytes or an object) whose key
        signs tokens, or several for key rollover. Certificates in messages are never trusted.
        Optional when ``metadata_url`` is given (then both are trusted).
    :param metadata_url: follow the STS's federation metadata (``https://`` URL or a file):
        every signing key of its STS role is trusted, refreshed in the background;
        see :mod:`wstrust_wsgi.federation`. The entityID must be the ``issuer``.
    :param metadata_refresh: time between two conditional requests (one hour by default).
    :param metadata_cache: a file keeping the last good copy, so a restart during an STS outage starts.
    :param metadata_signing_certs: certificates one of which must sign the metadata (pin the
        STS's next key too); without them only TLS vouches for it (plain http is refused).
    :param metadata_max_age: how long a copy the STS has not confirmed stays usable (7 days; None: forever).
    :param metadata_when_stale: past that age, ``"refuse"`` every token (fail closed) or ``"serve"`` on.
    :param clock_skew: tolerance on NotBefore / NotOnOrAfter and wsu:Timestamp, as a
        ``timedelta`` or a number of seconds.
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
    :param health_path: when given (e.g. ``"/health"``, compared with
        ``PATH_INFO``), a GET there is answered by the middleware, without a
        token, with 200 or 503 and a small JSON body saying whether a trusted
        certificate is valid now and the replay cache (if any) answers; off
        by default, since the path belongs to the wrapped app's URL space. With ``metadata_url``
        it also says whether the followed metadata is within ``metadata_max_age``.
    :param check_address: refuse a SAML 2.0 token whose bearer
        SubjectConfirmationData carries an ``Address`` other than the request's
        ``REMOTE_ADDR``. Off by default, as in WIF: behind NAT or a proxy the
        address the STS saw is not the one the service sees (behind a proxy,
        put a ``ProxyFix`` in front so that ``REMOTE_ADDR`` is the client's).
    :param trusted_proxies: addresses or networks of the proxies in front of the
        service whose ``X-Forwarded-For`` and ``X-Request-ID`` the log lines
        believe; none by default: the client is ``REMOTE_ADDR``. The request id
        is in ``environ["wstrust_wsgi.request_id"]`` for the app's own lines.
    :param decryption_keys: keys for encrypted tokens (``saml2:EncryptedAssertion``,
        or ``xenc:EncryptedData`` for SAML 1.1), several for rollover: each a
        (key file, certificate file) tuple, one PEM file or bytes holding both, or
        an object with ``private_key`` and ``certificate``; AES-GCM with RSA-OAEP
        only, unless a key is a :class:`~wstrust_wsgi.LegacyCbcKey` for one named
        peer. A decrypted token is verified as a plain one; every refusal of an
        encrypted token is the same ``DecryptionFailed`` fault. See :mod:`wstrust_wsgi._encrypted`.
    :param require_encryption: refuse plaintext tokens (needs ``decryption_keys``).
    :param revocation_store: the STS's issued-token store
        (:mod:`wstrust_wsgi.stores.tokens`, the same SQLite, PostgreSQL or
        Redis): a token cancelled (or renewed) at the STS is refused on every
        request after that, a reused one included; fails closed. Without it a
        cancelled bearer token is admitted until it expires.
    :param confirmation: ``"any"`` (bearer, or holder-of-key with a proof), ``"bearer"`` or
        ``"holder-of-key"``. A holder-of-key token is admitted only with a signature made with
        its proof key, which ``decryption_keys`` unwrap; see :mod:`wstrust_wsgi._proof`. Or, per
        audience, a mapping of some of ``audience`` to those words, ``"*"`` for the others
        (``"any"`` when absent): a token is held to the word of the audiences it names; naming
        two whose words conflict (bearer and holder-of-key), it is refused.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        audience: str | Iterable[str],
        issuer: str | Iterable[str],
        trusted_certs: CertificateSource | Iterable[CertificateSource] | None = None,
        clock_skew: timedelta | float = timedelta(minutes=5),
        allow_sha1: bool = False,
        allow_get: bool = False,
        clock: Clock = utcnow,
        max_body: int = _xml.DEFAULT_MAX_BYTES,
        replay_cache: ReplayCache | None = None,
        understood_headers: str | Iterable[str] = (),
        verified_cache_size: int = 10_000,
        health_path: str | None = None,
        check_address: bool = False,
        trusted_proxies: Iterable[str] = (),
        decryption_keys: DecryptionKeys = (),
        require_encryption: bool = False,
        metadata_url: str | None = None,
        metadata_refresh: timedelta | float = timedelta(hours=1),
        metadata_cache: str | None = None,
        metadata_signing_certs: CertificateSource | Iterable[CertificateSource] = (),
        metadata_max_age: timedelta | float | None = timedelta(days=7),
        metadata_when_stale: str = "refuse",
        revocation_store: IssuedTokenStore | None = None,
        confirmation: Confirmation = "any",
    ) -> None:
        # Every argument checked here, so that a mistake is a ConfigurationError naming it now, not a
        # TypeError at the first request (see wstrust_wsgi._arguments).
        skew = _arguments.duration(clock_skew, "clock_skew")
        _arguments.count(verified_cache_size, "verified_cache_size (0 turns the cache off)")
        _arguments.flag(check_address, "check_address")
        if _arguments.flag(allow_sha1, "allow_sha1"):
            warnings.warn("RelyingPartyMiddleware: allow_sha1=True accepts SHA-1 signatures and digests, "
                          "which are deprecated (collisions are practical)", SecurityWarning, stacklevel=2)
        self.app = _arguments.callable_(app, "app")
        issuers, audiences = _arguments.strings(issuer, "issuer"), _arguments.strings(audience, "audience")
        self._trust = follow(
            pinned=() if trusted_certs is None else load_certificates(trusted_certs), issuers=issuers,
            url=metadata_url, refresh=metadata_refresh, cache=metadata_cache, signing_certs=metadata_signing_certs,
            max_age=metadata_max_age, when_stale=metadata_when_stale, clock=clock,
            build=lambda certs: policy(trusted_certs=certs, issuers=issuers, audiences=audiences,
                                       clock_skew=skew, allow_sha1=allow_sha1))
        self.policy = self._trust.policy()
        self._proxies = TrustedProxies(trusted_proxies)
        self._allow_get = _arguments.flag(allow_get, "allow_get")
        self._clock = _arguments.callable_(clock, "clock")
        self._max_body = _arguments.count(max_body, "max_body", minimum=1)
        self._replay = (None if replay_cache is None
                        else _arguments.having(replay_cache, "replay_cache", "add", "a replay cache"))
        self._understood = UNDERSTOOD_HEADERS | frozenset(
            _arguments.strings(understood_headers, "understood_headers", allow_empty=True))
        self._verified = VerificationCache(max_entries=verified_cache_size) if verified_cache_size else None
        self._encrypted = encrypted = encrypted_tokens(decryption_keys, policy=self.policy, cache=self._verified)
        self._decrypt = encrypted.verify if encrypted is not None else refuse_encrypted
        self._require_encryption = _arguments.flag(require_encryption, "require_encryption")
        if require_encryption and encrypted is None:
            raise ConfigurationError("require_encryption: needs decryption_keys to decrypt tokens with")
        self._fast = FastAdmission(security=self._security, policy=self.policy, verified=self._verified,
                                   max_entries=verified_cache_size, encrypted=encrypted, plain=not require_encryption)
        self._check_address = check_address
        self._revoked = (None if revocation_store is None
                         else _arguments.having(revocation_store, "revocation_store", "get", "an issued-token store"))
        self._proofs = ProofOfPossession(confirmation=confirmation, keys=encrypted.keys if encrypted else (),
                                         allow_sha1=allow_sha1, clock_skew=skew, replay=self._replay,
                                         max_body=self._max_body, remember=verified_cache_size,
                                         audiences=audiences)
        #: Off only in tests, to compare with the path that parses the token with its envelope.
        self._cutting = True
        if health_path is not None and not (isinstance(health_path, str) and health_path.startswith("/")):
            raise ConfigurationError(f"health_path: must be a path starting with '/', not {health_path!r}")
        self._health_path = health_path
        probes: dict[str, Probe] = {"trusted_certs": self._a_trusted_cert_is_valid}
        if replay_cache is not None:
            probes["replay_cache"] = replay_probe(replay_cache, clock)
        if self._trust.trust is not None:  # a copy past metadata_max_age that refuses tokens is unhealthy
            probes["metadata"] = self._trust.trust.check_fresh
        if revocation_store is not None:
            probes["revocation_store"] = lambda: revocation_store.get("health-probe", clock())
        self._health = Health(probes, log)

    def _a_trusted_cert_is_valid(self) -> None:
        """Every token is refused when no trusted certificate is valid now: that is unhealthy too."""
        now = self._clock()
        if not any(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in self.policy.trusted_certs):
            raise InvalidSecurityToken("no trusted certificate is valid now")

    def __call__(self, environ: _wsgi.WSGIEnvironment, start_response: _wsgi.StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        health = self._health_path is not None and environ.get("PATH_INFO") == self._health_path
        if health and method in ("GET", "HEAD"):
            return self._health.response()(environ, start_response)
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
        log.info("admitted: %r with SAML %s token %s from %s%s (%s)", verified.subject, verified.version,
                 verified.assertion_id, verified.issuer, ", holder-of-key proven" if verified.proof_key else "",
                 about, extra=about.extra)
        return self.app(environ, start_response)

    def check(self, request: Request) -> VerifiedAssertion:
        """Read, parse and verify the request; the verified assertion or a SoapFault."""
        return self._check(request.environ)

    def _check(self, environ: _wsgi.WSGIEnvironment) -> VerifiedAssertion:
        body = _wsgi.read_environ_body(environ, self._max_body)
        content_type = environ.get("CONTENT_TYPE")
        now = self._clock()
        if self._trust.trust is not None:  # following metadata: refused when stale, a new policy when keys rolled
            self.policy = self._fast.policy = self._trust.policy()
            if self._encrypted is not None:
                self._encrypted.use_policy(self.policy)
        verified = self._fast.admit(body, content_type, now) if self._cutting else None
        if verified is None:
            verified = self._verify(body, content_type, now)
        verified = self._prove(verified, body, content_type, now)  # bearer, or holder-of-key proven
        if self._check_address:
            check_client_address(verified, environ.get("REMOTE_ADDR"))
        if self._revoked is not None:
            refuse_revoked(self._revoked, verified.assertion_id, now)
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
                raise InvalidSecurityToken(f"assertion {verified.assertion_id} replayed", check="replay",
                                           expected="first use", actual="used before",
                                           reason="The security token has already been used.")
        return verified

    def _security(self, body: bytes, content_type: str | None, now: datetime,
                  trace: Trace | None = None) -> etree._Element:
        """Parse the envelope and return its one Security header, its Timestamp checked."""
        envelope = soap.parse_envelope(body, content_type=content_type, max_bytes=self._max_body)
        record(trace, "envelope", "SOAP 1.1 or 1.2, as the content type says", envelope.version.name)
        headers = envelope.header_blocks()
        for header in headers:
            if header.tag not in self._understood and envelope.must_understand(header):
                raise MustUnderstand(f"header {header.tag} has mustUnderstand and is not understood",
                                     expected="only understood headers", actual=header.tag)
        record(trace, "must-understand", "only understood headers", "no other header has mustUnderstand")
        security = wssecurity.security_header(headers, envelope.version.namespace)
        if security is None:
            raise InvalidSecurity("no wsse:Security header", check="security-header", expected="1", actual="none",
                                  reason="A wsse:Security header with a SAML assertion is required.")
        record(trace, "security-header", "1", "1")
        timestamp = wssecurity.read_timestamp(security)
        if timestamp is not None:
            wssecurity.check_timestamp(timestamp, now=now, skew=self.policy.clock_skew)
        record(trace, "timestamp", "current, if present", "current" if timestamp else "no wsu:Timestamp")
        return security

    def _verify(self, body: bytes, content_type: str | None, now: datetime,
                trace: Trace | None = None) -> VerifiedAssertion:
        """The full path: parse everything, verify the one assertion (or find it in the cache)."""
        security = self._security(body, content_type, now, trace)
        assertions = [el for el in security if isinstance(el.tag, str)
                      and (version_of(el) is not None or is_encrypted_token(el))]
        if len(assertions) != 1:
            raise InvalidSecurity(
                f"{len(assertions)} SAML assertions in wsse:Security, expected exactly 1",
                reason="The wsse:Security header must carry exactly one SAML assertion.",
                check="one-token", expected="1", actual=len(assertions),
            )
        record(trace, "one-token", "1", "1")
        if is_encrypted_token(assertions[0]):
            # Decrypted and verified as one step with one fault (see _encrypted): the trace says only that
            # it passed; `wstrust-wsgi diagnose --decryption-key` decrypts first to show every check.
            verified = self._decrypt(assertions[0], now)
            record(trace, "decryption", "decrypts with a configured key, then passes every check",
                   "decrypted and admitted")
        elif self._require_encryption:
            raise InvalidSecurityToken("plaintext token, and require_encryption is set",
                                       reason="This service accepts encrypted security tokens only.",
                                       check="decryption", expected="an encrypted token", actual="plaintext")
        else:
            verified = verify_assertion(assertions[0], self.policy, now=now, cache=self._verified, trace=trace)
        check_unique_id(security, verified.assertion_id, assertions[0])
        record(trace, "unique-id", "held by the assertion only", "held by the assertion only")
        return verified

    def _prove(self, verified: VerifiedAssertion, body: bytes, content_type: str | None, now: datetime, *,
               consume: bool = True) -> VerifiedAssertion:
        """The proof-of-possession rules (:mod:`wstrust_wsgi._proof`); their faults name the ``proof`` check."""
        try:
            return self._proofs.check(verified, body, content_type, now, consume=consume)
        except SoapFault as fault:
            if not fault.check:
                fault.check = "proof"
            raise

    def _proof_expected(self, verified: VerifiedAssertion) -> str:
        """The proof check's expectation for ``verified``: the confirmation policy applied to it, and its source."""
        policy = self._proofs.confirmation
        try:
            word = self._proofs.policy_for(verified)
        except SoapFault:
            return f"confirmation policies that agree ({policy.describe()})"
        where = f" (configured: {policy.describe()})" if policy.by_audience else ""
        return f"confirmation policy {word!r}{where}: {REQUIRES[word]}"

    def explain(self, body: bytes, content_type: str | None, *, now: datetime | None = None,
                client_address: str | None = None) -> tuple[Trace, VerifiedAssertion | None]:
        """Verify ``body`` as a request, recording every check (what ``wstrust-wsgi diagnose`` prints).

        The full path with a :class:`~wstrust_wsgi._checks.Trace`: the same
        checks, no cache; the replay cache is not touched (diagnosing a token
        does not use it up); the client-address check runs when ``client_address`` is given (with
        ``check_address`` on), as it would against that REMOTE_ADDR.
        """
        trace = Trace()
        at = self._clock() if now is None else now
        try:
            verified = self._verify(body, content_type, at, trace)
        except Exception as fault:  # the fault the middleware would answer (or an internal error)
            trace.failed(fault)
            return trace, None
        try:
            proven = self._prove(verified, body, content_type, at, consume=False)
        except Exception as fault:
            step = trace.failed(fault)
            if step.check == "proof" and not step.expected:  # say which policy the proof was asked under
                step.expected = self._proof_expected(verified)
            return trace, None
        verified = proven
        trace.passed("proof", self._proof_expected(verified),  # diagnose's text prints the actual: name the word
                     (f"proven with its {verified.proof_key} key" if verified.confirmation == "holder-of-key"
                      else "a bearer token: no proof needed")
                     + f" (confirmation policy {self._proofs.policy_for(verified)!r})")
        if self._check_address and client_address is None:
            trace.skipped("client-address", "checked per request against REMOTE_ADDR (give the client's address)")
        elif self._check_address:
            try:
                check_client_address(verified, client_address)
            except Exception as fault:
                trace.failed(fault)
                return trace, None
            trace.passed("client-address", "the client's address, if the token names one", client_address)
        if self._revoked is None:
            trace.skipped("revocation", "no revocation_store")
        else:
            try:
                refuse_revoked(self._revoked, verified.assertion_id, at)
            except Exception as fault:
                trace.failed(fault)
                return trace, None
            trace.passed("revocation", "not cancelled or renewed at the STS", "not cancelled or renewed")
        if self._replay is not None:
            trace.skipped("replay", "not consulted, so that diagnosing a token does not use it up")
        return trace, verified
