"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, start, hand out databases, stop.

Tests that need PostgreSQL run against a real server rather than a mock,
because what they check (transactions, serialization failures, reconnects)
lives in the server. Typical use, one server per test session::

    with PostgresServer() as server:
        url = server.create_database()   # postgresql://wstrust@127.0.0.1:PORT/test_...

The server binaries are looked up in ``$WSTRUST_PG_BINDIR``, then
``/usr/lib/postgresql/<newest>/bin`` (Debian's ``postgresql`` package), then
``pg_config --bindir`` and ``$PATH``. Nothing found raises
:class:`PostgresUnavailable`: a test needing PostgreSQL then fails, it is never
skipped, so a CI machine without it cannot pass by accident.

PostgreSQL refuses to run as root, so under root ``initdb`` and ``postgres``
run as the ``postgres`` OS user (``subprocess`` ``user=``), in a folder that
this user owns (pytest's ``tmp_path`` is private to root): under ``/dev/shm``
when it is a tmpfs with room, since every ``CREATE DATABASE`` copies a
template of several megabytes and a slow disk makes that the cost of each
test; else under the system temp directory. The server listens on 127.0.0.1 only, on a free port, with
its unix socket inside that folder, and trusts every loopback connection: it
is a disposable server holding test data, built for speed (``fsync=off``),
never for anything else.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import re
import tempfile
import time
import uuid
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["PostgresServer", "PostgresUnavailable", "find_bindir"]


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server programs are missing, or the server would not start."""


def find_bindir(bindir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding ``initdb`` and ``postgres``.

    A folder given here or in ``$WSTRUST_PG_BINDIR`` is the only one tried:
    a wrong explicit setting is an error, not silently replaced by a guess.

    :raises PostgresUnavailable: none found; the message says which package to install.
    """
    explicit = os.fspath(bindir) if bindir is not None else os.environ.get("WSTRUST_PG_BINDIR")
    if explicit:
        path = Path(explicit)
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
        raise PostgresUnavailable(f"no initdb and postgres in {path} (WSTRUST_PG_BINDIR or bindir=)")
    candidates: list[str] = []
    # Debian installs each major version side by side; take the newest.
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates.extend(sorted(debian, key=lambda p: _version_key(Path(p).parent.name), reverse=True))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "postgres").is_file():
            return path
    raise PostgresUnavailable(
        "PostgreSQL server programs (initdb, postgres) not found: install the Debian package "
        "'postgresql' (./run.sh test and .ci/run do), or set WSTRUST_PG_BINDIR"
    )


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (0,)


def _scratch_parent() -> str | None:
    """``/dev/shm`` if it is a writable folder with 1 GiB free; None (the system temp dir) otherwise."""
    shm = "/dev/shm"
    try:
        usage = os.statvfs(shm)
    except OSError:
        return None
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) and usage.f_bavail * usage.f_frsize >= 2**30:
        return shm
    return None


def _check_dbname(name: str) -> str:
    """A database name safe to put in a statement (it cannot be a parameter there)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"database name {name!r}: letters, digits and _ only, at most 63")
    return name


def _free_port() -> int:
    # The port is free now; another process may take it before postgres binds,
    # in which case start-up fails with "could not bind" and is retried.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes], folder: str, owner_pid: int) -> None:
    """Immediate shutdown, then remove the folder; only in the process that started the server.

    A forked child (multiprocessing) inherits the finalizer; it must not stop
    its parent's server when it exits.
    """
    if os.getpid() != owner_pid:
        return
    if process.poll() is None:
        # "immediate" shutdown: no checkpoint (the data is thrown away), which
        # matters after a session that created dozens of databases
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    shutil.rmtree(folder, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL server started now, in a temporary folder, stopped by :meth:`stop`.

    :param bindir: where ``initdb`` and ``postgres`` are (default: see :func:`find_bindir`).
    :param user: the superuser the server is initialised with, and that :attr:`url` names.
    :param start_timeout: seconds to wait for the server to accept connections.
    :raises PostgresUnavailable: no server programs, or the server did not start
        (the message holds the end of its log).
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        user: str = "wstrust",
        start_timeout: float = 30.0,
    ) -> None:
        self.bindir = find_bindir(bindir)
        self.user = user
        self.folder = Path(tempfile.mkdtemp(prefix="wstrust-pg-", dir=_scratch_parent()))
        self._run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise PostgresUnavailable("running as root, and there is no 'postgres' OS user to run the server as")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.data = self.folder / "data"
        self.log_path = self.folder / "server.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        try:
            self._initdb()
            self._start(start_timeout)
        except BaseException:
            if self._process is None:
                shutil.rmtree(self.folder, ignore_errors=True)
            self.stop()
            raise

    # ------------------------------------------------------------------ public

    @property
    def url(self) -> str:
        """The maintenance database ``postgres``, as the superuser."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh random name by default); its URL."""
        import psycopg  # the test extra; imported here so find_bindir works without it

        name = _check_dbname(name or f"test_{uuid.uuid4().hex[:16]}")
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        import psycopg

        _check_dbname(name)
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server and remove its folder (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        elif self._process is not None:
            _stop(self._process, str(self.folder), os.getpid())

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ start-up

    def _initdb(self) -> None:
        command = [
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=self._env(),
                                cwd=self.folder, **self._run_as)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({result.returncode}): {result.stdout}{result.stderr}")

    def _start(self, timeout: float) -> None:
        last_log = ""
        for _ in range(3):  # a port taken between probe and bind: try another
            self.port = _free_port()
            command = [
                str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_permissions=0700", "-c", "max_connections=200",
                # disposable test data: durability off, speed on
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ]
            with open(self.log_path, "ab") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                           cwd=self.folder, **self._run_as)  # type: ignore[call-overload]
            self._process = process
            self._finalizer = weakref.finalize(self, _stop, process, str(self.folder), os.getpid())
            if self._wait_ready(process, timeout):
                return
            last_log = self._log_tail()
            self._finalizer.detach()
            self._finalizer = None
            if process.poll() is None:
                process.kill()
            process.wait(timeout=15)
            if "could not bind" not in last_log and "already in use" not in last_log:
                break
        self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start; its log ends:\n{last_log}")

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> bool:
        import psycopg

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    @staticmethod
    def _env() -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        return env


def registry_url(kind: str, request: Any, directory: Path) -> str:
    """An empty registry database of ``kind`` (``"sqlite"`` in ``directory``, or ``"postgresql"`` on the
    run's one server, the ``postgres`` fixture of tests/conftest.py), for tests parametrized over both."""
    if kind == "sqlite":
        return f"sqlite://{directory}/registry.db"
    return str(request.getfixturevalue("postgres").create_database())
