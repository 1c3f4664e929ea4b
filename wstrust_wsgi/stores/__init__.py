"""Stores the STS and the middleware consult: users, relying parties, replay caches, lockout counts.

Each store is a small protocol; one module per backend implements it. The
in-memory backends in :mod:`wstrust_wsgi.stores.memory` are the defaults and
what the demos use. The stores import only :mod:`wstrust_wsgi.model` and
:mod:`wstrust_wsgi.errors`: they know users, parties and keys, never the wire
(a UsernameToken reaches them as a :class:`~wstrust_wsgi.model.PasswordProof`).
A store that cannot answer raises :class:`~wstrust_wsgi.errors.StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..model import SIGNATURE_ALGORITHMS, PasswordProof, Principal, RelyingParty, StsSettings

__all__ = [
    "SIGNATURE_ALGORITHMS", "LockoutEntry", "LockoutStore", "PasswordProof", "Principal", "RelyingParty",
    "RelyingPartyStore", "ReplayCache", "SettingsStore", "StsSettings", "UserStore",
]


class SettingsStore(Protocol):
    def get_settings(self) -> StsSettings:
        """The current settings; the STS calls this at most about once a second."""


class UserStore(Protocol):
    def authenticate(self, token: PasswordProof) -> Principal | None:
        """The principal if the token's password (text or digest) is right, else None.

        Must take about as long for an unknown user as for a wrong password.

        A store may also offer ``user_by_certificate(fingerprint: bytes) -> Principal | None``: the user a
        certificate (the SHA-256 of its DER bytes) is registered to, for X.509-authenticated requests
        (:mod:`wstrust_wsgi.sts.certificate`); the memory store and the registry do.
        """


class RelyingPartyStore(Protocol):
    def get(self, address: str) -> RelyingParty | None:
        """The relying party registered under exactly ``address``."""


class ReplayCache(Protocol):
    def add(self, key: str, *, expires: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires``; False if it is already recorded and live at ``now``.

        ``now`` comes from the caller's clock, so a fixed test clock works.
        """


@dataclass(frozen=True)
class LockoutEntry:
    """One live key: failures counted in its current window, when that window (or mark) ends, its lock."""

    failures: int
    expires: datetime
    locked_until: datetime | None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class LockoutStore(Protocol):
    """Failure counts, locks and marks under opaque keys (:mod:`wstrust_wsgi.stores.lockout` says the rules)."""

    def read(self, keys: Sequence[str], now: datetime) -> Mapping[str, LockoutEntry]:
        """The entries of ``keys`` live at ``now`` (window or mark not over, or locked)."""

    def fail(self, limits: Sequence[tuple[str, int]], *, now: datetime, window: timedelta,
             lock_for: timedelta) -> dict[str, datetime]:
        """Count one failure for each ``(key, limit)`` not locked; the keys this locked, with their end."""

    def mark(self, key: str, *, now: datetime, until: datetime) -> None:
        """Keep ``key`` live, with no failures, until ``until``."""

    def clear(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        """Delete the entries of ``keys``; those that were live."""
