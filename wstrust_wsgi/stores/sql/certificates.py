"""Certificates registered to users in the registry's ``user_certificates`` table (schema version 7).

What ``wstrust-wsgi user cert`` manages and what an X.509-authenticated
request is matched by (:meth:`Registry.user_by_certificate`): the SHA-256 of
the certificate's exact DER bytes, unique across users, never a subject name.
"""

from __future__ import annotations

from ...errors import BadValue, RegistryError
from ...model import user_certificate
from .db import Kind, Tx
from .registry import Registry

__all__ = ["RegistryUserCertificates", "normalized_fingerprint"]


def normalized_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as stored (64 lowercase hex digits) from ``AB:CD:..``, ``sha256:abcd..`` or plain hex."""
    digits = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise BadValue(f"fingerprint {text!r}: expected a SHA-256 fingerprint (64 hex digits)")
    return digits


class RegistryUserCertificates:
    """The user certificates every STS host sharing the registry admits; each call is one transaction."""

    def __init__(self, registry: Registry) -> None:
        self._db = registry.database

    def add(self, name: str, pem: bytes) -> str:
        """Register ``pem`` to user ``name``; its fingerprint. RegistryError: unknown user, or registered already."""
        fingerprint = user_certificate(pem, "certificate")[0].hex()

        def work(tx: Tx) -> None:
            user_id = Registry._user_id(tx, name)
            holder = tx.one("SELECT u.name FROM user_certificates c JOIN users u ON u.id = c.user_id "
                            "WHERE c.fingerprint = ?", (fingerprint,))
            if holder is not None:
                raise RegistryError(f"certificate sha256:{fingerprint} is already registered to {holder[0]!r}")
            tx.execute("INSERT INTO user_certificates (fingerprint, user_id, certificate_pem) VALUES (?, ?, ?)",
                       (fingerprint, user_id, pem))

        self._db.run(Kind.WRITE, work)
        return fingerprint

    def remove(self, name: str, fingerprint: str | None = None) -> list[str]:
        """Unregister one certificate of ``name`` (by fingerprint) or, with None, all of them.

        Returns the fingerprints removed; RegistryError: unknown user, or no such certificate of theirs.
        """
        wanted = None if fingerprint is None else normalized_fingerprint(fingerprint)

        def work(tx: Tx) -> list[str]:
            user_id = Registry._user_id(tx, name)
            held = [str(row[0]) for row in tx.all("SELECT fingerprint FROM user_certificates WHERE user_id = ? "
                                                  "ORDER BY fingerprint", (user_id,))]
            gone = held if wanted is None else [f for f in held if f == wanted]
            if wanted is not None and not gone:
                raise RegistryError(f"user {name!r} has no certificate sha256:{wanted}")
            for one in gone:
                tx.execute("DELETE FROM user_certificates WHERE fingerprint = ?", (one,))
            return gone

        return self._db.run(Kind.WRITE, work)

    def certificates(self, name: str) -> list[tuple[str, bytes]]:
        """The (fingerprint, PEM) pairs registered to ``name``. RegistryError: unknown user."""
        def work(tx: Tx) -> list[tuple[str, bytes]]:
            user_id = Registry._user_id(tx, name)
            return [(str(row[0]), bytes(row[1])) for row in tx.all(
                "SELECT fingerprint, certificate_pem FROM user_certificates WHERE user_id = ? ORDER BY fingerprint",
                (user_id,))]

        return self._db.run(Kind.READ, work)
