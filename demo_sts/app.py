"""The demo STS, for ``gunicorn demo_sts.app:app``.

Users: ``admin``/``admin`` (role admin, gets tokens) and ``alice``/``alice``
(no admin role, refused). One relying party: the demo echo service. Signs with
the DEMO-ONLY key in ``certs/``. Environment variables change the defaults:

=============================  ==========================================
WSTRUST_DEMO_CERTS             folder with sts.key / sts.crt (``certs/``)
WSTRUST_DEMO_STS_PATH          mount path (``/services/sts``)
WSTRUST_DEMO_ISSUER            Issuer name (``http://127.0.0.1:8080/services/sts``)
WSTRUST_DEMO_SERVICE_URL       the echo service's address, its audience
                               (``http://127.0.0.1:8081/services/echo``)
WSTRUST_DEMO_NONCE_CACHE       where PasswordDigest nonces are recorded
                               (``memory:``, this worker only); to run
                               several workers or hosts, share one:
                               ``sqlite:///abs/path.db`` (one host) or
                               ``redis://host:port/db``
WSTRUST_DEMO_TOKEN_STORE       where issued tokens are recorded for
                               Validate, Renew and Cancel (``memory:``,
                               this worker only; ``redis://host:port/db``
                               shared with the service's revocation store)
WSTRUST_DEMO_DELEGATION        users (comma-separated) who may use
                               OnBehalfOf and ActAs for anyone towards the
                               echo service (none: both are refused)
WSTRUST_DEMO_DEFAULT_RP        the relying party of a request without
                               AppliesTo, as pyVmomi sends (none: refused)
=============================  ==========================================
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from wstrust_wsgi import CachedUserStore, MemoryUserStore, RelyingParty, SigningKey, TokenService, User
from wstrust_wsgi._wsgi import mount
from wstrust_wsgi.stores.delegation import DelegationRule
from wstrust_wsgi.stores.replay import replay_cache_from_url
from wstrust_wsgi.stores.tokens import token_store_from_url
from wstrust_wsgi.sts import DelegationPolicy

ROOT = Path(__file__).resolve().parent.parent
CERTS = Path(os.environ.get("WSTRUST_DEMO_CERTS", ROOT / "certs"))
STS_PATH = os.environ.get("WSTRUST_DEMO_STS_PATH", "/services/sts")
ISSUER = os.environ.get("WSTRUST_DEMO_ISSUER", "http://127.0.0.1:8080/services/sts")
SERVICE_URL = os.environ.get("WSTRUST_DEMO_SERVICE_URL", "http://127.0.0.1:8081/services/echo")
NONCE_CACHE = os.environ.get("WSTRUST_DEMO_NONCE_CACHE", "memory:")
TOKEN_STORE = os.environ.get("WSTRUST_DEMO_TOKEN_STORE", "memory:")
DEFAULT_APPLIES_TO = os.environ.get("WSTRUST_DEMO_DEFAULT_RP") or None
DELEGATING = [name for name in os.environ.get("WSTRUST_DEMO_DELEGATION", "").split(",") if name.strip()]

DEMO_USERS = [
    User("admin", "admin", roles=["admin"], claims={
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["admin@example.org"],
    }),
    User("alice", "alice", roles=["everyone"], claims={
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["alice@example.org"],
    }),
]


def make_service() -> TokenService:
    return TokenService(
        issuer=ISSUER,
        signing_key=SigningKey.from_files(CERTS / "sts.key", CERTS / "sts.crt"),
        # remembers successful password checks (an HMAC, never the password) for 2 minutes
        users=CachedUserStore(MemoryUserStore(DEMO_USERS)),
        relying_parties=[RelyingParty(SERVICE_URL)],
        nonce_cache=replay_cache_from_url(NONCE_CACHE),
        issued_tokens=token_store_from_url(TOKEN_STORE),  # Validate, Renew and Cancel
        default_applies_to=DEFAULT_APPLIES_TO,
        delegation=DelegationPolicy([DelegationRule(name.strip()) for name in DELEGATING]) if DELEGATING else None,
    )


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
app = mount(STS_PATH, make_service())
