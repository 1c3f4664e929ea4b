"""The production entry point: build the mounted STS from one TOML file.

Run it with gunicorn, which also terminates TLS::

    gunicorn 'wstrust_wsgi.deploy:make_app("/etc/wstrust/sts.toml")' \\
        --bind 0.0.0.0:8443 --certfile /etc/wstrust/tls.crt --keyfile /etc/wstrust/tls.key \\
        --worker-class gthread --workers 2 --threads 8

(or ``make_app()`` with ``WSTRUST_CONFIG=/etc/wstrust/sts.toml`` in the
environment). The file format is in :mod:`wstrust_wsgi.config` and, with a
comment per setting, in ``demo_sts/sts.example.toml``.

Start-up does every check a request would otherwise run into: the file is read
and checked (:func:`~wstrust_wsgi.config.load_config`), then each store is
asked one real question, so an unreachable registry, directory or Redis stops
the server now rather than failing every request later:

* registry: its STS settings (what :class:`~wstrust_wsgi.TokenService` reads
  first) and one relying-party lookup; with ``[users] source = "registry"`` also
  one user lookup;
* LDAP: one authentication of a made-up user with a random password (the
  search, or bind, a real user would cause);
* Redis nonce cache: a PING;
* lockout store (``[lockout] store``: the registry's table, or Redis): one read.

``wstrust-wsgi check FILE`` runs the same probes without a server
(:func:`check_deployment`), each one even after another failed. Once
running, the STS also answers ``GET <path>/health`` (200 or 503, see
:mod:`wstrust_wsgi._health`), asking the registry and the nonce cache again.

With ``[users] source = "registry"`` the registry is wrapped in a
:class:`~wstrust_wsgi.stores.cache.CachedUserStore` (``[users]
password_cache_ttl``, 120 s by default, 0 for none): a client asking again
with the same password skips the scrypt check (tens of milliseconds of CPU),
while the user's row, roles and claims are still read on every request, so a
password change, a revoked role or a removed user take effect at the next
one. LDAP users are never cached (a directory does not show its stored
password hash).

Any failure is a :class:`StartupError`, whose message is the one sentence
naming the file, table and key. It is raised so that gunicorn shows that
sentence, not a traceback, and stops instead of restarting workers forever (see
:class:`StartupError`). gunicorn exits non-zero: 4 ("App failed to load") when
the app is loaded in the worker (the default), 1 with ``--preload``. With
several workers the sentence is still printed once, without a traceback (see
:func:`_said_once`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.errors import AppImportError  # type: ignore[import-untyped]

from ._health import HEALTH_PATH
from ._wsgi import mount
from .config import CONFIG_ENV, DeploymentConfig, load_config, redact_url
from .errors import ConfigurationError, RequestFailed
from .stores import ReplayCache, SettingsStore, StsSettings, UserStore
from .stores.cache import CachedUserStore
from .stores.lockout import LockoutStore, RedisLockoutStore, lockout_store_from_url
from .stores.replay import RedisReplayCache, SQLiteReplayCache, replay_cache_from_url
from .stores.sql import Registry
from .sts import TokenService
from .wssecurity import UsernameToken

if TYPE_CHECKING:  # ldap3 is the optional "ldap" extra; imported only when [users] source = "ldap"
    from .stores.ldap import LdapUserStore

__all__ = ["Check", "StartupError", "build_app", "check_deployment", "make_app"]

log = logging.getLogger("wstrust_wsgi.deploy")

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

#: Looked up at start-up to prove a store answers; never registered anywhere.
_PROBE_ADDRESS = "urn:wstrust-wsgi:start-up-probe"


class StartupError(ConfigurationError, RuntimeError, AppImportError):  # type: ignore[misc]
    """The deployment cannot start; ``str()`` is the one sentence naming the setting.

    A :class:`~wstrust_wsgi.errors.ConfigurationError` like every configuration
    error. The two other bases are for gunicorn, which treats exceptions from
    an app factory by type:

    * raised in a worker (the default), an ``AppImportError`` is printed as its
      bare message and stops the master with exit code 4; any other exception
      is printed as a traceback (the sentence on its last line);
    * raised in the master (``--preload``), a ``RuntimeError`` is printed as
      ``Error: <message>`` with exit code 1; any other exception as a traceback.
    """


def make_app(path: str | os.PathLike[str] | None = None) -> WSGIApp:
    """The STS, mounted at ``[sts] path``, from the TOML file at ``path`` (or ``$WSTRUST_CONFIG``).

    :raises StartupError: the file or a store is not usable; the message is one
        sentence naming the file, table and key.
    """
    source = os.fspath(path) if path is not None else os.environ.get(CONFIG_ENV, "")
    if not source.strip():
        raise _said_once(StartupError(f"no configuration file: call make_app(\"/etc/wstrust/sts.toml\") "
                                      f"or set {CONFIG_ENV} to its path"))
    try:
        config = load_config(source)
        _configure_logging(config.sts.log_level)
        for warning in config.warnings:
            log.warning("%s", warning)
        return build_app(config)
    except StartupError as exc:
        raise _said_once(exc)
    except ConfigurationError as exc:
        raise _said_once(StartupError(str(exc))) from exc


def build_app(config: DeploymentConfig) -> WSGIApp:
    """The mounted STS for a loaded configuration, after asking every store one question.

    Stores are built first (which checks their options without the network),
    then each is asked its question, so a bad option is reported before a
    slow or unreachable server is waited for. Whatever was opened is closed
    again if start-up fails.

    :raises ConfigurationError: a store's option is refused, or a store cannot
        be opened or does not answer.
    """
    with ExitStack() as opened:
        ldap = _ldap_store(config) if config.users == "ldap" else None
        if ldap is not None:
            opened.callback(ldap.close)
        nonces = _nonce_cache(config)
        if isinstance(nonces, (RedisReplayCache, SQLiteReplayCache)):
            opened.callback(nonces.close)
        registry = _open_registry(config)
        opened.callback(registry.close)
        lockout_store = _lockout_store(config, registry)
        if isinstance(lockout_store, RedisLockoutStore):
            opened.callback(lockout_store.close)
        if ldap is not None:
            _probe_ldap(config, ldap)
        if isinstance(nonces, RedisReplayCache):
            _probe_redis(config, nonces)
        users: UserStore = ldap if ldap is not None else _registry_users(config, registry)
        try:
            service = TokenService(
                signing_key=config.keys.loaded,
                users=users,
                relying_parties=registry,
                settings=_HostSettings(registry, config.sts.allow_plaintext_http),
                nonce_cache=nonces,
                lockout=config.lockout,
                lockout_store=lockout_store,
                public_url=config.sts.public_url,
            )
        except ConfigurationError as exc:  # the settings stored in the registry make no sense
            raise config.error("registry", "url", f"{config.registry.display_url}: the STS settings stored "
                                                  f"there are not usable ({exc})") from exc
        except Exception as exc:  # it reads the settings once more: the registry may have just gone away
            raise config.error("registry", "url", _explain(exc, f"{config.registry.display_url} does not "
                                                                "answer")) from exc
        opened.pop_all()  # started: the service owns them now
    log.info("STS at %s, issuer %s: registry %s, users from %s, digest nonces in %s, %s",
             config.sts.path, service.issuer, config.registry.display_url, _describe_users(config),
             config.replay.display_url, _describe_lockout(config))
    app: WSGIApp = mount(config.sts.path, service, subpaths=(HEALTH_PATH,))
    return app


@dataclasses.dataclass(frozen=True)
class Check:
    """One start-up probe's outcome, for ``wstrust-wsgi check``: what was asked, and the answer or the problem."""

    name: str
    ok: bool
    text: str


