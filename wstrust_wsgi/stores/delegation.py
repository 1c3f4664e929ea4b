"""Delegation rules: which requester may ask for tokens on behalf of (or acting as) whom, for which relying party.

A rule allows ``requester`` to present, in ``wst:OnBehalfOf`` or ``ActAs``
(``kind``), a token of ``subject`` and get a token for ``relying_party``;
``"*"`` in ``subject``, ``relying_party`` or ``kind`` matches any. There is no
wildcard requester: each delegating service is named. No rule, no delegation
(as CXF, which configures no delegation handler by default). Rules live in
memory (:class:`MemoryDelegationRules`) or in the registry
(:class:`~wstrust_wsgi.stores.sql.delegation.RegistryDelegationRules`, managed
with ``wstrust-wsgi delegation``); the STS policy is
:class:`~wstrust_wsgi.sts.delegation.DelegationPolicy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..errors import BadValue

__all__ = ["ANY", "KINDS", "DelegationRule", "DelegationRules", "MemoryDelegationRules"]

ANY = "*"
#: What a rule's ``kind`` may be: one of the two elements, or either.
KINDS = ("OnBehalfOf", "ActAs", ANY)


@dataclass(frozen=True)
class DelegationRule:
    """``requester`` may act for ``subject`` towards ``relying_party`` by ``kind`` (``"*"``: any)."""

    requester: str
    subject: str = ANY
    relying_party: str = ANY
    kind: str = ANY

    def __post_init__(self) -> None:
        if not self.requester or self.requester == ANY:
            raise BadValue("requester: name the requester (a user); there is no wildcard requester")
        if self.kind not in KINDS:
            raise BadValue(f"kind: must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.subject or not self.relying_party:
            raise BadValue("subject and relying party: must not be empty (\"*\" matches any)")

    def allows(self, kind: str, requester: str, subject: str, relying_party: str) -> bool:
        return (requester == self.requester and self.kind in (ANY, kind) and self.subject in (ANY, subject)
                and self.relying_party in (ANY, relying_party))


class DelegationRules(Protocol):
    def delegation_rules(self) -> Iterable[DelegationRule]:
        """The rules in force now (the STS asks on each delegated request)."""


class MemoryDelegationRules:
    """Rules given in code."""

    def __init__(self, rules: Iterable[DelegationRule] = ()) -> None:
        self._rules = tuple(rules)

    def delegation_rules(self) -> tuple[DelegationRule, ...]:
        return self._rules
