"""The STS's signing keys as they roll: the primary signs, the published ones go into the metadata.

A :class:`KeyFollower` asks its :class:`~wstrust_wsgi.keys.KeySource` (the
registry's signing keys, :mod:`.keyring`) for the current
:class:`~wstrust_wsgi.keys.KeySet` at most once per ``ttl`` (one second, as
the settings), so ``wstrust-wsgi keys promote`` reaches every worker of every
host within that second, with no restart. It keeps one
:class:`~wstrust_wsgi.saml.AssertionSigner` per primary key, made once, and
signs with whichever key is primary when the token is signed.
"""

from __future__ import annotations

import threading
import time

from cryptography.hazmat.primitives import hashes

from ..keys import KeySet, KeySource, SigningKey
from ..saml import AssertionContent, AssertionSigner, SamlVersion


class _Fixed:
    """One key, given as an argument: it never rolls."""

    def __init__(self, key: SigningKey) -> None:
        self._keys = KeySet.of(key)

    def signing_keys(self) -> KeySet:
        return self._keys


class KeyFollower:
    """The current keys of an STS, re-read at most every ``ttl`` seconds; signs with the primary.

    Safe under threads: a reader sees either the old or the new key set,
    whole; two threads may both re-read at the turn of a second, which is
    harmless.
    """

    def __init__(self, source: SigningKey | KeySource, *, ttl: float = 1.0) -> None:
        self._source: KeySource = _Fixed(source) if isinstance(source, SigningKey) else source
        self._ttl = ttl
        self._cached: tuple[float, KeySet] | None = None
        self._signers: dict[bytes, AssertionSigner] = {}
        self._last: tuple[KeySet, AssertionSigner] | None = None
        self._lock = threading.Lock()
        self.current()  # fails at start-up if the source has no usable primary key

    def current(self) -> KeySet:
        """The key set in force (cached for ``ttl`` seconds)."""
        cached, now = self._cached, time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        keys = self._source.signing_keys()
        self._cached = (now, keys)
        return keys

    def signer(self) -> AssertionSigner:
        """The signer of the current primary key (made once per key; found by identity while nothing changed)."""
        keys = self.current()
        last = self._last
        if last is not None and last[0] is keys:  # the same key set as the previous token: no lookup at all
            return last[1]
        fingerprint = keys.primary.certificate.fingerprint(hashes.SHA256())
        signer = self._signers.get(fingerprint)
        if signer is None:
            with self._lock:
                signer = self._signers.get(fingerprint)
                if signer is None:
                    signer = AssertionSigner(keys.primary)
                    # keep the signers of the keys still published (previous, next); forget retired ones
                    published = {c.fingerprint(hashes.SHA256()) for c in keys.published}
                    self._signers = {k: v for k, v in self._signers.items() if k in published}
                    self._signers[fingerprint] = signer
        self._last = (keys, signer)
        return signer

    def sign(self, version: SamlVersion, content: AssertionContent, *, algorithm: str = "rsa-sha256") -> bytes:
        """Sign as :meth:`AssertionSigner.sign` does, with the key that is primary now."""
        return self.signer().sign(version, content, algorithm=algorithm)
