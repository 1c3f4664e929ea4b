"""The ``relying_parties`` table: a :class:`~wstrust_wsgi.model.RelyingParty` as one row, and back.

Kept beside :mod:`.registry` so that the columns of a party are written down
once (:data:`COLUMNS`, :func:`row_values`, :func:`from_row`) for insert, update
and both reads. Every function here runs inside a transaction the
:class:`~wstrust_wsgi.stores.sql.Registry` opened.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from ...errors import ConfigurationError, RegistryError
from ...model import RelyingParty
from . import checks
from .db import Tx

__all__ = ["COLUMNS", "SELECT", "from_row", "insert", "update"]

#: The columns of a party, in the order :func:`row_values` and :func:`from_row` use.
COLUMNS = ("address", "token_type", "lifetime_us", "claims", "certificate_pem", "encryption", "key_transport",
           "key_reference", "key_types")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM relying_parties"


def row_values(party: RelyingParty) -> tuple[Any, ...]:
    """The party as the row stores it: durations in whole microseconds, claims and key types as sorted JSON
    arrays (NULL: every one)."""
    lifetime = None if party.lifetime is None else party.lifetime // timedelta(microseconds=1)
    claims = None if party.claims is None else json.dumps(sorted(party.claims))
    key_types = None if party.key_types is None else json.dumps(sorted(party.key_types))
    return (party.address, party.token_type, lifetime, claims, party.certificate_pem, party.encryption,
            party.key_transport, party.key_reference, key_types)


def from_row(row: tuple[Any, ...]) -> RelyingParty:
    """A row of :data:`SELECT` as a RelyingParty."""
    address, token_type, lifetime, claims, pem, encryption, key_transport, key_reference, key_types = row
    return RelyingParty(
        address=address,
        token_type=token_type,
        lifetime=None if lifetime is None else timedelta(microseconds=int(lifetime)),
        claims=None if claims is None else frozenset(json.loads(claims)),
        certificate_pem=None if pem is None else bytes(pem),
        encryption=encryption, key_transport=key_transport, key_reference=key_reference,
        key_types=None if key_types is None else frozenset(json.loads(key_types)),
    )


def insert(tx: Tx, party: RelyingParty) -> None:
    """Add the (checked) party. :raises RegistryError: its address is registered already."""
    marks = ", ".join("?" for _ in COLUMNS)
    inserted = tx.execute(f"INSERT INTO relying_parties ({', '.join(COLUMNS)}) VALUES ({marks}) "
                          "ON CONFLICT (address) DO NOTHING", row_values(party)).rowcount
    if inserted == 0:
        raise RegistryError(f"relying party {party.address!r} is already registered")


def update(tx: Tx, address: str, changes: dict[str, Any]) -> RelyingParty:
    """Change fields of the party at ``address`` (read, changed and written in ``tx``); the party now stored.

    :raises RegistryError: no party at that address.
    :raises ConfigurationError: a field that does not exist or cannot change
        (the address: remove and add instead), or a changed party that breaks a rule.
    """
    fields = {field.name for field in dataclasses.fields(RelyingParty)} - {"address"}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ConfigurationError(f"relying party {address}: cannot change {', '.join(unknown)} "
                                 f"(can change: {', '.join(sorted(fields))})")
    row = tx.one(f"{SELECT} WHERE address = ?", (address,))
    if row is None:
        raise RegistryError(f"unknown relying party {address!r}")
    party = checks.party(dataclasses.replace(from_row(row), **changes))
    settings = ", ".join(f"{column} = ?" for column in COLUMNS[1:])
    tx.execute(f"UPDATE relying_parties SET {settings} WHERE address = ?", (*row_values(party)[1:], address))
    return party
