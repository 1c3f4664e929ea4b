"""Brute-force protection: failed authentications counted per user and per client address, then a timed lock.

Modelled on WSO2 Identity Server's account locking (5 failed attempts, then
the account is locked for 5 minutes and unlocks by itself, or an
administrator unlocks it; a success resets the count) and on AD FS Extranet
Smart Lockout, which keeps separate counts for a user's *familiar* locations
(addresses the user has signed in from) and unfamiliar ones, so that an
attacker elsewhere cannot lock the real user out.

The rules, for user U sending from address A (IPv4 as is, IPv6 by its /64,
since one host holds a whole /64):

* A is *familiar* to U when U authenticated from A within ``familiar_for``.
* From an unfamiliar A, U is refused while U's unfamiliar-location lock
  holds, or while A itself is locked; a failure counts on both.
* From a familiar A, U is refused only while U's familiar-location lock
  holds (a separate count, fed only by failures from U's familiar
  addresses); a locked address does not refuse U there, so users behind a
  shared address (a NAT, a proxy) keep working while an attacker behind it
  is blocked.
* ``max_failures`` failures of one count within ``window`` lock it for
  ``duration``; an address locks after ``address_max_failures``. Failures
  while a count is locked are not counted, so no lock outlasts ``duration``
  after it began, and an attacker cannot keep anything locked by trying on.
* A success clears U's count of its side (familiar or not: the real user
  signing in at home does not give an attacker elsewhere fresh guesses) and
  marks A familiar; the address count is not cleared (one valid account must
  not reset an address that sprays others). ``wstrust-wsgi user unlock U``
  clears both of U's counts.

A call with no network peer (an in-process app) is counted per user only.
The address is ``REMOTE_ADDR``: behind a reverse proxy it must be the
client's, not the proxy's.

So one address can lock at most ``address_max_failures / max_failures``
users per ``window`` + ``duration`` (5 with the defaults), each only for
unfamiliar locations and for ``duration``: never every user, never for ever.

A lock is never told to the client: a locked user gets the fault a wrong
password gets, and the password is checked anyway (with a password that
cannot match, so a right guess during a lock costs and answers the same as a
wrong one). The precise reason is the fault's log line.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..errors import ConfigurationError
from ..stores import LockoutEntry, LockoutStore

__all__ = ["IN_PROCESS", "SETTINGS", "Attempt", "Lockout", "LockoutPolicy", "address_key", "settings_from_table",
           "user_keys"]

log = logging.getLogger("wstrust_wsgi.sts")


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failures lock what, and for how long (``[lockout]`` in the deployment file).

    :param max_failures: failures of one user (counted apart for familiar and
        unfamiliar addresses) that lock it; WSO2's default is 5.
    :param window: how long failures are counted together after the first.
    :param duration: how long a lock lasts (WSO2: 5 minutes).
    :param address_max_failures: failures from one address (any users) that
        lock the address for users to whom it is unfamiliar.
    :param familiar_for: how long an address stays familiar after a success.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    duration: timedelta = timedelta(minutes=5)
    address_max_failures: int = 25
    familiar_for: timedelta = field(default=timedelta(days=30))

    def __post_init__(self) -> None:
        for name in ("max_failures", "address_max_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
                raise ConfigurationError(f"lockout {name}: must be a whole number from 1 to 1000000, not {value!r}")
        for name in ("window", "duration", "familiar_for"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or not timedelta(seconds=1) <= value <= timedelta(days=366):
                shown = f"{value.total_seconds():g} seconds" if isinstance(value, timedelta) else repr(value)
                raise ConfigurationError(f"lockout {name}: must be from 1 second to 366 days, not {shown}")


#: The "address" of a call with no network peer (an in-process app): never counted, since every such call shares it.
IN_PROCESS = "in-process"

#: The keys of the deployment file's ``[lockout]`` table: on/off, the store, then the policy's fields.
SETTINGS = ("enabled", "store", "max_failures", "window", "duration", "address_max_failures", "familiar_for")


def settings_from_table(values: Mapping[str, object], where: str = "") -> tuple[LockoutPolicy | None, str]:
    """The policy (None with ``enabled = false``) and the store from ``[lockout]``'s values.

    Counts are whole numbers, times whole seconds; the store is ``registry``
    (the default), ``redis://host:port/db`` or ``memory:``. Called by
    :func:`wstrust_wsgi.config.load_config`, which refuses unknown keys first.

    :raises ConfigurationError: ``<where><key>: <problem>``.
    """
    try:
        return _settings(values)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}{exc}") from None


def _settings(values: Mapping[str, object]) -> tuple[LockoutPolicy | None, str]:
    enabled, store = values.get("enabled", True), values.get("store", "registry")
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"enabled: must be true or false, not {enabled!r}")
    if not isinstance(store, str) or not store.strip():
        raise ConfigurationError(f'store: must be "registry", "memory:" or a redis:// URL, not {store!r}')
    given: dict[str, object] = {}
    for key in SETTINGS[2:]:
        value = values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigurationError(f"{key}: must be a whole number{'' if 'failures' in key else ' of seconds'}, "
                                     f"not {value!r}")
        if value is not None:
            given[key] = value if "failures" in key else timedelta(seconds=value)  # type: ignore[arg-type]
    try:
        policy = LockoutPolicy(**given)  # type: ignore[arg-type]
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc).removeprefix("lockout ")) from None
    except OverflowError:
        raise ConfigurationError("a time is out of range (at most 366 days)") from None
    return (policy if enabled else None), store.strip()


def address_key(address: str) -> str:
    """The unit an address is counted in: an IPv4 address, an IPv6 /64, else the text as given."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address or IN_PROCESS
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)


