"""In-memory stores: users, relying parties and a replay cache for one process.

The replay cache is per process: under gunicorn with several workers, a nonce
replayed to another worker is not seen. Run the STS with one worker and
threads (as the demo does), or use a shared cache from
:mod:`wstrust_wsgi.stores.replay` (SQLite for one host, Redis for several).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from ..errors import ConfigurationError, StoreUnavailable
from ..model import TOKEN_TYPES, PasswordProof, Principal, RelyingParty, User, encryption_certificate, user_certificate
from .passwords import dummy_hash, hash_password, password_matches

# User and hash_password are imported from here by older code: both stay importable.
__all__ = ["MemoryRelyingPartyStore", "MemoryReplayCache", "MemoryUserStore", "User", "hash_password"]


class MemoryUserStore:
    """Users held in process memory, passwords as salted scrypt hashes."""

    def __init__(self, users: Iterable[User]) -> None:
        self._users: dict[str, tuple[bytes, bytes, str | None, Principal]] = {}
        self._certificates: dict[bytes, Principal] = {}
        for user in users:
            if user.name in self._users:
                raise ConfigurationError(f"users: {user.name!r} is listed twice")
            salt, digest = hash_password(user.password)
            principal = Principal(
                user.name, frozenset(user.roles), {k: tuple(v) for k, v in user.claims.items()}
            )
            self._users[user.name] = (salt, digest, user.password if user.digest_secret else None, principal)
            for pem in user.certificates:
                fingerprint, _ = user_certificate(pem, f"users: {user.name!r}")
                if self._certificates.setdefault(fingerprint, principal) is not principal:
                    raise ConfigurationError(f"users: certificate sha256:{fingerprint.hex()} is registered twice")

    def authenticate(self, token: PasswordProof) -> Principal | None:
        record = self._users.get(token.username)
        if token.digest:
            secret = record[2] if record else None
            ok = token.digest_matches(secret if secret is not None else "\0unknown")
            return record[3] if record and secret is not None and ok else None
        salt, expected = (record[0], record[1]) if record else dummy_hash()
        ok = password_matches(token.password, salt, expected)
        return record[3] if record and ok else None

    def user_by_certificate(self, fingerprint: bytes) -> Principal | None:
        """The user a certificate (by the SHA-256 of its DER bytes) is registered to (X.509-authenticated requests)."""
        return self._certificates.get(fingerprint)

    def password_record(self, username: str) -> tuple[bytes, Principal] | None:
        """The user's salt and hash (the verifier a password change replaces) and principal; no KDF run.

        What :class:`~wstrust_wsgi.stores.cache.CachedUserStore` ties its entries to.
        """
        record = self._users.get(username)
        return None if record is None else (record[0] + record[1], record[3])


class MemoryRelyingPartyStore:
    """Relying parties by exact endpoint address."""

    def __init__(self, parties: Iterable[RelyingParty]) -> None:
        self._parties: dict[str, RelyingParty] = {}
        for party in parties:
            if party.token_type not in TOKEN_TYPES:
                raise ConfigurationError(f"relying party {party.address}: token_type must be '2.0' or '1.1'")
            if party.certificate_pem is not None:  # readable, RSA, big enough; its dates are checked per request
                encryption_certificate(party.certificate_pem, f"relying party {party.address}")
            self._parties[party.address] = party

    def get(self, address: str) -> RelyingParty | None:
        return self._parties.get(address)

    def list_relying_parties(self) -> list[RelyingParty]:
        """Every party, as the registry lists them (the metadata's claim types are read from them)."""
        return list(self._parties.values())


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
                    raise StoreUnavailable(f"replay cache full ({self._max} live entries)")
            self._entries[key] = expires
            return True
