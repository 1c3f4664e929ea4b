"""The registry: users, roles, relying parties and STS settings in SQLite or PostgreSQL.

A :class:`Registry` is at once the :class:`~wstrust_wsgi.stores.UserStore`, the
:class:`~wstrust_wsgi.stores.RelyingPartyStore` and the
:class:`~wstrust_wsgi.stores.SettingsStore` of a
:class:`~wstrust_wsgi.sts.TokenService`, and what the ``wstrust-wsgi`` command
changes. Open it by URL::

    Registry.open("sqlite:///var/lib/wstrust/registry.db")   # the embedded default
    Registry.open("postgresql://sts@db.example/wstrust")      # several STS hosts

**Nothing is cached.** The STS reads users and relying parties on every
request (one indexed lookup each) and the settings about once a second, so a
change made with the CLI reaches every running worker at its next request,
without a restart. A :class:`~wstrust_wsgi.stores.cache.CachedUserStore` in
front of the registry (what :mod:`wstrust_wsgi.deploy` builds) keeps that
promise: it skips only the KDF of a repeated successful password check, and
still reads the user's row, roles and claims per request
(:meth:`Registry.password_record`).

**Storage of secrets.** A password is stored as a salted scrypt hash
(:func:`~wstrust_wsgi.stores.memory.hash_password`, memory-hard, 16 MiB per
check), never in clear, with the KDF parameters beside it so that a future
change of parameters is detected instead of locking everybody out silently.
The one exception is opt-in and per user: ``digest_secret=True`` keeps the
plaintext password as well, because WS-Security's PasswordDigest
(SHA-1(nonce + created + password)) can only be checked by a server that knows
the password. Users without it cannot use PasswordDigest at all. A new SQLite
file is created readable by its owner only (0600).

**Transactions and concurrency.** Several gunicorn workers read while the
CLI writes, possibly two CLIs at once. Every operation is one transaction, run
by :meth:`Registry._run`, so a change is applied whole or not at all:

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
* Password checks (scrypt, ~70 ms) run outside any transaction, so no reader
  holds a snapshot long enough to starve SQLite's WAL checkpoints.
* A SQLite registry is restored with the backup API (``sqlite3 registry.db
  ".restore backup.db"``), never by copying or renaming a file over it: see
  :class:`_SQLiteDriver`.

**Why psycopg and a thin dialect layer, not SQLAlchemy.** The registry is a
dozen short statements. DB-API 2 already gives both drivers the same
``execute`` / ``fetchone`` / ``rowcount``, and both databases speak the same SQL
here (``INSERT ... ON CONFLICT``, which SQLite took from PostgreSQL in 3.24).
What differs fits in one frozen :class:`_Dialect` value: the parameter mark
(``?`` / ``%s``), the auto-increment key, the binary type, how a read, a write
and a migration transaction begin; plus one small driver object per database
for connecting and for telling a retryable error from a real one. An ORM or a
pool would add a dependency, its own transaction and reconnection rules to
reason about under fork and threads, and hide exactly the isolation levels
and locks this module must control.

**Schema versions.** ``schema_version`` holds one row per applied migration.
:data:`_MIGRATIONS` lists them in order; :meth:`Registry.open` and
:meth:`Registry.init_schema` apply the missing ones, all in one transaction
(both databases have transactional DDL), under SQLite's write lock or a
PostgreSQL advisory lock, so that workers starting together upgrade once and
a failed upgrade leaves the previous version intact. A database newer than
this code is refused rather than used. Version 1 is the layout below.
"""

from __future__ import annotations

import enum
import hmac
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from .._urls import redact_url
from ..errors import ConfigurationError, RegistryError
from ..keys import load_certificate
from ..stores import SIGNATURE_ALGORITHMS, Principal, RelyingParty, StsSettings
from ..wssecurity import UsernameToken
from .memory import _SCRYPT, hash_password

__all__ = ["Registry", "UserInfo"]

log = logging.getLogger("wstrust_wsgi.registry")

T = TypeVar("T")

#: The KDF and its parameters, stored beside every hash.
_KDF = "scrypt:n={n},r={r},p={p},dklen={dklen}".format(**_SCRYPT)
#: SQLite waits this long for another connection's lock before reporting busy.
_BUSY_TIMEOUT = 10.0
#: Busy / serialization failures are retried until this many seconds have passed...
_RETRY_SECONDS = 30.0
#: ...and at most this many times.
_MAX_ATTEMPTS = 500
#: Key of the PostgreSQL advisory lock held while migrating ("wstrust" in ASCII).
_MIGRATION_LOCK = 0x77737472757374
_TOKEN_TYPES = ("2.0", "1.1")
_URN = re.compile(r"urn:[a-z0-9][a-z0-9-]{0,31}:\S+", re.IGNORECASE)


@dataclass(frozen=True)
class UserInfo:
    """A user as listed by the registry (never the password or its hash)."""

    name: str
    roles: tuple[str, ...]
    claims: Mapping[str, tuple[str, ...]]
    digest_secret: bool


# ---------------------------------------------------------------------- dialects


@dataclass(frozen=True)
class _Dialect:
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


