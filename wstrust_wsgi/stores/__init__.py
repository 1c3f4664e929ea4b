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
    request names none. ``claims`` limits which user claims are released
    (None: all of them); roles are always released.
    """

    address: str
    token_type: str = "2.0"
    lifetime: timedelta = timedelta(minutes=5)
    claims: frozenset[str] | None = None


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
