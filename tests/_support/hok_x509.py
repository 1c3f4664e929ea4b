"""Holder-of-key for a certificate-authenticated client (vCenter's "solution user"), served by gunicorn.

:func:`gunicorn_sts`: the STS with the demo keys, the users ``admin`` (password)
and ``solution`` (authenticated by the certificate ``cert``, registered to it
as ``wstrust-wsgi user cert add`` would), the echo service as the relying party
of requests naming none (pyVmomi names none), and a delegation rule letting
``solution`` use ActAs. :func:`gunicorn_service`: the echo service behind the
middleware, holder-of-key only, trusting that STS.
"""

from __future__ import annotations

from pathlib import Path

from wstrust_wsgi import MemoryUserStore, RelyingParty, RelyingPartyMiddleware, SigningKey, TokenService, User
from wstrust_wsgi._wsgi import mount
from wstrust_wsgi.stores.delegation import DelegationRule
from wstrust_wsgi.sts import DelegationPolicy
from demo_service.app import echo

#: The user the client certificate is registered to.
SOLUTION_USER = "solution"


def gunicorn_sts(certs: str, issuer: str, service_url: str, cert: str) -> object:
    keys = Path(certs)
    users = MemoryUserStore([User("admin", "admin", roles=["admin"]),
                             User(SOLUTION_USER, "not-used-by-this-test", roles=["admin"],
                                  certificates=[Path(cert).read_bytes()])])
    sts = TokenService(issuer=issuer, signing_key=SigningKey.from_files(keys / "sts.key", keys / "sts.crt"),
                       users=users, relying_parties=[RelyingParty(service_url)], default_applies_to=service_url,
                       delegation=DelegationPolicy([DelegationRule(SOLUTION_USER, kind="ActAs")]))
    return mount("/services/sts", sts)


def gunicorn_service(certs: str, issuer: str, service_url: str) -> RelyingPartyMiddleware:
    return RelyingPartyMiddleware(echo, audience=service_url, issuer=issuer,
                                  trusted_certs=[Path(certs) / "sts.crt"], confirmation="holder-of-key")
