"""The ``wstrust-wsgi`` command (also ``python -m wstrust_wsgi``).

Subcommands:

``client``  the WSO2 sample client's steps: request a token from the STS, print
            it, call the service with it, print the reply.
``certs``   (re)generate the DEMO-ONLY key pairs for the STS, the service and a client.

Administration (WSO2 Identity Server's management-console steps, as commands,
on the SQL registry a running STS reads; changes reach it without a restart):

``init``    create the registry and the STS signing key pair.
``user``    add, list, show, passwd, grant, revoke, claim, unclaim, remove.
``role``    add, list, remove.
``sts``     show, set (issuer, allowed roles, lifetime, clock skew, algorithm, plain HTTP).
``rp``      add, list, show, remove relying parties (service providers).

Every administration command takes ``--registry URL`` (default: ``$WSTRUST_REGISTRY``,
else ``sqlite:///./wstrust.db``) and ``--json`` (machine-readable output on
stdout), either before the command name or after it. Exit codes: 0 done;
1 the registry refused (unknown or duplicate user, role or relying party, or a
database error); 2 a bad value (usage, invalid URL or number, unreadable file,
no registry); 130 interrupted. Passwords are read from a prompt (twice) or,
with ``--password-stdin``, from standard input, never from the command line.

Failures print one plain sentence and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree

from . import _xml, exchange
from ._urls import redact_url
from .client import StsClient, UrllibTransport, call_service
from .errors import BadValue, ConfigurationError, RegistryError, RemoteFault, TransportError
from .keys import SigningKey, generate_demo_key_pair, generate_key_pair, load_certificate
from .model import check_address, check_claim_uri, check_claim_value, check_name, shown
from .stores import SIGNATURE_ALGORITHMS, RelyingParty, StsSettings

if TYPE_CHECKING:
    from .stores.sql import Registry, UserInfo

ECHO_NS = "urn:wstrust-wsgi:demo:echo"
DEMO_STS = "http://127.0.0.1:8080/services/sts"
DEMO_SERVICE = "http://127.0.0.1:8081/services/echo"


def _echo_payload(message: str) -> etree._Element:
    echo = etree.Element(_xml.qname(ECHO_NS, "Echo"), nsmap={"echo": ECHO_NS})
    etree.SubElement(echo, _xml.qname(ECHO_NS, "Message")).text = message
    return echo


def _client(args: argparse.Namespace) -> int:
    password = args.password or os.environ.get("WSTRUST_PASSWORD")
    if password is None:
        password = getpass.getpass(f"Password for {args.username}: ")
    applies_to = args.applies_to or args.service
    transport = exchange.transport_from_args(args, UrllibTransport(cafile=args.cafile), secrets=[password])
    client = StsClient(
        args.sts, username=args.username, password=password, digest=args.digest,
        soap_version=args.soap, trust_version=args.trust, transport=transport,
    )
    try:
        token = client.request_token(applies_to, token_type=args.token_type)
    except RemoteFault as fault:
        print(f"The STS at {args.sts} refused the request: {fault.reason} ({fault.local_code})", file=sys.stderr)
        return 1
    except TransportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"Issued token ({token.token_type}), id {token.assertion_id}, valid until "
          f"{token.expires.isoformat() if token.expires else 'unknown'}:")
    print(exchange.token_text_from_args(args, token.assertion))
    if args.no_call:
        return 0
    payload = _xml.parse(open(args.payload, "rb").read()) if args.payload else _echo_payload(args.message)
    try:
        reply = call_service(args.service, token, payload, soap_version=args.soap, transport=transport)
    except RemoteFault as fault:
        print(f"The service at {args.service} refused the request: {fault.reason} ({fault.local_code})",
              file=sys.stderr)
        return 1
    except TransportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"\nReply from {args.service}:")
    print(etree.tostring(reply, pretty_print=True).decode().rstrip())
    return 0


def _certs(args: argparse.Namespace) -> int:
    for stem, name in (("sts", "wstrust-wsgi demo STS signing"), ("service", "wstrust-wsgi demo service"),
                       ("client", "wstrust-wsgi demo client")):
        generate_demo_key_pair(name, args.dir, stem)
        print(f"wrote {os.path.join(args.dir, stem)}.key and .crt (DEMO ONLY)")
    return 0


# ============================================================================ administration

REGISTRY_ENV = "WSTRUST_REGISTRY"
DEFAULT_REGISTRY = "sqlite:///./wstrust.db"
#: Longest token lifetime and clock skew ``sts set`` / ``rp add`` accept (and timedelta can hold).
MAX_LIFETIME = 365 * 24 * 3600
MAX_SKEW = 3600

EXIT_OK, EXIT_REFUSED, EXIT_BAD_VALUE, EXIT_INTERRUPTED = 0, 1, 2, 130

@dataclass(frozen=True)
class Result:
    """What an administration command produced: ``data`` for ``--json``, ``text`` for a person.

    Kept apart so that every command has both forms and the printing (and its
    failure modes) lives in one place. ``warnings`` go to stderr in both forms.
    """

    data: Any
    text: str
    warnings: tuple[str, ...] = field(default=())


Handler = Callable[[argparse.Namespace, str], Result]


# ---------------------------------------------------------------------------- values


def _one_line(text: object) -> str:
    """Collapse a message to one line: the contract is one sentence on stderr."""
    return " ".join(str(text).split())


def _claims(pairs: Sequence[str] | None) -> dict[str, list[str]]:
    """``URI=VALUE`` pairs (split at the first ``=``); a URI given twice gets both values, in order."""
    claims: dict[str, list[str]] = {}
    for pair in pairs or ():
        uri, sep, value = pair.partition("=")
        if not sep:
            raise BadValue(f"--claim {shown(pair)!r}: write it as URI=VALUE")
        claims.setdefault(check_claim_uri(uri), []).append(check_claim_value(value, uri))
    return claims


def _seconds(value: str, what: str, *, minimum: int, maximum: int) -> timedelta:
    """Whole seconds within bounds; the bounds keep tokens short-lived and timedelta from overflowing."""
    try:
        number = int(value, 10)
    except ValueError:
        raise BadValue(f"{what} {value!r}: must be a whole number of seconds") from None
    if not minimum <= number <= maximum:
        raise BadValue(f"{what} {number}: must be between {minimum} and {maximum} seconds")
    return timedelta(seconds=number)


def _as_seconds(span: timedelta) -> int | float:
    seconds = span.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def _duration(span: timedelta) -> str:
    """``300 s (5 min)``: seconds, as the options take them, and a size a person can judge."""
    seconds = _as_seconds(span)
    text = f"{seconds} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{text} ({int(seconds // size)} {unit})"
    return text


def _registry_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute against the current folder.

    The registry reads ``sqlite:///abs/path.db`` as the absolute path
    ``/abs/path.db``; the CLI also accepts ``sqlite:///./file.db`` and
    ``sqlite:///../file.db`` (its default is ``sqlite:///./wstrust.db``), which
    the registry would take as ``/file.db`` at the file-system root, and hands
    the registry the absolute form. Every other URL passes unchanged.
    """
    prefix = "sqlite:///"
    if url[:len(prefix)].lower() == prefix and url[len(prefix):].startswith(("./", "../")):
        return "sqlite://" + quote(os.path.abspath(unquote(url[len(prefix):])))
    return url


