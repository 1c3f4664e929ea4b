"""A user store backed by an LDAP directory (OpenLDAP, 389 DS, Active Directory, ...).

LDAP v3 (`RFC 4511 <https://www.rfc-editor.org/rfc/rfc4511>`_) through
:mod:`ldap3`. A UsernameToken is checked the way every LDAP client checks a
password, by binding as the user (RFC 4513 section 5.1.2, simple bind)::

    1. find the user's DN      search account: search user_search_base for user_filter
                               (or: user_dn_template, no search)
    2. bind as that DN         with the token's password; success is the only proof
    3. read groups, attributes group_filter under group_search_base -> group_to_role;
                               the entry's attributes -> attribute_to_claim
    4. Principal(name, roles, claims)

What is refused, and why (each refusal returns None and logs the reason on
``wstrust_wsgi.ldap``; the STS answers wst:FailedAuthentication):

* **PasswordDigest**: the digest is SHA-1(nonce + created + password); checking
  it needs the plaintext password, which a directory does not give out.
* **An empty password**: an LDAP simple bind with a DN and an empty password is
  an *unauthenticated* bind (RFC 4513 section 5.1.2) that some directories
  (Active Directory by default) answer with success. It is refused before any
  bind is sent.
* A wrong password, an unknown user, a name that matches several entries.

A directory that cannot be reached, does not answer within the timeouts, or
answers something that is not LDAP raises
:class:`~wstrust_wsgi.errors.StoreUnavailable` (a Receiver fault, "The user
directory is unavailable."): the STS never issues a token it could not check.
No call blocks longer than about ``len(urls) * connect_timeout`` per
connection opened plus ``receive_timeout`` per answer awaited; host names are
resolved by the system resolver, outside those bounds (use addresses, or a
local resolver, where that matters).

The user's name is put in filters with :func:`ldap3.utils.conv.escape_filter_chars`
(RFC 4515 section 3) and in DNs with :func:`ldap3.utils.dn.escape_rdn` (RFC 4514
section 2.4), so ``*``, ``(``, ``)``, ``\\``, NUL, ``,`` or ``=`` in a
username never widen a search or change a DN.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:
    import ldap3
    from ldap3.core.exceptions import (
        LDAPException,
        LDAPInvalidDnError,
        LDAPInvalidFilterError,
        LDAPPasswordIsMandatoryError,
        LDAPSASLPrepError,
        LDAPSocketReceiveError,
    )
    from ldap3.operation.search import parse_filter
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn, parse_dn
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("the LDAP user store needs ldap3: pip install 'wstrust-wsgi[ldap]'") from exc

from ..errors import BadValue, ConfigurationError, StoreUnavailable
from ..model import PasswordProof, Principal, check_claim_uri, check_name
from . import ldap_connection as net

log = logging.getLogger("wstrust_wsgi.ldap")

#: What the peer is told when the directory cannot answer; the cause goes to the log only.
_UNAVAILABLE_REASON = "The user directory is unavailable."

# Bind results that mean "these credentials are not accepted" (RFC 4511 appendix A):
# the user is refused. Every other failure is the directory's trouble, and fails closed.
_REFUSED_BIND = {
    19: "constraint violation (a password policy refused the bind)",
    32: "no such entry",
    34: "the name does not make a valid DN",
    48: "inappropriate authentication",
    49: "wrong password or unknown user",
    50: "insufficient access rights",
    53: "the directory is unwilling to perform the bind (account locked or disabled?)",
}
_SUCCESS = 0
_SIZE_LIMIT_EXCEEDED = 4
_NO_SUCH_OBJECT = 32


@dataclass(frozen=True)
class _Entry:
    """A directory entry as read: its DN and its attribute values (names lower-cased)."""

    dn: str
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def values(self, name: str) -> tuple[str, ...]:
        return self.attributes.get(name.lower(), ())


@dataclass(frozen=True)
class _SearchResult:
    code: int
    description: str
    entries: tuple[_Entry, ...]


class LdapUserStore:
    """A :class:`~wstrust_wsgi.stores.UserStore` that checks passwords by binding to a directory.

    All options are keyword-only and checked here (a bad one raises
    :class:`~wstrust_wsgi.errors.ConfigurationError` naming it); nothing is
    sent to the directory until the first :meth:`authenticate`, so the STS
    starts while the directory is down and recovers by itself when it returns.

    :param urls: one ``ldap://host[:port]`` or ``ldaps://host[:port]`` URL, or
        several: each new connection tries them in order (the first is the
        primary, the others fail-overs), each within ``connect_timeout``.
    :param bind_dn: the search account that finds users' DNs and reads their
        groups. None: search anonymously (or, with ``user_dn_template``, read
        as the user just bound).
    :param bind_password: the search account's password; required with
        ``bind_dn`` and never empty (an empty one is an unauthenticated bind).
    :param user_dn_template: build the DN from the name instead of searching,
        e.g. ``"uid={username},ou=people,dc=example,dc=org"``. The name is
        escaped as an RDN value. Exactly one of this and ``user_search_base``.
    :param user_search_base: where to search for users (whole subtree).
    :param user_filter: the user search filter; ``{username}`` is replaced by
        the escaped name. A search matching more than one entry refuses the user.
    :param name_attribute: the attribute whose value becomes the Principal's
        name (the token's NameID), so ``ADMIN`` (matched case-insensitively by
        the directory) is issued as the directory spells it, ``admin``. None,
        or an entry without it: the name as sent.
    :param group_search_base: where to search for the user's groups (whole
        subtree); None: no groups, so no roles.
    :param group_filter: the group search filter; ``{user_dn}`` and
        ``{username}`` are replaced by escaped values, e.g.
        ``"(|(member={user_dn})(memberUid={username}))"``.
    :param group_name_attribute: the group attribute looked up in ``group_to_role``.
    :param group_to_role: group name -> role name, e.g. ``{"sts-admins": "admin"}``
        (names compared case-insensitively, as LDAP compares ``cn``). Groups
        not listed give no role.
    :param attribute_to_claim: attribute -> claim URI, e.g. ``{"mail":
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}``.
        Text attributes only (values that are not UTF-8 are skipped and logged).
    :param connect_timeout: seconds to wait for a TCP (and TLS) connection to one server.
    :param receive_timeout: whole seconds to wait for each answer (ldap3 sets
        the socket's SO_RCVTIMEO from it, which takes whole seconds); also the
        server-side time limit of each search.
    :param start_tls: upgrade ``ldap://`` connections with StartTLS (RFC 4511
        section 4.14) before anything is sent; if the upgrade fails, nothing
        is sent. ``ldaps://`` URLs use TLS from the first byte and do not
        combine with it.
    :param ca_file: PEM file of the CAs trusted for the directory's
        certificate; None: the system's CAs.
    :param validate: check the directory's certificate and host name. Off
        only for a test directory: a warning is logged.
    :param pool_size: idle search-account connections kept open for reuse (0:
        a new connection for every search). A connection is used by one
        thread at a time; when none is idle a new one is opened.
    :param pool_max_idle: seconds an idle connection may wait before it is
        closed rather than reused (directories and firewalls drop idle
        connections, often silently).
    """

    def __init__(
        self,
        *,
        urls: str | Sequence[str],
        bind_dn: str | None = None,
        bind_password: str | None = None,
        user_dn_template: str | None = None,
        user_search_base: str | None = None,
        user_filter: str = "(uid={username})",
        name_attribute: str | None = "uid",
        group_search_base: str | None = None,
        group_filter: str = "(member={user_dn})",
        group_name_attribute: str = "cn",
        group_to_role: Mapping[str, str] | None = None,
        attribute_to_claim: Mapping[str, str] | None = None,
        connect_timeout: float = 3.0,
        receive_timeout: int = 3,
        start_tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        validate: bool = True,
        pool_size: int = 4,
        pool_max_idle: float = 60.0,
    ) -> None:
        self._endpoints = net.endpoints(urls)
        if (bind_dn is None) != (bind_password is None):
            raise ConfigurationError("bind_dn and bind_password: give both (a search account) or neither")
        if bind_dn is not None:
            _check_dn("bind_dn", bind_dn)
            if not bind_password:
                raise ConfigurationError("bind_password must not be empty: a bind with an empty password "
                                         "is an unauthenticated (anonymous) bind")
        if (user_dn_template is None) == (user_search_base is None):
            raise ConfigurationError("give exactly one of user_dn_template (direct bind) and user_search_base (search)")
        if user_dn_template is not None:
            _check_template("user_dn_template", user_dn_template, ("username",))
            _check_dn("user_dn_template", user_dn_template.format(username="probe"))
        else:
            assert user_search_base is not None
            _check_dn("user_search_base", user_search_base)
            _check_template("user_filter", user_filter, ("username",))
            _check_filter("user_filter", user_filter.format(username="probe"))
        group_to_role = dict(group_to_role or {})
        if group_search_base is not None:
            _check_dn("group_search_base", group_search_base)
            _check_template("group_filter", group_filter, ("user_dn", "username"))
            _check_filter("group_filter", group_filter.format(user_dn="cn=probe", username="probe"))
            if not group_to_role:
                raise ConfigurationError("group_search_base is set but group_to_role maps no group to a role")
        elif group_to_role:
            raise ConfigurationError("group_to_role needs group_search_base (where to find the groups)")
        for group, role in group_to_role.items():
            try:
                if not group:
                    raise BadValue("the group must be non-empty")
                check_name(role, "role")
            except BadValue as exc:
                raise BadValue(f"group_to_role: {group!r} -> {role!r}: {exc}") from None
        claims = dict(attribute_to_claim or {})
        for attribute, claim in claims.items():
            try:
                if not _is_attribute_name(attribute):
                    raise BadValue(f"{attribute!r} is not an attribute name")
                check_claim_uri(claim)
            except BadValue as exc:
                raise BadValue(f"attribute_to_claim: {attribute!r} -> {claim!r}: {exc}") from None
        for name, value in (("name_attribute", name_attribute), ("group_name_attribute", group_name_attribute)):
            if value is not None and not _is_attribute_name(value):
                raise ConfigurationError(f"{name}: {value!r} is not an attribute name")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) \
                or not math.isfinite(connect_timeout) or connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout must be a positive number of seconds, not {connect_timeout!r}")
        if isinstance(receive_timeout, bool) or not isinstance(receive_timeout, int) or receive_timeout < 1:
            raise ConfigurationError(f"receive_timeout must be a whole number of seconds >= 1, not {receive_timeout!r}")
        if start_tls and any(e.ssl for e in self._endpoints):
            raise ConfigurationError("start_tls applies to ldap:// URLs; ldaps:// URLs are TLS already")
        if ca_file is not None and not Path(ca_file).is_file():
            raise ConfigurationError(f"ca_file: {str(ca_file)!r} is not a file")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
            raise ConfigurationError(f"pool_size must be a whole number >= 0, not {pool_size!r}")
        if not isinstance(pool_max_idle, (int, float)) or not pool_max_idle > 0:
            raise ConfigurationError(f"pool_max_idle must be a positive number of seconds, not {pool_max_idle!r}")

        self._bind_dn = bind_dn
        self._bind_password = bind_password
        self._template = user_dn_template
        self._user_base = user_search_base
        self._user_filter = user_filter
        self._name_attribute = name_attribute
        self._group_base = group_search_base
        self._group_filter = group_filter
        self._group_attribute = group_name_attribute
        self._group_roles = {group.casefold(): role for group, role in group_to_role.items()}
        self._claims = claims
        self._connect_timeout = float(connect_timeout)
        self._receive_timeout = receive_timeout
        self._start_tls = start_tls
        uses_tls = start_tls or any(e.ssl for e in self._endpoints)
        self._tls = net.ContextTls(net.ssl_context(ca_file, validate)) if uses_tls else None
        self._pool = net.Pool(pool_size, float(pool_max_idle)) if self._has_search_account else None
        # The attributes the user's entry is read for.
        wanted = list(claims) + ([name_attribute] if name_attribute else [])
        self._entry_attributes = sorted(set(wanted), key=str.lower)

        if uses_tls and not validate:
            log.warning("LDAP: certificate validation is OFF for %s: anyone on the path can read passwords",
                        ", ".join(e.url for e in self._endpoints))
        for endpoint in self._endpoints:
            if not endpoint.ssl and not start_tls and not net.is_loopback(endpoint.host):
                log.warning("LDAP: %s is plain ldap:// without start_tls: passwords cross the network in clear",
                            endpoint.url)

    @property
    def _has_search_account(self) -> bool:
        # Searching for users always needs a connection of our own (anonymous when no bind_dn).
        return self._bind_dn is not None or self._template is None

    # ------------------------------------------------------------------ UserStore

    def authenticate(self, token: PasswordProof) -> Principal | None:
        """The principal if the directory accepts a bind as the user with the token's password.

        :returns: None for PasswordDigest, an empty password, an unknown user,
            an ambiguous name or a refused bind (the reason is logged).
        :raises StoreUnavailable: the directory cannot be reached, does not
            answer in time or answers something unexpected.
        """
        username = token.username
        if not username:
            log.info("refused: empty user name")
            return None
        if token.digest:
            log.info("refused %r: PasswordDigest cannot be checked against a directory, which never gives out "
                     "the plaintext password; the client must send PasswordText (over HTTPS)", username)
            return None
        if token.password == "":
            log.info("refused %r: empty password (a bind with an empty password is an unauthenticated bind, "
                     "which some directories accept for any DN)", username)
            return None
        if self._template is not None:
            user_dn = self._template.format(username=escape_rdn(username))
            entry: _Entry | None = None
        else:
            entry = self._find_user(username)
            if entry is None:
                self._equalise_timing()
                return None
            user_dn = entry.dn
        connection = self._user_bind(username, user_dn, token.password)
        if connection is None:
            return None
        try:
            if entry is None and self._entry_attributes:
                entry = self._read_entry(user_dn, connection)
            groups = self._groups(username, user_dn, connection)
        finally:
            net.close(connection)
        return self._principal(username, entry or _Entry(user_dn), groups)

    def close(self) -> None:
        """Close the idle search-account connections (the store stays usable)."""
        if self._pool is not None:
            self._pool.clear()

    # ------------------------------------------------------------------ steps

    def _find_user(self, username: str) -> _Entry | None:
        search_filter = self._user_filter.format(username=escape_filter_chars(username))
        assert self._user_base is not None
        result = self._search_as_account(self._user_base, search_filter, self._entry_attributes, size_limit=2)
        if result.code == _NO_SUCH_OBJECT:
            log.warning("refused %r: user_search_base %s does not exist in the directory", username, self._user_base)
            return None
        if result.code == _SIZE_LIMIT_EXCEEDED or len(result.entries) > 1:
            log.warning("refused %r: %s matches more than one entry under %s", username, search_filter, self._user_base)
            return None
        if result.code != _SUCCESS:
            raise self._unavailable(f"user search answered {result.code} {result.description}")
        if not result.entries:
            log.info("refused %r: no entry matches %s under %s", username, search_filter, self._user_base)
            return None
        return result.entries[0]

    def _user_bind(self, username: str, user_dn: str, password: str) -> ldap3.Connection | None:
        """A connection bound as the user, or None (logged) if the directory refuses the password."""
        connection = self._connect(user_dn, password)
        try:
            accepted = connection.bind(read_server_info=False)
            result = dict(connection.result or {})
        except LDAPException as exc:
            net.close(connection)
            if isinstance(exc, (LDAPPasswordIsMandatoryError, LDAPSASLPrepError)):
                # ldap3 refuses, before sending, passwords RFC 4013 SASLprep prohibits.
                log.info("refused %r: the password is not acceptable to LDAP (%s)", username, exc)
                return None
            raise self._unavailable(f"bind as {user_dn}: {net.describe(exc)}") from exc
        except Exception as exc:
            net.close(connection)
            raise self._unavailable(f"bind as {user_dn}: {net.describe(exc)}") from exc
        if accepted:
            return connection
        net.close(connection)
        code = int(result.get("result", -1))
        if code in _REFUSED_BIND:
            log.info("refused %r: bind as %s: %s (%s %s)", username, user_dn, _REFUSED_BIND[code], code,
                     result.get("message") or result.get("description", ""))
            return None
        raise self._unavailable(f"bind as {user_dn} answered {code} {result.get('description', '')}")

    def _equalise_timing(self) -> None:
        """Bind once as a DN that does not exist, so an unknown user costs what a wrong password costs.

        The password sent is random: the caller's is not sent under a made-up name.
        """
        assert self._user_base is not None
        connection = self._connect(f"cn=no-such-user-{secrets.token_hex(8)},{self._user_base}",
                                   secrets.token_urlsafe(16))
        try:
            connection.bind(read_server_info=False)
        except Exception as exc:
            raise self._unavailable(f"bind for an unknown user: {net.describe(exc)}") from exc
        finally:
            net.close(connection)

    def _read_entry(self, user_dn: str, user_connection: ldap3.Connection) -> _Entry:
        result = self._lookup(user_connection, user_dn, "(objectClass=*)", self._entry_attributes,
                              scope=ldap3.BASE)
        if result.code != _SUCCESS or not result.entries:
            log.warning("could not read %s after binding as it (%s %s): no claims, name as sent",
                        user_dn, result.code, result.description)
            return _Entry(user_dn)
        return result.entries[0]

    def _groups(self, username: str, user_dn: str, user_connection: ldap3.Connection) -> tuple[str, ...]:
        if self._group_base is None:
            return ()
        search_filter = self._group_filter.format(user_dn=escape_filter_chars(user_dn),
                                                  username=escape_filter_chars(username))
        result = self._lookup(user_connection, self._group_base, search_filter, [self._group_attribute])
        if result.code == _SIZE_LIMIT_EXCEEDED:
            log.warning("group search for %s hit the size limit: roles from the groups read only", user_dn)
        elif result.code == _NO_SUCH_OBJECT:
            log.warning("group_search_base %s does not exist in the directory: no roles", self._group_base)
        elif result.code != _SUCCESS:
            raise self._unavailable(f"group search answered {result.code} {result.description}")
        return tuple(name for entry in result.entries for name in entry.values(self._group_attribute))

    def _principal(self, username: str, entry: _Entry, groups: tuple[str, ...]) -> Principal:
        roles = frozenset(self._group_roles[g.casefold()] for g in groups if g.casefold() in self._group_roles)
        claims: dict[str, list[str]] = {}
        for attribute, claim in self._claims.items():
            claims.setdefault(claim, []).extend(entry.values(attribute))
        name = username
        if self._name_attribute:
            spelled = entry.values(self._name_attribute)
            same = [v for v in spelled if v.casefold() == username.casefold()]
            name = same[0] if same else spelled[0] if spelled else username
        log.info("authenticated %r as %s (%s): groups %s -> roles %s",
                 username, name, entry.dn, sorted(groups), sorted(roles))
        return Principal(name, roles, {claim: tuple(values) for claim, values in claims.items() if values})

    # ------------------------------------------------------------------ directory access

    def _lookup(self, user_connection: ldap3.Connection, base: str, search_filter: str,
                attributes: Sequence[str], *, scope: str = ldap3.SUBTREE) -> _SearchResult:
        """Search with the search account if there is one, else as the user just bound."""
        if self._bind_dn is not None:
            return self._search_as_account(base, search_filter, attributes, scope=scope)
        try:
            return self._search(user_connection, base, search_filter, attributes, scope=scope)
        except Exception as exc:
            raise self._unavailable(f"search {search_filter} under {base}: {net.describe(exc)}") from exc

    def _search_as_account(self, base: str, search_filter: str, attributes: Sequence[str], *,
                           scope: str = ldap3.SUBTREE, size_limit: int = 0) -> _SearchResult:
        """Search on a pooled search-account connection.

        A reused connection that fails for any reason but a timeout is retried
        once on a new one: the directory may have closed it while it was idle
        (a restart, an idle timeout). A timeout is not retried, so a silent
        directory costs one ``receive_timeout``, not two.
        """
        assert self._pool is not None
        for attempt in (1, 2):
            connection, reused = self._pool.take(self._open_search_connection)
            try:
                result = self._search(connection, base, search_filter, attributes, scope=scope, size_limit=size_limit)
            except Exception as exc:
                net.close(connection)
                self._pool.clear()  # the others reach the same directory: likely as dead
                if reused and attempt == 1 and not isinstance(exc, LDAPSocketReceiveError):
                    log.info("idle search connection failed (%s): retrying on a new one", net.describe(exc))
                    continue
                raise self._unavailable(f"search {search_filter} under {base}: {net.describe(exc)}") from exc
            self._pool.give_back(connection)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _search(self, connection: ldap3.Connection, base: str, search_filter: str, attributes: Sequence[str], *,
                scope: str = ldap3.SUBTREE, size_limit: int = 0) -> _SearchResult:
        connection.search(
            base, search_filter, search_scope=scope, attributes=list(attributes) or ldap3.NO_ATTRIBUTES,
            size_limit=size_limit, time_limit=self._receive_timeout,
        )
        result = connection.result or {}
        entries = tuple(
            _entry(item["dn"], item.get("raw_attributes") or {})
            for item in (connection.response or []) if item.get("type") == "searchResEntry"
        )
        return _SearchResult(int(result.get("result", -1)), str(result.get("description", "")), entries)

    def _open_search_connection(self) -> ldap3.Connection:
        """A new connection bound as the search account (anonymously when there is none)."""
        connection = self._connect(self._bind_dn, self._bind_password)
        try:
            accepted = connection.bind(read_server_info=False)
        except Exception as exc:
            net.close(connection)
            raise self._unavailable(f"bind as the search account: {net.describe(exc)}") from exc
        if not accepted:
            result = connection.result or {}
            net.close(connection)
            raise self._unavailable(f"the directory refused the search account {self._bind_dn or '(anonymous)'}: "
                                    f"{result.get('result')} {result.get('description', '')}")
        return connection

    def _connect(self, user: str | None, password: str | None) -> ldap3.Connection:
        """An open (and, with start_tls, upgraded) connection, not yet bound, to the first server that accepts one."""
        failures = []
        for endpoint in self._endpoints:
            server = ldap3.Server(endpoint.host, port=endpoint.port, use_ssl=endpoint.ssl, tls=self._tls,
                                  get_info=ldap3.NONE, connect_timeout=self._connect_timeout)
            connection = ldap3.Connection(
                server, user=user, password=password,
                authentication=ldap3.SIMPLE if user is not None else ldap3.ANONYMOUS,
                client_strategy=ldap3.SYNC, auto_bind=ldap3.AUTO_BIND_NONE, read_only=True,
                receive_timeout=self._receive_timeout, raise_exceptions=False,
                auto_referrals=False,  # a referral must not carry the user's password to another server
            )
            try:
                connection.open(read_server_info=False)
                if self._start_tls and not connection.start_tls(read_server_info=False):
                    raise ConnectionError(f"StartTLS refused: {(connection.result or {}).get('description', '')}")
            except Exception as exc:  # ldap3 raises more than LDAPException for a peer that is not LDAP
                net.close(connection)
                failures.append(f"{endpoint.url}: {net.describe(exc)}")
                continue
            return connection
        raise self._unavailable("no server answered: " + "; ".join(failures))

    @staticmethod
    def _unavailable(detail: str) -> StoreUnavailable:
        log.error("user directory unavailable: %s", detail)
        return StoreUnavailable(f"user directory unavailable: {detail}", reason=_UNAVAILABLE_REASON)


# ---------------------------------------------------------------------- helpers


def _check_template(name: str, template: str, fields: tuple[str, ...]) -> None:
    probe = {f: "probe" for f in fields}
    try:
        template.format(**probe)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {template!r} may use only {', '.join('{' + f + '}' for f in fields)} "
                                 f"({type(exc).__name__}: {exc}); double literal braces") from None
    if not any("{" + f + "}" in template for f in fields):
        raise ConfigurationError(f"{name}: {template!r} must contain {' or '.join('{' + f + '}' for f in fields)}")


def _check_filter(name: str, search_filter: str) -> None:
    try:
        parse_filter(search_filter, None, True, False, None, False)
    except LDAPInvalidFilterError as exc:
        raise ConfigurationError(f"{name}: {search_filter!r} is not an LDAP filter (RFC 4515): {exc}") from None


def _check_dn(name: str, dn: str) -> None:
    try:
        parse_dn(dn)
    except LDAPInvalidDnError as exc:
        raise ConfigurationError(f"{name}: {dn!r} is not a DN (RFC 4514): {exc}") from None


def _is_attribute_name(name: str) -> bool:
    """An attribute description: a descriptor (letters, digits, hyphens) or a numeric OID."""
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "-.;") for c in name)


def _entry(dn: str, raw: Mapping[str, Sequence[bytes]]) -> _Entry:
    attributes: dict[str, tuple[str, ...]] = {}
    for name, values in raw.items():
        decoded = []
        for value in values:
            try:
                decoded.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
            except UnicodeDecodeError:
                log.warning("%s: a value of %s is not UTF-8 text: skipped", dn, name)
        attributes[name.lower()] = tuple(decoded)
    return _Entry(dn, attributes)
