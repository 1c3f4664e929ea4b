"""The SQL registry, on SQLite and on a real PostgreSQL server: every test runs against both.

SQLite is a file in ``tmp_path``; PostgreSQL is one throwaway server per test
session (``tests/_support/pg.py``) with a fresh database per test. Without PostgreSQL
the PostgreSQL half of every test fails (never skips).

What is checked: every change and its validation, what the users table holds
(hashes, never passwords, unless a user opted into a digest secret),
authentication as :class:`MemoryUserStore` does it, the stored verifier
behind :class:`CachedUserStore` and that cache skipping nothing but the KDF, a
running :class:`TokenService` (cached or not) honouring changes at the next
request, schema upgrades, and writers in several threads and processes racing
readers with nothing lost, torn or refused as "database is locked".
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from lxml import etree

from _support import EMAIL, ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.pg import PostgresServer, registry_url
from wstrust_wsgi import (
    ConfigurationError,
    MemoryUserStore,
    Principal,
    RelyingParty,
    RemoteFault,
    StsClient,
    StsSettings,
    TokenService,
    User,
    WSGITransport,
    ns,
)
from wstrust_wsgi.errors import RegistryError
from wstrust_wsgi.stores import passwords
from wstrust_wsgi.stores.sql import schema
from wstrust_wsgi.stores.sql import db
from wstrust_wsgi.stores.sql.db import Kind
from wstrust_wsgi.stores.cache import CachedUserStore, PasswordRecords
from wstrust_wsgi.stores.sql import Registry, UserInfo
from wstrust_wsgi.wssecurity import UsernameToken, build_username_token, read_username_token

OTHER = "https://svc.example/other"
#: The schema versions this code ships, and the number a test's own extra migration takes.
ALL_VERSIONS = [migration.version for migration in schema.MIGRATIONS]
NEXT = ALL_VERSIONS[-1] + 1
DEPT = "urn:test:claims:department"


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """An empty registry database of each kind."""
    return registry_url(request.param, request, tmp_path)


@pytest.fixture
def registry(url: str) -> Iterator[Registry]:
    """An initialised registry (issuer ISSUER, role admin)."""
    with Registry.open(url) as opened:
        opened.init_schema(issuer=ISSUER)
        yield opened


def raw(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``query`` (with ``?`` marks) on the database directly, past the registry."""
    if url.startswith("sqlite:"):
        with closing(sqlite3.connect(url[len("sqlite://"):], isolation_level=None)) as conn:
            return [tuple(row) for row in conn.execute(query, params).fetchall()]
    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(query.replace("?", "%s"), params)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


