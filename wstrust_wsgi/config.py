"""The deployment file: one TOML file read into a frozen, checked :class:`DeploymentConfig`.

Production runs ``gunicorn 'wstrust_wsgi.deploy:make_app("/etc/wstrust/sts.toml")'`` (see
:mod:`wstrust_wsgi.deploy`); this module reads and checks that file, so a wrong value stops the server
before it listens instead of surfacing on the first request. ``demo_sts/sts.example.toml`` documents every setting::

    [sts]       path, allow_plaintext_http, log_level, log_format, trusted_proxies, public_url,
                default_applies_to                             (optional)
    [keys]      signing_key, signing_cert                      (required)
    [registry]  url = "sqlite:///..." | "postgresql://..."     (required)
    [users]     source = "registry" | "ldap", password_cache_ttl   (optional; registry, 120 s)
    [ldap]      urls, bind_dn, bind_password(_file), ...       (only with source = "ldap")
    [replay]    nonce_cache = "memory:" | "sqlite:///..." | "redis://..."   (optional; SQLite, see deploy)
    [lockout]   enabled, store, max_failures, window, duration, ...   (optional; on, in the registry)
    [tokens]    enabled, store, renewal_window, validators, administrators   (optional; off: Issue only)
    [delegation] trusted_issuers = { "issuer name" = "cert.pem" }   (optional; the rules are in the registry)

The issuer, allowed roles, lifetimes and relying parties are not here: they live in the
registry, so several STS hosts sharing one registry cannot disagree about them.

Every error is a :class:`~wstrust_wsgi.errors.ConfigurationError` whose message
is one sentence naming the file, the table and the key, then the problem::

    /etc/wstrust/sts.toml: [keys] signing_key: /etc/wstrust/sts.key cannot be read (No such file or directory)

Unknown tables and keys are errors too (with a "did you mean" when one is close), because a misspelt
optional setting would otherwise be silently ignored and its default used. Relative file paths are
taken relative to the TOML file's directory, so the result does not depend on the working directory.

What this module checks, without the network: types and ranges; that files can be read; that the
key is an unencrypted RSA PEM key matching the certificate, which must be valid now, as must each
trusted issuer's certificate; the registry URL's shape, and that a SQLite registry file already
exists (opening a missing one would create an empty registry, so a typo in the path would start an
STS that knows nobody). The
nonce cache URL, the trusted proxies and the LDAP options are checked by their owners when
:mod:`wstrust_wsgi.deploy` builds them, which then asks the registry, the directory and Redis
one question each (and the registry whether ``default_applies_to`` is one of its relying parties).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509

from ._toml import Table, kind, suggest
from ._urls import redact_url, sqlite_path
from .errors import BadValue, ConfigurationError, KeyPairError
from .keys import SigningKey
from .model import check_address, check_claim_uri, check_name, check_public_url
from .sts.lockout import SETTINGS as LOCKOUT_SETTINGS, LockoutPolicy, settings_from_table
from .sts.lifecycle import SETTINGS as TOKEN_SETTINGS, TokenPolicy, settings_from_table as token_settings

__all__ = [
    "DelegationConfig",
    "DeploymentConfig",
    "KeysConfig",
    "LdapConfig",
    "RegistryConfig",
    "ReplayConfig",
    "StsConfig",
    "load_config",
    "redact_url",
]

#: Environment variable naming the file when ``make_app()`` gets no path.
CONFIG_ENV = "WSTRUST_CONFIG"

LOG_LEVELS = ("debug", "info", "warning", "error")
UserSource = Literal["registry", "ldap"]

#: A signing certificate expiring sooner than this is reported as a warning at start-up.
_EXPIRY_WARNING = timedelta(days=30)
#: ``[users] password_cache_ttl`` when not given, and the most it may be (CachedUserStore's bounds).
_PASSWORD_CACHE_TTL = timedelta(minutes=2)
_PASSWORD_CACHE_MAX = timedelta(minutes=15)


# ---------------------------------------------------------------------- the result


@dataclass(frozen=True)
class StsConfig:
    """``[sts]``: how this host serves the STS.

    :param path: the URL path the STS is mounted at; anything else is 404.
    :param allow_plaintext_http: None keeps the registry's setting; true or
        false overrides it for this host only (e.g. true behind a proxy that
        terminates TLS and forwards over a private network).
    :param log_level: level of the ``wstrust_wsgi`` loggers (issued/refused lines at info).
    :param public_url: the STS's address behind a proxy, which ``?wsdl`` advertises (None: the request's URL).
    :param log_format: ``text`` or ``json`` (one object per line, :class:`~wstrust_wsgi.JsonFormatter`).
    :param trusted_proxies: proxies whose X-Forwarded-For the log lines believe (checked by TokenService).
    :param default_applies_to: the relying party an Issue request without ``wsp:AppliesTo`` gets its
        token for (pyVmomi and vCenter's clients never send one); it must be registered, which
        :mod:`.deploy` asks the registry at start-up. None: such a request is refused.
    """

    path: str = "/services/sts"
    allow_plaintext_http: bool | None = None
    log_level: str = "info"
    public_url: str | None = None
    log_format: str = "text"
    trusted_proxies: tuple[str, ...] = ()
    default_applies_to: str | None = None


@dataclass(frozen=True)
class KeysConfig:
    """``[keys]``: the signing key pair, loaded and checked once.

    :param signing_key: path of the unencrypted PEM RSA private key.
    :param signing_cert: path of the PEM certificate of its public half,
        which relying parties trust.
    :param loaded: the pair, ready for :class:`~wstrust_wsgi.TokenService`.
    """

    signing_key: Path
    signing_cert: Path
    loaded: SigningKey = field(repr=False, compare=False)


@dataclass(frozen=True)
class RegistryConfig:
    """``[registry]``: where users, roles, relying parties and STS settings live.

    :param url: ``sqlite:///absolute/path.db`` (one host) or
        ``postgresql://user@host:port/db`` (several hosts sharing it).
    """

    url: str = field(repr=False)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"RegistryConfig(url={self.display_url!r})"


@dataclass(frozen=True)
class LdapConfig:
    """``[ldap]``: users, their groups (as roles) and attributes (as claims) from a directory.

    The keys are :class:`~wstrust_wsgi.stores.ldap.LdapUserStore`'s keyword
    arguments, documented there, so its messages name them; it checks DNs,
    filters and their combinations when :mod:`wstrust_wsgi.deploy` builds it.
    None (not in the file) leaves the store's default. ``bind_password`` comes
    from ``bind_password`` or ``bind_password_file``. The roles of
    ``group_to_role`` and the claim URIs of ``attribute_to_claim`` are checked
    here already, by the rules of :mod:`wstrust_wsgi.model` that the registry
    and the command line apply too.
    """

    urls: tuple[str, ...]
    bind_dn: str | None = None
    bind_password: str | None = field(default=None, repr=False)
    user_dn_template: str | None = None
    user_search_base: str | None = None
    user_filter: str | None = None
    name_attribute: str | None = None
    group_search_base: str | None = None
    group_filter: str | None = None
    group_name_attribute: str | None = None
    group_to_role: Mapping[str, str] | None = None
    attribute_to_claim: Mapping[str, str] | None = None
    connect_timeout: float | None = None
    receive_timeout: int | None = None
    start_tls: bool | None = None
    ca_file: Path | None = None
    validate: bool | None = None
    pool_size: int | None = None
    pool_max_idle: float | None = None


@dataclass(frozen=True)
class ReplayConfig:
    """``[replay]``: where PasswordDigest nonces are recorded.

    :param nonce_cache: ``memory:`` (this worker only), ``sqlite:///abs/path.db`` (the workers of
        one host), ``redis://host:port/db`` (every host); None: SQLite, placed by :mod:`.deploy`.
    """

    nonce_cache: str | None = field(default=None, repr=False)

    @property
    def display_url(self) -> str:
        return "the default SQLite file" if self.nonce_cache is None else redact_url(self.nonce_cache)

    def __repr__(self) -> str:
        return f"ReplayConfig(nonce_cache={self.display_url!r})"


@dataclass(frozen=True)
class DelegationConfig:
    """``[delegation]``: other STSs whose SAML tokens are accepted in OnBehalfOf and ActAs.

    Who may delegate for whom is not here but in the registry's rules
    (``wstrust-wsgi delegation add``), shared by every host; which issuers are
    trusted is a file per host, as the signing key is.

    :param trusted_issuers: issuer name (compared exactly with the token's
        Issuer) -> the PEM file of its signing certificate(s), several in one
        file for a key rollover.
    :param certificates: the same names -> the certificates, loaded and valid
        at start-up, ready for :class:`~wstrust_wsgi.sts.delegation.DelegationPolicy`.
    """

    trusted_issuers: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    certificates: Mapping[str, tuple[x509.Certificate, ...]] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False)


@dataclass(frozen=True)
class DeploymentConfig:
    """Everything one STS host needs, checked.

    :param source: the file it was read from, as given; every message names it.
    :param users: where users authenticate: the registry or LDAP.
    :param password_cache_ttl: how long a successful PasswordText check
        against the registry is remembered, so that the same user and password
        skip the scrypt KDF (:class:`~wstrust_wsgi.stores.cache.CachedUserStore`);
        zero turns the cache off. Not used with LDAP, which cannot show the
        stored password hash a cache entry must be tied to (load_config
        makes it zero there).
    :param ldap: the ``[ldap]`` table when ``users`` is ``"ldap"``.
    :param lockout: brute-force protection, or None; ``lockout_store``: ``registry``, ``redis://...``, ``memory:``.
    :param tokens: Validate, Renew and Cancel (:mod:`wstrust_wsgi.sts.lifecycle`): (policy, store URL), or None.
    :param delegation: the trusted issuers of OnBehalfOf and ActAs SAML tokens (none by default).
    :param warnings: things worth a log line at start-up that do not stop it
        (a key file others can read, a certificate about to expire).
    """

    source: str
    sts: StsConfig
    keys: KeysConfig
    registry: RegistryConfig
    users: UserSource = "registry"
    password_cache_ttl: timedelta = _PASSWORD_CACHE_TTL
    ldap: LdapConfig | None = None
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    lockout: LockoutPolicy | None = LockoutPolicy()
    lockout_store: str = field(default="registry", repr=False)
    tokens: tuple[TokenPolicy, str] | None = field(default=None, repr=False)
    delegation: DelegationConfig = field(default_factory=DelegationConfig)
    warnings: tuple[str, ...] = ()

    def error(self, table: str, key: str, problem: str) -> ConfigurationError:
        """An error in this file's format, for problems found after loading (a store that does not answer)."""
        return ConfigurationError(f"{self.source}: [{table}] {key}: {problem}")


