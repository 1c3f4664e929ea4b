"""Where failed authentications are counted and lockouts kept: memory, the SQL registry, Redis.

The policy (what to count, when to lock, what a lock refuses) is
:mod:`wstrust_wsgi.sts.lockout`; a store only keeps *entries* under opaque
keys, with the same three-step semantics in every backend:

* :meth:`~LockoutStore.fail` counts one failure for each key not locked now:
  the first failure opens a window of ``window``; the failure that reaches the
  key's limit within it locks the key for ``lock_for`` and starts the count
  afresh. A failure while the key is locked is not counted (a lock never grows
  by itself, so it always ends ``lock_for`` after it began).
* :meth:`~LockoutStore.mark` records a key with no failures until a time (a
  familiar address); :meth:`~LockoutStore.read` returns the live entries of some
  keys; :meth:`~LockoutStore.clear` deletes entries (a success, an unlock).

Backends, each shared as widely as what it lives in:

* :class:`MemoryLockoutStore`: this process only (tests, the in-process default);
* :class:`RegistryLockoutStore`: the ``lockout`` table of the SQL registry
  (schema version 2), so the workers of a host (SQLite) or every host
  (PostgreSQL) share it; each call is one registry transaction;
* :class:`RedisLockoutStore`: one Redis, for hosts that share Redis; the count
  and the lock are one Lua script, atomic in Redis. Its times to live are
  ``window`` and ``lock_for`` measured by Redis, not the caller's clock.

Every backend failure is :class:`~wstrust_wsgi.errors.StoreUnavailable`: the
STS then refuses the request (fails closed), as with the replay caches.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._urls import redact_url
from ..errors import ConfigurationError
from . import LockoutEntry, LockoutStore
from ._backends import RedisStore, RegistryTable

if TYPE_CHECKING:
    import redis

    from .sql import Registry

__all__ = ["LockoutEntry", "LockoutStore", "MemoryLockoutStore", "RedisLockoutStore", "RegistryLockoutStore",
           "lockout_store_from_url"]

_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _step(entry: LockoutEntry | None, limit: int, now: datetime, window: timedelta,
          lock_for: timedelta) -> LockoutEntry | None:
    """One failure applied to one entry (the rule every backend follows); None if it is locked (unchanged)."""
    if entry is not None and entry.locked(now):
        return None
    failures = 1 if entry is None or entry.expires <= now else entry.failures + 1
    if failures >= limit:
        return LockoutEntry(0, now + lock_for, now + lock_for)
    return LockoutEntry(failures, now + window if failures == 1 else entry.expires, None)  # type: ignore[union-attr]


def _live(entry: LockoutEntry, now: datetime) -> bool:
    return entry.expires > now or entry.locked(now)


class MemoryLockoutStore:
    """Entries in this process's memory: one worker's view only (use the registry or Redis for several).

    At most ``max_entries``: when full, dead entries are dropped, then the
    oldest down to 90%, so memory stays bounded whatever names and addresses
    are sent (an attacker who fills it can make it forget counts, never lock
    anyone: the registry and Redis stores have no such limit).
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"MemoryLockoutStore max_entries: must be >= 1, not {max_entries!r}")
        self._entries: dict[str, LockoutEntry] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def read(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        with self._lock:
            found = {key: self._entries.get(key) for key in keys}
        return {key: entry for key, entry in found.items() if entry is not None and _live(entry, now)}

    def fail(self, limits: Sequence[tuple[str, int]], *, now: datetime, window: timedelta,
             lock_for: timedelta) -> dict[str, datetime]:
        locked: dict[str, datetime] = {}
        with self._lock:
            for key, limit in limits:
                new = _step(self._entries.get(key), limit, now, window, lock_for)
                if new is not None:
                    self._put(key, new, now)
                    if new.locked_until is not None:
                        locked[key] = new.locked_until
        return locked

    def mark(self, key: str, *, now: datetime, until: datetime) -> None:
        with self._lock:
            self._put(key, LockoutEntry(0, until, None), now)

    def clear(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        with self._lock:
            gone = {key: self._entries.pop(key, None) for key in keys}
        return {key: entry for key, entry in gone.items() if entry is not None and _live(entry, now)}

    def _put(self, key: str, entry: LockoutEntry, now: datetime) -> None:
        self._entries.pop(key, None)  # re-inserted last: the dict's order is the age order
        if len(self._entries) >= self._max:  # down to 90%, so the scan is paid once per tenth of max_entries
            self._entries = {k: e for k, e in self._entries.items() if _live(e, now)}
            for oldest in list(itertools.islice(self._entries, max(0, len(self._entries) - self._max * 9 // 10))):
                del self._entries[oldest]
        self._entries[key] = entry


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def _moment(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


class RegistryLockoutStore(RegistryTable):
    """Entries in the registry's ``lockout`` table (SQLite for one host's workers, PostgreSQL for several hosts).

    Each call is one transaction of the registry's own database layer (its
    connections per thread, retries on busy or serialization failures, fork
    safety): :meth:`fail` reads and writes its rows in one write transaction,
    so racing workers count every failure exactly once. Times are whole
    microseconds since the epoch from the caller's clock. Every ``purge_every``
    failures, at most ``purge_batch`` dead rows are deleted.
    """

    _table = "lockout"


    @staticmethod
    def _rows(tx: Any, keys: Sequence[str]) -> dict[str, LockoutEntry]:
        marks = ", ".join("?" for _ in keys)
        rows = tx.all(f"SELECT key, failures, expires_us, locked_until_us FROM lockout WHERE key IN ({marks})",
                      tuple(keys)) if keys else []
        return {row[0]: LockoutEntry(int(row[1]), _EPOCH + int(row[2]) * _US, _moment(row[3])) for row in rows}

    @staticmethod
    def _write(tx: Any, key: str, entry: LockoutEntry) -> None:
        tx.execute("INSERT INTO lockout (key, failures, expires_us, locked_until_us) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, expires_us = excluded.expires_us, "
                   "locked_until_us = excluded.locked_until_us",
                   (key, entry.failures, _us(entry.expires),
                    None if entry.locked_until is None else _us(entry.locked_until)))

    def read(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        found = self._run(self._kind.READ, lambda tx: self._rows(tx, keys))
        return {key: entry for key, entry in found.items() if _live(entry, now)}

    def fail(self, limits: Sequence[tuple[str, int]], *, now: datetime, window: timedelta,
             lock_for: timedelta) -> dict[str, datetime]:
        purge = self._purge_now()

        def work(tx: Any) -> dict[str, datetime]:
            if purge:
                tx.execute("DELETE FROM lockout WHERE key IN (SELECT key FROM lockout WHERE expires_us <= ? AND "
                           "(locked_until_us IS NULL OR locked_until_us <= ?) LIMIT ?)",
                           (_us(now), _us(now), self._purge_batch))
            found = self._rows(tx, [key for key, _ in limits])
            locked: dict[str, datetime] = {}
            for key, limit in limits:
                new = _step(found.get(key), limit, now, window, lock_for)
                if new is not None:
                    self._write(tx, key, new)
                    if new.locked_until is not None:
                        locked[key] = new.locked_until
            return locked

        return self._run(self._kind.WRITE, work)  # type: ignore[no-any-return]

    def mark(self, key: str, *, now: datetime, until: datetime) -> None:
        self._run(self._kind.WRITE, lambda tx: self._write(tx, key, LockoutEntry(0, until, None)))

    def clear(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        def work(tx: Any) -> dict[str, LockoutEntry]:
            found = self._rows(tx, keys)
            for key in found:
                tx.execute("DELETE FROM lockout WHERE key = ?", (key,))
            return found

        gone = self._run(self._kind.WRITE, work)
        return {key: entry for key, entry in gone.items() if _live(entry, now)}


# KEYS: count and lock key of each entry, in pairs; ARGV: window ms, lock ms, then one limit per pair.
# Returns the 1-based pair numbers this call locked. A locked pair is left alone (PTTL of its lock > 0).
_FAIL_SCRIPT = """
local locked = {}
for i = 1, #KEYS, 2 do
  local pair = (i + 1) / 2
  if redis.call('PTTL', KEYS[i + 1]) <= 0 then
    local failures = redis.call('INCR', KEYS[i])
    if failures == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
    if failures >= tonumber(ARGV[pair + 2]) then
      redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[2])
      redis.call('DEL', KEYS[i])
      locked[#locked + 1] = pair
    end
  end
end
return locked
"""


def _ms(duration: timedelta) -> int:
    return max(1, -(-duration // timedelta(milliseconds=1)))


class RedisLockoutStore(RedisStore):
    """Entries in Redis, shared by every host that reaches it.

    An entry is two Redis keys: ``<prefix>n:<key>``, the failure count (or 0
    for a mark), which expires with its window, and ``<prefix>l:<key>``, which
    exists while the key is locked. Connections, timeouts and retries are those
    of :class:`~wstrust_wsgi.stores.replay.RedisReplayCache` (the same helper
    builds the client).

    :param url_or_client: ``redis://host:port/db`` (also ``rediss://``, ``unix://``) or a ``redis.Redis``.
    :param prefix: prepended to every key.
    :param socket_timeout: seconds for connecting and for each reply.
    """

    _what = "Redis lockout store"
    _owner = "RedisLockoutStore"

    def __init__(self, url_or_client: str | redis.Redis, *, prefix: str = "wstrust:lockout:",
                 socket_timeout: float = 1.0) -> None:
        super().__init__(url_or_client, prefix=prefix, socket_timeout=socket_timeout, script=_FAIL_SCRIPT)

    def read(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        def ask() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.get(self.prefix + "n:" + key).pttl(self.prefix + "n:" + key).pttl(self.prefix + "l:" + key)
            return pipe.execute()  # type: ignore[no-any-return]

        answers = self._call(ask)
        found: dict[str, LockoutEntry] = {}
        for index, key in enumerate(keys):
            count, count_ttl, lock_ttl = answers[3 * index: 3 * index + 3]
            if count is None and lock_ttl <= 0:
                continue
            found[key] = LockoutEntry(
                int(count or 0), now + timedelta(milliseconds=max(count_ttl, 0)),
                now + timedelta(milliseconds=lock_ttl) if lock_ttl > 0 else None,
            )
        return found

    def fail(self, limits: Sequence[tuple[str, int]], *, now: datetime, window: timedelta,
             lock_for: timedelta) -> dict[str, datetime]:
        keys = [self.prefix + kind + key for key, _ in limits for kind in ("n:", "l:")]
        args = [_ms(window), _ms(lock_for), *(limit for _, limit in limits)]
        script = self._script
        assert script is not None
        pairs = self._call(lambda: script(keys=keys, args=args))
        return {limits[int(pair) - 1][0]: now + lock_for for pair in pairs}

    def mark(self, key: str, *, now: datetime, until: datetime) -> None:
        self._call(lambda: self._client.set(self.prefix + "n:" + key, b"0", px=_ms(until - now)))

    def clear(self, keys: Sequence[str], now: datetime) -> dict[str, LockoutEntry]:
        found = self.read(keys, now)
        if keys:
            names = [self.prefix + kind + key for key in keys for kind in ("n:", "l:")]
            self._call(lambda: self._client.delete(*names))
        return found


def lockout_store_from_url(url: str, registry: Registry) -> LockoutStore:
    """``registry`` (the registry's table), ``memory:`` (this process) or ``redis://host:port/db``.

    :raises ConfigurationError: any other value.
    """
    value = url.strip().lower()
    if value == "registry":
        return RegistryLockoutStore(registry)
    if value == "memory:":
        return MemoryLockoutStore()
    if value.startswith(("redis://", "rediss://", "unix://")):
        return RedisLockoutStore(url.strip())
    raise ConfigurationError(f"lockout store: {redact_url(url)!r} is not \"registry\", \"memory:\" or "
                             "redis://host:port/db")
