"""The Security Token Service as a WSGI app: HTTP and SOAP checks, who is asking, then the binding.

One request, in order: HTTP checks (POST, SOAP media type, size) -> SOAP
envelope (version from the Content-Type) -> mustUnderstand headers -> action
(one a registered binding accepts) -> ``wst:RequestSecurityToken`` (WS-Trust
1.3 or 2005) -> who is asking (:mod:`.authentication`) -> the binding
registered for the RST's ``wst:RequestType`` (:mod:`.issue` for Issue).
Every refusal is a SOAP fault with a client-safe reason; the precise reason is
logged on ``wstrust_wsgi.sts``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import cast

from cryptography import x509
from lxml import etree
from webob import Request, Response

from .. import _arguments, _wsgi, ns, soap, wstrust
from .._health import HEALTH_PATH, Health, replay_probe
from .._log import RequestInfo, TrustedProxies
from .._time import Clock, utcnow
from ..errors import ConfigurationError, InvalidRequest, MustUnderstand
from ..keys import KeySource, SigningKey
from ..model import SIGNATURE_ALGORITHMS, RelyingParty, StsSettings, check_public_url
from ..stores import RelyingPartyStore, ReplayCache, SettingsStore, UserStore
from ..stores.lockout import LockoutStore, MemoryLockoutStore
from ..stores.tokens import IssuedTokenStore
from ..stores.memory import MemoryRelyingPartyStore, MemoryReplayCache
from . import mex, wsdl
from .published import METADATA_PATH, MetadataPublisher
from .signing import KeyFollower
from .authentication import UsernameAuthentication, protected_transport
from .lockout import Lockout, LockoutPolicy
from .binding import Binding, TrustCall
from .cancel import CancelBinding
from .delegation import Delegation, DelegationPolicy
from .issue import IssueBinding
from .lifecycle import IssuedTokens, TokenPolicy
from .renew import RenewBinding
from .validate import ValidateBinding

log = logging.getLogger("wstrust_wsgi.sts")

#: Looked up by the health check to prove the relying-party store answers; never registered.
_HEALTH_PROBE_ADDRESS = "urn:wstrust-wsgi:health-probe"


class TokenService:
    """A WS-Trust STS as a WSGI application (mount it at any path).

    All options are keyword-only and checked here, at construction; the
    request path only looks things up. Durations are a ``timedelta`` or a
    number of seconds; where several values are taken, one is taken as one
    (``allowed_roles="admin"``, ``relying_parties=RelyingParty(...)``).

    The STS settings (issuer, allowed roles, default lifetime, clock skew,
    signature algorithm, PasswordText over plain HTTP) come either from the
    keyword arguments below or, when ``settings`` is a
    :class:`~wstrust_wsgi.stores.SettingsStore` (such as the SQL registry), from
    that store, re-read at most every ``settings_ttl`` (1 s) so that a change made
    with the CLI reaches a running STS without a restart.

    The Issue binding is registered at construction; others join with
    :meth:`register_binding` (see :mod:`wstrust_wsgi.sts`).

    :param issuer: the Issuer written into every assertion.
    :param signing_key: the STS key and certificate (:meth:`SigningKey.from_files`), or a
        :class:`~wstrust_wsgi.keys.KeySource` whose primary key signs and whose
        published keys are in the metadata (the registry's rolling keys, see
        :mod:`wstrust_wsgi.sts.keyring`), re-read every ``settings_ttl``.
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
    :param health: answer ``GET <the STS's URL>/health`` with 200 or 503 and a
        small JSON body saying whether the settings store, the relying-party
        store and the nonce cache answer (see :mod:`wstrust_wsgi._health`); no
        secret and no store address is in it.
    :param lockout: failures that lock a user or an address, and for how long
        (:mod:`wstrust_wsgi.sts.lockout`; on by default, None turns it off).
    :param lockout_store: where failures are counted (default: this process's
        memory; give a registry or Redis store for several workers or hosts).
    :param public_url: the address clients reach this STS at, when that is not
        the request's own URL (behind a reverse proxy or TLS terminator, whose
        forwarded requests carry the inner scheme, host and port): what
        ``?wsdl`` advertises as every port's address. None (the default)
        advertises the URL each request came in on.
    :param metadata_path: answer ``GET`` at this path with the federation
        metadata (:mod:`wstrust_wsgi.sts.published`); AD FS's path by default,
        None turns it off. It is compared with ``PATH_INFO``: the deployment
        (:mod:`wstrust_wsgi.deploy`) routes it from the host's root to the STS.
    :param trusted_proxies: addresses or networks of the proxies in front of the
        STS whose ``X-Forwarded-For`` and ``X-Request-ID`` the log lines believe
        (see :mod:`wstrust_wsgi._log`); none by default: the client is ``REMOTE_ADDR``.
    :param issued_tokens: an issued-token store
        (:mod:`wstrust_wsgi.stores.tokens`): every token issued is recorded
        there, and the Validate, Renew and Cancel bindings are registered
        (:mod:`.lifecycle`); None (the default): Issue only.
    :param token_policy: who may validate and cancel, and the renewal window
        (:class:`~wstrust_wsgi.sts.lifecycle.TokenPolicy`); only with ``issued_tokens``.
    :param delegation: who may use OnBehalfOf and ActAs for whom
        (:class:`~wstrust_wsgi.sts.delegation.DelegationPolicy`); None (the
        default): both are refused.
    :param default_applies_to: the relying party (a registered address) an
        Issue request without ``wsp:AppliesTo`` gets its token for (WS-Trust
        1.3 section 4.1: AppliesTo is optional, the STS may know the scope;
        pyVmomi and vCenter's clients never send it); None (the default):
        such a request is refused. That party's rules apply as to any other.
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        signing_key: SigningKey | KeySource,
        users: UserStore,
        relying_parties: RelyingParty | Iterable[RelyingParty] | RelyingPartyStore,
        allowed_roles: str | Iterable[str] = ("admin",),
        clock: Clock = utcnow,
        clock_skew: timedelta | float = timedelta(minutes=5),
        digest_window: timedelta | float = timedelta(minutes=5),
        nonce_cache: ReplayCache | None = None,
        role_claim: str = ns.CLAIM_ROLE,
        max_body: int = 256 * 1024,
        default_lifetime: timedelta | float = timedelta(minutes=5),
        allow_plaintext_http: bool = False,
        settings: SettingsStore | None = None,
        settings_ttl: float = 1.0,
        health: bool = True,
        lockout: LockoutPolicy | None = LockoutPolicy(),
        lockout_store: LockoutStore | None = None,
        public_url: str | None = None,
        trusted_proxies: Iterable[str] = (),
        metadata_path: str | None = METADATA_PATH,
        issued_tokens: IssuedTokenStore | None = None,
        token_policy: TokenPolicy | None = None,
        delegation: DelegationPolicy | None = None,
        default_applies_to: str | None = None,
    ) -> None:
        # Every argument checked here, so that a mistake is a ConfigurationError naming it now, not a
        # TypeError at the first request (see wstrust_wsgi._arguments).
        self._proxies = TrustedProxies(trusted_proxies)
        if settings is None:
            if not issuer:
                raise ConfigurationError("issuer: must be a non-empty string (or give a settings store)")
            settings = _Fixed(StsSettings(
                issuer=_arguments.text(issuer, "issuer"),
                allowed_roles=frozenset(_arguments.strings(allowed_roles, "allowed_roles", allow_empty=True)),
                default_lifetime=_arguments.duration(default_lifetime, "default_lifetime", positive=True),
                clock_skew=_arguments.duration(clock_skew, "clock_skew"),
                allow_plaintext_http=_arguments.flag(allow_plaintext_http, "allow_plaintext_http"),
            ))
        elif issuer is not None:
            raise ConfigurationError("issuer: give it in the settings store, not beside it")
        if not isinstance(signing_key, SigningKey) and not callable(getattr(signing_key, "signing_keys", None)):
            raise ConfigurationError(f"signing_key: must be a SigningKey (SigningKey.from_files(key_path, cert_path)) "
                                     f"or a key source, not {_arguments.given(signing_key)}")
        if metadata_path is not None and not (isinstance(metadata_path, str) and metadata_path.startswith("/")):
            raise ConfigurationError(f"metadata_path: must be a path starting with '/' or None, not {metadata_path!r}")
        self.metadata_path = metadata_path
        window = _arguments.duration(digest_window, "digest_window", positive=True)
        self._public_url = check_public_url(public_url, "public_url") if public_url is not None else None
        self._settings_store = _arguments.having(settings, "settings", "get_settings", "a settings store")
        self._settings_ttl = _arguments.seconds(settings_ttl, "settings_ttl")
        self._settings_cache: tuple[float, StsSettings] | None = None
        current = self.settings()  # fails at start-up if the store cannot be read
        if current.allow_plaintext_http:
            log.warning("PasswordText over plain HTTP from non-loopback peers is ALLOWED: passwords may cross "
                        "the network in clear")
        nonces = (MemoryReplayCache() if nonce_cache is None
                  else _arguments.having(nonce_cache, "nonce_cache", "add", "a replay cache"))
        self._authentication = UsernameAuthentication(
            users=_arguments.having(users, "users", "authenticate", "a user store"), nonces=nonces,
            digest_window=window,
            lockout=None if lockout is None else Lockout(
                lockout, lockout_store if lockout_store is not None else MemoryLockoutStore()),
        )
        self._clock = _arguments.callable_(clock, "clock")
        self._max_body = _arguments.count(max_body, "max_body", minimum=1)
        self._bindings: dict[str, Binding] = {}
        self._actions: set[str] = set()
        parties = _relying_parties(relying_parties)
        self.keys = KeyFollower(signing_key, ttl=self._settings_ttl)
        role_claim = _arguments.text(role_claim, "role_claim")
        published = self._published_certificates
        tokens = _lifecycle(issued_tokens, token_policy, published, lambda: self.keys.current().held)
        if delegation is not None and not isinstance(delegation, DelegationPolicy):
            raise ConfigurationError(f"delegation: must be a DelegationPolicy, not {_arguments.given(delegation)}")
        acting = (Delegation(delegation, self._authentication, published, tokens).resolve
                  if delegation is not None else None)
        issue = IssueBinding(signer=self.keys, relying_parties=parties, role_claim=role_claim,
                             record=tokens.record_issue if tokens is not None else None, delegation=acting,
                             default_applies_to=(None if default_applies_to is None
                                                 else _arguments.text(default_applies_to, "default_applies_to")))
        self.register_binding(issue)
        if tokens is not None:
            for binding in (ValidateBinding(tokens), RenewBinding(tokens, issue, parties, nonces), CancelBinding(tokens)):
                self.register_binding(binding)
        self._metadata = MetadataPublisher(keys=self.keys.current, issuer=lambda: self.settings().issuer,
                                           claim_types=lambda: _claim_types(parties, role_claim),
                                           ttl=self._settings_ttl)
        self._health = Health({
            "settings": settings.get_settings,  # not self.settings(): its cache would hide an outage
            "relying_parties": lambda: parties.get(_HEALTH_PROBE_ADDRESS),
            "nonce_cache": replay_probe(nonces, clock),
            **({"issued_tokens": lambda: tokens.store.get(_HEALTH_PROBE_ADDRESS, clock())} if tokens else {}),
        }, log) if health else None

    def _published_certificates(self) -> tuple[x509.Certificate, ...]:
        """Our signing certificates as published now (next, primary, previous): a token we signed with any
        of them is ours, so Validate, Renew, Cancel and delegation follow a key rollover."""
        return self.keys.current().published

    def register_binding(self, binding: Binding) -> None:
        """Answer the RequestType URIs of ``binding`` with it; a URI already registered is refused."""
        taken = [uri for uri in binding.request_types if uri in self._bindings]
        if taken or not binding.request_types:
            raise ConfigurationError(f"register_binding: RequestType already registered or none given: {taken}")
        for uri in binding.request_types:
            self._bindings[uri] = binding
        self._actions.update(binding.actions)

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

    def __call__(self, environ: _wsgi.WSGIEnvironment, start_response: _wsgi.StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        return self.respond(request)(environ, start_response)

    def respond(self, request: Request) -> Response:
        if (self._health is not None and request.method in ("GET", "HEAD")
                and request.path_info.rstrip("/").endswith(HEALTH_PATH)):
            return self._health.response()
        about = self._proxies.request_info(request.environ)
        if request.method in ("GET", "HEAD") and request.path_info == self.metadata_path:
            return self._metadata.response(self._public_url or request.application_url)
        if mex.is_mex(request):
            return self._mex(request, about)
        if request.method == "GET" and wsdl.is_wsdl_query(request.query_string):
            address = self._public_url or request.path_url
            return _wsgi.soap_response(200, "text/xml; charset=utf-8", wsdl.document(address, self._operations()))
        if request.method != "POST":
            return _wsgi.plain(405, "The STS accepts SOAP requests by POST only.", [("Allow", "POST")])
        version = soap.version_for_content_type(request.content_type)
        if version is None:
            log.warning("refused: content type %r is not SOAP (%s)", request.content_type, about, extra=about.extra)
            return _wsgi.plain(415, "Use text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2).")
        trust_ns = ns.WST13
        try:
            body = _wsgi.read_body(request, self._max_body)
            envelope = soap.parse_envelope(
                body,
                content_type=request.headers.get("Content-Type"),
                soap_action=request.headers.get("SOAPAction"),
            )
            rst = envelope.body_child()
            dialect = wstrust.dialect_of(rst)
            if dialect is not None:
                trust_ns = dialect.namespace
            answer = self._answer(envelope, rst, request, about)
        except Exception as error:  # a fault, or internal: never a traceback to the client
            return _wsgi.fault_answer(version, error, log, trust_ns=trust_ns, request=about)
        return _wsgi.soap_response(200, version.content_type(), answer)

    def _mex(self, request: Request, about: RequestInfo) -> Response:
        """``<sts>/mex``: the WSDL by GET, or wrapped in wsx:Metadata for a WS-Transfer Get (:mod:`.mex`)."""
        address = self._public_url or request.application_url
        if request.method in ("GET", "HEAD"):
            return mex.get_response(address, self._operations())
        version = soap.version_for_content_type(request.content_type)
        if request.method != "POST" or version is None:
            return _wsgi.plain(405, "The MEX address answers GET, or a WS-Transfer Get by SOAP POST.",
                               [("Allow", "GET, POST")])
        try:
            envelope = soap.parse_envelope(_wsgi.read_body(request, self._max_body),
                                           content_type=request.headers.get("Content-Type"),
                                           soap_action=request.headers.get("SOAPAction"))
            answer = mex.transfer_get(envelope, address, self._operations())
        except Exception as error:  # a fault, or internal: never a traceback to the client
            return _wsgi.fault_answer(version, error, log, request=about)
        return _wsgi.soap_response(200, version.content_type(), answer)

    def _answer(self, envelope: soap.Envelope, rst: etree._Element, http: Request, about: RequestInfo) -> bytes:
        now = self._clock()
        settings = self.settings()
        for header in envelope.header_blocks():
            if envelope.must_understand(header) and header.tag not in soap.UNDERSTOOD_HEADERS:
                raise MustUnderstand(f"header {header.tag} has mustUnderstand and is not understood")
        if envelope.action and envelope.action not in self._actions:
            raise InvalidRequest(f"action {envelope.action!r} is not an action of a registered binding",
                                 reason=self._supported())
        dialect = wstrust.dialect_of(rst)
        if dialect is None:
            raise InvalidRequest(f"body element {rst.tag} is not a RequestSecurityToken",
                                 reason="The SOAP body must hold a wst:RequestSecurityToken.")
        principal = self._authentication.principal(envelope, http, now, settings, about.client)
        request_type = wstrust.request_type_of(rst)
        binding = self._bindings.get(request_type)
        if binding is None:
            raise InvalidRequest(f"RequestType {request_type!r} has no registered binding",
                                 reason=self._supported(dialect))
        if envelope.action and envelope.action not in binding.actions:
            raise InvalidRequest(f"action {envelope.action!r} does not go with RequestType {request_type!r}",
                                 reason=self._supported(dialect))
        return binding.answer(TrustCall(envelope, rst, dialect, principal, settings, now, soap.RelatesTo.of(envelope),
                                        about, protected=protected_transport(http)))

    def _operations(self) -> tuple[str, ...]:
        """The names of the registered bindings of the WS-Trust bindings (Issue first), for the WSDL."""
        names = {uri.rsplit("/", 1)[-1] for uri in self._bindings}
        return tuple(name for name in wstrust.BINDINGS if name in names)

    def _supported(self, dialect: wstrust.Dialect | None = None) -> str:
        """The client-safe reason naming what is answered: the bindings, or the dialect's RequestType URIs."""
        if dialect is None:
            names = sorted({uri.rsplit("/", 1)[-1] for uri in self._bindings})
            verb = "bindings are" if len(names) > 1 else "binding is"
            return f"Only the WS-Trust {', '.join(names)} {verb} supported."
        mine = sorted(uri for uri in self._bindings if uri.startswith(dialect.namespace + "/"))
        parts = [f"{uri.rsplit('/', 1)[-1]} request type ({uri})" for uri in mine]
        return f"Only the {', the '.join(parts)} {'are' if len(parts) > 1 else 'is'} supported."


def _lifecycle(store: IssuedTokenStore | None, token_policy: TokenPolicy | None,
               certificates: Callable[[], tuple[x509.Certificate, ...]],
               signing_keys: Callable[[], tuple[SigningKey, ...]]) -> IssuedTokens | None:
    """The lifecycle bindings' shared state, when a store is given; a policy without a store is a mistake."""
    if store is None:
        if token_policy is not None:
            raise ConfigurationError("token_policy: give issued_tokens too (Validate, Renew and Cancel need a store)")
        return None
    if token_policy is not None and not isinstance(token_policy, TokenPolicy):
        raise ConfigurationError(f"token_policy: must be a TokenPolicy, not {_arguments.given(token_policy)}")
    return IssuedTokens(store, certificates, token_policy or TokenPolicy(), signing_keys)


def _relying_parties(given: RelyingParty | Iterable[RelyingParty] | RelyingPartyStore) -> RelyingPartyStore:
    """A store as given; one RelyingParty or several in memory; anything else refused, naming the argument."""
    if callable(getattr(given, "get", None)):
        return cast(RelyingPartyStore, given)
    parties = _arguments.several(given, "relying_parties", single=(RelyingParty,),
                                 what="RelyingParty values (e.g. [RelyingParty(\"https://svc.example/soap\")]) "
                                      "or a relying-party store")
    for party in parties:
        if not isinstance(party, RelyingParty):
            raise ConfigurationError(f"relying_parties: every value must be a RelyingParty, "
                                     f"not {_arguments.given(party)}")
    return MemoryRelyingPartyStore(parties)


def _claim_types(parties: RelyingPartyStore, role_claim: str) -> list[str]:
    """The claim types the metadata offers: the role claim, and every claim a registered party is released."""
    found = [role_claim]
    listing = getattr(parties, "list_relying_parties", None)
    if callable(listing):
        for party in listing():
            found.extend(party.claims or ())
    return found


class _Fixed:
    """Settings given as constructor arguments."""

    def __init__(self, settings: StsSettings) -> None:
        self._settings = settings

    def get_settings(self) -> StsSettings:
        return self._settings
