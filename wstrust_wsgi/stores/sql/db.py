"""The registry's database: the two dialects, their drivers, connections and transactions.

**Transactions and concurrency.** Several gunicorn workers read while the
CLI writes, possibly two CLIs at once. Every registry operation is one
transaction, run by :meth:`Database.run`, so a change is applied whole or not
at all:

* SQLite runs in WAL mode (readers never wait for the writer, the writer never
  waits for readers). Writes start with ``BEGIN IMMEDIATE``, taking the write
  lock up front, so two writers queue instead of deadlocking on a lock upgrade;
  the wait is SQLite's busy timeout (10 s). Whatever ``SQLITE_BUSY`` still comes
  through (cases where SQLite does not call its busy handler) is retried with
  back-off for up to 30 s: "database is locked" is not an answer the CLI or
  the STS should ever show. ``synchronous`` stays FULL: writes are rare, and a
  role revocation lost to a power cut would be a silent security regression.
* PostgreSQL writes run ``SERIALIZABLE`` and are retried on serialization
  failure or deadlock (SQLSTATE 40001, 40P01), so a racing pair of writes
  behaves as if run one after the other. Reads run ``REPEATABLE READ READ
  ONLY``: the two or three statements of one read see one snapshot.
* Each thread gets its own connection (``threading.local``); a connection
  that fails (server restart, network) is dropped and the operation is run
  once more on a new connection, unless the failure hit the ``COMMIT``, whose
  outcome is then unknown. A connection opened before a ``fork`` (gunicorn
  ``--preload``) is never used, nor closed, in the child.
* A SQLite registry is restored with the backup API (``sqlite3 registry.db
  ".restore backup.db"``), never by copying or renaming a file over it: see
  :class:`SQLiteDriver`.

**Why psycopg and a thin dialect layer, not SQLAlchemy.** The registry is a
dozen short statements. DB-API 2 already gives both drivers the same
``execute`` / ``fetchone`` / ``rowcount``, and both databases speak the same SQL
here (``INSERT ... ON CONFLICT``, which SQLite took from PostgreSQL in 3.24).
What differs fits in one frozen :class:`Dialect` value: the parameter mark
(``?`` / ``%s``), the auto-increment key, the binary type, how a read, a write
and a migration transaction begin; plus one small driver object per database
for connecting and for telling a retryable error from a real one. An ORM or a
pool would add a dependency, its own transaction and reconnection rules to
reason about under fork and threads, and hide exactly the isolation levels
and locks this module must control.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from ..._urls import redact_url, sqlite_path
from ...errors import BadValue, ConfigurationError

__all__ = ["Database", "Dialect", "Driver", "Kind", "PostgresDriver", "SQLiteDriver", "Tx", "driver_for"]

log = logging.getLogger("wstrust_wsgi.registry")

T = TypeVar("T")

#: SQLite waits this long for another connection's lock before reporting busy.
_BUSY_TIMEOUT = 10.0
#: Busy / serialization failures are retried until this many seconds have passed...
_RETRY_SECONDS = 30.0
#: ...and at most this many times.
_MAX_ATTEMPTS = 500
#: Key of the PostgreSQL advisory lock held while migrating ("wstrust" in ASCII).
_MIGRATION_LOCK = 0x77737472757374


# ---------------------------------------------------------------------- dialects


@dataclass(frozen=True)
class Dialect:
    """What differs in the SQL the two databases accept.

    :param placeholder: the DB-API parameter mark; statements are written with ``?``.
    :param id_column: an auto-incremented integer primary key.
    :param blob: the binary column type.
    :param begin_read: statements opening a read-only transaction (one snapshot).
    :param begin_write: statements opening a write transaction that is
        serialised against every other writer.
    :param begin_migrate: statements opening a migration transaction: exclusive
        against other migrations, and (PostgreSQL) READ COMMITTED so that the
        version read after the lock is the one the previous holder committed.
    :param table_exists: a query with one parameter (a table name) returning a
        row when that table exists.
    """

    name: str
    placeholder: str
    id_column: str
    blob: str
    begin_read: tuple[str, ...]
    begin_write: tuple[str, ...]
    begin_migrate: tuple[str, ...]
    table_exists: str

    def sql(self, text: str) -> str:
        # The statements of this module contain no literal "?" nor "%".
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


_SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    id_column="INTEGER PRIMARY KEY AUTOINCREMENT",  # AUTOINCREMENT: ids never reused
    blob="BLOB",
    begin_read=("BEGIN",),
    begin_write=("BEGIN IMMEDIATE",),
    begin_migrate=("BEGIN IMMEDIATE",),
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
)

_POSTGRES = Dialect(
    name="postgresql",
    placeholder="%s",
    id_column="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    blob="BYTEA",
    begin_read=("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",),
    begin_write=("BEGIN ISOLATION LEVEL SERIALIZABLE",),
    begin_migrate=("BEGIN ISOLATION LEVEL READ COMMITTED", f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"),
    table_exists="SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?",
)


class _Verdict(enum.Enum):
    """What to do about a driver error."""

    RETRY = "retry"  # busy / serialization failure: nothing was applied, run it again
    RECONNECT = "reconnect"  # the connection is unusable: drop it, maybe run again on a new one
    NO_SCHEMA = "no schema"  # a table is missing: the registry was never initialised


class SQLiteDriver:
    """Connections to one SQLite file, in WAL mode, with foreign keys on.

    The file is created by :meth:`create` (at :func:`driver_for`) only; a
    reconnect never creates it, so a registry file that vanishes under a
    running STS is an error, not a silently empty registry.

    Never copy or rename another file over a registry in use: SQLite finds a
    database's ``-wal`` and ``-shm`` files by name, so connections would mix
    the new file with the old one's log. Restore with SQLite's backup API
    instead (``sqlite3 registry.db ".restore backup.db"``), which writes
    through the locks: running workers see the restored registry at their
    next read.
    """

    dialect = _SQLITE
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return f"sqlite://{self.path}"

    def create(self) -> None:
        """Create the file if missing, readable by its owner only: hashes (and any digest secrets) live here."""
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:  # there already, or another process was first
            pass

    def connect(self) -> sqlite3.Connection:
        # mode=rw: open, never create. isolation_level=None: the module's own
        # BEGIN / COMMIT are the only transactions. check_same_thread=False only
        # so that close() may close every thread's connection (each is used by
        # its own thread).
        conn = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True, timeout=_BUSY_TIMEOUT,
                               isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise ConfigurationError(
                    f"registry {self.describe()}: SQLite cannot use WAL mode here (journal mode {mode!r}); "
                    "put the file on a local file system"
                )
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def classify(self, exc: BaseException) -> _Verdict | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        code = getattr(exc, "sqlite_errorcode", None)
        message = str(exc).lower()
        # SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        if (code is not None and code & 0xFF in (5, 6)) or "locked" in message or "busy" in message:
            return _Verdict.RETRY
        if "no such table" in message:
            return _Verdict.NO_SCHEMA
        if isinstance(exc, sqlite3.OperationalError):  # I/O error, file gone, ...: start afresh
            return _Verdict.RECONNECT
        return None  # constraint or programming errors: running again would not help


class PostgresDriver:
    """Connections to one PostgreSQL database through psycopg 3, in autocommit mode.

    Autocommit, because the transactions are the module's own ``BEGIN ...``
    statements, with the isolation level each kind of operation needs.
    """

    dialect = _POSTGRES

    def __init__(self, url: str) -> None:
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError as exc:
            raise ConfigurationError(
                "a postgresql:// registry needs psycopg: pip install 'wstrust-wsgi[postgres]'"
            ) from exc
        self._psycopg = psycopg
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self.url = url
        try:
            given = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"registry URL {redact_url(url)!r}: {exc}") from None
        # Defaults the URL may override: fail fast when the server is down,
        # and name the client in pg_stat_activity.
        self._options: dict[str, Any] = {
            key: value for key, value in (("connect_timeout", 5), ("application_name", "wstrust-wsgi"))
            if key not in given
        }

    def describe(self) -> str:
        return redact_url(self.url)

    def create(self) -> None:
        """Nothing to create: the database must exist (``createdb``)."""

    def connect(self) -> Any:
        return self._psycopg.connect(self.url, autocommit=True, **self._options)

    def classify(self, exc: BaseException) -> _Verdict | None:
        psycopg = self._psycopg
        if not isinstance(exc, psycopg.Error):
            return None
        state = getattr(exc, "sqlstate", None)
        if state in ("40001", "40P01"):  # serialization_failure, deadlock_detected
            return _Verdict.RETRY
        if state == "42P01":  # undefined_table
            return _Verdict.NO_SCHEMA
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return _Verdict.RECONNECT
        return None


# ---------------------------------------------------------------------- connections


class _Held:
    """One thread's connection, with the process and the registry generation it belongs to."""

    __slots__ = ("conn", "pid", "generation", "__weakref__")

    def __init__(self, conn: Any, pid: int, generation: int) -> None:
        self.conn = conn
        self.pid = pid
        self.generation = generation


