"""The STS, the protected echo service and a client, wired together in-process the way the demo deploys them.

The addresses are those of the demo (``demo_sts``, ``demo_service``), so a
token minted here names the audience the echo service checks. Fixtures in
``conftest.py`` build these per test with the test's clock and keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wstrust_wsgi import (
    MemoryUserStore,
    RelyingParty,
    RelyingPartyMiddleware,
    StsClient,
    TokenService,
    User,
    WSGITransport,
)
from demo_service.app import echo

from .clock import FixedClock
from .keys import KeyFiles

STS_URL = "http://127.0.0.1:8080/services/sts"
ISSUER = "http://127.0.0.1:8080/services/sts"
SERVICE_URL = "http://127.0.0.1:8081/services/echo"
OTHER_URL = "http://127.0.0.1:8082/services/other"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"

#: Two demo users whose password is their name: ``admin`` (role admin) and ``alice`` (role everyone).
DEMO_USERS = [
    User("admin", "admin", roles=["admin"], claims={EMAIL: ["admin@example.org"]}),
    User("alice", "alice", roles=["everyone"], claims={EMAIL: ["alice@example.org"]}),
]


def demo_users() -> MemoryUserStore:
    """A user store holding :data:`DEMO_USERS`."""
    return MemoryUserStore(DEMO_USERS)


def token_service(keys: KeyFiles, users: MemoryUserStore, clock: FixedClock) -> TokenService:
    """The STS: SAML 2.0 for :data:`SERVICE_URL`, SAML 1.1 for :data:`OTHER_URL`."""
    return TokenService(
        issuer=ISSUER,
        signing_key=keys.load(),
        users=users,
        relying_parties=[RelyingParty(SERVICE_URL), RelyingParty(OTHER_URL, token_type="1.1")],
        clock=clock,
    )


def echo_service(keys: KeyFiles, clock: FixedClock) -> RelyingPartyMiddleware:
    """The demo echo service behind the middleware, trusting only ``keys``' certificate."""
    return RelyingPartyMiddleware(
        echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[keys.cert], clock=clock
    )


def client_factory(sts: TokenService, clock: FixedClock) -> Callable[..., StsClient]:
    """A function making clients that reach ``sts`` in-process; keyword arguments override the defaults."""

    def make(username: str = "admin", password: str = "admin", **kwargs: Any) -> StsClient:
        kwargs.setdefault("transport", WSGITransport(sts))
        kwargs.setdefault("clock", clock)
        return StsClient(STS_URL, username=username, password=password, **kwargs)

    return make
