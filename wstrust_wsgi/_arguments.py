"""Checks of constructor arguments: a mistake is a ConfigurationError at construction, never at request time.

The public constructors (:class:`~wstrust_wsgi.RelyingPartyMiddleware`,
:class:`~wstrust_wsgi.TokenService`, :class:`~wstrust_wsgi.StsClient`) take
their configuration as keyword arguments, and Python checks none of their
types. The mistakes a newcomer makes are few and always the same: one string
where several are expected (``audience="https://..."`` is fine, but
``allowed_roles="admin"`` iterated is five one-letter roles), a number of
seconds where a ``timedelta`` is expected, a string where a flag is expected
(``"false"`` is true). Each function here takes what a person would mean
(one string as one value, a number as seconds) or refuses it with a message
naming the argument, the rule and what was given, as pyca/cryptography's
messages do. Base tier: imports only :mod:`wstrust_wsgi.errors`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from .errors import ConfigurationError

T = TypeVar("T")


def given(value: object) -> str:
    """What was given, short enough for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def duration(value: timedelta | float, name: str, *, positive: bool = False) -> timedelta:
    """A ``timedelta``, or a number of seconds (as the deployment file and the command line take them).

    :param positive: refuse zero as well as negative spans (a lifetime, a window);
        otherwise only negative ones (a tolerance).
    """
    if isinstance(value, bool) or not isinstance(value, (timedelta, int, float)):
        raise ConfigurationError(f"{name}: give a datetime.timedelta or a number of seconds, not {given(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"{name}: must be a finite number of seconds, not {value}")
    try:
        span = value if isinstance(value, timedelta) else timedelta(seconds=value)
    except OverflowError:
        raise ConfigurationError(f"{name}: {value} seconds is out of range") from None
    if span < timedelta(0) or (positive and not span):
        rule = "must be positive" if positive else "must not be negative"
        raise ConfigurationError(f"{name}: {rule}, not {span.total_seconds():g} seconds")
    return span


def strings(value: str | Iterable[str], name: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """One string, or several: a single string is one value, never its characters.

    Every value must be a non-empty string; with ``allow_empty`` the collection
    itself may be empty (``allowed_roles=()`` lets every user in).
    """
    values = _several(value, name, single=(str,), what="one non-empty string or several")
    if not values and not allow_empty:
        raise ConfigurationError(f"{name}: give one non-empty string or several, not an empty collection")
    for item in values:
        if not isinstance(item, str) or not item:
            raise ConfigurationError(f"{name}: every value must be a non-empty string, not {given(item)}")
    return values


def several(value: T | Iterable[T], name: str, *, single: tuple[type, ...], what: str) -> tuple[T, ...]:
    """``value`` as a tuple: one value of a ``single`` type is one item; anything else must be iterable."""
    return _several(value, name, single=single, what=what)


def _several(value: Any, name: str, *, single: tuple[type, ...], what: str) -> tuple[Any, ...]:
    if isinstance(value, single):
        return (value,)
    if isinstance(value, (str, bytes, bytearray, Mapping)):  # iterable, but never a collection of values
        raise ConfigurationError(f"{name}: give {what}, not {given(value)}")
    try:
        return tuple(value)
    except TypeError:
        raise ConfigurationError(f"{name}: give {what}, not {given(value)}") from None


def flag(value: bool, name: str) -> bool:
    """``True`` or ``False`` only: the string ``"false"`` is true in Python, so no string is guessed at."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}: must be True or False, not {given(value)}")
    return value


def count(value: int, name: str, *, minimum: int = 0) -> int:
    """A whole number at least ``minimum`` (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name}: must be a whole number >= {minimum}, not {given(value)}")
    return value


def seconds(value: float, name: str, *, positive: bool = False) -> float:
    """A finite number of seconds, as a float (a timeout, a cache's time to live)."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name}: must be a number of seconds, not {given(value)}")
    if value < 0 or (positive and not value):
        raise ConfigurationError(f"{name}: must be {'positive' if positive else '>= 0'}, not {value:g}")
    return float(value)


def text(value: str, name: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name}: must be a non-empty string, not {given(value)}")
    return value


def callable_(value: Callable[..., Any], name: str) -> Callable[..., Any]:
    if not callable(value):
        raise ConfigurationError(f"{name}: must be callable, not {given(value)}")
    return value


def having(value: T, name: str, method: str, what: str) -> T:
    """An object offering ``method`` (a store or a cache: protocols are not checked by Python)."""
    if not callable(getattr(value, method, None)):
        raise ConfigurationError(f"{name}: must be {what} (an object with a {method}() method), not {given(value)}")
    return value
