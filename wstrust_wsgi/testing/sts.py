""":class:`InProcessSts`: the real STS in the test's process, and real clients bound to it.

A round-trip test asks this STS for a token with :class:`~wstrust_wsgi.StsClient`
over :class:`~wstrust_wsgi.WSGITransport` (no server, no port), then calls the
service under test with it: the real issue-then-call path, users and relying
parties given as plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509

from .._time import Clock, utcnow
from ..client import IssuedToken, StsClient, WSGITransport
from ..errors import ConfigurationError
from ..keys import SigningKey
from ..model import RelyingParty, User
from ..stores.memory import MemoryUserStore
from ..sts import TokenService
from .tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, throwaway_key

#: A user as a plain value: the password alone, or ``{"password": ..., "roles": [...], "claims": {...}}``.
UserValue = str | Mapping[str, Any] | User
#: The users of :class:`InProcessSts` unless a test gives its own.
DEFAULT_USERS: Mapping[str, UserValue] = {"alice": "alice"}


def _user(name: str, value: UserValue) -> User:
    if isinstance(value, User):
        return value
    if isinstance(value, str):
        return User(name, value)
    unknown = set(value) - {"password", "roles", "claims"}
    if unknown or "password" not in value:
        raise ConfigurationError(f"users[{name!r}]: give a password, or a mapping with 'password' and optionally "
                                 f"'roles' and 'claims' (not {sorted(unknown)})")
    return User(name, value["password"], roles=list(value.get("roles", ())), claims=dict(value.get("claims", {})))


def _users(users: Mapping[str, UserValue] | Iterable[User]) -> list[User]:
    if isinstance(users, Mapping):
        return [_user(name, value) for name, value in users.items()]
    return list(users)


class InProcessSts:
    """A :class:`~wstrust_wsgi.TokenService` with users and relying parties from plain values.

    ::

        sts = InProcessSts(users={"alice": {"password": "pw", "roles": ["admin"]}},
                           relying_parties=["https://svc.example/soap"])
        token = sts.client("alice").request_token("https://svc.example/soap")
        app = RelyingPartyMiddleware(service, audience="https://svc.example/soap",
                                     issuer=sts.issuer, trusted_certs=sts.trusted_certs)

    :param users: name -> password, or name -> ``{"password", "roles", "claims"}``,
        or :class:`~wstrust_wsgi.User` values.
    :param relying_parties: endpoint addresses (SAML 2.0 tokens) or
        :class:`~wstrust_wsgi.RelyingParty` values (``token_type="1.1"``, lifetime, claims).
    :param allowed_roles: roles that may get tokens; empty (the default here, unlike a
        deployed STS) lets every user given have one, since the test is about the service.
    :param signing_key: by default the kit's throwaway key, the one
        :class:`~wstrust_wsgi.testing.TokenFactory` signs with, so one set of
        ``trusted_certs`` admits both.
    :param options: any other :class:`~wstrust_wsgi.TokenService` keyword
        (``default_lifetime``, ``clock_skew``, ...).
    """

    def __init__(
        self,
        *,
        users: Mapping[str, UserValue] | Iterable[User] = DEFAULT_USERS,
        relying_parties: Iterable[str | RelyingParty] = (DEFAULT_AUDIENCE,),
        issuer: str = DEFAULT_ISSUER,
        url: str | None = None,
        allowed_roles: Iterable[str] = (),
        clock: Clock = utcnow,
        signing_key: SigningKey | None = None,
        **options: Any,
    ) -> None:
        self.issuer = issuer
        #: Where the clients post; only its scheme matters in-process (https: PasswordText is accepted).
        self.url = url or issuer
        self.clock = clock
        self.signing_key = signing_key or throwaway_key()
        self.users = {user.name: user for user in _users(users)}
        self.relying_parties = [rp if isinstance(rp, RelyingParty) else RelyingParty(rp) for rp in relying_parties]
        #: The STS itself, a WSGI app (mount it elsewhere too if a test needs to).
        self.app = TokenService(
            issuer=issuer, signing_key=self.signing_key, users=MemoryUserStore(self.users.values()),
            relying_parties=self.relying_parties, allowed_roles=allowed_roles, clock=clock, **options,
        )

    def __repr__(self) -> str:
        return f"InProcessSts(issuer={self.issuer!r}, users={sorted(self.users)}, " \
               f"relying_parties={[rp.address for rp in self.relying_parties]})"

    @property
    def trusted_certs(self) -> list[x509.Certificate]:
        """What to give the middleware under test as ``trusted_certs``."""
        return [self.signing_key.certificate]

    def client(self, username: str | None = None, password: str | None = None, **options: Any) -> StsClient:
        """A :class:`~wstrust_wsgi.StsClient` reaching this STS in-process, as ``username`` (default: the first user).

        The password is the user's own unless given (give a wrong one to test a
        refusal); ``options`` are StsClient's (``digest``, ``soap_version``,
        ``trust_version``, ...).
        """
        if username is None:
            if not self.users:
                raise ConfigurationError("client: this STS has no users; give it some with users=")
            username = next(iter(self.users))
        if password is None:
            user = self.users.get(username)
            if user is None:
                raise ConfigurationError(f"client: no user {username!r} here (users: {sorted(self.users)}); "
                                         "give a password to try an unknown user")
            password = user.password
        options.setdefault("transport", WSGITransport(self.app))
        options.setdefault("clock", self.clock)
        return StsClient(self.url, username=username, password=password, **options)

    def token(self, applies_to: str | None = None, *, username: str | None = None,
              token_type: str | None = None) -> IssuedToken:
        """A token issued to ``username`` for ``applies_to`` (default: the first relying party)."""
        if applies_to is None:
            if not self.relying_parties:
                raise ConfigurationError("token: this STS has no relying parties; give it some with relying_parties=")
            applies_to = self.relying_parties[0].address
        return self.client(username).request_token(applies_to, token_type=token_type)