def check_deployment(config: DeploymentConfig) -> list[Check]:
    """Ask every store the start-up question of :func:`build_app`, each even when another failed.

    The probes are the very ones the server runs at start-up, so a file that
    passes here starts (unless something changes in between); unlike start-up,
    every store is asked and every answer is kept, so one run names every
    problem. Nothing stays open afterwards.
    """
    results: list[Check] = []

    def attempt(name: str, probe: Callable[[], str]) -> None:
        try:
            results.append(Check(name, True, probe()))
        except ConfigurationError as exc:
            results.append(Check(name, False, str(exc)))
        except Exception as exc:  # a probe lets only ConfigurationError out; still, one line, never a traceback
            results.append(Check(name, False, f"{config.source}: unexpected {type(exc).__name__}: {_cause(exc)}"))

    def registry() -> str:
        opened = _open_registry(config)
        try:
            return f"{config.registry.display_url} answers (issuer {opened.get_settings().issuer})"
        finally:
            opened.close()

    def users() -> str:
        if config.users != "ldap":
            return f"from {_describe_users(config)}"
        store = _ldap_store(config)
        try:
            _probe_ldap(config, store)
        finally:
            store.close()
        return f"from {_describe_users(config)}: a lookup of a made-up user was answered"

    def nonces() -> str:
        cache = _nonce_cache(config)  # a SQLite file is opened (and created) here
        try:
            if isinstance(cache, RedisReplayCache):
                _probe_redis(config, cache)
        finally:
            if isinstance(cache, (RedisReplayCache, SQLiteReplayCache)):
                cache.close()
        return f"digest nonces in {config.replay.display_url}"

    attempt("registry", registry)
    attempt("users", users)
    attempt("replay", nonces)
    return results


