"""The STS's signing keys read from the registry: what ``wstrust-wsgi keys`` changes, every host follows.

:class:`RegistryKeys` is a :class:`~wstrust_wsgi.keys.KeySource`: the STS's
:class:`~.signing.KeyFollower` asks it about once a second, and it answers with
one indexed read of the ``signing_keys`` table (:mod:`wstrust_wsgi.stores.sql.keyring`):
the primary signs, next/primary/previous are published. Each private key is
decrypted once (with the operator's passphrase) and kept by fingerprint, so
a promotion costs one decryption per worker, not one per request.

While the registry holds no primary key (a deployment that has not started
rolling), the key pair of the deployment file signs, and a next key, if one
was added, is published beside it.

Passphrases: :func:`passphrase_from_environment` reads ``WSTRUST_KEY_PASSPHRASE``
or the file named by ``WSTRUST_KEY_PASSPHRASE_FILE``; a passphrase is never
taken from a command line (where ``ps`` shows it to every user).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography import x509

from ..errors import ConfigurationError, KeyPairError
from ..keys import KeySet, SigningKey
from ..stores.sql import Registry
from ..stores.sql.keyring import KeyRecord, SigningKeys

PASSPHRASE_ENV = "WSTRUST_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "WSTRUST_KEY_PASSPHRASE_FILE"


def read_passphrase(path: str | os.PathLike[str]) -> bytes:
    """The first line of ``path`` (trailing newline removed); refuses an empty one."""
    try:
        text = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise ConfigurationError(f"passphrase file {path}: cannot be read ({exc.strerror})") from None
    if not text or not text[0]:
        raise ConfigurationError(f"passphrase file {path}: its first line is empty")
    return text[0]


def passphrase_from_environment(environ: os._Environ[str] | dict[str, str] | None = None) -> bytes | None:
    """``$WSTRUST_KEY_PASSPHRASE_FILE``'s first line, else ``$WSTRUST_KEY_PASSPHRASE``, else None."""
    env = os.environ if environ is None else environ
    if env.get(PASSPHRASE_FILE_ENV):
        return read_passphrase(env[PASSPHRASE_FILE_ENV])
    value = env.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


class RegistryKeys:
    """The registry's signing keys as a :class:`~wstrust_wsgi.keys.KeySource` (see the module docstring).

    :param registry: the registry the ``keys`` commands change.
    :param passphrase: decrypts the stored private keys.
    :param fallback: the deployment file's key pair, signing while the registry holds no primary key.
    """

    def __init__(self, registry: Registry, *, passphrase: bytes | None, fallback: SigningKey | None = None) -> None:
        self._keys = SigningKeys(registry)
        self._passphrase = passphrase
        self._fallback = fallback
        self._loaded: dict[str, SigningKey] = {}
        self._certificates: dict[str, x509.Certificate] = {}
        self._unreadable: set[str] = set()
        self._lock = threading.Lock()

    def signing_keys(self) -> KeySet:
        records = self._keys.list()
        primary = next((r for r in records if r.state == "primary"), None)
        published = tuple(self._certificate(r) for r in records)
        if primary is None:
            if self._fallback is None:
                raise ConfigurationError("the registry holds no primary signing key: add one with "
                                         "`wstrust-wsgi keys add-next` and `keys promote`")
            own = self._fallback.certificate
            return KeySet(self._fallback, (own, *(c for c in published if c != own)), self._others(records, None))
        return KeySet(self._key(primary), published, self._others(records, primary))

    def _others(self, records: list[KeyRecord], primary: KeyRecord | None) -> tuple[SigningKey, ...]:
        """The next and previous key pairs this passphrase opens (a proof key wrapped before a rollover is
        unwrapped with them, :mod:`.possession`); one that does not open is left out, never an outage."""
        found = []
        for record in records:
            if record is not primary and record.fingerprint not in self._unreadable:
                try:
                    found.append(self._key(record))
                except (KeyPairError, ConfigurationError):
                    self._unreadable.add(record.fingerprint)  # tried once, not every second
        return tuple(found)

    def _certificate(self, record: KeyRecord) -> x509.Certificate:
        found = self._certificates.get(record.fingerprint)
        if found is None:
            found = self._certificates[record.fingerprint] = x509.load_pem_x509_certificate(record.cert_pem)
        return found

    def _key(self, record: KeyRecord) -> SigningKey:
        found = self._loaded.get(record.fingerprint)
        if found is not None:
            return found
        with self._lock:
            found = self._loaded.get(record.fingerprint)
            if found is None:
                if self._passphrase is None:
                    raise KeyPairError(f"signing key {record.fingerprint} is encrypted: give its passphrase in "
                                       f"${PASSPHRASE_FILE_ENV} (a file) or ${PASSPHRASE_ENV}")
                found = SigningKey.from_pem(record.key_pem, record.cert_pem, passphrase=self._passphrase,
                                            key_name=f"registry signing key {record.fingerprint}",
                                            cert_name=f"registry certificate {record.fingerprint}")
                self._loaded = {**self._loaded, record.fingerprint: found}
        return found