# ---------------------------------------------------------------------- reading


_TABLES: dict[str, tuple[str, ...]] = {
    "sts": ("path", "allow_plaintext_http", "log_level", "log_format", "trusted_proxies", "public_url",
            "default_applies_to"),
    "keys": ("signing_key", "signing_cert"),
    "registry": ("url",),
    "users": ("source", "password_cache_ttl"),
    "ldap": ("urls", "bind_dn", "bind_password", "bind_password_file", "user_dn_template", "user_search_base",
             "user_filter", "name_attribute", "group_search_base", "group_filter", "group_name_attribute",
             "group_to_role", "attribute_to_claim", "connect_timeout", "receive_timeout", "start_tls", "ca_file",
             "validate", "pool_size", "pool_max_idle"),
    "replay": ("nonce_cache",),
    "lockout": LOCKOUT_SETTINGS,
    "tokens": TOKEN_SETTINGS,
    "delegation": ("trusted_issuers",),
}


def load_config(path: str | os.PathLike[str], *, now: datetime | None = None) -> DeploymentConfig:
    """Read and check the TOML file at ``path``.

    :param now: the time the signing certificate must be valid at (default: now).
    :raises ConfigurationError: the first problem found, as one sentence naming
        the file, table and key.
    """
    source = os.fspath(path)
    try:
        data = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{source}: the configuration file cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{source}: the configuration file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{source}: not valid TOML ({exc})") from None
    base = Path(source).resolve().parent
    moment = now if now is not None else datetime.now(timezone.utc)
    warnings: list[str] = []

    for name, value in data.items():
        if name not in _TABLES:
            raise ConfigurationError(f"{source}: [{name}] is not a known table{suggest(name, _TABLES)}; "
                                     f"the tables are {', '.join(f'[{t}]' for t in _TABLES)}")
        if not isinstance(value, dict):
            raise ConfigurationError(f"{source}: {name} must be a table ([{name}]), not {kind(value)}")

    sts = _read_sts(_table(source, data, "sts"))
    keys = _read_keys(_table(source, data, "keys", required=True), base, moment, warnings)
    registry = _read_registry(_table(source, data, "registry", required=True))
    users_table = _table(source, data, "users")
    users: UserSource = "ldap" if users_table.choice("source", ("registry", "ldap"), default="registry") == "ldap" \
        else "registry"
    password_cache_ttl = _read_password_cache_ttl(users_table, users)
    ldap_table = _table(source, data, "ldap", required=users == "ldap")
    if users != "ldap" and ldap_table.present:
        raise ConfigurationError(f'{source}: [ldap] is set but [users] source is "registry"; '
                                 'set source = "ldap" to use it, or remove [ldap]')
    ldap = _read_ldap(ldap_table, base) if users == "ldap" else None
    replay = ReplayConfig(_table(source, data, "replay").text("nonce_cache"))
    lockout, lockout_store = settings_from_table(_table(source, data, "lockout").data, f"{source}: [lockout] ")
    tokens = token_settings(_table(source, data, "tokens").data, f"{source}: [tokens] ")
    delegation = _read_delegation(_table(source, data, "delegation"), base, moment, warnings)
    secrets_inline = [name for name, inline in (
        ("[ldap] bind_password", ldap is not None and ldap_table.text("bind_password") is not None),
        ("[registry] url", redact_url(registry.url) != registry.url),
        ("[replay] nonce_cache", redact_url(replay.nonce_cache or "") != (replay.nonce_cache or "")),
        ("[lockout] store", redact_url(lockout_store) != lockout_store),
        ("[tokens] store", tokens is not None and redact_url(tokens[1]) != tokens[1]),
    ) if inline]
    mode = Path(source).stat().st_mode
    if secrets_inline and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"{source}: holds a password ({', '.join(secrets_inline)}) and can be read by other "
                        f"users (mode {stat.S_IMODE(mode):04o}); chmod 600 it or move the password out")
    return DeploymentConfig(
        source=source, sts=sts, keys=keys, registry=registry, users=users,
        password_cache_ttl=password_cache_ttl, ldap=ldap, replay=replay, lockout=lockout,
        lockout_store=lockout_store, tokens=tokens, delegation=delegation, warnings=tuple(warnings),
    )