def _sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///abs/path.db`` URL (None for other databases)."""
    if not url.lower().startswith("sqlite:///"):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    path = unquote(parts.path)
    if parts.query or not path.startswith("/") or ":memory:" in path:
        return None  # the registry refuses these itself, with the rule
    return Path(path)


def _database_errors() -> tuple[type[BaseException], ...]:
    """The DB-API error bases of the drivers in use (psycopg only if something imported it).

    Evaluated when an exception is matched, so the CLI never imports psycopg itself.
    """
    errors: list[type[BaseException]] = [sqlite3.Error]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(getattr(psycopg, "Error", None), type):
        errors.append(psycopg.Error)
    return tuple(errors)


# ---------------------------------------------------------------------------- output


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str) -> str:
    """Left-aligned columns two spaces apart, headers in capitals (as ``ps`` or ``kubectl get``)."""
    cells = [[shown(cell) for cell in row] for row in rows]
    if not cells:
        return empty
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = [[h.upper() for h in headers], *cells]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def _fields(pairs: Sequence[tuple[str, str | Sequence[str]]]) -> str:
    """Label/value lines with the values aligned; a list value continues on following lines."""
    width = max(len(label) for label, _ in pairs)
    lines = []
    for label, value in pairs:
        values = [value] if isinstance(value, str) else list(value) or ["-"]
        for index, item in enumerate(values):
            lines.append(f"{label if index == 0 else '':<{width}}  {shown(item)}".rstrip())
    return "\n".join(lines)


def _user_data(user: UserInfo) -> dict[str, Any]:
    return {"name": user.name, "roles": sorted(user.roles),
            "claims": {uri: list(values) for uri, values in sorted(user.claims.items())},
            "digest_secret": user.digest_secret}


def _user_text(user: UserInfo) -> str:
    claims = [f"{uri} = {value}" for uri, values in sorted(user.claims.items()) for value in values]
    return _fields([
        ("name", user.name),
        ("roles", ", ".join(sorted(user.roles)) or "-"),
        ("PasswordDigest", "yes (password kept recoverable)" if user.digest_secret else "no (PasswordText only)"),
        ("claims", claims),
    ])


