"""Replay caches shared by several processes or hosts: SQLite and Redis.

:class:`~wstrust_wsgi.stores.memory.MemoryReplayCache` is per process: under
gunicorn with several workers, a nonce or an assertion replayed to another
worker is not seen. The caches here are shared, so one key is admitted once
whichever worker (or host) sees it:

* :class:`SQLiteReplayCache`: the processes of one host (gunicorn workers).
  The check-and-record is one ``INSERT ... ON CONFLICT`` statement, atomic
  under SQLite's write lock.
* :class:`RedisReplayCache`: every process on every host that reaches one
  Redis. The check-and-record is ``SET key 1 NX PX <ttl>``, atomic in Redis.

Both implement :class:`~wstrust_wsgi.stores.ReplayCache`. Neither ever answers
"new" when it cannot be sure: every backend failure is raised as
:class:`~wstrust_wsgi.errors.StoreUnavailable` (the precise cause in its message,
the backend's exception chained), so the STS and the middleware refuse the
request (fail closed). Both recover by themselves once the backend is back;
nothing needs rebuilding.

:func:`replay_cache_from_url` builds a cache from one configuration string
(``memory:``, ``sqlite:///abs/path.db``, ``redis://host:port/db``), as the
demos read it from the environment.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._urls import redact_url, sqlite_path
from ..errors import BadValue, ConfigurationError, StoreUnavailable
from . import ReplayCache
from .memory import MemoryReplayCache

if TYPE_CHECKING:  # redis is the optional "redis" extra; imported only when used
    import redis

__all__ = ["RedisReplayCache", "SQLiteReplayCache", "replay_cache_from_url"]

_MILLISECOND = timedelta(milliseconds=1)

#: What the peer is told when a cache cannot answer; the cause goes to the log only.
_UNAVAILABLE_REASON = "The request cannot be checked right now; try again later."

# One table. ``expires`` is POSIX seconds; a row whose expires <= now is dead
# and may be overwritten or purged. The index keeps the purge a range scan.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replay (key TEXT PRIMARY KEY, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS replay_expires ON replay (expires)",
)
# The whole check-and-record is this one statement, so it is atomic under
# SQLite's database write lock: of two writers racing on one key, the second
# finds the first's live row and its DO UPDATE ... WHERE changes nothing
# (rowcount 0). A dead row is overwritten (rowcount 1): the key is new again.
_ADD = (
    "INSERT INTO replay (key, expires) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE replay.expires <= ?"
)
# Bounded work: at most ``purge_batch`` dead rows per purge.
_PURGE = "DELETE FROM replay WHERE key IN (SELECT key FROM replay WHERE expires <= ? LIMIT ?)"


class SQLiteReplayCache:
    """A replay cache in one SQLite file, shared by the processes and threads of one host.

    Meant for gunicorn with several workers on one machine (SQLite's locks do
    not work over network file systems: use :class:`RedisReplayCache` across
    hosts). The database runs in WAL mode, so readers never wait for the
    writer, with ``synchronous=NORMAL``: a commit survives a crash of the
    process, and only a power cut can lose the last few keys, a window that
    an attacker cannot choose.

    Each process holds one connection, behind a lock for its threads (one
    check is one short statement, so threads hardly wait). Before each check
    the file at ``path`` must still be the one the connection opened; if it
    was deleted or replaced, the connection is dropped, because a connection
    to an unlinked file keeps "working" while every other process records into
    a new file and no longer sees its keys. Any :mod:`sqlite3` error (file
    unusable, lock not obtained within ``timeout``) drops the connection and
    raises :class:`~wstrust_wsgi.errors.StoreUnavailable`; the next call opens a
    new one, so the cache works again as soon as the file does.

    :param path: the database file (created with its table when missing).
    :param timeout: seconds to wait for another process's write lock before
        failing (SQLite's busy timeout). Keep it well under the server's
        request timeout.
    :param purge_every: every this many checks, this process deletes dead rows...
    :param purge_batch: ...at most this many, so no request pays for a backlog.
    :raises ConfigurationError: a bad option, or the file cannot be opened now.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        purge_every: int = 64,
        purge_batch: int = 256,
    ) -> None:
        text = os.fspath(path)
        if not text or text == ":memory:" or text.startswith("file:"):
            raise ConfigurationError(
                f"SQLiteReplayCache path: {text!r} is not a file path; a shared cache needs a file"
            )
        if not timeout > 0:
            raise ConfigurationError(f"SQLiteReplayCache timeout: must be > 0 seconds, not {timeout!r}")
        if purge_every < 1 or purge_batch < 1:
            raise ConfigurationError("SQLiteReplayCache purge_every and purge_batch: must be >= 1")
        self.path = Path(text)
        self.timeout = float(timeout)
        self._purge_every = purge_every
        self._purge_batch = purge_batch
        self._lock = threading.Lock()
        self._calls = itertools.count(1)
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the opened file
        self._pid = os.getpid()
        # SQLite forbids using a connection in a child forked after it was
        # opened. A child leaves an inherited one untouched: it is kept here,
        # referenced, so that not even garbage collection closes it there.
        self._inherited: list[sqlite3.Connection] = []
        try:
            # Fail at start-up on a path that cannot hold the cache; closed at
            # once so no connection is inherited by forked workers (--preload).
            self._open().close()
        except sqlite3.Error as exc:
            raise ConfigurationError(f"SQLiteReplayCache path: cannot use {text!r}: {exc}") from exc

    def add(self, key: str, *, expires: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires``; False if it is recorded and live at ``now``.

        :raises StoreUnavailable: the database cannot be used; nothing was recorded
            unless the statement itself committed.
        """
        expires_at, now_at = expires.timestamp(), now.timestamp()
        purge = next(self._calls) % self._purge_every == 0
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            try:
                conn = self._connection()
                if purge:  # before the insert: a failing purge must not leave the key recorded
                    conn.execute(_PURGE, (now_at, self._purge_batch))
                return conn.execute(_ADD, (key, expires_at, now_at)).rowcount == 1
            except sqlite3.Error as exc:
                self._drop()
                raise StoreUnavailable(
                    f"SQLite replay cache {str(self.path)!r} unavailable: {describe_error(exc)}",
                    reason=_UNAVAILABLE_REASON,
                ) from exc

    def close(self) -> None:
        """Close this process's connection; the next :meth:`add` opens a new one."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            self._drop()

    # ------------------------------------------------------------------ connection

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, each statement its own transaction;
        # check_same_thread=False: shared by this process's threads, under self._lock.
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _after_fork(self) -> None:
        # In a new child, where only the forking thread runs: the lock may have
        # been copied held by a thread that does not exist here, and the
        # parent's connection must not be used.
        self._lock = threading.Lock()
        if self._conn is not None:
            self._inherited.append(self._conn)
        self._conn, self._identity, self._pid = None, None, os.getpid()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._file_identity() != self._identity:
            self._drop()  # deleted or replaced: reopen below, at whatever is at the path now
        if self._conn is None:
            conn = self._open()
            identity = self._file_identity()
            if identity is None:  # gone again between open and stat
                conn.close()
                raise sqlite3.OperationalError(f"{self.path} vanished while it was being opened")
            self._conn, self._identity = conn, identity
        return self._conn

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _drop(self) -> None:
        conn, self._conn, self._identity = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:  # closing a broken connection must not hide the first error
                pass


class RedisReplayCache:
    """A replay cache in Redis, shared by every process and host that reaches it.

    One check is ``SET <prefix><key> 1 NX PX <ttl>``: Redis runs it atomically,
    so of any number of racing workers exactly one gets OK. The time to live is
    ``expires - now`` from the caller's clock (at least 1 ms), never an absolute
    ``PXAT``: ``now`` may be a test clock far from Redis's, and the hosts' clocks
    need not agree with Redis either. Redis drops the key when it expires, so
    no purge is needed.

    Given a URL, the client is built with short timeouts, because a request
    waits for them: with Redis down a check fails at once (connection refused)
    or after ``socket_timeout`` (no answer), and the STS and the middleware
    refuse. After Redis restarts, redis-py's pool notices the
    pooled connection the restart closed and opens a new one before use, so
    the cache needs no rebuilding. Two quick retries (10 ms, 20 ms) cover a
    connection lost while connecting or sending; a *timeout* is not retried,
    since Redis may have run the SET and a retry would then report the caller's
    own first use as a replay. Given a ``redis.Redis`` client, it is used as
    configured (``socket_timeout`` is then ignored).

    :param url_or_client: ``redis://[user:password@]host:port/db`` (also
        ``rediss://`` and ``unix://``), or a ready ``redis.Redis``.
    :param prefix: prepended to every key, so several caches share one database.
    :param socket_timeout: seconds for connecting and for each reply.
    :raises ConfigurationError: a bad option, an unreadable URL, or the
        ``redis`` package is missing (install ``wstrust-wsgi[redis]``).
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "wstrust:replay:",
        socket_timeout: float = 1.0,
    ) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"RedisReplayCache prefix: must be a string, not {prefix!r}")
        self._client, self._errors = connect_redis(url_or_client, socket_timeout=socket_timeout,
                                                   owner="RedisReplayCache")
        self.prefix = prefix

    @property
    def client(self) -> redis.Redis:
        """The redis-py client in use."""
        return self._client  # type: ignore[no-any-return]

    def add(self, key: str, *, expires: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires``; False if Redis still holds it.

        :raises StoreUnavailable: Redis cannot be reached or refused the command.
        """
        ttl_ms = max(1, -((now - expires) // _MILLISECOND))  # ceiling, in exact integers
        try:
            first = self._client.set(self.prefix + key, b"1", nx=True, px=ttl_ms)
        except self._errors as exc:
            raise StoreUnavailable(
                f"Redis replay cache unavailable: {describe_error(exc)}", reason=_UNAVAILABLE_REASON
            ) from exc
        return bool(first)  # OK -> True; NX refused -> None

    def close(self) -> None:
        """Close the client's connections; later calls reconnect."""
        self._client.close()


def connect_redis(url_or_client: str | redis.Redis, *, socket_timeout: float,
                  owner: str) -> tuple[Any, tuple[type[BaseException], ...]]:
    """The client (built from a URL with short timeouts and two quick retries) and the errors it raises.

    Shared by the Redis stores (replay here, lockout), so they connect alike;
    ``owner`` names the caller in messages.

    :raises ConfigurationError: no redis package, a bad timeout, an unreadable URL.
    """
    try:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise ConfigurationError(f"{owner} needs the redis package: pip install 'wstrust-wsgi[redis]'") from exc
    if not socket_timeout > 0:
        raise ConfigurationError(f"{owner} socket_timeout: must be > 0 seconds, not {socket_timeout!r}")
    errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
    if not isinstance(url_or_client, str):
        return url_or_client, errors
    try:
        return redis.Redis.from_url(
            url_or_client,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 2, supported_errors=(redis.ConnectionError,)),
        ), errors
    except ValueError as exc:
        raise ConfigurationError(f"{owner} url: cannot read {redact_url(url_or_client)!r}: {exc}") from exc


def describe_error(exc: BaseException) -> str:
    """``Type: message`` (redis-py's exceptions have an unhelpful repr)."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"


def replay_cache_from_url(url: str) -> ReplayCache:
    """A replay cache from one configuration string.

    ============================  ==========================================
    ``memory:``                   :class:`MemoryReplayCache` (this process only)
    ``sqlite:///abs/path.db``     :class:`SQLiteReplayCache` at ``/abs/path.db``
                                  (the rules of :func:`wstrust_wsgi._urls.sqlite_path`)
    ``redis://host:port/db``      :class:`RedisReplayCache` (also ``rediss://``)
    ============================  ==========================================

    :raises ConfigurationError: any other value, naming it (password hidden).
    """
    value = url.strip() if isinstance(url, str) else url
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"replay cache URL: {url!r} is empty; use memory:, sqlite:///path or redis://host")
    scheme = value.partition(":")[0].lower()
    if value.lower() == "memory:":
        return MemoryReplayCache()
    if scheme == "sqlite":
        try:
            path = sqlite_path(value)
        except BadValue as exc:
            raise ConfigurationError(f"replay cache URL: {exc}") from None
        return SQLiteReplayCache(path)
    if scheme in ("redis", "rediss"):
        parts = urlsplit(value)
        if not parts.hostname:
            raise ConfigurationError(f"replay cache URL: {redact_url(value)!r} names no Redis host")
        return RedisReplayCache(value)
    raise ConfigurationError(
        f"replay cache URL: {redact_url(value)!r} is not memory:, sqlite:///abs/path.db or redis://host:port/db"
    )
