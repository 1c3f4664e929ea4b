"""The registry's schema and its migrations.

**Schema versions.** ``schema_version`` holds one row per applied migration.
:data:`MIGRATIONS` lists them in order; :meth:`Registry.open
<wstrust_wsgi.stores.sql.Registry.open>` and ``init_schema`` apply the missing
ones (:func:`migrate`), all in one transaction (both databases have
transactional DDL), under SQLite's write lock or a PostgreSQL advisory lock, so
that workers starting together upgrade once and a failed upgrade leaves the
previous version intact. A database newer than this code is refused rather
than used. Version 1 is the layout of :func:`_create_v1`; version 2 adds the lockout table;
version 3 how relying parties' tokens are encrypted; version 4 the signing keys; version 5 the issued
tokens and the delegation rules; version 6 the key types a relying party allows;
version 8 what an issued token needs to be renewed (its wrapped proof key or bound certificate, the claims asked);
version 9 the digest an encrypted issued token is found by.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from ...errors import ConfigurationError
from .db import Database, Tx

__all__ = ["MIGRATIONS", "Migration", "latest_version", "migrate", "refuse_newer", "schema_version"]

log = logging.getLogger("wstrust_wsgi.registry")


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``apply`` runs inside the migration transaction."""

    version: int
    description: str
    apply: Callable[[Tx], None]


def _create_v1(tx: Tx) -> None:
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


def _create_v2(tx: Tx) -> None:
    """Failed-authentication counters, lockouts and familiar addresses (:mod:`wstrust_wsgi.stores.lockout`).

    Opaque keys (``user:NAME``, ``address:NET``, ...); times are whole
    microseconds since the epoch; ``locked_until_us`` is NULL when not locked.
    """
    tx.execute("CREATE TABLE lockout (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, "
               "expires_us BIGINT NOT NULL, locked_until_us BIGINT)")
    tx.execute("CREATE INDEX lockout_expires ON lockout (expires_us)")


def _create_v3(tx: Tx) -> None:
    """How a relying party's tokens are encrypted for its ``certificate_pem`` (issue 11).

    Three short names, checked by :mod:`wstrust_wsgi.model` and here (the
    lists are written out, not imported: a released step never changes; a test
    pins them to the model's): rows of version 2 (some with a certificate kept
    "for encryption") get the defaults, AES-256-GCM with RSA-OAEP, the
    certificate named by issuer and serial.
    """
    for column, default, allowed in (
        ("encryption", "aes256-gcm", ("aes256-gcm", "aes128-gcm", "aes256-cbc", "aes128-cbc", "none")),
        ("key_transport", "rsa-oaep-mgf1p", ("rsa-oaep-mgf1p", "rsa-oaep")),
        ("key_reference", "issuer-serial", ("issuer-serial", "ski", "thumbprint")),
    ):
        names = ", ".join(f"'{name}'" for name in allowed)  # constants, never user input
        tx.execute(f"ALTER TABLE relying_parties ADD COLUMN {column} TEXT NOT NULL DEFAULT '{default}' "
                   f"CHECK ({column} IN ({names}))")
    # A certificate stored before this version was kept "for encryption" and used for nothing;
    # from now on the STS encrypts for it. Say so once, naming the parties, so nobody is surprised.
    encrypted = [row[0] for row in tx.all("SELECT address FROM relying_parties WHERE certificate_pem IS NOT NULL")]
    if encrypted:
        log.warning("relying parties with a certificate now get encrypted tokens (aes256-gcm): %s; "
                    "`wstrust-wsgi rp set ADDRESS --no-encrypt` sends a party's tokens in clear again",
                    ", ".join(sorted(encrypted)))


def _create_v4(tx: Tx) -> None:
    """The STS's signing keys as they roll (:mod:`wstrust_wsgi.stores.sql.keyring`).

    ``state`` is next (published, not signing), primary (signing; at most one,
    by the partial unique index) or previous (published until retired; a
    retired key's row is deleted, private key and all). ``key_pem`` is a PKCS#8
    PEM encrypted with the operator's passphrase, never a clear key. Times are
    whole microseconds since the epoch.
    """
    d = tx.dialect
    tx.execute(f"""CREATE TABLE signing_keys (
        id {d.id_column},
        state TEXT NOT NULL CHECK (state IN ('next', 'primary', 'previous')),
        fingerprint TEXT NOT NULL UNIQUE,
        key_pem {d.blob} NOT NULL,
        cert_pem {d.blob} NOT NULL,
        not_after_us BIGINT NOT NULL,
        added_us BIGINT NOT NULL,
        changed_us BIGINT NOT NULL
    )""")
    tx.execute("CREATE UNIQUE INDEX signing_keys_one_primary ON signing_keys (state) WHERE state = 'primary'")


