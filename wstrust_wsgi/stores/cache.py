"""A short-lived cache of successful PasswordText checks, in front of any user store that can support it.

Passwords are stored as scrypt hashes, slow on purpose (about 60 ms of CPU and
16 MiB per check), so an STS whose clients ask for a token every few minutes
spends nearly all its time in the KDF. :class:`CachedUserStore` remembers, for
``ttl`` (2 minutes by default), that a given username and password were right
against a given stored hash, and answers the same pair again without the KDF.

What it keeps and what it never does:

* It never holds a password or a password hash: an entry's key is
  ``HMAC-SHA256(k, username, password, stored verifier)`` with ``k`` random per
  process, and its value is an expiry time.
* A wrong password never enters: only a check the wrapped store answered with
  a principal is remembered. Unknown users and wrong passwords always pay the
  full KDF, so timing tells an attacker nothing it did not know.
* A password change takes effect at once: the key covers the stored verifier
  (salt and hash), which the change replaces, so the old password no longer
  matches any entry.
* Role and claim changes take effect at once: the principal is read from the
  store on every request; only the KDF is skipped.
* PasswordDigest is never cached (each digest is new, and cheap to check).
* At most ``max_entries`` entries: when full, expired ones go first, then the oldest.

**The trade-off.** For ``ttl`` after a successful login, the process holds a
value from which a user's password can be tested at HMAC speed instead of
scrypt speed by someone who can also read the process's random key, i.e. who
can read the STS's memory (who could then read passwords as they arrive
anyway). And a password the user has just changed *elsewhere than in this
store* (e.g. in a directory this store does not read) is not noticed; hence
the store must expose its stored verifier (:class:`PasswordRecords`): the SQL
registry and the in-memory store do; LDAP stores cannot, and are refused.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from hashlib import sha256
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..model import PasswordProof, Principal
from . import UserStore


@runtime_checkable
class PasswordRecords(Protocol):
    def password_record(self, username: str) -> tuple[bytes, Principal] | None:
        """The user's stored password verifier (salt and hash: it changes whenever the password
        does) and current principal, without checking any password; None for an unknown user."""


def _records_of(store: UserStore) -> PasswordRecords:
    if isinstance(store, PasswordRecords):
        return store
    raise ConfigurationError(
        f"users: {type(store).__name__} cannot be cached: it does not expose its stored password "
        "verifier (password_record), so a password change could go unnoticed"
    )


def _field(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(4, "big") + data


class CachedUserStore:
    """Wraps a user store; PasswordText checks that succeeded are remembered for ``ttl``.

    :param store: any user store with a ``password_record(username)`` method
        (:class:`PasswordRecords`): the SQL :class:`~wstrust_wsgi.stores.sql.Registry`
        or the :class:`~wstrust_wsgi.stores.memory.MemoryUserStore`.
    :param ttl: how long a successful check is remembered (positive, at most 15 minutes).
    :param max_entries: the most entries kept.
    :param clock: a monotonic clock in seconds (for tests).
    """

    def __init__(
        self,
        store: UserStore,
        *,
        ttl: timedelta = timedelta(minutes=2),
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timedelta(0) < ttl <= timedelta(minutes=15):
            raise ConfigurationError("ttl: must be positive and at most 15 minutes")
        if max_entries < 1:
            raise ConfigurationError("max_entries: must be at least 1")
        self._store = store
        self._records = _records_of(store)
        self._ttl = ttl.total_seconds()
        self._max = max_entries
        self._clock = clock
        self._secret = os.urandom(32)
        self._entries: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _key(self, token: PasswordProof, verifier: bytes) -> bytes:
        message = _field(token.username) + _field(token.password or "") + verifier
        return hmac.new(self._secret, message, sha256).digest()

    def authenticate(self, token: PasswordProof) -> Principal | None:
        if token.digest:
            return self._store.authenticate(token)
        record = self._records.password_record(token.username)
        if record is None:  # unknown user: the store runs its dummy KDF
            return self._store.authenticate(token)
        verifier, principal = record
        key = self._key(token, verifier)
        now = self._clock()
        expiry = self._entries.get(key)
        if expiry is not None and now < expiry:
            return principal  # read from the store just now: current roles and claims
        checked = self._store.authenticate(token)
        if checked is None:
            return None  # never cached
        self._remember(key, now + self._ttl, now)
        return checked

    def user_by_certificate(self, fingerprint: bytes) -> Principal | None:
        """Not cached: the wrapped store's answer (None if it registers no certificates)."""
        find = getattr(self._store, "user_by_certificate", None)
        return find(fingerprint) if callable(find) else None

    def _remember(self, key: bytes, expiry: float, now: float) -> None:
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self._max:
                self._entries = {k: v for k, v in self._entries.items() if v > now}
                while len(self._entries) >= self._max:
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = expiry
