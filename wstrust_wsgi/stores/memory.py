"""In-memory stores: users, relying parties and a replay cache for one process.

The replay cache is per process: under gunicorn with several workers, a nonce
replayed to another worker is not seen. Run the STS with one worker and
threads (as the demo does), or use a shared cache from
:mod:`wstrust_wsgi.stores.replay` (SQLite for one host, Redis for several).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ConfigurationError, RequestFailed
from ..wssecurity import UsernameToken
from . import Principal, RelyingParty

# scrypt, a memory-hard KDF from the standard library: 16 MiB per check.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}


def hash_password(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    salt = salt if salt is not None else os.urandom(16)
    return salt, hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


@dataclass(frozen=True)
class User:
    """A user of :class:`MemoryUserStore`.

    ``digest_secret``: PasswordDigest needs the plaintext password on the
    server; keep it only for users who must use digest (True by default here,
    since the in-memory store holds the password in process memory anyway).
    """

    name: str
    password: str
    roles: Sequence[str] = ()
    claims: Mapping[str, Sequence[str]] = field(default_factory=dict)
    digest_secret: bool = True


class MemoryUserStore:
    """Users held in process memory, passwords as salted scrypt hashes."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users: dict[str, tuple[bytes, bytes, str | None, Principal]] = {}
        for user in users:
            if user.name in self._users:
                raise ConfigurationError(f"users: {user.name!r} is listed twice")
            salt, digest = hash_password(user.password)
            principal = Principal(
                user.name, frozenset(user.roles), {k: tuple(v) for k, v in user.claims.items()}
            )
            self._users[user.name] = (salt, digest, user.password if user.digest_secret else None, principal)
        self._dummy = hash_password("not a password")

    def authenticate(self, token: UsernameToken) -> Principal | None:
        record = self._users.get(token.username)
        if token.digest:
            secret = record[2] if record else None
            ok = token.digest_matches(secret if secret is not None else "\0unknown")
            return record[3] if record and secret is not None and ok else None
        salt, expected = (record[0], record[1]) if record else self._dummy
        _, actual = hash_password(token.password, salt)
        ok = hmac.compare_digest(actual, expected)
        return record[3] if record and ok else None


class MemoryRelyingPartyStore:
    """Relying parties by exact endpoint address."""

    def __init__(self, parties: Iterable[RelyingParty]) -> None:
        self._parties: dict[str, RelyingParty] = {}
        for party in parties:
            if party.token_type not in ("2.0", "1.1"):
                raise ConfigurationError(f"relying party {party.address}: token_type must be '2.0' or '1.1'")
            self._parties[party.address] = party

    def get(self, address: str) -> RelyingParty | None:
        return self._parties.get(address)


class MemoryReplayCache:
    """A bounded in-process replay cache.

    When full of live entries it refuses new ones (fails closed) rather than
    forgetting entries that are still valid.
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        self._entries: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def add(self, key: str, *, expires: datetime, now: datetime) -> bool:
        with self._lock:
            seen = self._entries.get(key)
            if seen is not None and seen > now:
                return False
            if len(self._entries) >= self._max:
                self._entries = {k: v for k, v in self._entries.items() if v > now}
                if len(self._entries) >= self._max:
                    raise RequestFailed(f"replay cache full ({self._max} live entries)")
            self._entries[key] = expires
            return True