def _read_sts(table: Table) -> StsConfig:
    path = table.text("path", default="/services/sts") or "/services/sts"
    if (not path.startswith("/") or not path.strip("/") or any(c in path for c in "?#")
            or any(c.isspace() for c in path)):
        raise table.error("path", f"{path!r} must be a URL path below /, such as /services/sts "
                                  "(no query, no spaces)")
    return StsConfig(
        path=path,
        allow_plaintext_http=table.flag("allow_plaintext_http"),
        log_level=table.choice("log_level", LOG_LEVELS, default="info"),
        public_url=table.text("public_url", check=lambda url: check_public_url(url, "the URL")),
        log_format=table.choice("log_format", ("text", "json"), default="text"),
        trusted_proxies=table.texts("trusted_proxies"),
        default_applies_to=table.text("default_applies_to", check=_relying_party_url),
    )


def _relying_party_url(value: str) -> str:
    """An absolute http(s) URL, by the rule the registry applies to a relying party's address."""
    if not value.lower().startswith(("http://", "https://")):
        raise BadValue(f"{value!r} must be an http(s) URL such as https://svc.example.org/soap, the address of a "
                       "registered relying party")
    return check_address(value, "the address")


def _read_keys(table: Table, base: Path, now: datetime, warnings: list[str]) -> KeysConfig:
    key_path = table.required_path("signing_key", base)
    cert_path = table.required_path("signing_cert", base)
    key_pem = table.read_file("signing_key", key_path)
    cert_pem = table.read_file("signing_cert", cert_path)
    try:
        signing = SigningKey.from_pem(key_pem, cert_pem, key_name=f"signing_key {key_path}",
                                      cert_name=f"signing_cert {cert_path}")
    except KeyPairError as exc:  # its message already names the field and the file
        raise ConfigurationError(f"{table.source}: [keys] {exc}") from None
    _valid_now(table, "signing_cert", cert_path, signing.certificate, now, warnings,
               expired="relying parties would refuse every token")
    mode = key_path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"{table.source}: [keys] signing_key: {key_path} can be read by other users "
                        f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    return KeysConfig(key_path, cert_path, signing)