def _create_v5(tx: Tx) -> None:
    """Issued tokens (:mod:`wstrust_wsgi.stores.tokens`), by full ID, kept until their renewal window ends;
    and the delegation rules (:mod:`wstrust_wsgi.stores.delegation`).

    Times are whole microseconds since the epoch; ``state`` moves once, from
    ``issued`` to ``renewed`` or ``cancelled``.
    """
    tx.execute("""CREATE TABLE issued_tokens (
        id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        relying_party TEXT NOT NULL,
        token_type TEXT NOT NULL,
        key_type TEXT NOT NULL,
        issued_us BIGINT NOT NULL,
        expires_us BIGINT NOT NULL,
        renew_allowed BOOLEAN NOT NULL,
        renew_after_expiry BOOLEAN NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('issued', 'renewed', 'cancelled')),
        keep_until_us BIGINT NOT NULL
    )""")
    tx.execute("CREATE INDEX issued_tokens_keep_until ON issued_tokens (keep_until_us)")
    # who may ask for tokens on behalf of (or acting as) whom, towards which relying party ('*': any)
    tx.execute("""CREATE TABLE delegation_rules (
        requester TEXT NOT NULL,
        subject TEXT NOT NULL,
        relying_party TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('OnBehalfOf', 'ActAs', '*')),
        PRIMARY KEY (requester, subject, relying_party, kind)
    )""")


def _create_v6(tx: Tx) -> None:
    """The key types a relying party's tokens may have: a JSON array of names, NULL for every one."""
    tx.execute("ALTER TABLE relying_parties ADD COLUMN key_types TEXT")


def _create_v7(tx: Tx) -> None:
    """Certificates registered to users for X.509-authenticated requests, by the SHA-256 of their DER bytes
    (lowercase hex; unique: one certificate names one user); the PEM kept for listing."""
    tx.execute(f"""CREATE TABLE user_certificates (
        fingerprint TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),
        user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        certificate_pem {tx.dialect.blob} NOT NULL
    )""")
    tx.execute("CREATE INDEX user_certificates_user ON user_certificates (user_id)")


def _create_v8(tx: Tx) -> None:
    """What renewing an issued token needs (:mod:`wstrust_wsgi.stores.tokens`): a holder-of-key token's proof
    (SymmetricKey: its key wrapped under a key derived from the STS's signing key, never in clear, and the
    thumbprint of that signing certificate; PublicKey: the bound certificate) and the claims asked at issue
    (a JSON array of ``[URI, optional]``). NULL in older rows: such a holder-of-key token cannot be renewed."""
    for column in ("proof", "proof_wrapped_by", "claims"):
        tx.execute(f"ALTER TABLE issued_tokens ADD COLUMN {column} TEXT")



def _create_v9(tx: Tx) -> None:
    """An encrypted issued token's SHA-256 (64 lowercase hex digits) of the exclusive canonical form of the
    element the STS sent, indexed: Validate, Renew and Cancel find the record of an encrypted token by it
    (:mod:`wstrust_wsgi.stores.tokens`). NULL for a token sent in clear, and in older rows."""
    tx.execute("ALTER TABLE issued_tokens ADD COLUMN encrypted_sha256 TEXT")
    tx.execute("CREATE INDEX issued_tokens_encrypted_sha256 ON issued_tokens (encrypted_sha256)")


#: Every schema version, in order. Append; never edit a released step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users, roles, claims, relying parties, settings", _create_v1),
    Migration(2, "failed-authentication lockout", _create_v2),
    Migration(3, "relying-party token encryption", _create_v3),
    Migration(4, "rolling signing keys", _create_v4),
    Migration(5, "issued tokens for Validate, Renew and Cancel; delegation rules", _create_v5),
    Migration(6, "relying parties' allowed key types (holder-of-key)", _create_v6),
    Migration(7, "user certificates (X.509-authenticated requests)", _create_v7),
    Migration(8, "issued tokens' proof of possession and requested claims, for renewal", _create_v8),
    Migration(9, "encrypted issued tokens found by the digest of their exact bytes", _create_v9),
)


def latest_version() -> int:
    """The version this code writes: the last of :data:`MIGRATIONS` (read at call time)."""
    return MIGRATIONS[-1].version


def refuse_newer(version: int, database: Database) -> None:
    """:raises ConfigurationError: ``version`` is newer than this code knows (never used, never downgraded)."""
    if version > latest_version():
        raise ConfigurationError(
            f"registry {database.describe()}: schema version {version} is newer than this wstrust-wsgi "
            f"supports ({latest_version()}); upgrade wstrust-wsgi"
        )


def schema_version(tx: Tx) -> int:
    """0 for an empty database, else the highest applied migration."""
    if tx.one(tx.dialect.table_exists, ("schema_version",)) is None:
        return 0
    row = tx.one("SELECT MAX(version) FROM schema_version")
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(tx: Tx, database: Database) -> None:
    """Apply the missing migrations; runs under the migration lock (a MIGRATE transaction)."""
    tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
               "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
    current = schema_version(tx)
    refuse_newer(current, database)
    for migration in MIGRATIONS:
        if migration.version > current:
            migration.apply(tx)
            tx.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                       (migration.version, migration.description,
                        datetime.now(timezone.utc).isoformat(timespec="seconds")))
            log.info("registry %s: schema upgraded to version %d (%s)",
                     database.describe(), migration.version, migration.description)