_SQLITE = _Dialect(
    name="sqlite",
    placeholder="?",
    id_column="INTEGER PRIMARY KEY AUTOINCREMENT",  # AUTOINCREMENT: ids never reused
    blob="BLOB",
    begin_read=("BEGIN",),
    begin_write=("BEGIN IMMEDIATE",),
    begin_migrate=("BEGIN IMMEDIATE",),
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
)

_POSTGRES = _Dialect(
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


class _SQLiteDriver:
    """Connections to one SQLite file, in WAL mode, with foreign keys on.

    The file is created by :meth:`create` (at :meth:`Registry.open`) only; a
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


class _PostgresDriver:
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


class _Tx:
    """The open transaction a unit of work runs in."""

    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: Any, dialect: _Dialect) -> None:
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


class _Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    MIGRATE = "migrate"


# ---------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class _Migration:
    """One step of the schema: ``apply`` runs inside the migration transaction."""

    version: int
    description: str
    apply: Callable[[_Tx], None]


def _create_v1(tx: _Tx) -> None:
    """Users, roles, claims, relying parties, settings.

    Durations are whole microseconds (BIGINT), so a ``timedelta`` comes back
    exactly as it went in. Relying-party claims are a JSON array (NULL: release
    every claim): a value of the party, never queried across parties, read in
    the same single-row lookup as the rest of it.
    """
    d = tx.dialect
    for statement in (
        f"CREATE TABLE roles (id {d.id_column}, name TEXT NOT NULL UNIQUE)",
        # digest_secret: the plaintext password, ONLY for users who must use
        # PasswordDigest (opt-in, see the module docstring); NULL for everyone else.
        f"""CREATE TABLE users (
            id {d.id_column},
            name TEXT NOT NULL UNIQUE,
            kdf TEXT NOT NULL,
            salt {d.blob} NOT NULL,
            password_hash {d.blob} NOT NULL,
            digest_secret TEXT
        )""",
        """CREATE TABLE user_roles (
            user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
            PRIMARY KEY (user_id, role_id)
        )""",
        "CREATE INDEX user_roles_role ON user_roles (role_id)",
        """CREATE TABLE user_claims (
            user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            claim TEXT NOT NULL,
            seq INTEGER NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (user_id, claim, seq)
        )""",
        f"""CREATE TABLE relying_parties (
            id {d.id_column},
            address TEXT NOT NULL UNIQUE,
            token_type TEXT NOT NULL CHECK (token_type IN ('2.0', '1.1')),
            lifetime_us BIGINT CHECK (lifetime_us IS NULL OR lifetime_us > 0),
            claims TEXT,
            certificate_pem {d.blob}
        )""",
        """CREATE TABLE settings (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            issuer TEXT NOT NULL,
            default_lifetime_us BIGINT NOT NULL CHECK (default_lifetime_us > 0),
            clock_skew_us BIGINT NOT NULL CHECK (clock_skew_us >= 0),
            signature_algorithm TEXT NOT NULL,
            allow_plaintext_http BOOLEAN NOT NULL
        )""",
        # No ON DELETE: a role allowed to request tokens cannot vanish, since an
        # empty allowed set would open the STS to every authenticated user.
        "CREATE TABLE allowed_roles (role_id BIGINT PRIMARY KEY REFERENCES roles (id))",
    ):
        tx.execute(statement)


#: Every schema version, in order. Append; never edit a released step.
_MIGRATIONS: tuple[_Migration, ...] = (
    _Migration(1, "users, roles, claims, relying parties, settings", _create_v1),
)


# ---------------------------------------------------------------------- validation


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or value != value.strip() or not value.isprintable():
        raise ConfigurationError(
            f"{what}: must be a non-empty string of printable characters without surrounding spaces, not {value!r}"
        )
    return value


def _findable(name: object) -> bool:
    """Whether a looked-up name could be stored at all (PostgreSQL text holds no NUL)."""
    return isinstance(name, str) and "\0" not in name


def _check_names(what: str, values: object) -> list[str]:
    """A list of names, refusing a bare string (which would iterate as letters)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigurationError(f"{what}: must be a list of names, not {values!r}")
    return list(dict.fromkeys(_check_name(what, value) for value in values))


def _check_values(claim: str, values: object) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigurationError(f"claim {claim}: values must be a list of strings, not {values!r}")
    checked = list(values)
    if not checked or not all(isinstance(value, str) and "\0" not in value for value in checked):
        raise ConfigurationError(
            f"claim {claim}: give at least one value, each a string (unset_claim removes a claim), not {checked!r}"
        )
    return checked


def _check_password(value: object) -> str:
    # No NUL: XML cannot carry one, so no client could ever send it.
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigurationError("password: must be a non-empty string without NUL characters")
    return value


def _check_address(value: object) -> str:
    """An absolute URL with a scheme and a host, or a URN: what AppliesTo and the audience carry."""
    address = _check_name("relying party address", value)
    if _URN.fullmatch(address):
        return address
    try:
        parts = urlsplit(address)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or not parts.scheme or not host or any(ch.isspace() for ch in address):
        raise ConfigurationError(
            f"relying party address: {address!r} is not an absolute URL (scheme://host/...) or a urn:"
        )
    return address


def _check_duration(what: str, value: object, *, allow_zero: bool) -> int:
    """The duration in whole microseconds."""
    if not isinstance(value, timedelta) or value < timedelta(0) or (value == timedelta(0) and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{what}: must be a timedelta {rule}, not {value!r}")
    return value // timedelta(microseconds=1)


def _check_party(party: object) -> RelyingParty:
    if not isinstance(party, RelyingParty):
        raise ConfigurationError(f"relying party: must be a RelyingParty, not {party!r}")
    _check_address(party.address)
    if party.token_type not in _TOKEN_TYPES:
        raise ConfigurationError(
            f"relying party {party.address}: token_type must be '2.0' or '1.1', not {party.token_type!r}"
        )
    if party.lifetime is not None:
        _check_duration(f"relying party {party.address}: lifetime", party.lifetime, allow_zero=False)
    if party.claims is not None:
        _check_names(f"relying party {party.address}: claims", party.claims)
    if party.certificate_pem is not None:
        if not isinstance(party.certificate_pem, bytes):
            raise ConfigurationError(f"relying party {party.address}: certificate_pem must be PEM bytes")
        load_certificate(party.certificate_pem)  # ConfigurationError if not a PEM certificate
    return party


def _microseconds(value: int) -> timedelta:
    return timedelta(microseconds=int(value))


# ---------------------------------------------------------------------- the registry


class Registry:
    """Users, roles, relying parties and STS settings in SQLite or PostgreSQL.

    Open with :meth:`open` (``sqlite:///path.db`` or ``postgresql://...``). One
    instance serves every thread of a process; each thread gets its own
    connection. Every method is one transaction.

    Errors: a change naming an unknown user, role or relying party, or adding a
    duplicate, raises :class:`~wstrust_wsgi.errors.RegistryError`; a value
    breaking a rule (empty name, relative address, unknown signature
    algorithm, unreadable URL, registry never initialised) raises
    :class:`~wstrust_wsgi.errors.ConfigurationError`. A database that stays
    unusable past the retries raises the driver's own error
    (:class:`sqlite3.Error`, :class:`psycopg.Error`).
    """

    def __init__(self, driver: _SQLiteDriver | _PostgresDriver) -> None:
        """Use :meth:`open`."""
        self._driver = driver
        self._dialect = driver.dialect
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._held: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._dummy: tuple[bytes, bytes] | None = None

    @classmethod
    def open(cls, url: str) -> Registry:
        """Open the registry at ``url``, upgrading an older schema.

        ======================================  ==========================================
        ``sqlite:///abs/path/registry.db``      a SQLite file (created, mode 0600, if missing)
        ``postgresql://user@host:port/db``      a PostgreSQL database (also ``postgres://``);
                                                libpq options as query parameters
        ======================================  ==========================================

        An empty database is fine (run :meth:`init_schema` next); one at an
        older schema version is upgraded now; one at a newer version is refused.

        :raises ConfigurationError: an unreadable URL, a database that cannot be
            reached or opened, or a schema newer than this code.
        """
        if not isinstance(url, str) or not url.strip():
            raise ConfigurationError(f"registry URL: {url!r} is empty; use sqlite:///path.db or postgresql://...")
        value = url.strip()
        scheme = value.partition(":")[0].lower()
        driver: _SQLiteDriver | _PostgresDriver
        if scheme == "sqlite":
            parts = urlsplit(value)
            path = unquote(parts.path)
            if (not value.lower().startswith("sqlite:///") or parts.netloc or parts.query or parts.fragment
                    or not path.startswith("/") or path.endswith("/") or ":memory:" in path):
                raise ConfigurationError(
                    f"registry URL: {value!r} is not sqlite:///absolute/path.db (three slashes, an absolute "
                    "path, no query); an in-memory database cannot be shared by threads and workers"
                )
            driver = _SQLiteDriver(os.path.normpath(path))
        elif scheme in ("postgresql", "postgres"):
            driver = _PostgresDriver(value)
        else:
            raise ConfigurationError(
                f"registry URL: {redact_url(value)!r} is neither sqlite:///abs/path.db nor postgresql://host/db"
            )
        registry = cls(driver)
        try:
            driver.create()
            version = registry._run(_Kind.READ, registry._schema_version)
            if version > _MIGRATIONS[-1].version:
                raise ConfigurationError(
                    f"registry {driver.describe()}: schema version {version} is newer than this wstrust-wsgi "
                    f"supports ({_MIGRATIONS[-1].version}); upgrade wstrust-wsgi"
                )
            if 0 < version < _MIGRATIONS[-1].version:
                registry._run(_Kind.MIGRATE, registry._migrate)
        except ConfigurationError:
            registry.close()
            raise
        except driver.errors as exc:
            registry.close()
            raise ConfigurationError(f"registry {driver.describe()}: cannot be opened: {exc}") from exc
        except BaseException:
            registry.close()
            raise
        return registry

    def close(self) -> None:
        """Close this process's connections (every thread's); a later call opens new ones.

        Call it when no other thread is in the middle of an operation.
        """
        with self._lock:
            self._generation += 1
            held, self._held = list(self._held), weakref.WeakSet()
        for item in held:
            self._close_held(item)

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self._driver.describe()}>"

    def init_schema(self, *, issuer: str | None = None) -> None:
        """Create or upgrade the schema; create role 'admin' and default settings (issuer).

        On a registry without settings (the first init) ``issuer`` is required:
        the settings row is created with :class:`StsSettings`' defaults (only
        role ``admin`` may request tokens), and role ``admin`` with it. On an
        initialised registry this only upgrades the schema, and sets the issuer
        when one is given. All of it is one transaction: a failed first init
        leaves the database empty.

        :raises ConfigurationError: first init without an issuer, or an empty issuer.
        """
        if issuer is not None:
            _check_name("issuer", issuer)

        def work(tx: _Tx) -> None:
            self._migrate(tx)
            if tx.one("SELECT 1 FROM settings WHERE id = 1") is None:
                if issuer is None:
                    raise ConfigurationError(
                        f"issuer: required to initialise the registry {self._driver.describe()} "
                        "(the Issuer of every assertion, e.g. https://sts.example/services/sts)"
                    )
                defaults = StsSettings(issuer=issuer)
                tx.execute(
                    "INSERT INTO settings (id, issuer, default_lifetime_us, clock_skew_us, signature_algorithm, "
                    "allow_plaintext_http) VALUES (1, ?, ?, ?, ?, ?)",
                    (issuer, defaults.default_lifetime // timedelta(microseconds=1),
                     defaults.clock_skew // timedelta(microseconds=1), defaults.signature_algorithm,
                     defaults.allow_plaintext_http),
                )
                for role in sorted(defaults.allowed_roles | {"admin"}):
                    tx.execute("INSERT INTO roles (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (role,))
                for role in sorted(defaults.allowed_roles):
                    tx.execute("INSERT INTO allowed_roles (role_id) SELECT id FROM roles WHERE name = ?", (role,))
            elif issuer is not None:
                tx.execute("UPDATE settings SET issuer = ? WHERE id = 1", (issuer,))

        self._run(_Kind.MIGRATE, work)

    # ------------------------------------------------------------------ roles

    def add_role(self, name: str) -> None:
        """Create a role. :raises RegistryError: it exists."""
        _check_name("role", name)

        def work(tx: _Tx) -> None:
            if tx.execute("INSERT INTO roles (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,)).rowcount == 0:
                raise RegistryError(f"role {name!r} already exists")

        self._run(_Kind.WRITE, work)

    def remove_role(self, name: str) -> None:
        """Delete a role, revoking it from every user holding it.

        :raises RegistryError: no such role, or it is one of the settings'
            allowed roles (change ``allowed_roles`` first: removing the last
            one would let every authenticated user request tokens).
        """
        _check_name("role", name)

        def work(tx: _Tx) -> None:
            role_id = self._role_ids(tx, [name])[name]
            if tx.one("SELECT 1 FROM allowed_roles WHERE role_id = ?", (role_id,)) is not None:
                raise RegistryError(
                    f"role {name!r} is allowed to request tokens (settings allowed_roles); "
                    "remove it from allowed_roles first"
                )
            tx.execute("DELETE FROM roles WHERE id = ?", (role_id,))

        self._run(_Kind.WRITE, work)

    def list_roles(self) -> list[str]:
        """Every role, sorted (by code point, the same for both databases)."""
        return sorted(row[0] for row in self._run(_Kind.READ, lambda tx: tx.all("SELECT name FROM roles")))

    # ------------------------------------------------------------------ users

    def add_user(self, name: str, password: str, *, roles: Sequence[str] = (),
                 claims: Mapping[str, Sequence[str]] | None = None, digest_secret: bool = False) -> None:
        """Create a user with a hashed password, roles and claim values (claim URI -> values).

        :param digest_secret: also keep the plaintext password, so that this
            user can authenticate with PasswordDigest (see the module docstring).
        :raises RegistryError: the user exists, or a role is unknown (all unknown ones named).
        :raises ConfigurationError: an empty name or password, or bad claims.
        """
        _check_name("user", name)
        _check_password(password)
        role_names = _check_names("roles", roles)
        claim_values = self._check_claims(claims or {})
        salt, digest = hash_password(password)
        secret = password if digest_secret else None

        def work(tx: _Tx) -> None:
            role_ids = self._role_ids(tx, role_names)
            inserted = tx.execute(
                "INSERT INTO users (name, kdf, salt, password_hash, digest_secret) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, _KDF, salt, digest, secret),
            ).rowcount
            if inserted == 0:
                raise RegistryError(f"user {name!r} already exists")
            user_id = self._user_id(tx, name)
            for role_id in role_ids.values():
                tx.execute("INSERT INTO user_roles (user_id, role_id) VALUES (?, ?)", (user_id, role_id))
            for claim, values in claim_values.items():
                self._write_claim(tx, user_id, claim, values)

        self._run(_Kind.WRITE, work)

    def set_password(self, name: str, password: str, *, digest_secret: bool | None = None) -> None:
        """Replace a user's password.

        :param digest_secret: True keeps the plaintext for PasswordDigest, False
            erases any kept one, None (default) keeps the user's current choice.
        :raises RegistryError: no such user.
        """
        _check_name("user", name)
        _check_password(password)
        salt, digest = hash_password(password)

        def work(tx: _Tx) -> None:
            if digest_secret is None:
                statement = ("UPDATE users SET kdf = ?, salt = ?, password_hash = ?, "
                             "digest_secret = CASE WHEN digest_secret IS NULL THEN NULL ELSE ? END WHERE name = ?")
                params: tuple[object, ...] = (_KDF, salt, digest, password, name)
            else:
                statement = "UPDATE users SET kdf = ?, salt = ?, password_hash = ?, digest_secret = ? WHERE name = ?"
                params = (_KDF, salt, digest, password if digest_secret else None, name)
            if tx.execute(statement, params).rowcount == 0:
                raise RegistryError(f"unknown user {name!r}")

        self._run(_Kind.WRITE, work)

    def remove_user(self, name: str) -> None:
        """Delete a user with their roles and claims. :raises RegistryError: no such user."""
        _check_name("user", name)

        def work(tx: _Tx) -> None:
            if tx.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise RegistryError(f"unknown user {name!r}")

        self._run(_Kind.WRITE, work)

    def get_user(self, name: str) -> UserInfo | None:
        """The user (roles sorted, claim values in the order set), or None."""
        if not _findable(name):
            return None

        def work(tx: _Tx) -> UserInfo | None:
            row = tx.one("SELECT id, digest_secret FROM users WHERE name = ?", (name,))
            if row is None:
                return None
            roles, claims = self._roles_and_claims(tx, row[0])
            return UserInfo(name, tuple(sorted(roles)), claims, row[1] is not None)

        return self._run(_Kind.READ, work)

    def list_users(self) -> list[UserInfo]:
        """Every user, sorted by name (three queries, whatever the number of users)."""

        def work(tx: _Tx) -> list[UserInfo]:
            users = tx.all("SELECT id, name, digest_secret FROM users")
            roles: dict[int, list[str]] = {}
            for user_id, role in tx.all(
                    "SELECT ur.user_id, r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id"):
                roles.setdefault(user_id, []).append(role)
            claims: dict[int, dict[str, list[str]]] = {}
            for user_id, claim, value in tx.all(
                    "SELECT user_id, claim, value FROM user_claims ORDER BY user_id, claim, seq"):
                claims.setdefault(user_id, {}).setdefault(claim, []).append(value)
            return [
                UserInfo(name, tuple(sorted(roles.get(user_id, ()))),
                         {claim: tuple(values) for claim, values in claims.get(user_id, {}).items()},
                         secret is not None)
                for user_id, name, secret in users
            ]

        return sorted(self._run(_Kind.READ, work), key=lambda user: user.name)

    def grant_role(self, name: str, role: str) -> None:
        """Give a user a role (nothing changes if they hold it). :raises RegistryError: unknown user or role."""
        _check_name("user", name)
        _check_name("role", role)

        def work(tx: _Tx) -> None:
            user_id = self._user_id(tx, name)
            role_id = self._role_ids(tx, [role])[role]
            tx.execute("INSERT INTO user_roles (user_id, role_id) VALUES (?, ?) "
                       "ON CONFLICT (user_id, role_id) DO NOTHING", (user_id, role_id))

        self._run(_Kind.WRITE, work)

    def revoke_role(self, name: str, role: str) -> None:
        """Take a role from a user (nothing changes if they lack it). :raises RegistryError: unknown user or role."""
        _check_name("user", name)
        _check_name("role", role)

        def work(tx: _Tx) -> None:
            user_id = self._user_id(tx, name)
            role_id = self._role_ids(tx, [role])[role]
            tx.execute("DELETE FROM user_roles WHERE user_id = ? AND role_id = ?", (user_id, role_id))

        self._run(_Kind.WRITE, work)

    def set_claim(self, name: str, claim: str, values: Sequence[str]) -> None:
        """Set a claim's values for a user, replacing earlier ones. :raises RegistryError: unknown user."""
        _check_name("user", name)
        checked = self._check_claims({claim: values})

        def work(tx: _Tx) -> None:
            user_id = self._user_id(tx, name)
            self._write_claim(tx, user_id, claim, checked[claim])

        self._run(_Kind.WRITE, work)

    def unset_claim(self, name: str, claim: str) -> None:
        """Remove a claim from a user (nothing changes if unset). :raises RegistryError: unknown user."""
        _check_name("user", name)
        _check_name("claim", claim)

        def work(tx: _Tx) -> None:
            user_id = self._user_id(tx, name)
            tx.execute("DELETE FROM user_claims WHERE user_id = ? AND claim = ?", (user_id, claim))

        self._run(_Kind.WRITE, work)

    # ------------------------------------------------------------------ relying parties

    def add_relying_party(self, party: RelyingParty) -> None:
        """Register a relying party by its endpoint address.

        :raises RegistryError: the address is registered already.
        :raises ConfigurationError: not an absolute URL or URN, a token type
            other than '2.0' / '1.1', a lifetime <= 0, or a certificate that is not PEM.
        """
        _check_party(party)
        lifetime = None if party.lifetime is None else party.lifetime // timedelta(microseconds=1)
        claims = None if party.claims is None else json.dumps(sorted(party.claims))

        def work(tx: _Tx) -> None:
            inserted = tx.execute(
                "INSERT INTO relying_parties (address, token_type, lifetime_us, claims, certificate_pem) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO NOTHING",
                (party.address, party.token_type, lifetime, claims, party.certificate_pem),
            ).rowcount
            if inserted == 0:
                raise RegistryError(f"relying party {party.address!r} is already registered")

        self._run(_Kind.WRITE, work)

    def remove_relying_party(self, address: str) -> None:
        """Unregister a relying party. :raises RegistryError: no party at that address."""
        _check_name("relying party address", address)

        def work(tx: _Tx) -> None:
            if tx.execute("DELETE FROM relying_parties WHERE address = ?", (address,)).rowcount == 0:
                raise RegistryError(f"unknown relying party {address!r}")

        self._run(_Kind.WRITE, work)

    def list_relying_parties(self) -> list[RelyingParty]:
        """Every relying party, sorted by address."""
        rows = self._run(_Kind.READ, lambda tx: tx.all(
            "SELECT address, token_type, lifetime_us, claims, certificate_pem FROM relying_parties"))
        return sorted((self._party(row) for row in rows), key=lambda party: party.address)

    def get(self, address: str) -> RelyingParty | None:
        """The relying party registered under exactly ``address`` (one indexed lookup), or None."""
        if not _findable(address):
            return None
        row = self._run(_Kind.READ, lambda tx: tx.one(
            "SELECT address, token_type, lifetime_us, claims, certificate_pem FROM relying_parties WHERE address = ?",
            (address,)))
        return None if row is None else self._party(row)

    # ------------------------------------------------------------------ settings

    def get_settings(self) -> StsSettings:
        """The settings in force (one snapshot). :raises ConfigurationError: never initialised."""
        return self._run(_Kind.READ, self._read_settings)

    def update_settings(self, *, issuer: str | None = None, allowed_roles: Sequence[str] | None = None,
                        default_lifetime: timedelta | None = None, clock_skew: timedelta | None = None,
                        signature_algorithm: str | None = None, allow_plaintext_http: bool | None = None) -> StsSettings:
        """Change the given settings (None: unchanged), all in one transaction; the settings now in force.

        An empty ``allowed_roles`` lets every authenticated user request tokens.

        :raises RegistryError: an allowed role that does not exist (all unknown ones named).
        :raises ConfigurationError: an empty issuer, a lifetime <= 0, a negative
            skew, or a signature algorithm not in :data:`SIGNATURE_ALGORITHMS`.
        """
        changes: list[tuple[str, object]] = []
        if issuer is not None:
            changes.append(("issuer", _check_name("issuer", issuer)))
        if default_lifetime is not None:
            changes.append(("default_lifetime_us",
                            _check_duration("default_lifetime", default_lifetime, allow_zero=False)))
        if clock_skew is not None:
            changes.append(("clock_skew_us", _check_duration("clock_skew", clock_skew, allow_zero=True)))
        if signature_algorithm is not None:
            if signature_algorithm not in SIGNATURE_ALGORITHMS:
                raise ConfigurationError(
                    f"signature_algorithm: must be one of {', '.join(SIGNATURE_ALGORITHMS)}, "
                    f"not {signature_algorithm!r}"
                )
            changes.append(("signature_algorithm", signature_algorithm))
        if allow_plaintext_http is not None:
            if not isinstance(allow_plaintext_http, bool):
                raise ConfigurationError(f"allow_plaintext_http: must be True or False, not {allow_plaintext_http!r}")
            changes.append(("allow_plaintext_http", allow_plaintext_http))
        roles = None if allowed_roles is None else _check_names("allowed_roles", allowed_roles)

        def work(tx: _Tx) -> StsSettings:
            if tx.one("SELECT 1 FROM settings WHERE id = 1") is None:
                raise self._not_initialised()
            if changes:
                # Column names are the constants above, never caller input.
                assignments = ", ".join(f"{column} = ?" for column, _ in changes)
                tx.execute(f"UPDATE settings SET {assignments} WHERE id = 1", [value for _, value in changes])
            if roles is not None:
                role_ids = self._role_ids(tx, roles)
                tx.execute("DELETE FROM allowed_roles")
                for role_id in role_ids.values():
                    tx.execute("INSERT INTO allowed_roles (role_id) VALUES (?)", (role_id,))
            return self._read_settings(tx)

        return self._run(_Kind.WRITE, work)

    # ------------------------------------------------------------------ UserStore

    def authenticate(self, token: UsernameToken) -> Principal | None:
        """The principal if the token's password is right, else None; as slow for unknown users.

        PasswordText is checked against the scrypt hash; for an unknown user
        (or a hash made with other KDF parameters) a dummy hash is checked
        instead, so the answer takes as long either way. PasswordDigest is
        checked only for users who keep a digest secret; for everyone else a
        dummy digest comparison runs and the answer is None. The check runs
        outside any transaction; the roles and claims are then read with the
        user's row, and if the password changed (or the user went) meanwhile
        the answer is None.
        """
        dummy = self._dummy_hash()  # before the lookup: the first call is slow for everybody
        name = token.username
        row = None if not _findable(name) else self._run(_Kind.READ, lambda tx: tx.one(
            "SELECT id, kdf, salt, password_hash, digest_secret FROM users WHERE name = ?", (name,)))
        if token.digest:
            secret = row[4] if row is not None else None
            ok = token.digest_matches(secret if secret is not None else "\0no digest secret")
            if row is None or secret is None or not ok:
                return None
        else:
            usable = row is not None and row[1] == _KDF
            salt, expected = (bytes(row[2]), bytes(row[3])) if row is not None and usable else dummy
            _, actual = hash_password(token.password, salt)
            ok = hmac.compare_digest(actual, expected)
            if row is not None and not usable:
                log.warning("user %r: password hash made with %s, this version checks %s: set the password again",
                            name, row[1], _KDF)
            if row is None or not usable or not ok:
                return None
        checked = row

        def load(tx: _Tx) -> Principal | None:
            now = tx.one("SELECT id, kdf, salt, password_hash, digest_secret FROM users WHERE name = ?", (name,))
            if now != checked:  # removed, or its password changed, since the check
                return None
            roles, claims = self._roles_and_claims(tx, checked[0])
            return Principal(name, frozenset(roles), claims)

        return self._run(_Kind.READ, load)

    def password_record(self, username: str) -> tuple[bytes, Principal] | None:
        """The user's stored password verifier and current principal, in one snapshot; None for no such user.

        What :class:`~wstrust_wsgi.stores.cache.CachedUserStore` needs to skip
        the KDF safely: no password is checked here, and nothing is hashed.

        The verifier is the stored KDF name, salt and hash, each
        length-prefixed. Every password change writes a fresh random salt and
        its hash (for users with a digest secret too: they keep a salt and hash
        like everyone else, and the plaintext is rewritten in the same
        statement), so the verifier differs after any change. The digest
        secret itself is left out: a cached PasswordText check never uses it,
        and the plaintext should not travel further than the digest check.
        A removed user has no row, hence None.
        """
        if not _findable(username):
            return None

        def work(tx: _Tx) -> tuple[bytes, Principal] | None:
            row = tx.one("SELECT id, kdf, salt, password_hash FROM users WHERE name = ?", (username,))
            if row is None:
                return None
            roles, claims = self._roles_and_claims(tx, row[0])
            verifier = b"".join(len(part).to_bytes(4, "big") + part
                                for part in (str(row[1]).encode(), bytes(row[2]), bytes(row[3])))
            return verifier, Principal(username, frozenset(roles), claims)

        return self._run(_Kind.READ, work)

    # ------------------------------------------------------------------ internals: statements

    def _dummy_hash(self) -> tuple[bytes, bytes]:
        if self._dummy is None:
            self._dummy = hash_password("not a password")
        return self._dummy

    @staticmethod
    def _check_claims(claims: object) -> dict[str, list[str]]:
        if not isinstance(claims, Mapping):
            raise ConfigurationError(f"claims: must map claim URIs to lists of values, not {claims!r}")
        return {_check_name("claim", claim): _check_values(claim, values) for claim, values in claims.items()}

    @staticmethod
    def _user_id(tx: _Tx, name: str) -> int:
        row = tx.one("SELECT id FROM users WHERE name = ?", (name,))
        if row is None:
            raise RegistryError(f"unknown user {name!r}")
        return int(row[0])

    @staticmethod
    def _role_ids(tx: _Tx, names: Sequence[str]) -> dict[str, int]:
        """Role name -> id; :raises RegistryError: naming every unknown role."""
        found: dict[str, int] = {}
        for name in names:
            row = tx.one("SELECT id FROM roles WHERE name = ?", (name,))
            if row is not None:
                found[name] = int(row[0])
        missing = [name for name in names if name not in found]
        if missing:
            raise RegistryError(f"unknown role{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(repr(name) for name in missing)} (add_role first)")
        return found

    @staticmethod
    def _write_claim(tx: _Tx, user_id: int, claim: str, values: Sequence[str]) -> None:
        tx.execute("DELETE FROM user_claims WHERE user_id = ? AND claim = ?", (user_id, claim))
        for seq, value in enumerate(values):
            tx.execute("INSERT INTO user_claims (user_id, claim, seq, value) VALUES (?, ?, ?, ?)",
                       (user_id, claim, seq, value))

    @staticmethod
    def _roles_and_claims(tx: _Tx, user_id: int) -> tuple[list[str], dict[str, tuple[str, ...]]]:
        roles = [row[0] for row in tx.all(
            "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = ?", (user_id,))]
        claims: dict[str, list[str]] = {}
        for claim, value in tx.all("SELECT claim, value FROM user_claims WHERE user_id = ? ORDER BY claim, seq",
                                   (user_id,)):
            claims.setdefault(claim, []).append(value)
        return roles, {claim: tuple(values) for claim, values in claims.items()}

    @staticmethod
    def _party(row: tuple[Any, ...]) -> RelyingParty:
        address, token_type, lifetime, claims, pem = row
        return RelyingParty(
            address=address,
            token_type=token_type,
            lifetime=None if lifetime is None else _microseconds(lifetime),
            claims=None if claims is None else frozenset(json.loads(claims)),
            certificate_pem=None if pem is None else bytes(pem),
        )

    def _read_settings(self, tx: _Tx) -> StsSettings:
        row = tx.one("SELECT issuer, default_lifetime_us, clock_skew_us, signature_algorithm, allow_plaintext_http "
                     "FROM settings WHERE id = 1")
        if row is None:
            raise self._not_initialised()
        roles = tx.all("SELECT r.name FROM allowed_roles a JOIN roles r ON r.id = a.role_id")
        return StsSettings(
            issuer=row[0],
            allowed_roles=frozenset(role for (role,) in roles),
            default_lifetime=_microseconds(row[1]),
            clock_skew=_microseconds(row[2]),
            signature_algorithm=row[3],
            allow_plaintext_http=bool(row[4]),
        )

    def _not_initialised(self) -> ConfigurationError:
        return ConfigurationError(
            f"registry {self._driver.describe()} is not initialised: run init_schema with an issuer "
            "(wstrust-wsgi's registry init command)"
        )

    # ------------------------------------------------------------------ internals: schema

    def _schema_version(self, tx: _Tx) -> int:
        """0 for an empty database, else the highest applied migration."""
        if tx.one(self._dialect.table_exists, ("schema_version",)) is None:
            return 0
        row = tx.one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row is not None and row[0] is not None else 0

    def _migrate(self, tx: _Tx) -> None:
        """Apply the missing migrations; runs under the migration lock (a MIGRATE transaction)."""
        tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                   "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
        current = self._schema_version(tx)
        latest = _MIGRATIONS[-1].version
        if current > latest:
            raise ConfigurationError(
                f"registry {self._driver.describe()}: schema version {current} is newer than this wstrust-wsgi "
                f"supports ({latest}); upgrade wstrust-wsgi"
            )
        for migration in _MIGRATIONS:
            if migration.version > current:
                migration.apply(tx)
                tx.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                           (migration.version, migration.description,
                            datetime.now(timezone.utc).isoformat(timespec="seconds")))
                log.info("registry %s: schema upgraded to version %d (%s)",
                         self._driver.describe(), migration.version, migration.description)

    # ------------------------------------------------------------------ internals: transactions

    def _run(self, kind: _Kind, work: Callable[[_Tx], T]) -> T:
        """Run ``work`` in one transaction of ``kind``, retrying what may be retried.

        Busy (SQLite) and serialization failures (PostgreSQL) are retried with
        jittered back-off until :data:`_RETRY_SECONDS`; nothing of the failed
        attempt was applied. A broken connection is dropped and the work run
        once more on a new one, unless it broke at COMMIT (then it may have
        been applied, so the error is raised). Errors the work raises itself
        (:class:`RegistryError`, :class:`ConfigurationError`) roll back and pass.
        """
        deadline = time.monotonic() + _RETRY_SECONDS
        begin = {_Kind.READ: self._dialect.begin_read, _Kind.WRITE: self._dialect.begin_write,
                 _Kind.MIGRATE: self._dialect.begin_migrate}[kind]
        reconnects = 0
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            committing = False
            conn: Any = None
            try:
                conn = self._connection()
                for statement in begin:
                    conn.execute(statement)
                result = work(_Tx(conn, self._dialect))
                committing = True
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn is not None:
                    self._rollback(conn)  # also on KeyboardInterrupt: never leave a transaction open
                if not isinstance(exc, Exception):
                    raise
                verdict = self._driver.classify(exc)
                if verdict is None:
                    raise
                if verdict is _Verdict.NO_SCHEMA:
                    raise self._not_initialised() from exc
                if verdict is _Verdict.RECONNECT:
                    self._drop()
                    reconnects += 1
                    if committing or reconnects > 1:
                        raise
                    log.info("registry %s: connection failed (%s); reconnecting", self._driver.describe(), exc)
                    continue
                if time.monotonic() >= deadline or attempt == _MAX_ATTEMPTS:
                    raise
                log.debug("registry %s: %s; retry %d", self._driver.describe(), exc, attempt)
                time.sleep(random.uniform(0.5, 1.0) * min(0.2, 0.002 * 2 ** min(attempt, 10)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _connection(self) -> Any:
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and (held.pid != os.getpid() or held.generation != self._generation):
            # Opened before a fork (pinned, see _ALL_HELD), or closed by close().
            self._local.held = held = None
        if held is None:
            conn = self._driver.connect()
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
            if self._dialect is _POSTGRES and (getattr(conn, "closed", False) or getattr(conn, "broken", False)):
                self._drop()
