"""Stores the STS and the middleware consult: users, relying parties, replay caches.

Each store is a small protocol; one module per backend implements it. The
in-memory backends in :mod:`wstrust_wsgi.stores.memory` are the defaults and
what the demos use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ..wssecurity import UsernameToken


@dataclass(frozen=True)
class Principal:
    """An authenticated user: name, roles, and claim values (claim URI -> values)."""

    name: str
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RelyingParty:
    """A service provider registered with the STS by its endpoint address.

    ``address`` is compared exactly with ``wsp:AppliesTo`` and becomes the
    token's audience. ``token_type`` is ``"2.0"`` or ``"1.1"``, used when the
    request names none. ``lifetime``: None means the STS default
    (:attr:`StsSettings.default_lifetime`). ``claims`` limits which user claims
    are released (None: all of them); roles are always released.
    ``certificate_pem`` is kept for token encryption (not used yet).
    """

    address: str
    token_type: str = "2.0"
    lifetime: timedelta | None = None
    claims: frozenset[str] | None = None
    certificate_pem: bytes | None = None


#: Signature algorithms the STS can sign with, by setting value.
SIGNATURE_ALGORITHMS = ("rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-sha1")


@dataclass(frozen=True)
class StsSettings:
    """The STS's own settings (WSO2's "STS security" page), read per request.

    :param issuer: the Issuer of every assertion.
    :param allowed_roles: roles allowed to request tokens; empty allows every
        authenticated user (not the default).
    :param default_lifetime: token lifetime for relying parties without their own.
    :param clock_skew: tolerance on every time comparison.
    :param signature_algorithm: one of :data:`SIGNATURE_ALGORITHMS`
        (rsa-sha1 only for peers that cannot verify anything better).
    :param allow_plaintext_http: accept PasswordText over plain HTTP from
        non-loopback peers. Off: a password would cross the network in clear.
    """

    issuer: str
    allowed_roles: frozenset[str] = frozenset({"admin"})
    default_lifetime: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(minutes=5)
    signature_algorithm: str = "rsa-sha256"
    allow_plaintext_http: bool = False


class SettingsStore(Protocol):
    def get_settings(self) -> StsSettings:
        """The current settings; the STS calls this at most about once a second."""


class UserStore(Protocol):
    def authenticate(self, token: UsernameToken) -> Principal | None:
        """The principal if the token's password (text or digest) is right, else None.

        Must take about as long for an unknown user as for a wrong password.
        """


class RelyingPartyStore(Protocol):
    def get(self, address: str) -> RelyingParty | None:
        """The relying party registered under exactly ``address``."""


class ReplayCache(Protocol):
    def add(self, key: str, *, expires: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires``; False if it is already recorded and live at ``now``.

        ``now`` comes from the caller's clock, so a fixed test clock works.
        """