def columns(url: str, table: str) -> set[str]:
    if url.startswith("sqlite:"):
        return {row[1] for row in raw(url, f"PRAGMA table_info({table})")}
    return {row[0] for row in raw(url, "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                  (table,))}


def text_token(username: str, password: str) -> UsernameToken:
    return UsernameToken(username, password, False, None, None, None)


def digest_token(username: str, password: str, clock: FixedClock) -> UsernameToken:
    security = etree.Element(f"{{{ns.WSSE}}}Security")
    security.append(build_username_token(username, password, digest=True, now=clock()))
    token = read_username_token(security)
    assert token is not None and token.digest
    return token


# ---------------------------------------------------------------------- opening and initialising


def test_init_schema_needs_an_issuer_first_then_creates_admin_and_default_settings(url: str) -> None:
    with Registry.open(url) as registry:
        with pytest.raises(ConfigurationError, match="not initialised"):
            registry.get_settings()
        with pytest.raises(ConfigurationError, match="issuer: required"):
            registry.init_schema()
        with pytest.raises(ConfigurationError, match="not initialised"):  # the failed init left nothing
            registry.list_roles()
        with pytest.raises(ConfigurationError, match="issuer"):
            registry.init_schema(issuer="  ")

        registry.init_schema(issuer=ISSUER)
        assert registry.list_roles() == ["admin"]
        assert registry.get_settings() == StsSettings(issuer=ISSUER)
        assert registry.list_users() == [] and registry.list_relying_parties() == []

        registry.init_schema()  # again: an upgrade check only, settings kept
        assert registry.get_settings().issuer == ISSUER
        registry.init_schema(issuer="urn:example:sts")
        assert registry.get_settings().issuer == "urn:example:sts"
    assert [row[0] for row in raw(url, "SELECT version FROM schema_version")] == ALL_VERSIONS


@pytest.mark.parametrize("bad", [
    "", "mysql://db/x", "sqlite://relative.db", "sqlite:relative.db", "sqlite:///",
    "sqlite:///:memory:", "sqlite:///tmp/x.db?mode=ro", "sqlite:///no/such/folder/registry.db",
    "postgresql://127.0.0.1:1/nothing_listens_here",
])
def test_open_refuses_unusable_urls(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="registry"):
        Registry.open(bad)


def test_a_new_sqlite_file_is_private_and_in_wal_mode(tmp_path: Any) -> None:
    path = tmp_path / "registry.db"
    with Registry.open(f"sqlite://{path}") as registry:
        registry.init_schema(issuer=ISSUER)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert raw(f"sqlite://{path}", "PRAGMA journal_mode") == [("wal",)]


def test_a_sqlite_registry_restored_with_the_backup_api_is_seen_at_the_next_read(tmp_path: Any) -> None:
    """The documented restore (``sqlite3 registry.db ".restore backup.db"``) under a running registry."""
    path, backup = tmp_path / "registry.db", tmp_path / "backup.db"
    with Registry.open(f"sqlite://{path}") as running, Registry.open(f"sqlite://{backup}") as saved:
        running.init_schema(issuer=ISSUER)
        saved.init_schema(issuer="urn:example:restored")
        saved.add_relying_party(RelyingParty(OTHER))
        saved.close()
        assert running.get(OTHER) is None and running.get_settings().issuer == ISSUER  # connection open
        with closing(sqlite3.connect(backup)) as source, closing(sqlite3.connect(path)) as target:
            source.backup(target)
        assert running.get(OTHER) == RelyingParty(OTHER)
        assert running.get_settings().issuer == "urn:example:restored"

        # A registry file that disappears is not re-created empty by a new connection.
        running.close()
        for leftover in (path, tmp_path / "registry.db-wal", tmp_path / "registry.db-shm"):
            leftover.unlink(missing_ok=True)
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            running.get_settings()
        assert not path.exists()


# ---------------------------------------------------------------------- roles, users, relying parties, settings


def test_roles(registry: Registry, url: str) -> None:
    registry.add_role("ops")
    registry.add_role("auditor")
    assert registry.list_roles() == ["admin", "auditor", "ops"]
    with pytest.raises(RegistryError, match="'ops' already exists"):
        registry.add_role("ops")

    registry.add_user("bob", "pw", roles=["ops", "auditor"])
    registry.remove_role("ops")  # revoked from bob with it
    assert registry.list_roles() == ["admin", "auditor"]
    assert registry.get_user("bob") == UserInfo("bob", ("auditor",), {}, False)
    assert len(raw(url, "SELECT * FROM user_roles")) == 1

    with pytest.raises(RegistryError, match="unknown role 'ops'"):
        registry.remove_role("ops")
    with pytest.raises(RegistryError, match="allowed_roles"):  # would open the STS to everybody
        registry.remove_role("admin")
    registry.update_settings(allowed_roles=["auditor"])
    registry.remove_role("admin")
    assert registry.list_roles() == ["auditor"]


def test_users(registry: Registry, url: str) -> None:
    registry.add_role("ops")
    registry.add_user("bob", "bob-pw", roles=["ops"], claims={EMAIL: ["bob@example.org"], DEPT: ["b", "a"]})
    registry.add_user("alice", "alice-pw")
    bob = UserInfo("bob", ("ops",), {EMAIL: ("bob@example.org",), DEPT: ("b", "a")}, False)
    assert registry.get_user("bob") == bob
    assert registry.list_users() == [UserInfo("alice", (), {}, False), bob]
    assert registry.get_user("carol") is None
    with pytest.raises(RegistryError, match="'bob' already exists"):
        registry.add_user("bob", "other")

    registry.grant_role("alice", "admin")
    registry.grant_role("alice", "admin")  # held already: nothing changes
    registry.grant_role("alice", "ops")
    registry.revoke_role("alice", "ops")
    registry.revoke_role("alice", "ops")  # not held: nothing changes
    registry.set_claim("alice", EMAIL, ["alice@example.org", "a@example.org"])
    registry.set_claim("bob", DEPT, ["c"])  # replaces
    registry.unset_claim("bob", EMAIL)
    registry.unset_claim("bob", EMAIL)  # unset already: nothing changes
    assert registry.get_user("alice") == UserInfo("alice", ("admin",), {EMAIL: ("alice@example.org", "a@example.org")},
                                                  False)
    assert registry.get_user("bob") == UserInfo("bob", ("ops",), {DEPT: ("c",)}, False)

    registry.set_password("bob", "new-pw")
    assert registry.authenticate(text_token("bob", "bob-pw")) is None
    assert registry.authenticate(text_token("bob", "new-pw")) is not None

    registry.remove_user("bob")
    assert registry.get_user("bob") is None
    assert [user.name for user in registry.list_users()] == ["alice"]
    # bob's roles and claims went with him
    assert raw(url, "SELECT COUNT(*) FROM user_roles")[0][0] == 1
    assert raw(url, "SELECT COUNT(*) FROM user_claims")[0][0] == 2

    registry.close()  # the next call opens a new connection
    assert registry.get_user("alice") is not None


def test_relying_parties(registry: Registry, sts_keys: KeyFiles) -> None:
    pem = sts_keys.cert.read_bytes()
    full = RelyingParty(OTHER, token_type="1.1", lifetime=timedelta(seconds=90, microseconds=500),
                        claims=frozenset({EMAIL, DEPT}), certificate_pem=pem)
    registry.add_relying_party(RelyingParty(SERVICE_URL))
    registry.add_relying_party(full)
    registry.add_relying_party(RelyingParty("urn:example:service", claims=frozenset()))
    assert registry.get(OTHER) == full
    assert registry.get(SERVICE_URL) == RelyingParty(SERVICE_URL)  # lifetime None, claims None: all
    assert registry.get("urn:example:service") == RelyingParty("urn:example:service", claims=frozenset())
    assert registry.list_relying_parties() == [RelyingParty(SERVICE_URL), full,
                                               RelyingParty("urn:example:service", claims=frozenset())]
    # exact match only
    assert registry.get(OTHER + "/") is None and registry.get(OTHER.upper()) is None
    with pytest.raises(RegistryError, match="already registered"):
        registry.add_relying_party(RelyingParty(OTHER))

    registry.remove_relying_party(OTHER)
    assert registry.get(OTHER) is None
    with pytest.raises(RegistryError, match="unknown relying party"):
        registry.remove_relying_party(OTHER)


def test_a_relying_partys_encryption_is_stored_and_changed(registry: Registry, url: str, sts_keys: KeyFiles,
                                                          sts2_keys: KeyFiles) -> None:
    pem, pem2 = sts_keys.cert.read_bytes(), sts2_keys.cert.read_bytes()
    legacy = RelyingParty(OTHER, certificate_pem=pem, encryption="aes256-cbc", key_transport="rsa-oaep",
                          key_reference="thumbprint")
    registry.add_relying_party(legacy)
    registry.add_relying_party(RelyingParty(SERVICE_URL))
    assert registry.get(OTHER) == legacy and registry.list_relying_parties() == [RelyingParty(SERVICE_URL), legacy]
    assert registry.get(SERVICE_URL) == RelyingParty(SERVICE_URL)  # the defaults: aes256-gcm, rsa-oaep-mgf1p

    # one field at a time, in one transaction each; the rest is kept
    assert registry.update_relying_party(OTHER, encryption="aes128-gcm") == RelyingParty(
        OTHER, certificate_pem=pem, encryption="aes128-gcm", key_transport="rsa-oaep", key_reference="thumbprint")
    now = registry.update_relying_party(SERVICE_URL, certificate_pem=pem2, lifetime=timedelta(seconds=60))
    assert registry.get(SERVICE_URL) == now == RelyingParty(SERVICE_URL, lifetime=timedelta(seconds=60),
                                                            certificate_pem=pem2)
    assert registry.update_relying_party(SERVICE_URL, certificate_pem=None).certificate_pem is None  # in clear
    assert registry.get(SERVICE_URL).certificate_pem is None

    for changes, message, error in [
        ({"encryption": "tripledes-cbc"}, "encryption must be one of", ConfigurationError),
        ({"key_transport": "rsa-1_5"}, "key transport must be one of", ConfigurationError),
        ({"certificate_pem": b"-----BEGIN nonsense"}, "not a PEM certificate", ConfigurationError),
        ({"address": "https://elsewhere.example/"}, "cannot change address", ConfigurationError),
        ({"colour": "red"}, "cannot change colour", ConfigurationError),
    ]:
        with pytest.raises(error, match=message):
            registry.update_relying_party(OTHER, **changes)
    with pytest.raises(RegistryError, match="unknown relying party"):
        registry.update_relying_party("https://nobody.example/", encryption="aes128-gcm")
    assert registry.get(OTHER).encryption == "aes128-gcm"  # the refusals changed nothing
    # the database's own CHECK refuses a name written past the registry
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
        raw(url, "UPDATE relying_parties SET encryption = 'rsa-1_5'")


def test_version_2_relying_parties_get_the_encryption_defaults(url: str, monkeypatch: pytest.MonkeyPatch,
                                                               sts_keys: KeyFiles,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    pem = sts_keys.cert.read_bytes()
    version_2 = tuple(migration for migration in schema.MIGRATIONS if migration.version <= 2)
    with monkeypatch.context() as older:
        older.setattr(schema, "MIGRATIONS", version_2)
        with Registry.open(url) as registry:
            registry.init_schema(issuer=ISSUER)
        # what version 2 of the code wrote: a certificate "kept for encryption", no way to say how
        raw(url, "INSERT INTO relying_parties (address, token_type, certificate_pem) VALUES (?, ?, ?)",
            (OTHER, "1.1", pem))
        raw(url, "INSERT INTO relying_parties (address, token_type) VALUES (?, ?)", (SERVICE_URL, "2.0"))
    caplog.set_level(logging.WARNING, logger="wstrust_wsgi.registry")
    with Registry.open(url) as registry:
        assert registry.get(OTHER) == RelyingParty(OTHER, token_type="1.1", certificate_pem=pem)
        assert registry.get(OTHER).encryption == "aes256-gcm" and registry.get(OTHER).key_transport == "rsa-oaep-mgf1p"
        assert registry.get(SERVICE_URL) == RelyingParty(SERVICE_URL)
    assert 3 in [row[0] for row in raw(url, "SELECT version FROM schema_version")]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"now get encrypted tokens (aes256-gcm): {OTHER};" in warning  # named, the party without one is not


def test_the_database_accepts_every_encryption_name_of_the_model(registry: Registry, url: str) -> None:
    from wstrust_wsgi.model import ENCRYPTION_ALGORITHMS, KEY_REFERENCES, KEY_TRANSPORTS

    registry.add_relying_party(RelyingParty(OTHER))
    for column, names in (("encryption", ENCRYPTION_ALGORITHMS), ("key_transport", KEY_TRANSPORTS),
                          ("key_reference", KEY_REFERENCES)):
        for name in names:  # the migration writes its CHECK lists out; they must hold the model's names
            raw(url, f"UPDATE relying_parties SET {column} = ?", (name,))
            assert getattr(registry.get(OTHER), column) == name


def test_settings(registry: Registry) -> None:
    registry.add_role("sts-users")
    changed = registry.update_settings(
        issuer="urn:example:sts", allowed_roles=["sts-users", "admin"], default_lifetime=timedelta(minutes=2),
        clock_skew=timedelta(seconds=30), signature_algorithm="rsa-sha512", allow_plaintext_http=True,
    )
    expected = StsSettings("urn:example:sts", frozenset({"sts-users", "admin"}), timedelta(minutes=2),
                           timedelta(seconds=30), "rsa-sha512", True)
    assert changed == expected == registry.get_settings()
    # only what is given changes
    assert registry.update_settings(clock_skew=timedelta(0)) == StsSettings(
        "urn:example:sts", frozenset({"sts-users", "admin"}), timedelta(minutes=2), timedelta(0), "rsa-sha512", True)
    assert registry.update_settings() == registry.get_settings()
    # explicitly empty: every authenticated user may request tokens
    assert registry.update_settings(allowed_roles=[]).allowed_roles == frozenset()


def test_bad_values_and_unknown_names_are_refused_and_change_nothing(registry: Registry, url: str) -> None:
    registry.add_user("alice", "pw", claims={EMAIL: ["a@example.org"]})
    registry.add_relying_party(RelyingParty(SERVICE_URL))
    before = (registry.list_users(), registry.list_roles(), registry.list_relying_parties(), registry.get_settings())
    bad_values: list[tuple[str, Callable[[], object], str]] = [
        ("empty role", lambda: registry.add_role(""), "role"),
        ("role with a NUL", lambda: registry.add_role("ops\0"), "role"),
        ("user with a newline", lambda: registry.add_user("bob\nadmin", "pw"), "user"),
        ("password with a NUL", lambda: registry.add_user("bob", "pw\0"), "password"),
        ("claim value with a NUL", lambda: registry.set_claim("alice", EMAIL, ["a\0"]), "claim"),
        ("spaced role", lambda: registry.add_role(" ops"), "role"),
        ("empty user", lambda: registry.add_user("", "pw"), "user"),
        ("empty password", lambda: registry.add_user("bob", ""), "password"),
        ("roles as a string", lambda: registry.add_user("bob", "pw", roles="admin"), "roles"),
        ("claim values as a string", lambda: registry.add_user("bob", "pw", claims={EMAIL: "x"}), "claim"),
        ("claim without values", lambda: registry.set_claim("alice", EMAIL, []), "at least one value"),
        ("empty claim name", lambda: registry.set_claim("alice", "", ["x"]), "claim"),
        ("empty new password", lambda: registry.set_password("alice", ""), "password"),
        ("relative address", lambda: registry.add_relying_party(RelyingParty("/services/echo")), "absolute URL"),
        ("no scheme", lambda: registry.add_relying_party(RelyingParty("svc.example/echo")), "absolute URL"),
        ("no host", lambda: registry.add_relying_party(RelyingParty("http:///echo")), "absolute URL"),
        ("bare urn", lambda: registry.add_relying_party(RelyingParty("urn:")), "absolute URL"),
        ("spaces", lambda: registry.add_relying_party(RelyingParty("https://svc.example/a b")), "absolute URL"),
        ("token type", lambda: registry.add_relying_party(RelyingParty(OTHER, token_type="3.0")), "token_type"),
        ("zero lifetime", lambda: registry.add_relying_party(RelyingParty(OTHER, lifetime=timedelta(0))), "lifetime"),
        ("negative lifetime",
         lambda: registry.add_relying_party(RelyingParty(OTHER, lifetime=timedelta(seconds=-1))), "lifetime"),
        ("not a certificate",
         lambda: registry.add_relying_party(RelyingParty(OTHER, certificate_pem=b"-----BEGIN nonsense")), "PEM"),
        ("algorithm", lambda: registry.update_settings(signature_algorithm="rsa-md5"), "signature_algorithm"),
        ("zero default lifetime", lambda: registry.update_settings(default_lifetime=timedelta(0)), "default_lifetime"),
        ("negative skew", lambda: registry.update_settings(clock_skew=timedelta(seconds=-1)), "clock_skew"),
        ("empty issuer", lambda: registry.update_settings(issuer=""), "issuer"),
        ("allowed roles as a string", lambda: registry.update_settings(allowed_roles="admin"), "allowed_roles"),
    ]
    unknown_names: list[tuple[str, Callable[[], object], str]] = [
        ("unknown roles for a new user",
         lambda: registry.add_user("bob", "pw", roles=["admin", "ghost", "phantom"]), "'ghost', 'phantom'"),
        ("grant unknown role", lambda: registry.grant_role("alice", "ghost"), "unknown role 'ghost'"),
        ("grant to unknown user", lambda: registry.grant_role("nobody", "admin"), "unknown user 'nobody'"),
        ("revoke from unknown user", lambda: registry.revoke_role("nobody", "admin"), "unknown user 'nobody'"),
        ("revoke unknown role", lambda: registry.revoke_role("alice", "ghost"), "unknown role 'ghost'"),
        ("claim of unknown user", lambda: registry.set_claim("nobody", EMAIL, ["x"]), "unknown user"),
        ("unset claim of unknown user", lambda: registry.unset_claim("nobody", EMAIL), "unknown user"),
        ("password of unknown user", lambda: registry.set_password("nobody", "pw"), "unknown user"),
        ("remove unknown user", lambda: registry.remove_user("nobody"), "unknown user"),
        ("remove unknown party", lambda: registry.remove_relying_party(OTHER), "unknown relying party"),
        ("unknown allowed role, with other changes",
         lambda: registry.update_settings(issuer="urn:changed", default_lifetime=timedelta(minutes=1),
                                          allowed_roles=["admin", "ghost"]), "unknown role 'ghost'"),
    ]
    for label, call, message in bad_values:
        with pytest.raises(ConfigurationError, match=message):
            call()
            pytest.fail(f"{label}: accepted")
    for label, call, message in unknown_names:
        with pytest.raises(RegistryError, match=message):
            call()
            pytest.fail(f"{label}: accepted")
    # names no registry can hold are simply not found
    assert registry.get_user("alice\0") is None and registry.get(SERVICE_URL + "\0") is None
    assert registry.authenticate(text_token("alice\0", "pw")) is None
    after = (registry.list_users(), registry.list_roles(), registry.list_relying_parties(), registry.get_settings())
    assert after == before
    assert raw(url, "SELECT name FROM users") == [("alice",)]


# ---------------------------------------------------------------------- secrets and authentication


def test_passwords_are_stored_as_scrypt_hashes_never_in_clear(registry: Registry, url: str) -> None:
    registry.add_user("bob", "bob-secret-1")
    registry.add_user("dora", "dora-secret-1", digest_secret=True)

    def row(name: str) -> tuple[Any, ...]:
        return raw(url, "SELECT name, kdf, salt, password_hash, digest_secret FROM users WHERE name = ?", (name,))[0]

    def assert_hashed(name: str, password: str) -> None:
        _, kdf, salt, digest, _ = row(name)
        salt, digest = bytes(salt), bytes(digest)
        assert kdf == "scrypt:n=16384,r=8,p=1,dklen=32"
        assert len(salt) == 16 and digest == hashlib.scrypt(
            password.encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)

    assert_hashed("bob", "bob-secret-1")
    assert row("bob")[4] is None
    stored = repr(raw(url, "SELECT * FROM users WHERE name = ?", ("bob",)))
    assert "bob-secret-1" not in stored and b"bob-secret-1".hex() not in stored
    # opted in: the plaintext is kept, for PasswordDigest only
    assert_hashed("dora", "dora-secret-1")
    assert row("dora")[4] == "dora-secret-1"
    assert registry.get_user("dora") == UserInfo("dora", (), {}, True)
    assert registry.get_user("bob") == UserInfo("bob", (), {}, False)

    registry.set_password("bob", "bob-secret-2")  # None: keeps bob without a secret
    registry.set_password("dora", "dora-secret-2")  # None: keeps dora's secret, updated
    assert row("bob")[4] is None and row("dora")[4] == "dora-secret-2"
    assert_hashed("bob", "bob-secret-2")
    registry.set_password("dora", "dora-secret-3", digest_secret=False)  # erased
    assert row("dora")[4] is None
    registry.set_password("bob", "bob-secret-3", digest_secret=True)
    assert row("bob")[4] == "bob-secret-3"
    assert "secret-1" not in repr(raw(url, "SELECT * FROM users"))


def test_authenticate_answers_as_the_memory_store_does(
        registry: Registry, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    users = [
        User("bob", "bob-pw", roles=["admin"], claims={EMAIL: ["bob@example.org"], DEPT: ["x", "y"]},
             digest_secret=False),
        User("dora", "dora-pw", roles=[], claims={}, digest_secret=True),
    ]
    for user in users:
        registry.add_user(user.name, user.password, roles=user.roles, claims=user.claims,
                          digest_secret=user.digest_secret)
    memory = MemoryUserStore(users)
    bob = Principal("bob", frozenset({"admin"}), {EMAIL: ("bob@example.org",), DEPT: ("x", "y")})
    dora = Principal("dora", frozenset(), {})
    cases = [
        (text_token("bob", "bob-pw"), bob),
        (text_token("bob", "wrong"), None),
        (text_token("bob", "bob-pw "), None),
        (text_token("nobody", "bob-pw"), None),
        (text_token("dora", "dora-pw"), dora),  # a digest user may still use PasswordText
        (digest_token("dora", "dora-pw", clock), dora),
        (digest_token("dora", "wrong", clock), None),
        (digest_token("bob", "bob-pw", clock), None),  # no digest secret kept: digest impossible
        (digest_token("nobody", "x", clock), None),
    ]
    for token, expected in cases:
        assert registry.authenticate(token) == expected == memory.authenticate(token), token

    # An unknown user costs one scrypt, like a wrong password.
    calls: list[str] = []
    real = passwords.hash_password

    def counting(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
        calls.append(password)
        return real(password, salt)

    monkeypatch.setattr(passwords, "hash_password", counting)
    for token in (text_token("nobody", "pw"), text_token("bob", "wrong"), text_token("bob", "bob-pw")):
        calls.clear()
        registry.authenticate(token)
        assert calls == [token.password], token.username


def test_a_password_changed_during_the_check_is_refused(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.add_user("bob", "old-pw", roles=["admin"])
    real = passwords.hash_password

    def slow_check(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
        result = real(password, salt)
        if password == "old-pw":  # the check passes, but meanwhile the password changes
            monkeypatch.setattr(passwords, "hash_password", real)
            registry.set_password("bob", "new-pw")
        return result

    registry.authenticate(text_token("warm", "up"))  # computes the dummy hash first
    monkeypatch.setattr(passwords, "hash_password", slow_check)
    assert registry.authenticate(text_token("bob", "old-pw")) is None
    assert registry.authenticate(text_token("bob", "new-pw")) is not None


# ---------------------------------------------------------------------- the password cache


@pytest.fixture
def kdf_runs(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the registry runs scrypt on from now on (its dummy hash is made first)."""
    registry.authenticate(text_token("warm-up", "x"))
    runs: list[str] = []
    real = passwords.hash_password

    def counting(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
        runs.append(password)
        return real(password, salt)

    monkeypatch.setattr(passwords, "hash_password", counting)
    return runs


def test_password_record_is_the_stored_verifier_and_the_current_principal(
        registry: Registry, url: str, kdf_runs: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    registry.add_role("staff")
    registry.add_user("bob", "bob-pw", roles=["admin", "staff"], claims={EMAIL: ["bob@example.org"], DEPT: ["x", "y"]})
    registry.add_user("dora", "dora-pw", digest_secret=True)
    assert isinstance(registry, PasswordRecords)
    transactions: list[object] = []
    run = registry._db.run

    def counted(kind: Any, work: Any) -> Any:
        transactions.append(kind)
        return run(kind, work)

    monkeypatch.setattr(registry._db, "run", counted)
    kdf_runs.clear()

    record = registry.password_record("bob")
    assert record is not None and len(transactions) == 1  # row, roles and claims: one snapshot
    verifier, principal = record
    assert principal == Principal("bob", frozenset({"admin", "staff"}), {EMAIL: ("bob@example.org",), DEPT: ("x", "y")})
    kdf, salt, digest = raw(url, "SELECT kdf, salt, password_hash FROM users WHERE name = ?", ("bob",))[0]
    assert kdf.encode() in verifier and bytes(salt) in verifier and bytes(digest) in verifier
    for unknown in ("nobody", "bob ", "BOB", "no\0body", ""):
        assert registry.password_record(unknown) is None
    dora = registry.password_record("dora")
    assert dora is not None and dora[1] == Principal("dora", frozenset(), {})
    assert b"dora-pw" not in dora[0]  # the digest secret stays in the table
    assert kdf_runs == []  # nothing above ran the KDF
    assert registry.authenticate(text_token("bob", "bob-pw")) == principal

    def verifier_of(name: str) -> bytes:
        current = registry.password_record(name)
        assert current is not None
        return current[0]

    # every password change gives a new verifier, even to the same password, digest user or not
    seen = {verifier, dora[0]}
    for change in (lambda: registry.set_password("bob", "bob-pw-2"),
                   lambda: registry.set_password("bob", "bob-pw-2"),
                   lambda: registry.set_password("bob", "bob-pw-3", digest_secret=True),
                   lambda: registry.set_password("dora", "dora-pw"),
                   lambda: registry.set_password("dora", "dora-pw-2", digest_secret=False)):
        change()
        now = {verifier_of("bob"), verifier_of("dora")}
        assert len(now - seen) == 1, "exactly the changed user's verifier is new"
        seen |= now
    # roles and claims are read as they are now; they leave the verifier alone
    before = verifier_of("bob")
    registry.revoke_role("bob", "admin")
    registry.unset_claim("bob", DEPT)
    assert registry.password_record("bob") == (before, Principal("bob", frozenset({"staff"}),
                                                                 {EMAIL: ("bob@example.org",)}))
    registry.remove_user("bob")
    assert registry.password_record("bob") is None


def test_the_password_cache_over_the_registry_skips_only_the_kdf(
        registry: Registry, kdf_runs: list[str], clock: FixedClock) -> None:
    registry.add_role("staff")
    registry.add_user("bob", "bob-pw", roles=["admin", "staff"], claims={EMAIL: ["bob@example.org"]})
    registry.add_user("dora", "dora-pw", roles=["admin"], digest_secret=True)
    cached = CachedUserStore(registry)
    bob = Principal("bob", frozenset({"admin", "staff"}), {EMAIL: ("bob@example.org",)})
    kdf_runs.clear()

    assert cached.authenticate(text_token("bob", "bob-pw")) == bob and kdf_runs == ["bob-pw"]
    for _ in range(3):
        assert cached.authenticate(text_token("bob", "bob-pw")) == bob
    assert kdf_runs == ["bob-pw"] and len(cached) == 1

    # a wrong password, or an unknown user, pays the KDF every time and is never kept
    kdf_runs.clear()
    for _ in range(2):
        assert cached.authenticate(text_token("bob", "wrong")) is None
        assert cached.authenticate(text_token("nobody", "bob-pw")) is None
    assert kdf_runs == ["wrong", "bob-pw"] * 2 and len(cached) == 1

    # a revoked role and a changed claim count at the next request, still without the KDF
    registry.revoke_role("bob", "admin")
    registry.set_claim("bob", EMAIL, ["b@example.org"])
    assert cached.authenticate(text_token("bob", "bob-pw")) == Principal("bob", frozenset({"staff"}),
                                                                           {EMAIL: ("b@example.org",)})
    assert kdf_runs == ["wrong", "bob-pw"] * 2

    # a password change (what `wstrust-wsgi user passwd` does) counts at once: the old
    # password is checked against the new hash, not answered from the cache
    registry.set_password("bob", "bob-pw-2")
    kdf_runs.clear()
    assert cached.authenticate(text_token("bob", "bob-pw")) is None and kdf_runs == ["bob-pw"]
    assert cached.authenticate(text_token("bob", "bob-pw-2")) is not None
    assert cached.authenticate(text_token("bob", "bob-pw-2")) is not None
    assert kdf_runs == ["bob-pw", "bob-pw-2"]
    registry.set_password("bob", "bob-pw-2")  # the same password again: a new salt, a new check
    kdf_runs.clear()
    assert cached.authenticate(text_token("bob", "bob-pw-2")) is not None and kdf_runs == ["bob-pw-2"]

    # PasswordDigest goes to the registry every time; nothing is kept for it
    entries = len(cached)
    for _ in range(2):
        assert cached.authenticate(digest_token("dora", "dora-pw", clock)) == Principal("dora", frozenset({"admin"}))
        assert cached.authenticate(digest_token("dora", "wrong", clock)) is None
    assert len(cached) == entries

    registry.remove_user("bob")
    assert cached.authenticate(text_token("bob", "bob-pw-2")) is None


# ---------------------------------------------------------------------- a running STS


@pytest.mark.parametrize("password_cache", [False, True], ids=["uncached", "cached"])
def test_a_running_sts_honours_every_change_at_the_next_request(
        registry: Registry, sts_keys: KeyFiles, clock: FixedClock, password_cache: bool) -> None:
    registry.add_user("carol", "carol-pw", roles=["admin"], claims={EMAIL: ["carol@example.org"]})
    registry.add_relying_party(RelyingParty(SERVICE_URL))
    users = CachedUserStore(registry) if password_cache else registry
    sts = TokenService(signing_key=sts_keys.load(), users=users, relying_parties=registry, settings=registry,
                       clock=clock, settings_ttl=0)
    client = StsClient(STS_URL, username="carol", password="carol-pw", transport=WSGITransport(sts), clock=clock)

    def refused(code: str) -> None:
        with pytest.raises(RemoteFault) as fault:
            client.request_token(SERVICE_URL)
        assert fault.value.local_code == code

    first = client.request_token(SERVICE_URL)
    assert first.expires - first.created == timedelta(minutes=5)  # type: ignore[operator]
    assert b"carol@example.org" in first.assertion and ISSUER.encode() in first.assertion

    registry.update_settings(default_lifetime=timedelta(minutes=2), issuer="urn:renamed",
                             signature_algorithm="rsa-sha512")
    registry.set_claim("carol", EMAIL, ["c@example.org"])
    second = client.request_token(SERVICE_URL)
    assert second.expires - second.created == timedelta(minutes=2)  # type: ignore[operator]
    assert b"urn:renamed" in second.assertion and b"rsa-sha512" in second.assertion
    assert b"c@example.org" in second.assertion and b"carol@example.org" not in second.assertion

    registry.remove_relying_party(SERVICE_URL)
    refused("InvalidRequest")
    registry.add_relying_party(RelyingParty(SERVICE_URL, token_type="1.1", lifetime=timedelta(seconds=45),
                                            claims=frozenset()))
    third = client.request_token(SERVICE_URL)
    assert third.expires - third.created == timedelta(seconds=45)  # type: ignore[operator]
    assert ns.SAML1.encode() in third.assertion and b"c@example.org" not in third.assertion

    registry.revoke_role("carol", "admin")
    refused("RequestFailed")
    registry.add_role("token-users")
    registry.grant_role("carol", "token-users")
    registry.update_settings(allowed_roles=["admin", "token-users"])
    client.request_token(SERVICE_URL)

    registry.set_password("carol", "changed")
    refused("FailedAuthentication")
    registry.remove_user("carol")
    refused("FailedAuthentication")


# ---------------------------------------------------------------------- schema versions


def _v2(tx: Any) -> None:
    tx.execute("ALTER TABLE users ADD COLUMN note TEXT")
    tx.execute("UPDATE users SET note = 'migrated'")


def _v3_fails_half_way(tx: Any) -> None:
    tx.execute("ALTER TABLE users ADD COLUMN doomed TEXT")
    raise RuntimeError("migration 3 failed half-way")


def test_an_older_schema_is_upgraded_once_on_open_even_by_racing_workers(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Registry.open(url) as registry:
        registry.init_schema(issuer=ISSUER)
        registry.add_user("bob", "pw", roles=["admin"])
    assert [row[0] for row in raw(url, "SELECT version FROM schema_version")] == ALL_VERSIONS

    # This code now ships one version more; eight workers open the older database at once.
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + (schema.Migration(NEXT, "user notes", _v2),))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            with Registry.open(url) as opened:
                assert opened.get_user("bob") == UserInfo("bob", ("admin",), {}, False)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(row[0] for row in raw(url, "SELECT version FROM schema_version")) == [*ALL_VERSIONS, NEXT]
    assert raw(url, "SELECT name, note FROM users") == [("bob", "migrated")]

    # A failing migration leaves the version before it exactly as it was.
    monkeypatch.setattr(schema, "MIGRATIONS",
                        schema.MIGRATIONS + (schema.Migration(NEXT + 1, "doomed", _v3_fails_half_way),))
    with pytest.raises(RuntimeError, match="half-way"):
        Registry.open(url)
    assert sorted(row[0] for row in raw(url, "SELECT version FROM schema_version")) == [*ALL_VERSIONS, NEXT]
    assert "doomed" not in columns(url, "users") and "note" in columns(url, "users")


def test_a_schema_newer_than_the_code_is_refused(registry: Registry, url: str) -> None:
    raw(url, "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
        (99, "from the future", "2099-01-01T00:00:00+00:00"))
    with pytest.raises(ConfigurationError, match="schema version 99 is newer"):
        Registry.open(url)
    with pytest.raises(ConfigurationError, match="newer"):
        registry.init_schema()


# ---------------------------------------------------------------------- concurrency

PROCESS_WRITERS = 3
THREAD_WRITERS = 2
ROUNDS = 8
WRITERS = PROCESS_WRITERS + THREAD_WRITERS
INITIAL = 1000  # settings before any writer: lifetime 1000 min, skew 1000 s, allowed roles {admin}


def _role(writer: int, round_: int) -> str:
    return f"w{writer}-r{round_}"


def _write(registry: Registry, writer: int) -> None:
    """One writer's rounds: every kind of change, several touching what other writers touch too."""
    for i in range(ROUNDS):
        role = _role(writer, i)
        registry.add_role(role)
        registry.add_user(f"w{writer}-u{i}", f"pw-{writer}-{i}", roles=[role], claims={DEPT: [f"w{writer}", str(i)]})
        registry.grant_role("shared", role)  # every writer adds roles and claims to one user
        registry.set_claim("shared", f"urn:test:w{writer}:{i}", [str(i)])
        k = 1 + writer * ROUNDS + i  # settings row and allowed roles change together
        registry.update_settings(default_lifetime=timedelta(minutes=k), clock_skew=timedelta(seconds=k),
                                 allowed_roles=["admin", role])


def _check_settings(settings: StsSettings) -> None:
    """A snapshot with the row of one update and the allowed roles of another would be torn."""
    k = int(settings.clock_skew.total_seconds())
    assert settings.default_lifetime == timedelta(minutes=k), settings
    if k == INITIAL:
        assert settings.allowed_roles == {"admin"}, settings
    else:
        writer, i = divmod(k - 1, ROUNDS)
        assert settings.allowed_roles == {"admin", _role(writer, i)}, settings


def _read(registry: Registry, stop: Callable[[], bool], counts: list[int]) -> None:
    """Read and authenticate until told to stop (at most 3000 rounds)."""
    for _ in range(3000):
        if stop():
            return
        _check_settings(registry.get_settings())
        principal = registry.authenticate(text_token("shared", "shared-pw"))
        assert principal is not None and principal.name == "shared"
        assert registry.get(SERVICE_URL) == RelyingParty(SERVICE_URL)
        shared = registry.get_user("shared")
        assert shared is not None and len(shared.claims) <= WRITERS * ROUNDS
        counts.append(1)


def _process_main(registry: Registry, role: str, index: int, go: Any, done: Any, results: Any) -> None:
    """A forked child: uses the parent's Registry object, which must open its own connection."""
    start = end = 0.0
    try:
        assert go.wait(60), "never told to start"
        start = time.time()
        if role == "writer":
            _write(registry, index)
        else:
            counts: list[int] = []
            _read(registry, done.is_set, counts)
            assert counts, "the reader process never read"
        end = time.time()
        results.put((role, index, None, start, end))
    except BaseException:
        results.put((role, index, traceback.format_exc(), start, end))


def _cheap_hash(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """scrypt at 1/64 of the cost: this test is about transactions, not the KDF (and forks inherit it)."""
    salt = salt if salt is not None else os.urandom(16)
    return salt, hashlib.scrypt(password.encode(), salt=salt, n=2**8, r=8, p=1, dklen=32)


def test_racing_writers_in_threads_and_processes_lose_nothing_and_readers_see_no_torn_state(
        registry: Registry, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "hash_password", _cheap_hash)
    registry.add_user("shared", "shared-pw")
    registry.add_relying_party(RelyingParty(SERVICE_URL))
    registry.update_settings(default_lifetime=timedelta(minutes=INITIAL), clock_skew=timedelta(seconds=INITIAL))
    registry.get_settings()  # the parent's connection exists before the fork: children must not use it

    context = multiprocessing.get_context("fork")  # as gunicorn forks its workers
    go, done = context.Event(), context.Event()
    results = context.Queue()
    processes = [context.Process(target=_process_main, args=(registry, "writer", w, go, done, results))
                 for w in range(PROCESS_WRITERS)]
    processes.append(context.Process(target=_process_main, args=(registry, "reader", 0, go, done, results)))
    for process in processes:
        process.start()  # before any thread starts: fork a single-threaded parent

    errors: list[str] = []
    reads: list[int] = []
    windows: list[tuple[float, float]] = []  # each writer's (start, end)

    def thread_main(target: Callable[[], None], label: str) -> None:
        try:
            assert go.wait(60)
            start = time.time()
            target()
            if "writer" in label:
                windows.append((start, time.time()))
        except BaseException:
            errors.append(f"{label}:\n{traceback.format_exc()}")

    writers = [threading.Thread(target=thread_main, args=(lambda w=w: _write(registry, w), f"thread writer {w}"))
               for w in range(PROCESS_WRITERS, WRITERS)]
    readers = [threading.Thread(target=thread_main,
                                args=(lambda: _read(registry, done.is_set, reads), f"thread reader {r}"))
               for r in range(2)]
    for thread in writers + readers:
        thread.start()
    started = time.monotonic()
    go.set()  # every writer and reader starts at once
    for thread in writers:
        thread.join(timeout=90)
    outcomes = [results.get(timeout=90) for _ in range(PROCESS_WRITERS)]  # the writer processes
    done.set()
    outcomes.append(results.get(timeout=90))  # the reader process
    for thread in readers:
        thread.join(timeout=90)
    for process in processes:
        process.join(timeout=30)
    elapsed = time.monotonic() - started

    errors += [f"{role} process {index}:\n{trace}" for role, index, trace, _, _ in outcomes if trace]
    assert not errors, "\n".join(errors)
    windows += [(start, end) for role, _, _, start, end in outcomes if role == "writer"]
    assert len(windows) == WRITERS
    assert max(start for start, _ in windows) < min(end for _, end in windows), "the writers did not overlap"
    assert all(not thread.is_alive() for thread in writers + readers)
    assert [process.exitcode for process in processes] == [0] * len(processes)
    assert reads, "the reader threads never read"

    # Nothing lost: every user, role, grant and claim of every writer is there.
    users = {user.name: user for user in registry.list_users()}
    assert len(users) == 1 + WRITERS * ROUNDS
    all_roles = {_role(w, i) for w in range(WRITERS) for i in range(ROUNDS)}
    assert set(registry.list_roles()) == all_roles | {"admin"}
    for w in range(WRITERS):
        for i in range(ROUNDS):
            assert users[f"w{w}-u{i}"] == UserInfo(f"w{w}-u{i}", (_role(w, i),), {DEPT: (f"w{w}", str(i))}, False)
            assert registry.authenticate(text_token(f"w{w}-u{i}", f"pw-{w}-{i}")) is not None
    shared = users["shared"]
    assert set(shared.roles) == all_roles
    assert shared.claims == {f"urn:test:w{w}:{i}": (str(i),) for w in range(WRITERS) for i in range(ROUNDS)}
    assert raw(url, "SELECT COUNT(*) FROM user_roles")[0][0] == 2 * WRITERS * ROUNDS
    assert raw(url, "SELECT COUNT(*) FROM user_claims")[0][0] == 3 * WRITERS * ROUNDS
    final = registry.get_settings()
    _check_settings(final)
    assert 1 <= final.clock_skew.total_seconds() <= WRITERS * ROUNDS
    print(f"\n{url.split(':')[0]}: {WRITERS * ROUNDS * 5} writes by {WRITERS} writers, "
          f"{len(reads)} reader-thread rounds, {elapsed:.1f} s")


def test_changes_racing_the_removal_of_their_user_succeed_or_fail_cleanly(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grant, a claim or a password change racing the user's removal and re-creation.

    Each either lands on the user as it exists at that moment or reports the
    user unknown; never a constraint error from the database, never a role
    or claim left pointing at a removed user.
    """
    monkeypatch.setattr(passwords, "hash_password", _cheap_hash)
    registry.add_role("ops")
    registry.add_user("victim", "pw")
    errors: list[str] = []
    outcomes = {"done": 0, "unknown": 0}
    lock = threading.Lock()

    def churn() -> None:
        for _ in range(30):
            registry.remove_user("victim")
            registry.add_user("victim", "pw")

    def change(action: Callable[[], None]) -> None:
        for _ in range(60):
            try:
                action()
                outcome = "done"
            except RegistryError as exc:
                assert "unknown user 'victim'" in str(exc), exc
                outcome = "unknown"
            with lock:
                outcomes[outcome] += 1

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException:
            errors.append(traceback.format_exc())

    actions: list[Callable[[], None]] = [
        lambda: registry.grant_role("victim", "ops"),
        lambda: registry.set_claim("victim", EMAIL, ["v@example.org"]),
        lambda: registry.set_password("victim", "other"),
    ]
    threads = [threading.Thread(target=guarded, args=(churn,))]
    threads += [threading.Thread(target=guarded, args=(lambda a=a: change(a),)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, "\n".join(errors)
    assert outcomes["done"] + outcomes["unknown"] == 180
    assert registry.get_user("victim") is not None
    # nothing refers to a removed user
    victims = {row[0] for row in raw_registry(registry, "SELECT id FROM users")}
    assert {row[0] for row in raw_registry(registry, "SELECT user_id FROM user_roles")} <= victims
    assert {row[0] for row in raw_registry(registry, "SELECT user_id FROM user_claims")} <= victims


def raw_registry(registry: Registry, query: str) -> list[tuple[Any, ...]]:
    """``query`` run through the registry's own connection, in a read transaction."""
    return registry._db.run(Kind.READ, lambda tx: tx.all(query))


def test_sqlite_lock_contention_is_waited_out_never_reported(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection holds the write lock far longer than the busy timeout: the change still lands."""
    url = f"sqlite://{tmp_path}/registry.db"
    with Registry.open(url) as registry:
        registry.init_schema(issuer=ISSUER)
        monkeypatch.setattr(db, "_BUSY_TIMEOUT", 0.02)  # SQLite gives up almost at once...
        registry.close()  # (new connections take the short timeout)
        holder = sqlite3.connect(tmp_path / "registry.db", isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO roles (name) VALUES ('held')")
        release = threading.Timer(0.8, lambda: holder.execute("COMMIT"))
        release.start()
        started = time.monotonic()
        try:
            registry.add_role("waited")  # ...so the registry's own retries carry it
            registry.update_settings(allowed_roles=["admin", "waited"])
        finally:
            release.join()
            holder.close()
        assert time.monotonic() - started >= 0.7
        assert registry.list_roles() == ["admin", "held", "waited"]


def test_postgresql_connections_are_per_thread_and_reopened_after_a_failure(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with Registry.open(url) as registry:
        registry.init_schema(issuer=ISSUER)
        backends: set[int] = set()
        lock = threading.Lock()

        def use() -> None:
            registry.get_settings()
            held = registry._db._local.held
            with lock:
                backends.add(held.conn.info.backend_pid)

        threads = [threading.Thread(target=use) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        use()
        assert len(backends) == 4  # one connection per thread

        # The server drops every connection of the registry (a restart, a failover).
        killed = raw(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert killed and all(row[0] for row in killed)
        assert registry.get_settings().issuer == ISSUER  # a new connection, transparently
        registry.add_role("after-the-failure")
        assert "after-the-failure" in registry.list_roles()