# ---------------------------------------------------------------------- stores


def _open_registry(config: DeploymentConfig) -> Registry:
    """Open the registry and read from each table the STS uses."""
    shown = config.registry.display_url
    try:
        with _held_back("wstrust_wsgi.registry", replay=True):
            registry = Registry.open(config.registry.url)
    except Exception as exc:
        raise config.error("registry", "url", _explain(exc, f"{shown} cannot be opened")) from exc
    try:
        with _held_back("wstrust_wsgi.registry", replay=True):
            registry.get_settings()
            registry.get(_PROBE_ADDRESS)
            if config.users == "registry":
                registry.password_record(f"start-up-probe-{secrets.token_hex(4)}")  # the row a request reads
    except Exception as exc:
        registry.close()
        raise config.error("registry", "url", _explain(exc, f"{shown} does not answer")) from exc
    return registry


def _registry_users(config: DeploymentConfig, registry: Registry) -> UserStore:
    """The registry as the user store, behind the password cache unless ``password_cache_ttl`` is 0."""
    if not config.password_cache_ttl:
        return registry
    try:
        return CachedUserStore(registry, ttl=config.password_cache_ttl)
    except ConfigurationError as exc:  # only from a DeploymentConfig built by hand: load_config checks the bounds
        raise config.error("users", "password_cache_ttl", _cause(exc)) from exc


def _describe_users(config: DeploymentConfig) -> str:
    if config.ldap is not None:
        return f"LDAP {', '.join(config.ldap.urls)}"
    if not config.password_cache_ttl:
        return "the registry (password cache off)"
    return f"the registry (successful password checks remembered {config.password_cache_ttl.total_seconds():g} s)"


def _ldap_store(config: DeploymentConfig) -> LdapUserStore:
    """The LDAP store, its options checked (it sends nothing until asked)."""
    try:
        from .stores.ldap import LdapUserStore  # needs the optional "ldap" extra: imported only when used
    except ImportError as exc:
        raise config.error("users", "source", f'"ldap" needs the ldap3 package ({exc})') from exc

    ldap = config.ldap
    assert ldap is not None  # load_config gives [ldap] whenever users = "ldap"
    given = {f.name: getattr(ldap, f.name) for f in dataclasses.fields(ldap)}
    try:
        return LdapUserStore(**{name: value for name, value in given.items() if value is not None})
    except ConfigurationError as exc:  # its messages name its keyword arguments, which are the file's keys
        raise ConfigurationError(f"{config.source}: [ldap] {exc}") from exc


def _probe_ldap(config: DeploymentConfig, store: LdapUserStore) -> None:
    """One real lookup: a made-up user with a random password.

    The store searches (or binds) as it would for a real user, so the search
    account, the bases and TLS are all exercised; only a directory it cannot
    use raises, a refused made-up user is the expected answer.
    """
    assert config.ldap is not None
    probe = UsernameToken(username=f"start-up-probe-{secrets.token_hex(4)}", password=secrets.token_urlsafe(16),
                          digest=False, nonce=None, created_text=None, created=None)
    try:
        with _held_back("wstrust_wsgi.ldap", replay=False):  # "refused 'start-up-probe-...'" is expected
            store.authenticate(probe)
    except RequestFailed as exc:
        raise config.error("ldap", "urls", f"{', '.join(config.ldap.urls)}: the start-up lookup failed "
                                           f"({_cause(exc)})") from exc


