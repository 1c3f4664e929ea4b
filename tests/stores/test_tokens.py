"""The issued-token store: the same rules in memory, the SQLite and PostgreSQL registry, and Redis."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _support import ISSUER
from _support.pg import registry_url
from wstrust_wsgi.errors import ConfigurationError, StoreUnavailable
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.tokens import (
    CANCELLED,
    ISSUED,
    RENEWED,
    IssuedTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    RegistryTokenStore,
    TokenRecord,
    token_store_from_url,
)

if TYPE_CHECKING:
    from _support.redis_server import RedisServer

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
#: Two IDs that a 32-bit hash could confuse are kept apart: each is its own key, in full.
LONG_ID = "_" + "a1" * 40


def token(assertion_id: str = LONG_ID, **changes: object) -> TokenRecord:
    values: dict[str, object] = dict(subject="admin", relying_party="http://127.0.0.1:8081/services/echo",
                                     token_type="2.0", key_type="http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer",
                                     issued=T0, expires=T0 + timedelta(minutes=5), renew_allowed=False,
                                     renew_after_expiry=True)
    values.update(changes)
    return TokenRecord(assertion_id, **values)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IssuedTokenStore]:
    if request.param == "memory":
        yield MemoryTokenStore()
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.client().flushdb()
        redis_store = RedisTokenStore(server.url)
        yield redis_store
        redis_store.close()
    else:
        registry = Registry.open(registry_url(request.param, request, tmp_path))
        registry.init_schema(issuer=ISSUER)
        yield RegistryTokenStore(registry)
        registry.close()


def test_a_record_comes_back_whole_by_its_full_id_until_its_window_ends(store: IssuedTokenStore) -> None:
    keep_until = T0 + timedelta(minutes=35)
    store.record(token(), keep_until=keep_until, now=T0)
    store.record(token(LONG_ID[:-1] + "b", subject="alice"), keep_until=keep_until, now=T0)
    assert store.get(LONG_ID, T0) == token()
    assert store.get(LONG_ID[:-1] + "b", T0).subject == "alice"  # type: ignore[union-attr]
    assert store.get(LONG_ID[:-1], T0) is None and store.get(LONG_ID.upper(), T0) is None
    assert store.get(LONG_ID, keep_until - timedelta(microseconds=1)) is not None
    assert store.get(LONG_ID, keep_until) is None  # forgotten after the renewal window


def test_the_state_moves_once_from_issued(store: IssuedTokenStore) -> None:
    store.record(token(), keep_until=T0 + timedelta(minutes=35), now=T0)
    assert store.get(LONG_ID, T0).state == ISSUED  # type: ignore[union-attr]
    assert store.transition(LONG_ID, CANCELLED, now=T0)
    assert not store.transition(LONG_ID, RENEWED, now=T0) and not store.transition(LONG_ID, CANCELLED, now=T0)
    assert store.get(LONG_ID, T0).state == CANCELLED  # type: ignore[union-attr]
    assert not store.transition("_unknown", CANCELLED, now=T0)
    store.record(token("_other"), keep_until=T0 + timedelta(minutes=1), now=T0)
    assert not store.transition("_other", RENEWED, now=T0 + timedelta(minutes=1))  # past its window
    with pytest.raises(ValueError, match="state"):
        store.transition(LONG_ID, ISSUED, now=T0)


def test_racing_renewals_of_one_token_retire_it_once(store: IssuedTokenStore) -> None:
    store.record(token(), keep_until=T0 + timedelta(minutes=35), now=T0)
    barrier = threading.Barrier(6)
    won: list[bool] = []

    def renew() -> None:
        barrier.wait(timeout=30)
        won.append(store.transition(LONG_ID, RENEWED, now=T0))

    threads = [threading.Thread(target=renew) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(won) == [False] * 5 + [True]


def test_a_redis_that_is_down_fails_closed(redis_server: RedisServer) -> None:
    store = RedisTokenStore("redis://127.0.0.1:1/0", socket_timeout=0.5)
    with pytest.raises(StoreUnavailable, match="Redis token store unavailable"):
        store.get(LONG_ID, T0)
    with pytest.raises(StoreUnavailable):
        store.record(token(), keep_until=T0 + timedelta(minutes=1), now=T0)


def test_store_urls(tmp_path: Path) -> None:
    assert isinstance(token_store_from_url("memory:"), MemoryTokenStore)
    assert isinstance(token_store_from_url("redis://127.0.0.1:1/0"), RedisTokenStore)
    with Registry.open(f"sqlite://{tmp_path}/r.db") as registry:
        assert isinstance(token_store_from_url("registry", registry), RegistryTokenStore)
    for bad in ("", "sqlite:///x.db", "registry"):
        with pytest.raises(ConfigurationError, match="token store"):
            token_store_from_url(bad)


def test_a_holder_of_key_record_keeps_its_proof_and_the_claims_asked(store: IssuedTokenStore) -> None:
    symmetric = token(key_type="http://docs.oasis-open.org/ws-sx/ws-trust/200512/SymmetricKey",
                      proof="bm9uY2UgYW5kIGNpcGhlcnRleHQ=", proof_wrapped_by="ab" * 32,
                      claims=(("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", False),
                              ("urn:example:claims:department", True)))
    public = token(LONG_ID[:-1] + "p", key_type="http://docs.oasis-open.org/ws-sx/ws-trust/200512/PublicKey",
                   proof="MIIB", claims=())
    for record in (symmetric, public):
        store.record(record, keep_until=T0 + timedelta(minutes=35), now=T0)
    assert store.get(LONG_ID, T0) == symmetric
    assert store.get(public.assertion_id, T0) == public  # no claims asked of a known dialect: an empty set, kept
    assert store.transition(LONG_ID, RENEWED, now=T0)
    assert store.get(LONG_ID, T0) == replace(symmetric, state=RENEWED)  # the state moves, the rest stays
    assert "bm9uY2U" not in repr(symmetric)  # the wrapped key is not shown in logs


def test_a_record_written_without_proof_or_claims_reads_back_without_them(store: IssuedTokenStore) -> None:
    store.record(token(), keep_until=T0 + timedelta(minutes=35), now=T0)
    found = store.get(LONG_ID, T0)
    assert found is not None and (found.proof, found.proof_wrapped_by, found.claims) == (None, None, None)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_version_7_record_reads_back_after_migration_8_without_proof_or_claims(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token recorded before version 8 keeps no proof: the record still reads, and Renew says it cannot
    renew that holder-of-key token (tests/sts/test_lifecycle.py)."""
    from wstrust_wsgi.stores.sql import schema
    from wstrust_wsgi.stores.sql.db import Kind

    url = registry_url(kind, request, tmp_path)
    with monkeypatch.context() as older:
        older.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 7))
        with Registry.open(url) as registry:
            registry.init_schema(issuer=ISSUER)
            registry._db.run(Kind.WRITE, lambda tx: tx.execute(  # what version 7 of the code wrote
                "INSERT INTO issued_tokens (id, subject, relying_party, token_type, key_type, issued_us, expires_us, "
                "renew_allowed, renew_after_expiry, state, keep_until_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (LONG_ID, "admin", "http://127.0.0.1:8081/services/echo", "2.0",
                 "http://docs.oasis-open.org/ws-sx/ws-trust/200512/SymmetricKey", 0, 1, True, False, ISSUED,
                 10**18)))
    with Registry.open(url) as registry:
        found = RegistryTokenStore(registry).get(LONG_ID, T0)
    assert found is not None and found.key_type.endswith("/SymmetricKey")
    assert (found.proof, found.proof_wrapped_by, found.claims) == (None, None, None)