# Every live connection of every registry in this process. Just before a fork
# they are pinned (strong references) in the parent, so the child inherits the
# pins: when the child drops the parent's connections (the other threads'
# locals vanish at fork, the main thread's is replaced on first use), they are
# not garbage-collected, hence never closed there. Closing a SQLite connection
# in a child can release or disturb the parent's file locks; nothing in the
# child may touch them.
_ALL_HELD: weakref.WeakSet[_Held] = weakref.WeakSet()
_ALL_HELD_LOCK = threading.Lock()
_PINNED_AT_FORK: list[_Held] = []


def _pin_before_fork() -> None:
    with _ALL_HELD_LOCK:
        _PINNED_AT_FORK.extend(_ALL_HELD)


def _unpin_in_parent() -> None:
    _PINNED_AT_FORK.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_pin_before_fork, after_in_parent=_unpin_in_parent)


class Tx:
    """The open transaction a unit of work runs in."""

    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        """Run one statement (written with ``?`` marks); the DB-API cursor."""
        return self._conn.execute(self.dialect.sql(sql), tuple(params))

    def one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.execute(sql, params).fetchall()]


class Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    MIGRATE = "migrate"




# ---------------------------------------------------------------------- choosing a driver

Driver = SQLiteDriver | PostgresDriver


def driver_for(url: str) -> Driver:
    """The driver for a registry URL: ``sqlite:///abs/path.db`` or ``postgresql://...`` (also ``postgres://``).

    :raises ConfigurationError: an empty URL, another scheme, or a SQLite URL
        breaking :func:`~wstrust_wsgi._urls.sqlite_path`'s rules.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"registry URL: {url!r} is empty; use sqlite:///path.db or postgresql://...")
    value = url.strip()
    scheme = value.partition(":")[0].lower()
    if scheme == "sqlite":
        try:
            return SQLiteDriver(sqlite_path(value))
        except BadValue as exc:
            raise ConfigurationError(f"registry URL: {exc}") from None
    if scheme in ("postgresql", "postgres"):
        return PostgresDriver(value)
    raise ConfigurationError(
        f"registry URL: {redact_url(value)!r} is neither sqlite:///abs/path.db nor postgresql://host/db"
    )


# ---------------------------------------------------------------------- transactions


class Database:
    """One registry database: a connection per thread, and :meth:`run` for each transaction."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.dialect = driver.dialect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()

    def describe(self) -> str:
        """The database as messages name it (password hidden)."""
        return self.driver.describe()

    def not_initialised(self) -> ConfigurationError:
        return ConfigurationError(
            f"registry {self.describe()} is not initialised: run init_schema with an issuer "
            "(wstrust-wsgi's registry init command)"
        )

    def close(self) -> None:
        """Close this process's connections (every thread's); a later call opens new ones.

        Call it when no other thread is in the middle of an operation.
        """
        with self._lock:
            self._generation += 1
            held, self._held = list(self._held), weakref.WeakSet()
        for item in held:
            self._close_held(item)

    def run(self, kind: Kind, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one transaction of ``kind``, retrying what may be retried.

        Busy (SQLite) and serialization failures (PostgreSQL) are retried with
        jittered back-off until :data:`_RETRY_SECONDS`; nothing of the failed
        attempt was applied. A broken connection is dropped and the work run
        once more on a new one, unless it broke at COMMIT (then it may have
        been applied, so the error is raised). Errors the work raises itself
        (:class:`RegistryError`, :class:`ConfigurationError`) roll back and pass.
        """
        deadline = time.monotonic() + _RETRY_SECONDS
        begin = {Kind.READ: self.dialect.begin_read, Kind.WRITE: self.dialect.begin_write,
                 Kind.MIGRATE: self.dialect.begin_migrate}[kind]
        reconnects = 0
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            committing = False
            conn: Any = None
            try:
                conn = self._connection()
                for statement in begin:
                    conn.execute(statement)
                result = work(Tx(conn, self.dialect))
                committing = True
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn is not None:
                    self._rollback(conn)  # also on KeyboardInterrupt: never leave a transaction open
                if not isinstance(exc, Exception):
                    raise
                verdict = self.driver.classify(exc)
                if verdict is None:
                    raise
                if verdict is _Verdict.NO_SCHEMA:
                    raise self.not_initialised() from exc
                if verdict is _Verdict.RECONNECT:
                    self._drop()
                    reconnects += 1
                    if committing or reconnects > 1:
                        raise
                    log.info("registry %s: connection failed (%s); reconnecting", self.driver.describe(), exc)
                    continue
                if time.monotonic() >= deadline or attempt == _MAX_ATTEMPTS:
                    raise
                log.debug("registry %s: %s; retry %d", self.driver.describe(), exc, attempt)
                time.sleep(random.uniform(0.5, 1.0) * min(0.2, 0.002 * 2 ** min(attempt, 10)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _connection(self) -> Any:
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and (held.pid != os.getpid() or held.generation != self._generation):
            # Opened before a fork (pinned, see _ALL_HELD), or closed by close().
            self._local.held = held = None
        if held is None:
            conn = self.driver.connect()
            with self._lock:
                held = _Held(conn, os.getpid(), self._generation)
                self._held.add(held)
            with _ALL_HELD_LOCK:
                _ALL_HELD.add(held)
            self._local.held = held
        return held.conn

    def _drop(self) -> None:
        """Close and forget this thread's connection; the next operation opens a new one."""
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            with self._lock:
                self._held.discard(held)
            self._close_held(held)

    @staticmethod
    def _close_held(held: _Held) -> None:
        if held.pid != os.getpid():
            return  # a parent's connection: never touched here
        try:
            held.conn.close()
        except Exception:  # closing a broken connection must not hide the error that broke it
            pass

    def _rollback(self, conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:
            # No transaction was open (it failed at BEGIN, or SQLite rolled it
            # back itself), or the connection is gone. If it is gone, drop it.
            if self.dialect is _POSTGRES and (getattr(conn, "closed", False) or getattr(conn, "broken", False)):
                self._drop()