def _certificate_data(pem: bytes | None) -> dict[str, Any] | None:
    if pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return {"pem": pem.decode("ascii", "replace"), "error": "not a PEM certificate"}
    return {"subject": cert.subject.rfc4514_string(), "sha256": _fingerprint(cert),
            "not_after": cert.not_valid_after_utc.isoformat(), "pem": pem.decode("ascii")}


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _party_data(party: RelyingParty) -> dict[str, Any]:
    return {"address": party.address, "token_type": party.token_type,
            "lifetime": None if party.lifetime is None else _as_seconds(party.lifetime),
            "claims": None if party.claims is None else sorted(party.claims),
            "certificate": _certificate_data(party.certificate_pem)}


def _party_text(party: RelyingParty, settings: StsSettings) -> str:
    cert = _certificate_data(party.certificate_pem)
    return _fields([
        ("address", party.address),
        ("token type", f"SAML {party.token_type}"),
        ("lifetime", _duration(party.lifetime) if party.lifetime is not None
         else f"STS default, {_duration(settings.default_lifetime)}"),
        ("claims released", "all of the user's" if party.claims is None else sorted(party.claims) or ["none"]),
        ("certificate", "-" if cert is None else cert.get("error") or
         [cert["subject"], f"SHA-256 {cert['sha256']}", f"valid until {cert['not_after']}"]),
    ])


def _settings_data(settings: StsSettings) -> dict[str, Any]:
    return {"issuer": settings.issuer, "allowed_roles": sorted(settings.allowed_roles),
            "default_lifetime": _as_seconds(settings.default_lifetime),
            "clock_skew": _as_seconds(settings.clock_skew),
            "signature_algorithm": settings.signature_algorithm,
            "allow_plaintext_http": settings.allow_plaintext_http}


def _settings_text(settings: StsSettings) -> str:
    return _fields([
        ("issuer", settings.issuer),
        ("allowed roles", ", ".join(sorted(settings.allowed_roles)) or "any (every authenticated user)"),
        ("default lifetime", _duration(settings.default_lifetime)),
        ("clock skew", _duration(settings.clock_skew)),
        ("signature algorithm", settings.signature_algorithm),
        ("PasswordText over HTTP", "allowed from anywhere" if settings.allow_plaintext_http
         else "no (HTTPS or loopback only)"),
    ])


# ---------------------------------------------------------------------------- registry access


@contextmanager
def _registry(url: str, *, create: bool = False) -> Iterator[Registry]:
    """The registry at ``url``, closed afterwards.

    Except for ``init``, a SQLite file that does not exist is refused before
    opening it, since opening would create an empty database and every command
    would then fail with a puzzling "no such table".
    """
    from .stores.sql import Registry  # not at import time: ``client`` and ``certs`` need no database

    path = _sqlite_path(url)
    if not create and path is not None and not path.exists():
        raise BadValue(f"no registry at {path}: create it with `wstrust-wsgi init --issuer URL`, "
                       f"or name another with --registry or ${REGISTRY_ENV}")
    registry = Registry.open(url)
    try:
        yield registry
    finally:
        registry.close()


def _user(registry: Registry, name: str) -> UserInfo:
    user = registry.get_user(name)
    if user is None:
        raise RegistryError(f"no user named {shown(name)!r} (see `wstrust-wsgi user list`)")
    return user


def _known_roles(registry: Registry, roles: Iterable[str]) -> None:
    """Refuse unknown roles up front, with the list of known ones, before any change or prompt."""
    known = set(registry.list_roles())
    unknown = [role for role in roles if role not in known]
    if unknown:
        raise RegistryError(f"no role named {shown(unknown[0])!r} (known roles: {', '.join(sorted(known)) or 'none'};"
                            " add one with `wstrust-wsgi role add NAME`)")


def _party(registry: Registry, address: str) -> RelyingParty:
    party = registry.get(address)
    if party is None:
        raise RegistryError(f"no relying party with address {shown(address)!r} (see `wstrust-wsgi rp list`)")
    return party


