"""The STS's signing keys in the registry, with their rollover state (schema version 4).

The states follow AD FS's automatic certificate rollover:

* ``next``: published in the federation metadata, not yet signing, so that
  relying parties that follow the metadata trust it before the first token it signs;
* ``primary``: signs tokens and the metadata (at most one);
* ``previous``: the former primary, still published until ``retire``, so that
  tokens it signed stay valid for their lifetime.

``promote`` turns the next key into the primary and the primary into a
previous one, in one transaction; ``retire`` deletes every previous key (the
private key goes with the row). What the keys are (PEM, certificates,
passphrases) is the caller's business: this store keeps bytes and states only,
as the stores never import the wire or crypto layers. Every STS host reads the
states about once a second (:mod:`wstrust_wsgi.sts.keyring`), so a promotion
reaches them all without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ...errors import RegistryError
from .db import Kind, Tx
from .registry import Registry

STATES = ("next", "primary", "previous")
_COLUMNS = "id, state, fingerprint, key_pem, cert_pem, not_after_us, added_us, changed_us"


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, timezone.utc)


@dataclass(frozen=True)
class KeyRecord:
    """One stored signing key."""

    id: int
    state: str
    #: SHA-256 of the certificate (DER), colon-separated hex: how the commands name a key.
    fingerprint: str
    #: PKCS#8 PEM encrypted with the operator's passphrase.
    key_pem: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    #: The certificate's notAfter.
    not_after: datetime
    added: datetime
    #: When the state last changed (for a previous key: when it stopped signing).
    changed: datetime


def _record(row: tuple[object, ...]) -> KeyRecord:
    id_, state, fingerprint, key_pem, cert_pem, not_after, added, changed = row
    return KeyRecord(int(id_), str(state), str(fingerprint), bytes(key_pem), bytes(cert_pem),  # type: ignore[arg-type]
                     _time(int(not_after)), _time(int(added)), _time(int(changed)))  # type: ignore[call-overload]


class SigningKeys:
    """The signing keys of a :class:`~wstrust_wsgi.stores.sql.Registry`."""

    def __init__(self, registry: Registry) -> None:
        self._db = registry.database

    def list(self) -> list[KeyRecord]:
        """Every key: next first, then primary, then previous ones (newest first)."""
        rows = self._db.run(Kind.READ, lambda tx: tx.all(f"SELECT {_COLUMNS} FROM signing_keys"))
        order = {state: index for index, state in enumerate(STATES)}
        return sorted((_record(r) for r in rows), key=lambda k: (order[k.state], -k.changed.timestamp()))

    def add_next(self, *, fingerprint: str, key_pem: bytes, cert_pem: bytes, not_after: datetime,
                 now: datetime) -> KeyRecord:
        """Store a key as ``next``. :raises RegistryError: a next key exists, or this key is stored already."""

        def work(tx: Tx) -> KeyRecord:
            if tx.one("SELECT 1 FROM signing_keys WHERE state = 'next'") is not None:
                raise RegistryError("a next key is already published: promote it, or wait, before adding another")
            if tx.one("SELECT 1 FROM signing_keys WHERE fingerprint = ?", (fingerprint,)) is not None:
                raise RegistryError(f"the key with certificate {fingerprint} is stored already")
            stamp = _us(now)
            tx.execute("INSERT INTO signing_keys (state, fingerprint, key_pem, cert_pem, not_after_us, added_us, "
                       "changed_us) VALUES ('next', ?, ?, ?, ?, ?, ?)",
                       (fingerprint, key_pem, cert_pem, _us(not_after), stamp, stamp))
            row = tx.one(f"SELECT {_COLUMNS} FROM signing_keys WHERE fingerprint = ?", (fingerprint,))
            assert row is not None
            return _record(row)

        return self._db.run(Kind.WRITE, work)

    def promote(self, *, now: datetime) -> tuple[KeyRecord, KeyRecord | None]:
        """Next becomes primary, primary becomes previous; returns (new primary, new previous or None).

        :raises RegistryError: there is no next key.
        """

        def work(tx: Tx) -> tuple[KeyRecord, KeyRecord | None]:
            nxt = tx.one(f"SELECT {_COLUMNS} FROM signing_keys WHERE state = 'next'")
            if nxt is None:
                raise RegistryError("there is no next key to promote: add one with `keys add-next`")
            old = tx.one(f"SELECT {_COLUMNS} FROM signing_keys WHERE state = 'primary'")
            stamp = _us(now)
            if old is not None:
                tx.execute("UPDATE signing_keys SET state = 'previous', changed_us = ? WHERE id = ?", (stamp, old[0]))
            tx.execute("UPDATE signing_keys SET state = 'primary', changed_us = ? WHERE id = ?", (stamp, nxt[0]))
            previous = None if old is None else replace(_record(old), state="previous", changed=now)
            return replace(_record(nxt), state="primary", changed=now), previous

        return self._db.run(Kind.WRITE, work)

    def retire(self, *, fingerprint: str | None = None) -> list[KeyRecord]:
        """Delete the previous keys (or the one named by ``fingerprint``); returns what was deleted.

        :raises RegistryError: no previous key (or the named key is not a previous one).
        """

        def work(tx: Tx) -> list[KeyRecord]:
            rows = [_record(r) for r in tx.all(f"SELECT {_COLUMNS} FROM signing_keys WHERE state = 'previous'")]
            if fingerprint is not None:
                rows = [r for r in rows if r.fingerprint == fingerprint]
            if not rows:
                named = f" with certificate {fingerprint}" if fingerprint else ""
                raise RegistryError(f"there is no previous key{named} to retire")
            for row in rows:
                tx.execute("DELETE FROM signing_keys WHERE id = ?", (row.id,))
            return rows

        return self._db.run(Kind.WRITE, work)
