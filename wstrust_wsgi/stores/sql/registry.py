"""The :class:`Registry`: users, roles, relying parties and STS settings, one transaction per method.

What it stores and why is in :mod:`wstrust_wsgi.stores.sql`; how a
transaction runs, in :mod:`.db`; the schema, in :mod:`.schema`; what it
accepts, in :mod:`.checks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

from ...errors import ConfigurationError, RegistryError
from ...model import SIGNATURE_ALGORITHMS, PasswordProof, Principal, RelyingParty, StsSettings, check_name
from .. import passwords
from . import checks, parties, schema
from .db import Database, Kind, Tx, driver_for

__all__ = ["Registry", "UserInfo"]

log = logging.getLogger("wstrust_wsgi.registry")


@dataclass(frozen=True)
class UserInfo:
    """A user as listed by the registry (never the password or its hash)."""

    name: str
    roles: tuple[str, ...]
    claims: Mapping[str, tuple[str, ...]]
    digest_secret: bool



def _microseconds(value: int) -> timedelta:
    """A duration as stored (whole microseconds) back as a timedelta."""
    return timedelta(microseconds=int(value))


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

    def __init__(self, database: Database) -> None:
        """Use :meth:`open`."""
        self._db = database

    @classmethod
    def open(cls, url: str) -> Registry:
        """Open the registry at ``url``, upgrading an older schema.

        ======================================  ==========================================
        ``sqlite:///abs/path/registry.db``      a SQLite file (created, mode 0600, if missing)
        ``postgresql://user@host:port/db``      a PostgreSQL database (also ``postgres://``);
                                                libpq options as query parameters
        ======================================  ==========================================

        A SQLite URL follows :func:`wstrust_wsgi._urls.sqlite_path`'s rules.
        An empty database is fine (run :meth:`init_schema` next); one at an
        older schema version is upgraded now; one at a newer version is refused.

        :raises ConfigurationError: an unreadable URL, a database that cannot be
            reached or opened, or a schema newer than this code.
        """
        driver = driver_for(url)
        registry = cls(Database(driver))
        try:
            driver.create()
            version = registry._db.run(Kind.READ, schema.schema_version)
            schema.refuse_newer(version, registry._db)
            if 0 < version < schema.latest_version():
                registry._db.run(Kind.MIGRATE, lambda tx: schema.migrate(tx, registry._db))
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
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self._db.describe()}>"

    @property
    def database(self) -> Database:
        """The database, for a store with its own table in it (``stores.lockout.RegistryLockoutStore``)."""
        return self._db

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
            check_name(issuer, "issuer")

        def work(tx: Tx) -> None:
            schema.migrate(tx, self._db)
            if tx.one("SELECT 1 FROM settings WHERE id = 1") is None:
                if issuer is None:
                    raise ConfigurationError(
                        f"issuer: required to initialise the registry {self._db.describe()} "
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

        self._db.run(Kind.MIGRATE, work)

    # ------------------------------------------------------------------ roles

    def add_role(self, name: str) -> None:
        """Create a role. :raises RegistryError: it exists."""
        check_name(name, "role")

        def work(tx: Tx) -> None:
            if tx.execute("INSERT INTO roles (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,)).rowcount == 0:
                raise RegistryError(f"role {name!r} already exists")

        self._db.run(Kind.WRITE, work)

    def remove_role(self, name: str) -> None:
        """Delete a role, revoking it from every user holding it.

        :raises RegistryError: no such role, or it is one of the settings'
            allowed roles (change ``allowed_roles`` first: removing the last
            one would let every authenticated user request tokens).
        """
        checks.reference("role", name)

        def work(tx: Tx) -> None:
            role_id = self._role_ids(tx, [name])[name]
            if tx.one("SELECT 1 FROM allowed_roles WHERE role_id = ?", (role_id,)) is not None:
                raise RegistryError(
                    f"role {name!r} is allowed to request tokens (settings allowed_roles); "
                    "remove it from allowed_roles first"
                )
            tx.execute("DELETE FROM roles WHERE id = ?", (role_id,))

        self._db.run(Kind.WRITE, work)

    def list_roles(self) -> list[str]:
        """Every role, sorted (by code point, the same for both databases)."""
        return sorted(row[0] for row in self._db.run(Kind.READ, lambda tx: tx.all("SELECT name FROM roles")))

    # ------------------------------------------------------------------ users

    def add_user(self, name: str, password: str, *, roles: Sequence[str] = (),
                 claims: Mapping[str, Sequence[str]] | None = None, digest_secret: bool = False) -> None:
        """Create a user with a hashed password, roles and claim values (claim URI -> values).

        :param digest_secret: also keep the plaintext password, so that this
            user can authenticate with PasswordDigest (see the module docstring).
        :raises RegistryError: the user exists, or a role is unknown (all unknown ones named).
        :raises ConfigurationError: an empty name or password, or bad claims.
        """
        check_name(name, "user")
        checks.password(password)
        role_names = checks.names("roles", "role", roles)
        claim_values = checks.claims(claims or {})
        salt, digest = passwords.hash_password(password)
        secret = password if digest_secret else None

        def work(tx: Tx) -> None:
            role_ids = self._role_ids(tx, role_names)
            inserted = tx.execute(
                "INSERT INTO users (name, kdf, salt, password_hash, digest_secret) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, passwords.KDF, salt, digest, secret),
            ).rowcount
            if inserted == 0:
                raise RegistryError(f"user {name!r} already exists")
            user_id = self._user_id(tx, name)
            for role_id in role_ids.values():
                tx.execute("INSERT INTO user_roles (user_id, role_id) VALUES (?, ?)", (user_id, role_id))
            for claim, values in claim_values.items():
                self._write_claim(tx, user_id, claim, values)

        self._db.run(Kind.WRITE, work)

    def set_password(self, name: str, password: str, *, digest_secret: bool | None = None) -> None:
        """Replace a user's password.

        :param digest_secret: True keeps the plaintext for PasswordDigest, False
            erases any kept one, None (default) keeps the user's current choice.
        :raises RegistryError: no such user.
        """
        checks.reference("user", name)
        checks.password(password)
        salt, digest = passwords.hash_password(password)

        def work(tx: Tx) -> None:
            if digest_secret is None:
                statement = ("UPDATE users SET kdf = ?, salt = ?, password_hash = ?, "
                             "digest_secret = CASE WHEN digest_secret IS NULL THEN NULL ELSE ? END WHERE name = ?")
                params: tuple[object, ...] = (passwords.KDF, salt, digest, password, name)
            else:
                statement = "UPDATE users SET kdf = ?, salt = ?, password_hash = ?, digest_secret = ? WHERE name = ?"
                params = (passwords.KDF, salt, digest, password if digest_secret else None, name)
            if tx.execute(statement, params).rowcount == 0:
                raise RegistryError(f"unknown user {name!r}")

        self._db.run(Kind.WRITE, work)

    def remove_user(self, name: str) -> None:
        """Delete a user with their roles and claims. :raises RegistryError: no such user."""
        checks.reference("user", name)

        def work(tx: Tx) -> None:
            if tx.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise RegistryError(f"unknown user {name!r}")

        self._db.run(Kind.WRITE, work)

    def get_user(self, name: str) -> UserInfo | None:
        """The user (roles sorted, claim values in the order set), or None."""
        if not checks.findable(name):
            return None

        def work(tx: Tx) -> UserInfo | None:
            row = tx.one("SELECT id, digest_secret FROM users WHERE name = ?", (name,))
            if row is None:
                return None
            roles, claims = self._roles_and_claims(tx, row[0])
            return UserInfo(name, tuple(sorted(roles)), claims, row[1] is not None)

        return self._db.run(Kind.READ, work)

    def list_users(self) -> list[UserInfo]:
        """Every user, sorted by name (three queries, whatever the number of users)."""

        def work(tx: Tx) -> list[UserInfo]:
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

        return sorted(self._db.run(Kind.READ, work), key=lambda user: user.name)

    def grant_role(self, name: str, role: str) -> None:
        """Give a user a role (nothing changes if they hold it). :raises RegistryError: unknown user or role."""
        checks.reference("user", name)
        checks.reference("role", role)

        def work(tx: Tx) -> None:
            user_id = self._user_id(tx, name)
            role_id = self._role_ids(tx, [role])[role]
            tx.execute("INSERT INTO user_roles (user_id, role_id) VALUES (?, ?) "
                       "ON CONFLICT (user_id, role_id) DO NOTHING", (user_id, role_id))

        self._db.run(Kind.WRITE, work)

    def revoke_role(self, name: str, role: str) -> None:
        """Take a role from a user (nothing changes if they lack it). :raises RegistryError: unknown user or role."""
        checks.reference("user", name)
        checks.reference("role", role)

        def work(tx: Tx) -> None:
            user_id = self._user_id(tx, name)
            role_id = self._role_ids(tx, [role])[role]
            tx.execute("DELETE FROM user_roles WHERE user_id = ? AND role_id = ?", (user_id, role_id))

        self._db.run(Kind.WRITE, work)

    def set_claim(self, name: str, claim: str, claim_values: Sequence[str]) -> None:
        """Set a claim's values for a user, replacing earlier ones. :raises RegistryError: unknown user."""
        checks.reference("user", name)
        checked = checks.claims({claim: claim_values})

        def work(tx: Tx) -> None:
            user_id = self._user_id(tx, name)
            self._write_claim(tx, user_id, claim, checked[claim])

        self._db.run(Kind.WRITE, work)

    def unset_claim(self, name: str, claim: str) -> None:
        """Remove a claim from a user (nothing changes if unset). :raises RegistryError: unknown user."""
        checks.reference("user", name)
        checks.reference("claim", claim)

        def work(tx: Tx) -> None:
            user_id = self._user_id(tx, name)
            tx.execute("DELETE FROM user_claims WHERE user_id = ? AND claim = ?", (user_id, claim))

        self._db.run(Kind.WRITE, work)

    # ------------------------------------------------------------------ relying parties

    def add_relying_party(self, party: RelyingParty) -> None:
        """Register a relying party by its endpoint address.

        :raises RegistryError: the address is registered already.
        :raises ConfigurationError: not an absolute URL or URN, a token type
            other than '2.0' / '1.1', a lifetime <= 0, or an encryption
            certificate that is not a PEM certificate of an RSA key (2048 bits or more).
        """
        checks.party(party)
        self._db.run(Kind.WRITE, lambda tx: parties.insert(tx, party))

    def update_relying_party(self, address: str, /, **changes: Any) -> RelyingParty:
        """Change fields of a registered party in one transaction (``certificate_pem=None`` stops
        encrypting its tokens); the party as now stored.

        :raises RegistryError: no party at that address.
        :raises ConfigurationError: an unknown field, the address, or a value
            :meth:`add_relying_party` would refuse.
        """
        checks.reference("relying party address", address)
        return self._db.run(Kind.WRITE, lambda tx: parties.update(tx, address, changes))

    def remove_relying_party(self, address: str) -> None:
        """Unregister a relying party. :raises RegistryError: no party at that address."""
        checks.reference("relying party address", address)

        def work(tx: Tx) -> None:
            if tx.execute("DELETE FROM relying_parties WHERE address = ?", (address,)).rowcount == 0:
                raise RegistryError(f"unknown relying party {address!r}")

        self._db.run(Kind.WRITE, work)

    def list_relying_parties(self) -> list[RelyingParty]:
        """Every relying party, sorted by address."""
        rows = self._db.run(Kind.READ, lambda tx: tx.all(parties.SELECT))
        return sorted((parties.from_row(row) for row in rows), key=lambda party: party.address)

    def get(self, address: str) -> RelyingParty | None:
        """The relying party registered under exactly ``address`` (one indexed lookup), or None."""
        if not checks.findable(address):
            return None
        row = self._db.run(Kind.READ, lambda tx: tx.one(f"{parties.SELECT} WHERE address = ?", (address,)))
        return None if row is None else parties.from_row(row)

    # ------------------------------------------------------------------ settings

    def get_settings(self) -> StsSettings:
        """The settings in force (one snapshot). :raises ConfigurationError: never initialised."""
        return self._db.run(Kind.READ, self._read_settings)

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
            changes.append(("issuer", check_name(issuer, "issuer")))
        if default_lifetime is not None:
            changes.append(("default_lifetime_us",
                            checks.duration("default_lifetime", default_lifetime, allow_zero=False)))
        if clock_skew is not None:
            changes.append(("clock_skew_us", checks.duration("clock_skew", clock_skew, allow_zero=True)))
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
        roles = None if allowed_roles is None else checks.names("allowed_roles", "role", allowed_roles)

        def work(tx: Tx) -> StsSettings:
            if tx.one("SELECT 1 FROM settings WHERE id = 1") is None:
                raise self._db.not_initialised()
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

        return self._db.run(Kind.WRITE, work)

    # ------------------------------------------------------------------ UserStore

    def authenticate(self, token: PasswordProof) -> Principal | None:
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
        dummy = passwords.dummy_hash()  # before the lookup: the first call is slow for everybody
        name = token.username
        row = None if not checks.findable(name) else self._db.run(Kind.READ, lambda tx: tx.one(
            "SELECT id, kdf, salt, password_hash, digest_secret FROM users WHERE name = ?", (name,)))
        if token.digest:
            secret = row[4] if row is not None else None
            ok = token.digest_matches(secret if secret is not None else "\0no digest secret")
            if row is None or secret is None or not ok:
                return None
        else:
            usable = row is not None and row[1] == passwords.KDF
            salt, expected = (bytes(row[2]), bytes(row[3])) if row is not None and usable else dummy
            ok = passwords.password_matches(token.password, salt, expected)
            if row is not None and not usable:
                log.warning("user %r: password hash made with %s, this version checks %s: set the password again",
                            name, row[1], passwords.KDF)
            if row is None or not usable or not ok:
                return None
        checked = row

        def load(tx: Tx) -> Principal | None:
            now = tx.one("SELECT id, kdf, salt, password_hash, digest_secret FROM users WHERE name = ?", (name,))
            if now != checked:  # removed, or its password changed, since the check
                return None
            roles, claims = self._roles_and_claims(tx, checked[0])
            return Principal(name, frozenset(roles), claims)

        return self._db.run(Kind.READ, load)

    def user_by_certificate(self, fingerprint: bytes) -> Principal | None:
        """The user a certificate is registered to (``user cert add``), by the SHA-256 of its DER bytes."""
        def load(tx: Tx) -> Principal | None:
            row = tx.one("SELECT u.id, u.name FROM user_certificates c JOIN users u ON u.id = c.user_id "
                         "WHERE c.fingerprint = ?", (fingerprint.hex(),))
            if row is None:
                return None
            roles, claims = self._roles_and_claims(tx, row[0])
            return Principal(row[1], frozenset(roles), claims)

        return self._db.run(Kind.READ, load)

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
        if not checks.findable(username):
            return None

        def work(tx: Tx) -> tuple[bytes, Principal] | None:
            row = tx.one("SELECT id, kdf, salt, password_hash FROM users WHERE name = ?", (username,))
            if row is None:
                return None
            roles, claims = self._roles_and_claims(tx, row[0])
            verifier = b"".join(len(part).to_bytes(4, "big") + part
                                for part in (str(row[1]).encode(), bytes(row[2]), bytes(row[3])))
            return verifier, Principal(username, frozenset(roles), claims)

        return self._db.run(Kind.READ, work)

    # ------------------------------------------------------------------ internals: statements

    @staticmethod
    def _user_id(tx: Tx, name: str) -> int:
        row = tx.one("SELECT id FROM users WHERE name = ?", (name,))
        if row is None:
            raise RegistryError(f"unknown user {name!r}")
        return int(row[0])

    @staticmethod
    def _role_ids(tx: Tx, names: Sequence[str]) -> dict[str, int]:
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
    def _write_claim(tx: Tx, user_id: int, claim: str, values: Sequence[str]) -> None:
        tx.execute("DELETE FROM user_claims WHERE user_id = ? AND claim = ?", (user_id, claim))
        for seq, value in enumerate(values):
            tx.execute("INSERT INTO user_claims (user_id, claim, seq, value) VALUES (?, ?, ?, ?)",
                       (user_id, claim, seq, value))

    @staticmethod
    def _roles_and_claims(tx: Tx, user_id: int) -> tuple[list[str], dict[str, tuple[str, ...]]]:
        roles = [row[0] for row in tx.all(
            "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = ?", (user_id,))]
        claims: dict[str, list[str]] = {}
        for claim, value in tx.all("SELECT claim, value FROM user_claims WHERE user_id = ? ORDER BY claim, seq",
                                   (user_id,)):
            claims.setdefault(claim, []).append(value)
        return roles, {claim: tuple(values) for claim, values in claims.items()}

    def _read_settings(self, tx: Tx) -> StsSettings:
        row = tx.one("SELECT issuer, default_lifetime_us, clock_skew_us, signature_algorithm, allow_plaintext_http "
                     "FROM settings WHERE id = 1")
        if row is None:
            raise self._db.not_initialised()
        roles = tx.all("SELECT r.name FROM allowed_roles a JOIN roles r ON r.id = a.role_id")
        return StsSettings(
            issuer=row[0],
            allowed_roles=frozenset(role for (role,) in roles),
            default_lifetime=_microseconds(row[1]),
            clock_skew=_microseconds(row[2]),
            signature_algorithm=row[3],
            allow_plaintext_http=bool(row[4]),
        )
