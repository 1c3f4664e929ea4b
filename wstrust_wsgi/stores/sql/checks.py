"""What the registry accepts, checked before any statement runs.

Names, addresses and claims follow the one set of rules in
:mod:`wstrust_wsgi.model`, which the command line and the deployment file
call too, so that a value one of them accepts is never refused by another.
The registry adds its own rules for what only it stores: passwords,
durations, lists, certificates. Every refusal is a
:class:`~wstrust_wsgi.errors.ConfigurationError` (the model's rules raise its
subclass :class:`~wstrust_wsgi.errors.BadValue`) naming the value and the rule.

A name that only *refers* to a row already stored (a user to remove, a role
to revoke, a party to unregister) is checked more lightly, by
:func:`reference`: it need only be a non-empty string the database could hold,
so that rows stored under older, looser rules can still be reached and removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from ...errors import ConfigurationError
from ...model import (
    TOKEN_TYPES, RelyingParty, check_address, check_claim_uri, check_claim_value, check_key_types, check_name,
    encryption_certificate,
)

__all__ = ["claims", "duration", "findable", "names", "party", "password", "reference"]

def findable(name: object) -> bool:
    """Whether a looked-up name could be stored at all (PostgreSQL text holds no NUL)."""
    return isinstance(name, str) and "\0" not in name


def reference(what: str, value: object) -> str:
    """A name that refers to a stored row: a non-empty string without NUL (see the module docstring)."""
    if not isinstance(value, str) or not value or not findable(value):
        raise ConfigurationError(f"{what}: must be a non-empty string without NUL characters, not {value!r}")
    return value


def names(what: str, kind: str, values: object) -> list[str]:
    """A list of ``kind`` names (each :func:`~wstrust_wsgi.model.check_name`), refusing a bare string."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigurationError(f"{what}: must be a list of names, not {values!r}")
    return list(dict.fromkeys(check_name(value, kind) for value in values))


def _claim_values(claim: str, values: object) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigurationError(f"claim {claim}: values must be a list of strings, not {values!r}")
    checked = list(values)
    if not checked or not all(isinstance(value, str) for value in checked):
        raise ConfigurationError(
            f"claim {claim}: give at least one value, each a string (unset_claim removes a claim), not {checked!r}"
        )
    return [check_claim_value(value, claim) for value in checked]


def claims(given: object) -> dict[str, list[str]]:
    """Claim URI -> values, each URI and value checked by the model's rules."""
    if not isinstance(given, Mapping):
        raise ConfigurationError(f"claims: must map claim URIs to lists of values, not {given!r}")
    return {check_claim_uri(claim): _claim_values(claim, values) for claim, values in given.items()}


def password(value: object) -> str:
    # No NUL: XML cannot carry one, so no client could ever send it.
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigurationError("password: must be a non-empty string without NUL characters")
    return value


def duration(what: str, value: object, *, allow_zero: bool) -> int:
    """The duration in whole microseconds, as the registry stores it."""
    if not isinstance(value, timedelta) or value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{what}: must be a timedelta {rule}, not {value!r}")
    return value // timedelta(microseconds=1)


def party(given: object) -> RelyingParty:
    """A relying party to register: address, token type, lifetime, claim URIs and certificate checked."""
    if not isinstance(given, RelyingParty):
        raise ConfigurationError(f"relying party: must be a RelyingParty, not {given!r}")
    address = check_address(given.address, "relying party address")
    if given.token_type not in TOKEN_TYPES:
        raise ConfigurationError(
            f"relying party {address}: token_type must be '2.0' or '1.1', not {given.token_type!r}"
        )
    if given.lifetime is not None:
        duration(f"relying party {address}: lifetime", given.lifetime, allow_zero=False)
    if given.claims is not None:
        if isinstance(given.claims, (str, bytes)) or not isinstance(given.claims, Iterable):
            raise ConfigurationError(f"relying party {address}: claims must be a set of claim URIs, "
                                     f"not {given.claims!r}")
        for claim in given.claims:
            check_claim_uri(claim)
    if given.key_types is not None:
        check_key_types(given.key_types, f"relying party {address}: key_types")
    if given.certificate_pem is not None:  # its dates are checked by the CLI and on every request
        encryption_certificate(given.certificate_pem, f"relying party {address}")
    return given
