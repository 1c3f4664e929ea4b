"""``wstrust-wsgi delegation add|list|remove``: the registry's delegation rules (OnBehalfOf and ActAs).

A rule lets a requester (a service authenticating to the STS) present another
identity's token in ``wst:OnBehalfOf`` or ``ActAs`` (``--kind``, default
either) for a subject (``--for``, default any) towards a relying party
(``--rp``, default any). With no rule, every OnBehalfOf and ActAs is refused.
Every STS host sharing the registry applies the rules at the next request.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..stores.delegation import ANY, KINDS, DelegationRule
from .admin import _add_command, _registry
from .output import Result

__all__ = ["add_delegation_commands"]


def _rule(args: argparse.Namespace) -> DelegationRule:
    return DelegationRule(args.requester, args.subject, args.relying_party, args.kind)


def _shown(rule: DelegationRule) -> str:
    subject = "anyone" if rule.subject == ANY else repr(rule.subject)
    party = "any relying party" if rule.relying_party == ANY else rule.relying_party
    kind = "OnBehalfOf or ActAs" if rule.kind == ANY else rule.kind
    return f"{rule.requester!r} may use {kind} for {subject} towards {party}"


def _data(rule: DelegationRule) -> dict[str, str]:
    return {"requester": rule.requester, "subject": rule.subject, "relying_party": rule.relying_party,
            "kind": rule.kind}


def _add(args: argparse.Namespace, url: str) -> Result:
    from ..stores.sql.delegation import RegistryDelegationRules

    rule = _rule(args)
    with _registry(url) as registry:
        RegistryDelegationRules(registry).add(rule)
    return Result(_data(rule), f"Added: {_shown(rule)}.")


def _remove(args: argparse.Namespace, url: str) -> Result:
    from ..stores.sql.delegation import RegistryDelegationRules

    rule = _rule(args)
    with _registry(url) as registry:
        RegistryDelegationRules(registry).remove(rule)
    return Result(_data(rule), f"Removed: {_shown(rule)}.")


def _list(args: argparse.Namespace, url: str) -> Result:
    from ..stores.sql.delegation import RegistryDelegationRules

    with _registry(url) as registry:
        rules = list(RegistryDelegationRules(registry).delegation_rules())
    text = "\n".join(_shown(rule) for rule in rules) or "No delegation rules: OnBehalfOf and ActAs are refused."
    return Result([_data(rule) for rule in rules], text)


def add_delegation_commands(commands: Any) -> None:
    """Register ``delegation add|list|remove`` on the subcommand group ``commands``."""
    delegation = commands.add_parser("delegation", help="manage who may use OnBehalfOf and ActAs (add, list, remove)")
    actions = delegation.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, text in (("add", _add, "allow a requester to act for a subject"),
                                ("remove", _remove, "remove a rule (given exactly as added)")):
        parser = _add_command(actions, name, handler, text, f"delegation {name}")
        parser.add_argument("requester", metavar="REQUESTER", help="the user (service) that sends the request")
        parser.add_argument("--for", dest="subject", default=ANY, metavar="SUBJECT",
                            help="whom it may act for (default: anyone)")
        parser.add_argument("--rp", dest="relying_party", default=ANY, metavar="ADDRESS",
                            help="towards which relying party (default: any)")
        parser.add_argument("--kind", choices=KINDS, default=ANY, help="OnBehalfOf, ActAs or * (default: either)")
    _add_command(actions, "list", _list, "list the rules", "delegation list")