def _nonce_cache(config: DeploymentConfig) -> ReplayCache:
    try:
        return replay_cache_from_url(config.replay.nonce_cache)
    except ConfigurationError as exc:
        raise config.error("replay", "nonce_cache", f"{config.replay.display_url} is not usable ({exc})") from exc


def _lockout_store(config: DeploymentConfig, registry: Registry) -> LockoutStore | None:
    """The store ``[lockout]`` names, after one read (the registry's table, Redis); None when lockout is off."""
    if config.lockout is None:
        return None
    try:
        store = lockout_store_from_url(config.lockout_store, registry)
    except ConfigurationError as exc:
        raise config.error("lockout", "store", _cause(exc)) from exc
    if config.lockout_store.strip().lower() == "memory:":
        log.warning("%s: [lockout] store = \"memory:\": failures are counted per worker process, so each "
                    "gunicorn worker allows its own max_failures; use \"registry\" or Redis", config.source)
    try:
        store.read(["user:start-up-probe"], datetime.now(timezone.utc))
    except Exception as exc:
        if isinstance(store, RedisLockoutStore):
            store.close()
        raise config.error("lockout", "store", f"{redact_url(config.lockout_store)} does not answer "
                                               f"({_cause(exc)})") from exc
    return store


def _describe_lockout(config: DeploymentConfig) -> str:
    policy = config.lockout
    if policy is None:
        return "lockout OFF"
    return (f"lockout after {policy.max_failures} failures per user or {policy.address_max_failures} per address "
            f"within {policy.window.total_seconds():g} s for {policy.duration.total_seconds():g} s "
            f"(counted in {redact_url(config.lockout_store)})")


def _probe_redis(config: DeploymentConfig, cache: RedisReplayCache) -> None:
    try:
        cache.client.ping()
    except Exception as exc:
        raise config.error("replay", "nonce_cache", f"{config.replay.display_url} does not answer "
                                                    f"({_cause(exc)})") from exc


class _HostSettings:
    """The registry's STS settings, with this host's ``allow_plaintext_http`` override applied.

    The override is per host (the file), the rest is shared (the registry), so
    one host behind a TLS-terminating proxy can accept plain HTTP without
    opening it on every host.
    """

    def __init__(self, store: SettingsStore, allow_plaintext_http: bool | None) -> None:
        self._store = store
        self._allow_plaintext_http = allow_plaintext_http

    def get_settings(self) -> StsSettings:
        current = self._store.get_settings()
        if self._allow_plaintext_http is None:
            return current
        return dataclasses.replace(current, allow_plaintext_http=self._allow_plaintext_http)


# ---------------------------------------------------------------------- one sentence per server


def _said_once(error: StartupError) -> StartupError:
    """``error``, to raise, in the one process of a gunicorn server that is to say it; elsewhere no return.

    Without ``--preload`` every worker builds the app, so a bad file fails in
    each of them. gunicorn prints each worker's StartupError, and stops on the
    first worker that exits with code 4 ("App failed to load"); a second one
    exiting with 4 while the master is already stopping raises the master's
    HaltServer again inside its own handler: two chained tracebacks. So in a
    worker, the first to fail says the sentence (it returns ``error``, raised
    as before: printed once, exit 4); a sibling that fails later, or while the
    master is stopping it, says nothing and exits 0 once the master has told it
    to stop (SIGTERM, which gunicorn's workers only note in ``alive``).

    The siblings learn that the sentence was said from a small marker file
    (``wstrust-wsgi-<uid>-gunicorn-<master pid>.failed`` in the temporary
    folder, mode 0600, holding the master's identity, so a file left by an
    earlier master with the same pid is ignored; with one worker there is no
    sibling and no marker). Anything unexpected (no
    gunicorn, ``--preload``, an unusable marker) leaves gunicorn's own
    behaviour: the sentence is raised.
    """
    worker = _gunicorn_worker()
    if worker is None:
        return error
    if worker.alive and (_workers(worker) <= 1 or _first_to_fail(worker)):  # alone: no sibling, no marker
        return error
    deadline = time.monotonic() + _SIBLING_WAIT
    while worker.alive and time.monotonic() < deadline:  # the first one's exit stops the master, then us
        time.sleep(0.05)
    if worker.alive:  # the master never stopped us: say it after all
        return error
    raise SystemExit(0)


