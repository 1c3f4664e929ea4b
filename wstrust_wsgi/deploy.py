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
* lockout store (``[lockout] store``: the registry's table, or Redis): one read;
* ``[sts] default_applies_to``: one of the registry's relying parties; no ``[delegation]
  trusted_issuers`` name the registry's issuer (an entry that would silently do nothing).

``wstrust-wsgi check FILE`` runs the same probes without a server
(:func:`check_deployment`), each one even after another failed (and, as the STS does per
request, whether every relying party's encryption certificate is usable now). Once
running, the STS also answers ``GET <path>/health`` (200 or 503, see
:mod:`wstrust_wsgi._health`), asking the registry and the nonce cache again.

Digest nonces are recorded where ``[replay] nonce_cache`` says; left out, in a
SQLite file shared by this host's workers (:func:`default_nonce_path`), since
gunicorn's workers are processes and a per-process cache would let a
PasswordDigest request replayed to another worker through. An explicit
``memory:`` under several workers starts, with a warning naming that risk.

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
:func:`wstrust_wsgi._gunicorn.said_once`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.errors import AppImportError  # type: ignore[import-untyped]

from ._gunicorn import said_once, worker_count
from ._health import HEALTH_PATH
from ._log import TrustedProxies, configure_logging
from ._urls import sqlite_path
from ._wsgi import mount
from .config import CONFIG_ENV, DeploymentConfig, load_config, redact_url
from .errors import ConfigurationError, KeyPairError, RequestFailed
from .model import RelyingParty, encryption_certificate
from .stores import ReplayCache, SettingsStore, StsSettings, UserStore
from .stores.cache import CachedUserStore
from .stores.lockout import LockoutStore, RedisLockoutStore, lockout_store_from_url
from .stores.sql.delegation import RegistryDelegationRules
from .stores.tokens import IssuedTokenStore, RedisTokenStore, token_store_from_url
from .sts.delegation import DelegationPolicy
from .stores.memory import MemoryReplayCache
from .stores.replay import RedisReplayCache, SQLiteReplayCache, replay_cache_from_url
from .stores.sql import Registry
from .sts import TokenService
from .sts.keyring import RegistryKeys, passphrase_from_environment
from .sts.mex import MEX_PATH
from .wssecurity import UsernameToken

if TYPE_CHECKING:  # ldap3 is the optional "ldap" extra; imported only when [users] source = "ldap"
    from .stores.ldap import LdapUserStore

__all__ = ["NONCE_FILE", "Check", "StartupError", "build_app", "check_deployment", "default_nonce_path", "make_app"]

log = logging.getLogger("wstrust_wsgi.deploy")

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

#: Looked up at start-up to prove a store answers; never registered anywhere.
_PROBE_ADDRESS = "urn:wstrust-wsgi:start-up-probe"

#: The digest nonce file when ``[replay] nonce_cache`` is left out (see :func:`default_nonce_path`).
NONCE_FILE = "nonces.db"


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
        raise said_once(StartupError(f"no configuration file: call make_app(\"/etc/wstrust/sts.toml\") "
                                      f"or set {CONFIG_ENV} to its path"))
    try:
        config = load_config(source)
        _configure_logging(config)
        for warning in config.warnings:
            log.warning("%s", warning)
        return build_app(config)
    except StartupError as exc:
        raise said_once(exc)
    except ConfigurationError as exc:
        raise said_once(StartupError(str(exc))) from exc


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
        try:
            TrustedProxies(config.sts.trusted_proxies)
        except ConfigurationError as exc:
            raise config.error("sts", "trusted_proxies", _cause(exc).removeprefix("trusted_proxies: ")) from exc
        nonces, nonces_shown = _nonce_cache(config)
        if isinstance(nonces, (RedisReplayCache, SQLiteReplayCache)):
            opened.callback(nonces.close)
        registry = _open_registry(config)
        opened.callback(registry.close)
        lockout_store = _lockout_store(config, registry)
        if isinstance(lockout_store, RedisLockoutStore):
            opened.callback(lockout_store.close)
        issued = _token_store(config, registry)
        if isinstance(issued, RedisTokenStore):
            opened.callback(issued.close)
        if ldap is not None:
            _probe_ldap(config, ldap)
        if isinstance(nonces, RedisReplayCache):
            _probe_redis(config, nonces)
        users: UserStore = ldap if ldap is not None else _registry_users(config, registry)
        delegated = _check_delegation(config, registry)
        try:
            service = TokenService(
                # the registry's rolling keys (wstrust-wsgi keys); the file's pair until one is promoted
                signing_key=RegistryKeys(registry, passphrase=passphrase_from_environment(),
                                         fallback=config.keys.loaded),
                users=users,
                relying_parties=registry,
                settings=_HostSettings(registry, config.sts.allow_plaintext_http),
                nonce_cache=nonces,
                lockout=config.lockout,
                lockout_store=lockout_store,
                public_url=config.sts.public_url,
                trusted_proxies=config.sts.trusted_proxies,
                issued_tokens=issued,
                token_policy=config.tokens[0] if config.tokens is not None else None,
                delegation=DelegationPolicy(RegistryDelegationRules(registry),  # `wstrust-wsgi delegation`
                                            trusted_issuers=config.delegation.certificates),
                default_applies_to=config.sts.default_applies_to,
            )
        except KeyPairError as exc:  # the registry's primary key cannot be decrypted (no or a wrong passphrase)
            raise config.error("registry", "url", f"{config.registry.display_url}: {exc}") from exc
        except ConfigurationError as exc:  # the settings stored in the registry make no sense
            raise config.error("registry", "url", f"{config.registry.display_url}: the STS settings stored "
                                                  f"there are not usable ({exc})") from exc
        except Exception as exc:  # it reads the settings once more: the registry may have just gone away
            raise config.error("registry", "url", _explain(exc, f"{config.registry.display_url} does not "
                                                                "answer")) from exc
        opened.pop_all()  # started: the service owns them now
    log.info("STS at %s, issuer %s: registry %s, users from %s, digest nonces in %s, %s, %s",
             config.sts.path, service.issuer, config.registry.display_url, _describe_users(config),
             nonces_shown, _describe_lockout(config),
             f"Validate, Renew and Cancel with tokens recorded in {redact_url(config.tokens[1])}"
             if config.tokens is not None else "Issue only")
    if config.sts.default_applies_to is not None or config.delegation.trusted_issuers:
        log.info("%s", delegated)
    hosted = () if service.metadata_path is None else (service.metadata_path,)
    app: WSGIApp = mount(config.sts.path, service, subpaths=(HEALTH_PATH, MEX_PATH), host_paths=hosted)
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
        with _open_registry(config) as opened:
            issuer = opened.get_settings().issuer
            try:  # the start-up question of the signing keys: can the registry's primary be decrypted?
                keys = RegistryKeys(opened, passphrase=passphrase_from_environment(),
                                    fallback=config.keys.loaded).signing_keys()
            except KeyPairError as exc:
                raise config.error("registry", "url", f"{config.registry.display_url}: {exc}") from exc
        signer = "the [keys] pair signs" if keys.primary is config.keys.loaded else "its primary key signs"
        return (f"{config.registry.display_url} answers (issuer {issuer}; {signer}, "
                f"{len(keys.published)} key(s) published)")

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
        cache, shown = _nonce_cache(config)  # a SQLite file is opened (and created) here
        try:
            if isinstance(cache, RedisReplayCache):
                _probe_redis(config, cache)
        finally:
            if isinstance(cache, (RedisReplayCache, SQLiteReplayCache)):
                cache.close()
        return f"digest nonces in {shown}"

    def encryption() -> str:
        with _open_registry(config) as opened:
            return _encryption_certificates(opened.list_relying_parties())

    def delegation() -> str:
        with _open_registry(config) as opened:
            return _check_delegation(config, opened)

    attempt("registry", registry)
    attempt("users", users)
    attempt("replay", nonces)
    attempt("encryption", encryption)
    if config.sts.default_applies_to is not None or config.delegation.trusted_issuers:
        attempt("delegation", delegation)
    return results


def _check_delegation(config: DeploymentConfig, registry: Registry) -> str:
    """``default_applies_to`` must be registered; no trusted issuer may bear this STS's own name.

    :raises ConfigurationError: naming the key; otherwise, what is set, for ``wstrust-wsgi check``.
    """
    shown = config.registry.display_url
    address = config.sts.default_applies_to
    try:
        issuer = registry.get_settings().issuer
        party = registry.get(address) if address is not None else None
    except Exception as exc:
        raise config.error("registry", "url", _explain(exc, f"{shown} does not answer")) from exc
    if address is not None and party is None:
        raise config.error("sts", "default_applies_to", f"{address} is not a relying party registered in {shown}; "
                                                        f"register it (wstrust-wsgi rp add {address}) or correct it")
    if issuer in config.delegation.trusted_issuers:
        raise config.error("delegation", "trusted_issuers", f"{issuer!r} is this STS's own issuer name (in {shown}), "
                                                            "whose tokens are checked against its own keys; remove it")
    said = [f"requests without AppliesTo get tokens for {address}" if address is not None
            else "requests without AppliesTo are refused"]
    for name, certificates in config.delegation.certificates.items():
        until = min(c.not_valid_after_utc for c in certificates)
        said.append(f"OnBehalfOf/ActAs SAML tokens of {name!r} trusted ({len(certificates)} certificate(s) from "
                    f"{config.delegation.trusted_issuers[name]}, valid until {until:%Y-%m-%d})")
    return "; ".join(said)


def _encryption_certificates(parties: list[RelyingParty]) -> str:
    """Whether every relying party with an encryption certificate can get a token now (the STS's request check).

    :raises BadValue: one cannot: the STS would refuse every token for it.
    """
    now = datetime.now(timezone.utc)
    certificates = []
    for party in parties:
        if party.certificate_pem is not None:
            certificates.append((party.address, encryption_certificate(
                party.certificate_pem, f"relying party {party.address}", now=now)))
    if not certificates:
        return "no relying party has an encryption certificate: every token is sent signed, in clear"
    address, first = min(certificates, key=lambda pair: pair[1].not_valid_after_utc)
    return (f"{len(certificates)} relying part{'y gets' if len(certificates) == 1 else 'ies get'} encrypted tokens; "
            f"the first certificate to expire is {address}'s, on {first.not_valid_after_utc:%Y-%m-%d}")


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


def default_nonce_path(config: DeploymentConfig, environ: Mapping[str, str] = os.environ) -> Path:
    """Where digest nonces are recorded when the file names no ``[replay] nonce_cache``.

    Beside a SQLite registry (its directory is this host's and already
    writable by the STS); otherwise in the host's state directory: systemd's
    ``$STATE_DIRECTORY`` (``StateDirectory=`` in the unit), else
    ``$XDG_STATE_HOME/wstrust-wsgi``, else ``~/.local/state/wstrust-wsgi``.
    The file is :data:`NONCE_FILE`; start-up logs its path.
    """
    if config.registry.url.partition(":")[0].lower() == "sqlite":
        return Path(sqlite_path(config.registry.url)).parent / NONCE_FILE
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if not state:
        state = os.path.join(environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "wstrust-wsgi")
    return Path(state) / NONCE_FILE


def _nonce_cache(config: DeploymentConfig) -> tuple[ReplayCache, str]:
    """The digest nonce cache, and how the start-up line names it."""
    if config.replay.nonce_cache is None:
        return _default_nonce_cache(config)
    try:
        cache = replay_cache_from_url(config.replay.nonce_cache)
    except ConfigurationError as exc:
        raise config.error("replay", "nonce_cache", f"{config.replay.display_url} is not usable ({exc})") from exc
    workers = worker_count()
    if isinstance(cache, MemoryReplayCache) and workers is not None and workers > 1:
        log.warning('%s: [replay] nonce_cache = "memory:" with %d gunicorn workers: each worker remembers only '
                    "the nonces it saw, so a PasswordDigest request replayed to another worker gets another "
                    "token; leave nonce_cache out (a SQLite file shared by the workers) or use sqlite:/// or "
                    "redis://", config.source, workers)
    return cache, config.replay.display_url


def _default_nonce_cache(config: DeploymentConfig) -> tuple[ReplayCache, str]:
    path = default_nonce_path(config)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        cache = SQLiteReplayCache(path)
    except (OSError, ConfigurationError) as exc:
        raise config.error("replay", "nonce_cache", f"left out, so digest nonces go to {path}, which is not "
                                                    f"usable ({_cause(exc)}); set nonce_cache") from exc
    if config.registry.url.partition(":")[0].lower() != "sqlite":
        log.warning("%s: [replay] nonce_cache left out: digest nonces are in %s, shared by this host's workers "
                    "only; if other hosts share the registry, set nonce_cache to one Redis (redis://...) so a "
                    "request replayed to another host is refused", config.source, path)
    return cache, f"sqlite://{path} (the default: shared by this host's workers)"


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


def _token_store(config: DeploymentConfig, registry: Registry) -> IssuedTokenStore | None:
    """The issued-token store ``[tokens]`` names, after one read; None when Validate, Renew and Cancel are off."""
    if config.tokens is None:
        return None
    try:
        store = token_store_from_url(config.tokens[1], registry)
        store.get("_wstrust-wsgi-startup-probe", datetime.now(timezone.utc))
    except Exception as exc:  # a URL refused, or a store that does not answer
        raise config.error("tokens", "store", _explain(exc, f"{redact_url(config.tokens[1])} does not answer")) from exc
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


# ---------------------------------------------------------------------- helpers


def _configure_logging(config: DeploymentConfig) -> None:
    """Make the STS's log lines (issued/refused, start-up warnings) appear where gunicorn's do.

    Only the level is set when the root logger has handlers (the operator
    configured logging, e.g. gunicorn ``--log-config``). Otherwise
    :func:`~wstrust_wsgi.configure_logging` writes them to gunicorn's error log
    (so ``--error-logfile`` and log rotation apply), as text with the logger's
    name or, with ``[sts] log_format = "json"``, one JSON object per line.
    """
    if logging.getLogger().handlers:
        logging.getLogger("wstrust_wsgi").setLevel(config.sts.log_level.upper())
        return
    configure_logging(config.sts.log_level, json=config.sts.log_format == "json")


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
