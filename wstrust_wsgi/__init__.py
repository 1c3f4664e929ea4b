"""wstrust-wsgi: a WS-Trust STS issuing signed SAML tokens, and a WSGI middleware checking them.

The public API is re-exported here; everything else is private or reached
through its module (:mod:`wstrust_wsgi.ns`, :mod:`wstrust_wsgi.errors`).
"""

from __future__ import annotations

from ._encrypted import LegacyCbcKey
from ._log import JsonFormatter, configure_logging
from .client import IssuedToken, StsClient, UrllibTransport, WSGITransport, call_service, parse_response
from .errors import (
    ConfigurationError,
    RemoteFault,
    SecurityWarning,
    SoapFault,
    TransportError,
    WsTrustError,
)
from .exchange import Exchange, RecordingTransport
from .keys import SigningKey, generate_demo_key_pair, load_certificate
from .middleware import ENVIRON_KEY, RelyingPartyMiddleware, get_assertion
from .saml import VerificationCache, VerifiedAssertion
from .model import Principal, RelyingParty, StsSettings, User
from .stores.cache import CachedUserStore
from .stores.lockout import MemoryLockoutStore, RedisLockoutStore, RegistryLockoutStore
from .stores.memory import MemoryRelyingPartyStore, MemoryReplayCache, MemoryUserStore
from .stores.replay import RedisReplayCache, SQLiteReplayCache, replay_cache_from_url
from .sts import TokenService
from .stores.delegation import DelegationRule
from .sts.delegation import DelegationPolicy
from .sts.lifecycle import TokenPolicy
from .sts.lockout import LockoutPolicy
from .stores.tokens import MemoryTokenStore, RedisTokenStore, RegistryTokenStore, TokenRecord, token_store_from_url

__version__ = "0.1.0"

__all__ = [
    "CachedUserStore",
    "ConfigurationError",
    "DelegationPolicy",
    "DelegationRule",
    "ENVIRON_KEY",
    "Exchange",
    "IssuedToken",
    "JsonFormatter",
    "LegacyCbcKey",
    "LockoutPolicy",
    "MemoryLockoutStore",
    "MemoryRelyingPartyStore",
    "MemoryReplayCache",
    "MemoryTokenStore",
    "MemoryUserStore",
    "Principal",
    "RecordingTransport",
    "RedisLockoutStore",
    "RedisReplayCache",
    "RedisTokenStore",
    "RegistryLockoutStore",
    "RegistryTokenStore",
    "RelyingParty",
    "RelyingPartyMiddleware",
    "RemoteFault",
    "SQLiteReplayCache",
    "SecurityWarning",
    "SigningKey",
    "SoapFault",
    "StsClient",
    "StsSettings",
    "TokenPolicy",
    "TokenRecord",
    "TokenService",
    "TransportError",
    "UrllibTransport",
    "User",
    "VerificationCache",
    "VerifiedAssertion",
    "WSGITransport",
    "WsTrustError",
    "__version__",
    "call_service",
    "configure_logging",
    "generate_demo_key_pair",
    "get_assertion",
    "load_certificate",
    "parse_response",
    "replay_cache_from_url",
    "token_store_from_url",
]