#: How long a worker that failed second waits for the master to stop it before it speaks up itself.
_SIBLING_WAIT = 60.0


def _gunicorn_worker() -> Any | None:
    """The gunicorn worker this process is, while it loads the app (its SIGTERM handler is the worker's)."""
    try:
        from gunicorn.workers.base import Worker  # type: ignore[import-untyped]
    except ImportError:
        return None
    owner = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return owner if isinstance(owner, Worker) else None


def _workers(worker: Any) -> int:
    """How many workers the master runs (gunicorn's ``--workers``); 2 if it cannot be read."""
    count = getattr(getattr(worker, "cfg", None), "workers", 2)
    return count if isinstance(count, int) else 2


def _first_to_fail(worker: Any) -> bool:
    """Whether no sibling of ``worker`` has failed before it; records that one has (under an exclusive lock)."""
    try:
        import fcntl
    except ImportError:
        return True
    identity = _master_identity(worker)
    marker = Path(tempfile.gettempdir()) / f"wstrust-wsgi-{os.getuid()}-gunicorn-{worker.ppid}.failed"
    try:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return True
    with os.fdopen(fd, "r+b") as handle:
        try:
            if os.fstat(fd).st_uid != os.getuid():
                return True
            fcntl.flock(fd, fcntl.LOCK_EX)
            if handle.read() == identity:
                return False
            handle.seek(0)
            handle.truncate()
            handle.write(identity)
            handle.flush()
        except OSError:
            return True
    return True


def _master_identity(worker: Any) -> bytes:
    """The master's pid and its first listening socket's inode: shared by its workers, not by an earlier master."""
    inode = 0
    for listener in getattr(worker, "sockets", None) or ():
        try:
            inode = os.fstat(listener.fileno()).st_ino
            break
        except (OSError, ValueError, AttributeError):
            continue
    return f"{worker.ppid}:{inode}".encode()


# ---------------------------------------------------------------------- helpers


def _configure_logging(level: str) -> None:
    """Make the STS's log lines (issued/refused, start-up warnings) appear where gunicorn's do.

    Left alone when the root logger has handlers (the operator configured
    logging, e.g. gunicorn ``--log-config``). Otherwise the ``wstrust_wsgi``
    logger gets gunicorn's error-log handlers (so ``--error-logfile`` and log
    rotation apply), or, outside gunicorn, a handler on stderr.
    """
    logger = logging.getLogger("wstrust_wsgi")
    logger.setLevel(level.upper())
    if logging.getLogger().handlers:
        return
    handlers = logging.getLogger("gunicorn.error").handlers or [_stderr_handler()]
    for handler in handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)


_STDERR_HANDLER: logging.Handler | None = None


def _stderr_handler() -> logging.Handler:
    global _STDERR_HANDLER
    if _STDERR_HANDLER is None:
        _STDERR_HANDLER = logging.StreamHandler()
        _STDERR_HANDLER.setFormatter(logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S %z"))
    return _STDERR_HANDLER


@contextmanager
def _held_back(name: str, *, replay: bool) -> Iterator[None]:
    """Hold back one logger's records during a start-up probe.

    If the probe fails, they are dropped: they would come before the start-up
    sentence and bury it (a driver's "reconnecting", the failure itself), and
    that sentence already holds the cause. If it succeeds, they are passed on
    when ``replay`` (a schema upgrade is worth its log line), else dropped (a
    made-up user being refused is the expected answer). Start-up is
    single-threaded, so no other thread's records are caught.
    """
    held: list[logging.LogRecord] = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    logger = logging.getLogger(name)
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers[:], logger.propagate = [Hold()], False
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = handlers, propagate
    if replay:
        for record in held:
            logger.handle(record)


def _explain(exc: BaseException, what: str) -> str:
    """A store's own ConfigurationError is already a sentence naming the store; anything else gets ``what``."""
    if isinstance(exc, ConfigurationError):
        return _cause(exc)
    return f"{what} ({_cause(exc)})"


def _cause(exc: BaseException) -> str:
    """The first line of an exception's message (drivers' messages run over several), passwords hidden."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return " ".join(redact_url(word) if "://" in word else word for word in text.split(" "))[:300]