#: Two digests that agree in their first 255 bits: only the full SHA-256 finds a record.
DIGEST = hashlib.sha256(b"<xenc:EncryptedData/>").hexdigest()
NEAR = DIGEST[:-1] + ("0" if DIGEST[-1] != "0" else "1")


def test_an_encrypted_token_is_found_by_the_full_digest_of_its_bytes_until_its_window_ends(
        store: IssuedTokenStore) -> None:
    keep_until = T0 + timedelta(minutes=35)
    store.record(token(encrypted_sha256=DIGEST), keep_until=keep_until, now=T0)
    store.record(token(LONG_ID[:-1] + "b"), keep_until=keep_until, now=T0)  # in clear: no digest
    assert store.find_encrypted(DIGEST, T0) == token(encrypted_sha256=DIGEST) == store.get(LONG_ID, T0)
    for wrong in (NEAR, DIGEST[:16], DIGEST[:32], DIGEST.upper(), DIGEST + "0", "", LONG_ID):
        assert store.find_encrypted(wrong, T0) is None, wrong
    assert store.transition(LONG_ID, CANCELLED, now=T0)
    assert store.find_encrypted(DIGEST, T0).state == CANCELLED  # type: ignore[union-attr]  # one record, two ways
    assert store.find_encrypted(DIGEST, keep_until - timedelta(microseconds=1)) is not None
    assert store.find_encrypted(DIGEST, keep_until) is None  # forgotten with its record


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_digest_names_only_the_record_that_keeps_it(kind: str, request: pytest.FixtureRequest) -> None:
    """A record written again under the same ID with another digest is not found by the old one (memory and
    Redis keep the digest apart from the record; the SQL primary key refuses a second record of an ID)."""
    store: IssuedTokenStore = MemoryTokenStore()
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.client().flushdb()
        store = RedisTokenStore(server.url)
    store.record(token(encrypted_sha256=DIGEST), keep_until=T0 + timedelta(minutes=35), now=T0)
    store.record(token(encrypted_sha256=NEAR), keep_until=T0 + timedelta(minutes=35), now=T0)
    assert store.find_encrypted(DIGEST, T0) is None
    assert store.find_encrypted(NEAR, T0) == token(encrypted_sha256=NEAR)


