"""Password hashing and checking for the stores that keep passwords (memory, the SQL registry).

scrypt (RFC 7914), from the standard library: memory-hard, 16 MiB and about
60 ms of CPU per check, so a stolen table of hashes is slow to attack. The
parameters are stored beside every hash in the registry (:data:`KDF`), so a
later change of parameters is detected instead of locking everybody out.

Stores check an unknown user's password against :func:`dummy_hash`, so that
the answer takes as long as for a known user with a wrong password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

__all__ = ["KDF", "SCRYPT", "dummy_hash", "hash_password", "password_matches"]

#: scrypt's cost parameters: n=2**14, r=8 is 16 MiB per check.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
#: The KDF and its parameters, as the registry stores them beside every hash.
KDF = "scrypt:n={n},r={r},p={p},dklen={dklen}".format(**SCRYPT)


def hash_password(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """``(salt, hash)`` of ``password``; a new random 16-byte salt unless one is given."""
    salt = salt if salt is not None else os.urandom(16)
    return salt, hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)


def password_matches(password: str, salt: bytes, expected: bytes) -> bool:
    """Whether ``password`` hashes to ``expected`` with ``salt``; compared in constant time."""
    _, actual = hash_password(password, salt)
    return hmac.compare_digest(actual, expected)


@lru_cache(maxsize=1)
def dummy_hash() -> tuple[bytes, bytes]:
    """A salt and hash of no user's password, made once per process.

    Checked in place of an unknown user's, so that "no such user" costs one
    KDF run like "wrong password" and timing tells an attacker nothing.
    """
    return hash_password("not a password")
