"""The administration commands: ``init``, ``user``, ``role`` and ``sts`` over the SQL registry (``rp``: :mod:`.rp`).

WSO2 Identity Server's management-console steps, as commands, on the registry
a running STS reads (changes reach it without a restart). Each command is a
handler that takes the parsed arguments and the registry URL and returns an
:class:`~wstrust_wsgi.cli.output.Result`; it never prints and never picks an
exit code, so that :func:`wstrust_wsgi.cli.main` turns every failure into one
line and one exit code in one place. The values a person types are checked by
the rules in :mod:`wstrust_wsgi.model`, the same rules the registry and the
deployment file apply, before anything is opened or prompted for.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from .._urls import redact_url, sqlite_path
from ..errors import BadValue, ConfigurationError, RegistryError
from ..keys import SigningKey, generate_key_pair
from ..model import (
    SIGNATURE_ALGORITHMS, RelyingParty, check_address, check_claim_uri, check_claim_value,
    check_name, shown,
)
from .lockout import unlock_user
from .output import (
    Result, fingerprint, settings_data, settings_text, table, user_data, user_text,
)

if TYPE_CHECKING:
    from ..stores.sql import Registry, UserInfo

REGISTRY_ENV = "WSTRUST_REGISTRY"
DEFAULT_REGISTRY = "sqlite:///./wstrust.db"
#: Longest token lifetime and clock skew ``sts set`` / ``rp add`` accept (and timedelta can hold).
MAX_LIFETIME = 365 * 24 * 3600
MAX_SKEW = 3600

#: An administration command: the parsed arguments and the registry URL in, what to print out.
Handler = Callable[[argparse.Namespace, str], Result]


# ---------------------------------------------------------------------------- values


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


def registry_url(url: str) -> str:
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
    """The file behind a ``sqlite:///abs/path.db`` URL; None for other databases and for a URL
    that :func:`wstrust_wsgi._urls.sqlite_path` refuses (the registry then refuses it itself,
    naming the rule)."""
    if not url[:7].lower() == "sqlite:":
        return None
    try:
        return Path(sqlite_path(url))
    except BadValue:
        return None


# ---------------------------------------------------------------------------- registry access


@contextmanager
def _registry(url: str, *, create: bool = False) -> Iterator[Registry]:
    """The registry at ``url``, closed afterwards.

    Except for ``init``, a SQLite file that does not exist is refused before
    opening it, since opening would create an empty database and every command
    would then fail with a puzzling "no such table".
    """
    from ..stores.sql import Registry  # not at import time: ``client`` and ``certs`` need no database

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
    folder = _sqlite_path(url)
    folder = folder.parent if folder is not None and not folder.parent.exists() else None
    if folder is not None:  # as `init --keys` makes its folder; 0700: the registry holds password hashes
        folder.mkdir(parents=True, mode=0o700)
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
        "settings": settings_data(settings),
        "signing_key": str(key_path), "certificate": str(cert_path), "keys_created": made_keys,
        "certificate_subject": cert.subject.rfc4514_string(), "certificate_sha256": fingerprint(cert),
        "certificate_not_after": cert.not_valid_after_utc.isoformat(),
    }
    state = "created" if previous is None else "already initialised (schema checked)"
    hint = "" if url == registry_url(DEFAULT_REGISTRY) else f" --registry {redact_url(url)}"
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        warnings.append(f"warning: {key_path} is readable by others (mode {mode:04o}): chmod 600 {key_path}")
    lines = [
        f"Registry   {redact_url(url)}: {state}; issuer {settings.issuer}"
        + (f" (made the folder {folder}, mode 0700)" if folder is not None else ""),
        f"Signing    {key_path} (private key, mode {mode:04o}) and {cert_path}: {'created' if made_keys else 'kept'}",
        f"           {cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}",
        f"           SHA-256 {fingerprint(cert)}",
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
    text = f"Added user {shown(name)!r}.\n" + user_text(user)
    return Result(user_data(user), text, warnings)


def _user_list(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        users = sorted(registry.list_users(), key=lambda u: u.name)
    rows = [(u.name, ", ".join(sorted(u.roles)) or "-", str(sum(len(v) for v in u.claims.values())),
             "yes" if u.digest_secret else "no") for u in users]
    return Result([user_data(u) for u in users],
                  table(("name", "roles", "claims", "digest"), rows, empty="No users (add one with `user add`)."))


def _user_show(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        user = _user(registry, args.name)
    return Result(user_data(user), user_text(user))


def _user_passwd(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        _user(registry, args.name)
        password = _read_password(args, args.name)
        registry.set_password(args.name, password, digest_secret=args.digest_secret)
        user = _user(registry, args.name)
    return Result(user_data(user), f"Changed the password of {shown(user.name)!r}.")


def _user_role(args: argparse.Namespace, url: str) -> Result:
    """``user grant`` and ``user revoke`` (``args.action`` says which): the same checks, mirrored."""
    grant = args.action == "grant"
    with _registry(url) as registry:
        user = _user(registry, args.name)
        _known_roles(registry, [args.role])
        if (args.role in user.roles) == grant:
            raise RegistryError(f"user {shown(user.name)!r} {'already holds' if grant else 'does not hold'} "
                                f"role {shown(args.role)!r}")
        (registry.grant_role if grant else registry.revoke_role)(args.name, args.role)
        user = _user(registry, args.name)
    done = (f"Granted role {shown(args.role)!r} to" if grant else f"Revoked role {shown(args.role)!r} from")
    return Result(user_data(user), f"{done} {shown(user.name)!r} "
                                   f"(roles now: {', '.join(sorted(user.roles)) or 'none'}).")


def _user_claim(args: argparse.Namespace, url: str) -> Result:
    uri = check_claim_uri(args.uri)
    values = [check_claim_value(value, uri) for value in args.values]
    with _registry(url) as registry:
        _user(registry, args.name)
        registry.set_claim(args.name, uri, values)
        user = _user(registry, args.name)
    return Result(user_data(user), f"Set claim {uri} of {shown(user.name)!r} to "
                                    f"{', '.join(repr(shown(v)) for v in values)}.")


def _user_unclaim(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        user = _user(registry, args.name)
        if args.uri not in user.claims:
            raise RegistryError(f"user {shown(user.name)!r} has no claim {shown(args.uri)}")
        registry.unset_claim(args.name, args.uri)
        user = _user(registry, args.name)
    return Result(user_data(user), f"Removed claim {shown(args.uri)} from {shown(user.name)!r}.")


def _user_remove(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        _user(registry, args.name)
        registry.remove_user(args.name)
    return Result({"removed": args.name}, f"Removed user {shown(args.name)!r}.")


def _user_unlock(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        return unlock_user(registry, args.name, args.store)


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
    return Result(data, table(("role", "gets tokens", "users", "members"), rows, empty="No roles."))


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
    return Result(settings_data(settings), settings_text(settings))


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
    text = settings_text(settings) + "\n(a running STS applies this within about a second)"
    return Result(settings_data(settings), text, tuple(warnings))


# ---------------------------------------------------------------------------- the parsers


def admin_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
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
    admin_options(parser)
    parser.set_defaults(handler=handler, where=where)
    return parser


def _password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (one line) instead of prompting twice")


def add_admin_commands(commands: Any) -> Any:
    """Register ``init``, ``user``, ``role`` and ``sts`` on the subcommand group ``commands`` (``rp``: :mod:`.rp`).

    Returns the ``user`` command's subcommand group, where ``user cert`` (:mod:`.usercert`) goes.

    Each command's parser carries its ``handler`` and the words that name it in
    messages (``where``); :func:`wstrust_wsgi.cli.main` runs the handler.
    """
    init = _add_command(commands, "init", _init,
                        "create the registry and the STS signing key pair (RSA-2048, self-signed)", "init")
    init.add_argument("--issuer", required=True, metavar="URL", help="the STS's Issuer, e.g. its endpoint URL")
    init.add_argument("--keys", default="keys", metavar="DIR",
                      help="folder for sts.key and sts.crt (default ./keys; an existing pair is kept)")

    user = commands.add_parser("user", help="manage users (add, list, show, passwd, grant, revoke, claim, "
                                            "unclaim, remove, unlock, cert)")
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
    for action, text in (("grant", "grant a role to a user"), ("revoke", "revoke a role from a user")):
        parser = _add_command(users, action, _user_role, text, f"user {action}")
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
    unlock = _add_command(users, "unlock", _user_unlock, "lift a user's lockout after failed sign-ins", "user unlock")
    unlock.add_argument("name", metavar="NAME")
    unlock.add_argument("--store", metavar="URL", help="where [lockout] counts: redis://host:port/db (default: the "
                                                       "registry)")

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
    return users