def test_the_redis_digest_key_expires_with_the_record(redis_server: RedisServer) -> None:
    server = redis_server
    server.client().flushdb()
    store = RedisTokenStore(server.url)
    store.record(token(encrypted_sha256=DIGEST), keep_until=T0 + timedelta(minutes=35), now=T0)
    client = server.client()
    assert client.hget(f"wstrust:token-digest:{DIGEST}", "id") == LONG_ID.encode()
    ttl = client.pttl(f"wstrust:token-digest:{DIGEST}")
    assert 0 < ttl <= timedelta(minutes=35) // timedelta(milliseconds=1)
    assert abs(ttl - client.pttl(f"wstrust:token:{LONG_ID}")) < 1000
    assert store.get(f"-digest:{DIGEST}", T0) is None  # an ID cannot name the digest key as a record
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_9_adds_the_indexed_digest_column_to_version_8_records(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version 8 record reads back without a digest (an encrypted token recorded then is found by its ID
    only); the column is indexed, so the lookup of a digest is not a table scan."""
    from wstrust_wsgi.stores.sql import schema
    from wstrust_wsgi.stores.sql.db import Kind

    url = registry_url(kind, request, tmp_path)
    with monkeypatch.context() as older:
        older.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 8))
        with Registry.open(url) as registry:
            registry.init_schema(issuer=ISSUER)
            registry._db.run(Kind.WRITE, lambda tx: tx.execute(  # what version 8 of the code wrote
                "INSERT INTO issued_tokens (id, subject, relying_party, token_type, key_type, issued_us, expires_us, "
                "renew_allowed, renew_after_expiry, state, proof, proof_wrapped_by, claims, keep_until_us) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (LONG_ID, "admin", "http://127.0.0.1:8081/services/echo", "2.0",
                 "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer", 0, 1, True, False, ISSUED, None, None,
                 None, 10**18)))
    with Registry.open(url) as registry:
        store = RegistryTokenStore(registry)
        found = store.get(LONG_ID, T0)
        assert found is not None and found.encrypted_sha256 is None
        assert store.find_encrypted(DIGEST, T0) is None
        store.record(token(LONG_ID[:-1] + "e", encrypted_sha256=DIGEST), keep_until=T0 + timedelta(minutes=35),
                     now=T0)
        assert store.find_encrypted(DIGEST, T0).assertion_id == LONG_ID[:-1] + "e"  # type: ignore[union-attr]
        indexes = registry._db.run(Kind.READ, lambda tx: tx.all(
            "SELECT name FROM sqlite_master WHERE type = 'index'" if kind == "sqlite"
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'issued_tokens'"))
    assert "issued_tokens_encrypted_sha256" in {row[0] for row in indexes}