def user_keys(username: str) -> tuple[str, str]:
    """The user's unfamiliar- and familiar-location counts: what ``user unlock`` clears."""
    return f"user:{username}", f"user-familiar:{username}"


@dataclass(frozen=True)
class Attempt:
    """One authentication attempt as the lockout sees it, before the password is checked."""

    username: str
    address: str
    familiar: bool
    #: Why it is refused (a log text), or None.
    refused: str | None
    #: The user has failures counted on this attempt's side (a success must clear them).
    counted: bool
    mark: LockoutEntry | None


class Lockout:
    """The policy over a store: :meth:`check` before the password, then :meth:`failed` or :meth:`succeeded`."""

    def __init__(self, policy: LockoutPolicy, store: LockoutStore) -> None:
        self.policy = policy
        self.store = store

    def check(self, username: str, address: str, now: datetime) -> Attempt:
        net = address_key(address)
        unfamiliar, familiar = user_keys(username)
        mark_key, net_key = f"familiar:{net} {username}", f"address:{net}"
        found = self.store.read([unfamiliar, familiar, mark_key] + ([net_key] if net != IN_PROCESS else []), now)
        mark = found.get(mark_key)
        if mark is not None:
            refused = self._why(found.get(familiar), now, f"user {username!r} (failures from its familiar addresses)")
        else:
            refused = (self._why(found.get(unfamiliar), now, f"user {username!r} (failures from unfamiliar addresses)")
                       or self._why(found.get(net_key), now, f"address {net} (failures for any user)"))
        counted = (familiar if mark is not None else unfamiliar) in found
        return Attempt(username, net, mark is not None, refused, counted, mark)

    @staticmethod
    def _why(entry: LockoutEntry | None, now: datetime, what: str) -> str | None:
        if entry is None or not entry.locked(now):
            return None
        assert entry.locked_until is not None
        return f"{what} is locked out until {entry.locked_until.isoformat(timespec='seconds')}"

    def failed(self, attempt: Attempt, now: datetime) -> None:
        """Count the failure (a refused attempt on its address only); log each lock it starts."""
        policy = self.policy
        unfamiliar, familiar = user_keys(attempt.username)
        limits = [] if attempt.address == IN_PROCESS else [(f"address:{attempt.address}", policy.address_max_failures)]
        if attempt.refused is None:  # a refused one must not count on the user: a locked address would lock it
            limits.insert(0, (familiar if attempt.familiar else unfamiliar, policy.max_failures))
        if not limits:
            return
        locked = self.store.fail(limits, now=now, window=policy.window, lock_for=policy.duration)
        for key, until in locked.items():
            limit = dict(limits)[key]
            what = (f"address {attempt.address}" if key.startswith("address:")
                    else f"user {attempt.username!r} from {'familiar' if attempt.familiar else 'unfamiliar'} addresses")
            log.warning("lockout: %s locked until %s after %d failed authentications within %s (last from %s)",
                        what, until.isoformat(timespec="seconds"), limit, policy.window, attempt.address)

    def succeeded(self, attempt: Attempt, now: datetime) -> None:
        """Clear the user's count of this side (if any: the usual success writes nothing); keep the address familiar."""
        if attempt.counted:
            unfamiliar, familiar = user_keys(attempt.username)
            self.store.clear([familiar if attempt.familiar else unfamiliar], now)
        mark = attempt.mark
        if mark is None or mark.expires < now + self.policy.familiar_for / 2:
            self.store.mark(f"familiar:{attempt.address} {attempt.username}", now=now,
                            until=now + self.policy.familiar_for)