def _read_password(args: argparse.Namespace, name: str) -> str:
    """The new password: from stdin with ``--password-stdin``, else typed twice at a prompt.

    Never a command-line argument (it would sit in the shell history and in
    ``ps`` output). Without a terminal and without ``--password-stdin`` this
    refuses instead of blocking or echoing.
    """
    if args.password_stdin:
        text = sys.stdin.read()
        text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
        if "\n" in text or "\r" in text:
            raise BadValue("the password on standard input must be one line")
        password = text
    else:
        if not sys.stdin.isatty():
            raise BadValue("no terminal to ask for the password on: pipe it in with --password-stdin")
        try:
            password = getpass.getpass(f"New password for {name}: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise BadValue("no password given; nothing changed") from None
        if again != password:
            raise BadValue("the two passwords differ; nothing changed")
    if not password:
        raise BadValue("the password must not be empty")
    return password


# ---------------------------------------------------------------------------- init


def _init(args: argparse.Namespace, url: str) -> Result:
    issuer = check_address(args.issuer, "--issuer")
    keys = Path(args.keys)
    key_path, cert_path = keys / "sts.key", keys / "sts.crt"
    present = [p for p in (key_path, cert_path) if p.exists()]
    if len(present) == 1:
        missing = cert_path if present[0] == key_path else key_path
        raise BadValue(f"{present[0]} exists but {missing} does not: restore it, or move {present[0]} away "
                       "to make a new pair")
    with _registry(url, create=True) as registry:
        try:
            previous: str | None = registry.get_settings().issuer
        except ConfigurationError:  # not initialised yet: the usual case
            previous = None
        registry.init_schema(issuer=issuer)
        settings = registry.get_settings()
    if present:
        signing = SigningKey.from_files(key_path, cert_path)  # a kept pair must still be a usable pair
        made_keys = False
    else:
        host = urlsplit(issuer).hostname or issuer
        generate_key_pair(f"wstrust-wsgi STS {host}"[:64], keys, "sts")
        signing = SigningKey.from_files(key_path, cert_path)
        made_keys = True
    cert = signing.certificate
    warnings: list[str] = []
    if previous is not None and previous != settings.issuer:
        warnings.append(f"warning: the issuer changed from {previous} to {settings.issuer}; relying parties "
                        "that check the issuer must be told")
    data = {
        "registry": redact_url(url), "registry_created": previous is None,
        "previous_issuer": previous,
        "settings": _settings_data(settings),
        "signing_key": str(key_path), "certificate": str(cert_path), "keys_created": made_keys,
        "certificate_subject": cert.subject.rfc4514_string(), "certificate_sha256": _fingerprint(cert),
        "certificate_not_after": cert.not_valid_after_utc.isoformat(),
    }
    state = "created" if previous is None else "already initialised (schema checked)"
    hint = "" if url == _registry_url(DEFAULT_REGISTRY) else f" --registry {redact_url(url)}"
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        warnings.append(f"warning: {key_path} is readable by others (mode {mode:04o}): chmod 600 {key_path}")
    lines = [
        f"Registry   {redact_url(url)}: {state}; issuer {settings.issuer}",
        f"Signing    {key_path} (private key, mode {mode:04o}) and {cert_path}: {'created' if made_keys else 'kept'}",
        f"           {cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}",
        f"           SHA-256 {_fingerprint(cert)}",
        "",
        "Next steps:",
        "  1. add a user who may get tokens:",
        f"       wstrust-wsgi user add NAME --role admin{hint}",
        "  2. register each relying party by the exact address its clients send in wsp:AppliesTo:",
        f"       wstrust-wsgi rp add https://service.example/soap{hint}",
        f"  3. roles allowed to get tokens: {', '.join(sorted(settings.allowed_roles)) or 'any'} "
        "(change with `wstrust-wsgi sts set --allowed-role ROLE`)",
        "  4. serve the STS with gunicorn: see \"Run it for real\" in README.md",
        f"  5. give {cert_path} to every relying party (RelyingPartyMiddleware trusted_certs)",
    ]
    if hint and os.environ.get(REGISTRY_ENV) != url:
        lines.append(f"  (export {REGISTRY_ENV}={redact_url(url)} to leave out --registry)")
    return Result(data, "\n".join(lines), tuple(warnings))


# ---------------------------------------------------------------------------- user


def _user_add(args: argparse.Namespace, url: str) -> Result:
    name = check_name(args.name, "user")
    roles = list(dict.fromkeys(check_name(role, "role") for role in args.role or ()))
    claims = _claims(args.claim)
    with _registry(url) as registry:
        if registry.get_user(name) is not None:
            raise RegistryError(f"user {shown(name)!r} already exists (change it with `user passwd`, "
                                "`user grant`, `user claim`)")
        _known_roles(registry, roles)
        password = _read_password(args, name)
        registry.add_user(name, password, roles=roles, claims=claims, digest_secret=args.digest_secret)
        user = _user(registry, name)
    warnings: tuple[str, ...] = ()
    if args.digest_secret:
        warnings = ("warning: the password is stored recoverable so that PasswordDigest works; "
                    "prefer PasswordText over HTTPS",)
    text = f"Added user {shown(name)!r}.\n" + _user_text(user)
    return Result(_user_data(user), text, warnings)


def _user_list(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        users = sorted(registry.list_users(), key=lambda u: u.name)
    rows = [(u.name, ", ".join(sorted(u.roles)) or "-", str(sum(len(v) for v in u.claims.values())),
             "yes" if u.digest_secret else "no") for u in users]
    return Result([_user_data(u) for u in users],
                  _table(("name", "roles", "claims", "digest"), rows, empty="No users (add one with `user add`)."))


def _user_show(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        user = _user(registry, args.name)
    return Result(_user_data(user), _user_text(user))


def _user_passwd(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        _user(registry, args.name)
        password = _read_password(args, args.name)
        registry.set_password(args.name, password, digest_secret=args.digest_secret)
        user = _user(registry, args.name)
    return Result(_user_data(user), f"Changed the password of {shown(user.name)!r}.")


def _user_grant(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        user = _user(registry, args.name)
        _known_roles(registry, [args.role])
        if args.role in user.roles:
            raise RegistryError(f"user {shown(user.name)!r} already holds role {shown(args.role)!r}")
        registry.grant_role(args.name, args.role)
        user = _user(registry, args.name)
    return Result(_user_data(user), f"Granted role {shown(args.role)!r} to {shown(user.name)!r} "
                                    f"(roles now: {', '.join(sorted(user.roles))}).")


def _user_revoke(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        user = _user(registry, args.name)
        _known_roles(registry, [args.role])
        if args.role not in user.roles:
            raise RegistryError(f"user {shown(user.name)!r} does not hold role {shown(args.role)!r}")
        registry.revoke_role(args.name, args.role)
        user = _user(registry, args.name)
    return Result(_user_data(user), f"Revoked role {shown(args.role)!r} from {shown(user.name)!r} "
                                    f"(roles now: {', '.join(sorted(user.roles)) or 'none'}).")


def _user_claim(args: argparse.Namespace, url: str) -> Result:
    uri = check_claim_uri(args.uri)
    values = [check_claim_value(value, uri) for value in args.values]
    with _registry(url) as registry:
        _user(registry, args.name)
        registry.set_claim(args.name, uri, values)
        user = _user(registry, args.name)
    return Result(_user_data(user), f"Set claim {uri} of {shown(user.name)!r} to "
                                    f"{', '.join(repr(shown(v)) for v in values)}.")


def _user_unclaim(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        user = _user(registry, args.name)
        if args.uri not in user.claims:
            raise RegistryError(f"user {shown(user.name)!r} has no claim {shown(args.uri)}")
        registry.unset_claim(args.name, args.uri)
        user = _user(registry, args.name)
    return Result(_user_data(user), f"Removed claim {shown(args.uri)} from {shown(user.name)!r}.")


def _user_remove(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        _user(registry, args.name)
        registry.remove_user(args.name)
    return Result({"removed": args.name}, f"Removed user {shown(args.name)!r}.")


# ---------------------------------------------------------------------------- role


def _role_add(args: argparse.Namespace, url: str) -> Result:
    name = check_name(args.name, "role")
    with _registry(url) as registry:
        if name in registry.list_roles():
            raise RegistryError(f"role {shown(name)!r} already exists")
        registry.add_role(name)
    return Result({"name": name, "users": [], "allowed": False},
                  f"Added role {shown(name)!r} (let it request tokens with `sts set --allowed-role`).")


def _role_list(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        roles = sorted(registry.list_roles())
        users = registry.list_users()
        allowed = registry.get_settings().allowed_roles
    members = {role: sorted(u.name for u in users if role in u.roles) for role in roles}
    gets_tokens = {role: not allowed or role in allowed for role in roles}
    data = [{"name": role, "users": members[role], "allowed": gets_tokens[role]} for role in roles]
    rows = [(role, "yes" if gets_tokens[role] else "no", str(len(members[role])), ", ".join(members[role]) or "-")
            for role in roles]
    return Result(data, _table(("role", "gets tokens", "users", "members"), rows, empty="No roles."))


def _role_remove(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        if args.name not in registry.list_roles():
            raise RegistryError(f"no role named {shown(args.name)!r} (see `wstrust-wsgi role list`)")
        if args.name in registry.get_settings().allowed_roles:
            raise RegistryError(f"role {shown(args.name)!r} is allowed to request tokens: change "
                                "`sts set --allowed-role` first")
        holders = [u.name for u in registry.list_users() if args.name in u.roles]
        registry.remove_role(args.name)
    text = f"Removed role {shown(args.name)!r}" + (f" (held by {len(holders)} user(s))." if holders else ".")
    return Result({"removed": args.name, "held_by": holders}, text)


# ---------------------------------------------------------------------------- sts


def _sts_show(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        settings = registry.get_settings()
    return Result(_settings_data(settings), _settings_text(settings))


def _sts_set(args: argparse.Namespace, url: str) -> Result:
    changes: dict[str, Any] = {}
    warnings: list[str] = []
    if args.issuer is not None:
        changes["issuer"] = check_address(args.issuer, "--issuer")
    if args.allowed_role:
        changes["allowed_roles"] = list(dict.fromkeys(check_name(role, "role") for role in args.allowed_role))
    if args.allow_any_role:
        changes["allowed_roles"] = []
        warnings.append("warning: every user with a good password now gets tokens, whatever their roles")
    if args.lifetime is not None:
        changes["default_lifetime"] = _seconds(args.lifetime, "--lifetime", minimum=1, maximum=MAX_LIFETIME)
    if args.skew is not None:
        changes["clock_skew"] = _seconds(args.skew, "--skew", minimum=0, maximum=MAX_SKEW)
    if args.signature_algorithm is not None:
        changes["signature_algorithm"] = args.signature_algorithm
        if args.signature_algorithm == "rsa-sha1":
            warnings.append("warning: rsa-sha1 signatures can be forged; use it only for peers that need it")
    if args.allow_plaintext_http is not None:
        changes["allow_plaintext_http"] = args.allow_plaintext_http == "yes"
        if changes["allow_plaintext_http"]:
            warnings.append("warning: passwords may now cross the network in clear over plain HTTP")
    if not changes:
        raise BadValue("nothing to change: give at least one option (see `wstrust-wsgi sts set --help`)")
    with _registry(url) as registry:
        _known_roles(registry, changes.get("allowed_roles", ()))
        settings = registry.update_settings(**changes)
    text = _settings_text(settings) + "\n(a running STS applies this within about a second)"
    return Result(_settings_data(settings), text, tuple(warnings))


# ---------------------------------------------------------------------------- rp


def _rp_add(args: argparse.Namespace, url: str) -> Result:
    address = check_address(args.address, "relying-party address")
    lifetime = (None if args.lifetime is None
                else _seconds(args.lifetime, "--lifetime", minimum=1, maximum=MAX_LIFETIME))
    claims = None if args.claim is None else frozenset(check_claim_uri(c) for c in args.claim)
    pem = None
    if args.cert is not None:
        pem = load_certificate(args.cert).public_bytes(serialization.Encoding.PEM)
    party = RelyingParty(address, token_type=args.token_type, lifetime=lifetime, claims=claims, certificate_pem=pem)
    with _registry(url) as registry:
        if registry.get(address) is not None:
            raise RegistryError(f"relying party {address!r} already exists (remove it first to change it)")
        registry.add_relying_party(party)
        stored = _party(registry, address)
        settings = registry.get_settings()
    text = (f"Added relying party {address} (clients must name exactly this address in wsp:AppliesTo).\n"
            + _party_text(stored, settings))
    return Result(_party_data(stored), text)


def _rp_list(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        parties = sorted(registry.list_relying_parties(), key=lambda p: p.address)
        settings = registry.get_settings()
    rows = [(p.address, f"SAML {p.token_type}",
             _duration(p.lifetime) if p.lifetime is not None else f"default ({_as_seconds(settings.default_lifetime)} s)",
             "all" if p.claims is None else str(len(p.claims)), "yes" if p.certificate_pem else "-")
            for p in parties]
    return Result([_party_data(p) for p in parties],
                  _table(("address", "token", "lifetime", "claims", "cert"), rows,
                         empty="No relying parties (add one with `rp add ADDRESS`)."))


def _rp_show(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        party = _party(registry, args.address)
        settings = registry.get_settings()
    return Result(_party_data(party), _party_text(party, settings))


def _rp_remove(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        _party(registry, args.address)
        registry.remove_relying_party(args.address)
    return Result({"removed": args.address}, f"Removed relying party {shown(args.address)}.")


# ---------------------------------------------------------------------------- running a command


def _run_admin(args: argparse.Namespace) -> int:
    """Run one administration command: every failure is one line on stderr and an exit code."""
    where = f"wstrust-wsgi {args.where}"
    for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding cannot show is escaped, not fatal
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    url = args.registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY
    handler: Handler = args.handler
    try:
        url = _registry_url(url)
        result = handler(args, url)
    except BadValue as exc:
        return _fail(where, exc, EXIT_BAD_VALUE)
    except RegistryError as exc:
        return _fail(where, exc, EXIT_REFUSED)
    except ConfigurationError as exc:
        return _fail(where, exc, EXIT_BAD_VALUE)
    except OSError as exc:
        detail = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc
        return _fail(where, detail, EXIT_BAD_VALUE)
    except _database_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(where, f"database error at {redact_url(url)}: {first}", EXIT_REFUSED)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the contract is "never a traceback"; the type name still helps a bug report
        return _fail(where, f"unexpected {type(exc).__name__}: {exc}", EXIT_REFUSED)
    for warning in result.warnings:
        print(_one_line(warning), file=sys.stderr)
    try:
        if args.json:
            print(json.dumps(result.data, indent=2, ensure_ascii=False))
        else:
            print(result.text)
        sys.stdout.flush()
    except BrokenPipeError:  # `wstrust-wsgi user list | head -1`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _fail(where: str, message: object, code: int) -> int:
    print(f"{where}: {_one_line(message)}", file=sys.stderr)
    return code


def _admin_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--registry`` and ``--json``, accepted before the command name and after it.

    On the subcommands the defaults are SUPPRESS so that an option given only
    before the command name is not reset by the subparser.
    """
    default_registry: Any = None if top else argparse.SUPPRESS
    default_json: Any = False if top else argparse.SUPPRESS
    parser.add_argument("--registry", metavar="URL", default=default_registry,
                        help=f"registry database: sqlite:///abs/path.db (sqlite:///./file.db: relative to the "
                             f"current folder) or postgresql://user@host/db (default ${REGISTRY_ENV}, "
                             f"else {DEFAULT_REGISTRY})")
    parser.add_argument("--json", action="store_true", default=default_json,
                        help="print JSON for scripts instead of tables")


def _add_command(group: Any, name: str, handler: Handler, help_text: str, where: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
    _admin_options(parser)
    parser.set_defaults(run=_run_admin, handler=handler, where=where)
    return parser


def _password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (one line) instead of prompting twice")


def _add_admin_commands(commands: Any) -> None:
    init = _add_command(commands, "init", _init,
                        "create the registry and the STS signing key pair (RSA-2048, self-signed)", "init")
    init.add_argument("--issuer", required=True, metavar="URL", help="the STS's Issuer, e.g. its endpoint URL")
    init.add_argument("--keys", default="keys", metavar="DIR",
                      help="folder for sts.key and sts.crt (default ./keys; an existing pair is kept)")

    user = commands.add_parser("user", help="manage users (add, list, show, passwd, grant, revoke, claim, "
                                            "unclaim, remove)")
    users = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _add_command(users, "add", _user_add, "add a user (password from a prompt or --password-stdin)", "user add")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", action="append", metavar="ROLE", help="a role to grant (repeatable)")
    add.add_argument("--claim", action="append", metavar="URI=VALUE",
                     help="a claim value (repeatable; a URI given twice gets both values)")
    add.add_argument("--digest-secret", action="store_true",
                     help="also keep the password recoverable, so the user can send PasswordDigest")
    _password_options(add)
    _add_command(users, "list", _user_list, "list users", "user list")
    show = _add_command(users, "show", _user_show, "show one user", "user show")
    show.add_argument("name", metavar="NAME")
    passwd = _add_command(users, "passwd", _user_passwd, "set a user's password", "user passwd")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--digest-secret", action=argparse.BooleanOptionalAction, default=None,
                        help="keep (or stop keeping) the password recoverable for PasswordDigest "
                             "(default: as before)")
    _password_options(passwd)
    for action, handler, text in (("grant", _user_grant, "grant a role to a user"),
                                  ("revoke", _user_revoke, "revoke a role from a user")):
        parser = _add_command(users, action, handler, text, f"user {action}")
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("role", metavar="ROLE")
    claim = _add_command(users, "claim", _user_claim, "set a claim's values for a user (replacing them)",
                         "user claim")
    claim.add_argument("name", metavar="NAME")
    claim.add_argument("uri", metavar="URI")
    claim.add_argument("values", nargs="+", metavar="VALUE")
    unclaim = _add_command(users, "unclaim", _user_unclaim, "remove a claim from a user", "user unclaim")
    unclaim.add_argument("name", metavar="NAME")
    unclaim.add_argument("uri", metavar="URI")
    remove = _add_command(users, "remove", _user_remove, "remove a user", "user remove")
    remove.add_argument("name", metavar="NAME")

    role = commands.add_parser("role", help="manage roles (add, list, remove)")
    roles = role.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_command(roles, "add", _role_add, "add a role", "role add").add_argument("name", metavar="NAME")
    _add_command(roles, "list", _role_list, "list roles, whether they get tokens, and their users", "role list")
    _add_command(roles, "remove", _role_remove, "remove a role", "role remove").add_argument("name", metavar="NAME")

    sts = commands.add_parser("sts", help="show or change the STS settings (show, set)")
    sts_actions = sts.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_command(sts_actions, "show", _sts_show, "show the STS settings", "sts show")
    set_ = _add_command(sts_actions, "set", _sts_set,
                        "change STS settings; a running STS applies them within about a second", "sts set")
    set_.add_argument("--issuer", metavar="URL", help="the Issuer of every assertion")
    who = set_.add_mutually_exclusive_group()
    who.add_argument("--allowed-role", action="append", metavar="ROLE",
                     help="a role allowed to request tokens (repeatable; replaces the list; WSO2's admin checkbox "
                          "is --allowed-role admin)")
    who.add_argument("--allow-any-role", action="store_true",
                     help="let every authenticated user request tokens (empty list; not recommended)")
    set_.add_argument("--lifetime", metavar="SECONDS", help="default token lifetime")
    set_.add_argument("--skew", metavar="SECONDS", help=f"clock skew tolerated (0 to {MAX_SKEW})")
    set_.add_argument("--signature-algorithm", choices=SIGNATURE_ALGORITHMS, metavar="ALG",
                      help=f"one of {', '.join(SIGNATURE_ALGORITHMS)}")
    set_.add_argument("--allow-plaintext-http", choices=("yes", "no"),
                      help="accept PasswordText over plain HTTP from non-loopback peers")

    rp = commands.add_parser("rp", help="manage relying parties (add, list, show, remove)")
    rps = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    rp_add = _add_command(rps, "add", _rp_add, "register a relying party by its endpoint address", "rp add")
    rp_add.add_argument("address", metavar="ADDRESS", help="the exact wsp:AppliesTo address (becomes the audience)")
    rp_add.add_argument("--token-type", choices=("2.0", "1.1"), default="2.0",
                        help="SAML version when the request names none (default 2.0)")
    rp_add.add_argument("--lifetime", metavar="SECONDS", help="token lifetime (default: the STS default)")
    rp_add.add_argument("--claim", action="append", metavar="URI",
                        help="release only these claims (repeatable; default: all of the user's)")
    rp_add.add_argument("--cert", metavar="PEMFILE", help="the relying party's certificate (kept for encryption)")
    _add_command(rps, "list", _rp_list, "list relying parties", "rp list")
    _add_command(rps, "show", _rp_show, "show one relying party", "rp show").add_argument("address", metavar="ADDRESS")
    _add_command(rps, "remove", _rp_remove, "remove a relying party", "rp remove").add_argument(
        "address", metavar="ADDRESS")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wstrust-wsgi", description=__doc__.split("\n")[0],
        epilog=f"Administration commands take --registry URL (default ${REGISTRY_ENV}, else {DEFAULT_REGISTRY}) "
               "and --json, before or after the command name. Exit codes: 0 done, 1 refused by the registry "
               "(unknown or duplicate name, database error), 2 bad value, 130 interrupted.",
    )
    _admin_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)

    client = commands.add_parser("client", help="request a token, print it, call the service with it")
    client.add_argument("--sts", default=DEMO_STS, help=f"STS endpoint (default {DEMO_STS})")
    client.add_argument("--service", default=DEMO_SERVICE, help=f"service to call (default {DEMO_SERVICE})")
    client.add_argument("--applies-to", help="wsp:AppliesTo address (default: the service URL)")
    client.add_argument("--username", default="admin")
    client.add_argument("--password", help="password (else $WSTRUST_PASSWORD, else a prompt)")
    client.add_argument("--digest", action="store_true", help="send PasswordDigest instead of PasswordText")
    client.add_argument("--soap", choices=["1.1", "1.2"], default="1.2")
    client.add_argument("--trust", choices=["1.3", "2005"], default="1.3")
    client.add_argument("--token-type", choices=["2.0", "1.1"], help="SAML version (default: the STS decides)")
    client.add_argument("--message", default="Hello from wstrust-wsgi", help="text for the demo echo service")
    client.add_argument("--payload", help="file holding the SOAP Body child to send instead of the echo")
    client.add_argument("--no-call", action="store_true", help="only request and print the token")
    client.add_argument("--cafile", help="PEM certificate(s) to trust for HTTPS instead of the system store")
    exchange.add_arguments(client)
    client.set_defaults(run=_client)

    certs = commands.add_parser("certs", help="regenerate the DEMO-ONLY key pairs")
    certs.add_argument("--dir", default="certs", help="output folder (default ./certs)")
    certs.set_defaults(run=_certs)

    _add_admin_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("client", "certs") and (args.json or args.registry is not None):
        parser.error(f"--json and --registry apply to the administration commands, not to {args.command}")
    try:
        return int(args.run(args))
    except (ConfigurationError, OSError) as exc:
        print(f"wstrust-wsgi {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
