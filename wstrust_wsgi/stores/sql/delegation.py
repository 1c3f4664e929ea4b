"""Delegation rules in the registry's ``delegation_rules`` table (schema version 5), for ``wstrust-wsgi delegation``."""

from __future__ import annotations

from ...errors import RegistryError
from ..delegation import DelegationRule
from .db import Kind, Tx
from .registry import Registry

__all__ = ["RegistryDelegationRules"]

_COLUMNS = "requester, subject, relying_party, kind"


class RegistryDelegationRules:
    """The rules every STS host sharing the registry applies; each call is one transaction."""

    def __init__(self, registry: Registry) -> None:
        self._db = registry.database

    def delegation_rules(self) -> list[DelegationRule]:
        return self._db.run(Kind.READ, lambda tx: [DelegationRule(*row) for row in tx.all(
            f"SELECT {_COLUMNS} FROM delegation_rules ORDER BY {_COLUMNS}")])

    def add(self, rule: DelegationRule) -> None:
        """Add ``rule``; RegistryError if it is there already."""
        def work(tx: Tx) -> None:
            if tx.one(f"SELECT 1 FROM delegation_rules WHERE ({_COLUMNS}) = (?, ?, ?, ?)", _values(rule)):
                raise RegistryError(f"delegation rule already exists: {_shown(rule)}")
            tx.execute(f"INSERT INTO delegation_rules ({_COLUMNS}) VALUES (?, ?, ?, ?)", _values(rule))

        self._db.run(Kind.WRITE, work)

    def remove(self, rule: DelegationRule) -> None:
        """Remove ``rule``; RegistryError if there is no such rule."""
        def work(tx: Tx) -> None:
            if tx.execute(f"DELETE FROM delegation_rules WHERE ({_COLUMNS}) = (?, ?, ?, ?)",
                          _values(rule)).rowcount != 1:
                raise RegistryError(f"no such delegation rule: {_shown(rule)}")

        self._db.run(Kind.WRITE, work)


def _values(rule: DelegationRule) -> tuple[str, str, str, str]:
    return rule.requester, rule.subject, rule.relying_party, rule.kind


def _shown(rule: DelegationRule) -> str:
    return f"{rule.requester!r} {rule.kind} for {rule.subject!r} towards {rule.relying_party!r}"