def _valid_now(table: Table, key: str, path: Path, certificate: x509.Certificate, now: datetime,
               warnings: list[str], *, expired: str) -> None:
    """Refuse a certificate not valid at ``now`` (``expired``: what that would cause); warn 30 days ahead."""
    if certificate.not_valid_after_utc <= now:
        raise table.error(key, f"{path} expired on {certificate.not_valid_after_utc:%Y-%m-%d}; {expired}")
    if certificate.not_valid_before_utc > now:
        raise table.error(key, f"{path} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if certificate.not_valid_after_utc - now < _EXPIRY_WARNING:
        warnings.append(f"{table.source}: [{table.name}] {key}: {path} expires on "
                        f"{certificate.not_valid_after_utc:%Y-%m-%d}; plan the key rollover")


def _read_delegation(table: Table, base: Path, now: datetime, warnings: list[str]) -> DelegationConfig:
    """``trusted_issuers``: issuer name -> PEM file of its certificate(s), each loaded and valid now."""
    key = "trusted_issuers"
    given = table.text_table(key)
    if not given:
        return DelegationConfig()
    paths: dict[str, Path] = {}
    loaded: dict[str, tuple[x509.Certificate, ...]] = {}
    for issuer, file in given.items():
        if not issuer.strip() or issuer != issuer.strip() or not issuer.isprintable():
            raise table.error(key, f"the issuer name {issuer!r} must be the token's Issuer exactly: not empty, "
                                   "no blanks around it, no control characters")
        path = base / Path(file).expanduser()
        try:
            certificates = tuple(x509.load_pem_x509_certificates(table.read_file(key, path)))
        except ValueError as exc:
            raise table.error(key, f"{issuer!r}: {path} is not a PEM certificate ({exc})") from None
        for certificate in certificates:
            _valid_now(table, key, path, certificate, now, warnings,
                       expired=f"OnBehalfOf and ActAs tokens of {issuer!r} would be refused")
        paths[issuer], loaded[issuer] = path, certificates
    return DelegationConfig(MappingProxyType(paths), MappingProxyType(loaded))


def _read_registry(table: Table) -> RegistryConfig:
    url = table.required_text("url")
    shown = redact_url(url)
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        try:
            path = Path(sqlite_path(url))
        except BadValue as exc:
            raise table.error("url", str(exc)) from None
        if not path.parent.is_dir():
            raise table.error("url", f"{shown!r}: the directory {path.parent} does not exist")
        if not path.is_file():
            problem = "is a directory" if path.is_dir() else "does not exist; initialise the registry first"
            raise table.error("url", f"{shown!r}: {path} {problem}")
    elif scheme in ("postgresql", "postgres"):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError as exc:
            raise table.error("url", f"{shown!r} is not a valid PostgreSQL URL ({exc})") from None
        if not parts.path.strip("/"):
            raise table.error("url", f"{shown!r} names no database (postgresql://user@host:port/DATABASE)")
    else:
        raise table.error("url", f"{shown!r} is not sqlite:///absolute/path.db or postgresql://user@host/db")
    return RegistryConfig(url)


def _read_password_cache_ttl(table: Table, users: UserSource) -> timedelta:
    """Seconds from 0 (off) to 15 minutes; only the registry's users can be cached."""
    key = "password_cache_ttl"
    value = table.off_or_seconds(key, most=int(_PASSWORD_CACHE_MAX.total_seconds()))
    if value is None:
        return _PASSWORD_CACHE_TTL if users == "registry" else timedelta(0)
    if users == "ldap" and value > 0:
        raise table.error(key, f'must be 0 or left out with source = "ldap", not {value:g} (only the registry\'s '
                               'users can be cached: a directory cannot show the stored password hash that a '
                               'cached check is tied to)')
    return timedelta(seconds=value)


def _read_ldap(table: Table, base: Path) -> LdapConfig:
    password = table.text("bind_password")
    password_file = table.path("bind_password_file", base)
    if password is not None and password_file is not None:
        raise table.error("bind_password_file", "give bind_password or bind_password_file, not both")
    if password_file is not None:
        password = table.read_file("bind_password_file", password_file).decode("utf-8", "replace").rstrip("\r\n")
        if not password:
            raise table.error("bind_password_file", f"{password_file} is empty")
    ca_file = table.path("ca_file", base)
    if ca_file is not None:
        table.read_file("ca_file", ca_file)
    return LdapConfig(
        urls=table.texts("urls", required=True),
        bind_dn=table.text("bind_dn"),
        bind_password=password,
        user_dn_template=table.text("user_dn_template"),
        user_search_base=table.text("user_search_base"),
        user_filter=table.text("user_filter"),
        name_attribute=table.text("name_attribute"),
        group_search_base=table.text("group_search_base"),
        group_filter=table.text("group_filter"),
        group_name_attribute=table.text("group_name_attribute"),
        group_to_role=table.text_table("group_to_role", check=lambda role: check_name(role, "role")),
        attribute_to_claim=table.text_table("attribute_to_claim", check=check_claim_uri),
        connect_timeout=table.seconds("connect_timeout"),
        receive_timeout=table.whole_seconds("receive_timeout"),
        start_tls=table.flag("start_tls"),
        ca_file=ca_file,
        validate=table.flag("validate"),
        pool_size=table.count("pool_size"),
        pool_max_idle=table.seconds("pool_max_idle"),
    )


_WHY_REQUIRED = {
    "keys": "it names the signing key and certificate (signing_key, signing_cert)",
    "registry": "it names the registry of relying parties and STS settings (url)",
    "ldap": 'it is required when [users] source = "ldap"',
}


def _table(source: str, data: Mapping[str, Any], name: str, *, required: bool = False) -> Table:
    return Table.of(source, data, name, _TABLES[name], required=_WHY_REQUIRED[name] if required else None)
