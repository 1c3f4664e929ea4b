"""stores/replay.py: replay caches shared by workers and hosts (SQLite, Redis), and their callers failing closed.

Every backend runs for real: SQLite files under tmp_path, and a real
``redis-server`` on a free loopback port, started and stopped by the tests (a
missing redis-server fails them). The real-process tests run the demo STS and
the demo echo service under gunicorn with several workers, or two instances
sharing one Redis, and replay one request over real HTTP, one new connection
per request so that different workers answer. All traffic stays on 127.0.0.1;
every wait is bounded.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _support import ISSUER, ROOT, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.net import free_port
from _support.redis_server import REDIS_SERVER, RedisServer
from demo_service.app import echo
from demo_sts import roundtrip
from wstrust_wsgi import (
    ConfigurationError,
    IssuedToken,
    MemoryReplayCache,
    MemoryUserStore,
    RelyingParty,
    RelyingPartyMiddleware,
    RemoteFault,
    SigningKey,
    StsClient,
    TokenService,
    UrllibTransport,
    WSGITransport,
    call_service,
    parse_response,
)
from wstrust_wsgi.cli import ECHO_NS, echo_payload as _echo_payload
from wstrust_wsgi.errors import RequestFailed
from wstrust_wsgi.stores import ReplayCache
from wstrust_wsgi.stores.replay import RedisReplayCache, SQLiteReplayCache, replay_cache_from_url

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
#: Requests fired at once at a multi-worker server with the same message.
RACE = 16


def fresh_key() -> str:
    return f"test:{uuid.uuid4().hex}"


# ----------------------------------------------------------------- a real redis-server

@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server this test alone stops and starts."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------- the behaviour every backend shares

BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, ReplayCache]:
    if request.param == "memory":
        return "memory", MemoryReplayCache()
    if request.param == "sqlite":
        return "sqlite", SQLiteReplayCache(tmp_path / "replay.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    return "redis", RedisReplayCache(server.url)


def test_first_add_is_admitted_and_the_second_is_a_replay(backend: tuple[str, ReplayCache]) -> None:
    _, cache = backend
    key = fresh_key()
    assert cache.add(key, expires=T0 + timedelta(minutes=5), now=T0) is True
    assert cache.add(key, expires=T0 + timedelta(minutes=5), now=T0) is False
    assert cache.add(key, expires=T0 + timedelta(minutes=9), now=T0 + timedelta(minutes=4)) is False


def test_distinct_keys_do_not_affect_each_other(backend: tuple[str, ReplayCache]) -> None:
    _, cache = backend
    keys = [fresh_key() for _ in range(5)]
    assert [cache.add(k, expires=T0 + timedelta(minutes=5), now=T0) for k in keys] == [True] * 5
    assert [cache.add(k, expires=T0 + timedelta(minutes=5), now=T0) for k in keys] == [False] * 5
    assert cache.add(keys[0] + "x", expires=T0 + timedelta(minutes=5), now=T0) is True


def test_concurrent_adds_of_one_key_from_many_threads_admit_exactly_one(backend: tuple[str, ReplayCache]) -> None:
    _, cache = backend
    threads, rounds = 16, 12
    for _ in range(rounds):
        key = fresh_key()
        barrier = threading.Barrier(threads, timeout=30)

        def race() -> bool:
            barrier.wait()
            return cache.add(key, expires=T0 + timedelta(minutes=5), now=T0)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = [f.result(timeout=60) for f in [pool.submit(race) for _ in range(threads)]]
        assert results.count(True) == 1, results


@pytest.mark.parametrize("backend_name", ["memory", "sqlite"])
def test_entry_is_admitted_again_once_the_callers_clock_passes_its_expiry(backend_name: str, tmp_path: Path) -> None:
    cache: ReplayCache = MemoryReplayCache() if backend_name == "memory" else SQLiteReplayCache(tmp_path / "r.db")
    key = fresh_key()
    expires = T0 + timedelta(seconds=30)
    assert cache.add(key, expires=expires, now=T0) is True
    assert cache.add(key, expires=expires, now=expires - timedelta(milliseconds=1)) is False
    # at its expiry instant the entry is dead (live means expires > now)
    assert cache.add(key, expires=expires + timedelta(seconds=30), now=expires) is True
    assert cache.add(key, expires=expires + timedelta(seconds=30), now=expires) is False


# ----------------------------------------------------------------- SQLite

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 4), st.integers(-2, 8)),
                    min_size=1, max_size=40))
def test_sqlite_cache_agrees_with_a_dictionary_model(tmp_path: Path, ops: list[tuple[str, int, int]]) -> None:
    """Random sequences (key, clock step, lifetime), with a purge before every add, match a plain model."""
    cache = SQLiteReplayCache(tmp_path / "model.db", purge_every=1, purge_batch=2)
    prefix = uuid.uuid4().hex  # one file for all examples; keys of other examples never collide
    model: dict[str, datetime] = {}
    now = T0
    for name, step, lifetime in ops:
        now += timedelta(seconds=step)
        expires = now + timedelta(seconds=lifetime)
        live = name in model and model[name] > now
        if not live:
            model[name] = expires
        assert cache.add(prefix + name, expires=expires, now=now) is (not live), (name, now, model)


def test_sqlite_cache_is_shared_by_two_instances_on_one_file(tmp_path: Path) -> None:
    first, second = SQLiteReplayCache(tmp_path / "r.db"), SQLiteReplayCache(tmp_path / "r.db")
    key = fresh_key()
    assert first.add(key, expires=T0 + timedelta(minutes=5), now=T0) is True
    assert second.add(key, expires=T0 + timedelta(minutes=5), now=T0) is False


def test_sqlite_purge_deletes_a_bounded_batch_of_expired_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "r.db"
    cache = SQLiteReplayCache(path, purge_every=1, purge_batch=10)
    for index in range(50):
        assert cache.add(f"old{index}", expires=T0 + timedelta(seconds=1), now=T0)
    live_key = "live"
    assert cache.add(live_key, expires=T0 + timedelta(hours=1), now=T0)

    def rows() -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM replay").fetchone()[0])

    later = T0 + timedelta(minutes=1)
    assert rows() == 51
    assert cache.add("new0", expires=later + timedelta(minutes=5), now=later)
    assert rows() == 51 - 10 + 1  # ten dead rows purged, not all fifty
    for index in range(1, 6):
        cache.add(f"new{index}", expires=later + timedelta(minutes=5), now=later)
    assert rows() == 1 + 6  # every dead row gone; the live and the new ones stay
    assert cache.add(live_key, expires=later + timedelta(hours=1), now=later) is False


def test_sqlite_database_is_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    SQLiteReplayCache(tmp_path / "r.db")
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("path", ["", ":memory:", "file:replay.db?mode=memory"])
def test_sqlite_cache_refuses_a_path_that_is_not_a_shared_file(path: str) -> None:
    with pytest.raises(ConfigurationError, match="not a file path"):
        SQLiteReplayCache(path)


def test_sqlite_cache_refuses_at_construction_a_file_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot use") as info:
        SQLiteReplayCache(tmp_path / "no such dir" / "r.db")
    assert "no such dir" in str(info.value)


@pytest.mark.parametrize("options", [{"timeout": 0}, {"timeout": -1.0}, {"purge_every": 0}, {"purge_batch": 0}])
def test_sqlite_cache_refuses_bad_options(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="SQLiteReplayCache"):
        SQLiteReplayCache(tmp_path / "r.db", **options)


def _process_race(path: str, inherited: SQLiteReplayCache | None, keys: list[str],
                  barrier: Any, results: Any) -> None:
    """One racing process: its own cache on ``path`` (like a gunicorn worker) or the one it was forked with."""
    cache = inherited if inherited is not None else SQLiteReplayCache(path)
    won: list[bool | str] = []
    for key in keys:
        barrier.wait(30)
        try:
            won.append(cache.add(key, expires=T0 + timedelta(minutes=5), now=T0))
        except RequestFailed as exc:  # reported, so the parent's assertion shows it
            won.append(repr(exc))
    results.put((os.getpid(), won))


@pytest.mark.parametrize("how", ["own-cache-per-process", "cache-inherited-through-fork"])
def test_sqlite_concurrent_adds_of_one_key_from_many_processes_admit_exactly_one(tmp_path: Path, how: str) -> None:
    context = multiprocessing.get_context("fork")
    path = str(tmp_path / "r.db")
    parent_cache = SQLiteReplayCache(path)
    inherited = None
    if how == "cache-inherited-through-fork":
        assert parent_cache.add("opened-before-fork", expires=T0 + timedelta(minutes=5), now=T0)
        inherited = parent_cache  # its open connection must not be used by the children
    processes, keys = 6, [fresh_key() for _ in range(8)]
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_process_race, args=(path, inherited, keys, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=90) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)
    for index, key in enumerate(keys):
        column = [won[index] for _, won in outcomes]
        assert column.count(True) == 1 and column.count(False) == processes - 1, (key, column)
    # the parent's own connection still works after its children used the file
    assert parent_cache.add(keys[0], expires=T0 + timedelta(minutes=5), now=T0) is False


def test_sqlite_cache_raises_while_its_directory_is_gone_and_works_again_once_it_is_back(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    cache = SQLiteReplayCache(directory / "r.db")
    assert cache.add("a", expires=T0 + timedelta(minutes=5), now=T0)
    shutil.rmtree(directory)
    with pytest.raises(RequestFailed, match="unavailable") as info:
        cache.add("b", expires=T0 + timedelta(minutes=5), now=T0)
    assert info.value.reason != info.value.detail and "r.db" not in info.value.reason  # client-safe reason
    with pytest.raises(RequestFailed):  # still failing: the directory is still gone
        cache.add("b", expires=T0 + timedelta(minutes=5), now=T0)
    directory.mkdir()
    assert cache.add("b", expires=T0 + timedelta(minutes=5), now=T0) is True
    assert cache.add("b", expires=T0 + timedelta(minutes=5), now=T0) is False


def test_sqlite_cache_never_keeps_writing_to_a_replaced_file(tmp_path: Path) -> None:
    """Deleting the file under an open connection must not split the workers between two files."""
    path = tmp_path / "r.db"
    writer, other = SQLiteReplayCache(path), SQLiteReplayCache(path)
    assert writer.add("before", expires=T0 + timedelta(minutes=5), now=T0)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    key = fresh_key()
    assert writer.add(key, expires=T0 + timedelta(minutes=5), now=T0) is True
    # the other instance (another worker) sees the key in the file now at the path
    assert other.add(key, expires=T0 + timedelta(minutes=5), now=T0) is False


# ----------------------------------------------------------------- Redis

def test_redis_key_lives_for_expires_minus_callers_now_whatever_redis_clock_says(redis_server: RedisServer) -> None:
    cache = RedisReplayCache(redis_server.url)
    client = redis_server.client()
    for now in (datetime(2001, 1, 1, tzinfo=timezone.utc), datetime(2090, 1, 1, tzinfo=timezone.utc)):
        key = fresh_key()
        assert cache.add(key, expires=now + timedelta(minutes=5), now=now) is True
        ttl = client.pttl(cache.prefix + key)
        assert 0 < ttl <= 300_000
        assert cache.add(key, expires=now + timedelta(minutes=5), now=now) is False


def test_redis_entry_already_expired_at_callers_now_is_admitted_and_lives_at_least_1_ms(
    redis_server: RedisServer,
) -> None:
    cache = RedisReplayCache(redis_server.url)
    key = fresh_key()
    assert cache.add(key, expires=T0 - timedelta(seconds=1), now=T0) is True
    assert redis_server.client().pttl(cache.prefix + key) in (-2, 0, 1)  # gone or about to be


def test_redis_entry_is_admitted_again_once_redis_expired_it(redis_server: RedisServer) -> None:
    cache = RedisReplayCache(redis_server.url)
    client = redis_server.client()
    key = fresh_key()
    now = datetime.now(timezone.utc)
    assert cache.add(key, expires=now + timedelta(milliseconds=100), now=now) is True
    assert cache.add(key, expires=now + timedelta(milliseconds=100), now=now) is False
    deadline = time.monotonic() + 10
    while client.exists(cache.prefix + key) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not client.exists(cache.prefix + key)
    later = datetime.now(timezone.utc)
    assert cache.add(key, expires=later + timedelta(minutes=5), now=later) is True


def test_redis_prefix_separates_caches_sharing_one_database(redis_server: RedisServer) -> None:
    nonces = RedisReplayCache(redis_server.url, prefix="sts:nonce:")
    assertions = RedisReplayCache(redis_server.url, prefix="svc:assertion:")
    key = fresh_key()
    assert nonces.add(key, expires=T0 + timedelta(minutes=5), now=T0) is True
    assert assertions.add(key, expires=T0 + timedelta(minutes=5), now=T0) is True
    assert redis_server.client().exists(f"sts:nonce:{key}", f"svc:assertion:{key}") == 2


def test_redis_cache_uses_a_client_object_it_is_given(redis_server: RedisServer) -> None:
    client = redis_server.client()
    cache = RedisReplayCache(client, prefix="given:")
    key = fresh_key()
    assert cache.client is client
    assert cache.add(key, expires=T0 + timedelta(minutes=5), now=T0) is True
    assert client.exists(f"given:{key}") == 1


def test_redis_cache_raises_while_redis_is_down_and_recovers_on_its_own(own_redis: RedisServer) -> None:
    cache = RedisReplayCache(own_redis.url)
    assert cache.add("before", expires=T0 + timedelta(minutes=5), now=T0)  # a pooled connection now exists
    own_redis.stop()
    with pytest.raises(RequestFailed, match="Redis replay cache unavailable") as info:
        cache.add("during", expires=T0 + timedelta(minutes=5), now=T0)
    assert "Connection" in info.value.detail and str(own_redis.port) not in info.value.reason
    own_redis.start()
    # the pooled connection died with the old server; the very next call must still succeed
    assert cache.add("after", expires=T0 + timedelta(minutes=5), now=T0) is True
    assert cache.add("during", expires=T0 + timedelta(minutes=5), now=T0) is True  # never recorded
    assert cache.add("after", expires=T0 + timedelta(minutes=5), now=T0) is False


def test_redis_cache_first_call_after_a_restart_it_did_not_notice_succeeds(own_redis: RedisServer) -> None:
    """The pooled connection is closed by the restart; redis-py must reconnect, not fail that call."""
    cache = RedisReplayCache(own_redis.url)
    assert cache.add("before", expires=T0 + timedelta(minutes=5), now=T0)
    own_redis.stop()
    own_redis.start()  # empty: no persistence, as after a crash
    assert cache.add("before", expires=T0 + timedelta(minutes=5), now=T0) is True
    assert cache.add("before", expires=T0 + timedelta(minutes=5), now=T0) is False


@pytest.mark.parametrize("options", [{"socket_timeout": 0}, {"prefix": None}])
def test_redis_cache_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="RedisReplayCache"):
        RedisReplayCache("redis://127.0.0.1:1/0", **options)


# ----------------------------------------------------------------- replay_cache_from_url

def test_url_memory_gives_the_in_process_cache() -> None:
    assert type(replay_cache_from_url("memory:")) is MemoryReplayCache


def test_url_sqlite_gives_a_sqlite_cache_at_the_absolute_path(tmp_path: Path) -> None:
    cache = replay_cache_from_url(f"sqlite://{tmp_path}/replay%20cache.db")
    assert isinstance(cache, SQLiteReplayCache)
    assert cache.path == tmp_path / "replay cache.db"
    assert cache.add("k", expires=T0 + timedelta(minutes=1), now=T0) is True
    assert (tmp_path / "replay cache.db").exists()


def test_url_redis_gives_a_working_redis_cache(redis_server: RedisServer) -> None:
    cache = replay_cache_from_url(redis_server.url)
    assert isinstance(cache, RedisReplayCache)
    key = fresh_key()
    assert cache.add(key, expires=T0 + timedelta(minutes=1), now=T0) is True
    assert cache.add(key, expires=T0 + timedelta(minutes=1), now=T0) is False


@pytest.mark.parametrize("url", [
    "", "memory", "memory:x", "postgresql://db.example/replay", "sqlite://relative.db",
    "sqlite:///", "sqlite:///tmp/r.db?timeout=1", "redis://", "file:///tmp/r.db", "/tmp/r.db",
])
def test_url_of_no_known_form_is_a_configuration_error_naming_it(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        replay_cache_from_url(url)
    assert repr(url) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_url_error_names_the_value_but_hides_its_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        replay_cache_from_url("mysql://replay:hunter2@db.example/replay")
    assert "mysql://replay:***@db.example/replay" in str(info.value)
    assert "hunter2" not in str(info.value)


# ----------------------------------------------------------------- callers fail closed, then recover

class CountingEcho:
    """The demo echo app, counting the requests the middleware let through."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls.append(environ.get("REMOTE_USER"))
        return echo(environ, start_response)


@dataclass
class Guarded:
    """A counting app behind a middleware with a replay cache, and a way to get fresh tokens."""

    middleware: RelyingPartyMiddleware
    recorder: CountingEcho
    tokens: StsClient

    def call(self, token: IssuedToken) -> Any:
        return call_service(SERVICE_URL, token, _echo_payload("hello"), transport=WSGITransport(self.middleware))


@pytest.fixture
def guard(sts_app: TokenService, sts_keys: KeyFiles, clock: FixedClock) -> Callable[[ReplayCache], Guarded]:
    def make(cache: ReplayCache) -> Guarded:
        recorder = CountingEcho()
        middleware = RelyingPartyMiddleware(recorder, audience=SERVICE_URL, issuer=ISSUER,
                                            trusted_certs=[sts_keys.cert], clock=clock, replay_cache=cache)
        client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts_app), clock=clock)
        return Guarded(middleware, recorder, client)

    return make


def assert_refused_for_unavailable_cache(guarded: Guarded, token: IssuedToken, calls_before: int,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with pytest.raises(RemoteFault) as info:
        guarded.call(token)
    assert info.value.local_code == "RequestFailed" and info.value.status == 500
    assert len(guarded.recorder.calls) == calls_before  # the app was not called
    lines = [r.getMessage() for r in caplog.records if r.name == "wstrust_wsgi.middleware"]
    assert any("replay cache" in line and "unavailable" in line for line in lines), lines


def test_middleware_with_redis_down_refuses_then_admits_once_redis_is_back(
    guard: Callable[[ReplayCache], Guarded], own_redis: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wstrust_wsgi.middleware")
    guarded = guard(RedisReplayCache(own_redis.url))
    guarded.call(guarded.tokens.request_token(SERVICE_URL))
    assert len(guarded.recorder.calls) == 1
    own_redis.stop()
    assert_refused_for_unavailable_cache(guarded, guarded.tokens.request_token(SERVICE_URL), 1, caplog)
    own_redis.start()
    fresh = guarded.tokens.request_token(SERVICE_URL)
    reply = guarded.call(fresh)  # the same middleware object, nothing rebuilt
    assert len(guarded.recorder.calls) == 2 and reply is not None
    with pytest.raises(RemoteFault) as replay:
        guarded.call(fresh)
    assert replay.value.local_code == "InvalidSecurityToken"


def _break_by_removing_the_directory(path: Path) -> Callable[[], None]:
    shutil.rmtree(path.parent)
    return lambda: path.parent.mkdir()


def _break_by_putting_a_directory_at_the_file(path: Path) -> Callable[[], None]:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()
    return path.rmdir


@pytest.mark.parametrize("breakage", [_break_by_removing_the_directory, _break_by_putting_a_directory_at_the_file],
                         ids=["directory-removed", "file-replaced-by-directory"])
def test_middleware_with_unusable_sqlite_refuses_then_admits_once_the_file_is_usable(
    guard: Callable[[ReplayCache], Guarded], tmp_path: Path, caplog: pytest.LogCaptureFixture,
    breakage: Callable[[Path], Callable[[], None]],
) -> None:
    caplog.set_level(logging.INFO, logger="wstrust_wsgi.middleware")
    path = tmp_path / "cache" / "replay.db"
    path.parent.mkdir()
    guarded = guard(SQLiteReplayCache(path))
    guarded.call(guarded.tokens.request_token(SERVICE_URL))
    assert len(guarded.recorder.calls) == 1
    restore = breakage(path)
    assert_refused_for_unavailable_cache(guarded, guarded.tokens.request_token(SERVICE_URL), 1, caplog)
    restore()
    fresh = guarded.tokens.request_token(SERVICE_URL)
    guarded.call(fresh)
    assert len(guarded.recorder.calls) == 2
    with pytest.raises(RemoteFault) as replay:
        guarded.call(fresh)
    assert replay.value.local_code == "InvalidSecurityToken"


@pytest.mark.parametrize("backend_name", ["redis", "sqlite"])
def test_sts_with_unavailable_nonce_cache_issues_no_token_then_recovers(
    backend_name: str, sts_keys: KeyFiles, users: MemoryUserStore, clock: FixedClock, tmp_path: Path,
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, _xmlsec1_checks_every_token: list[Any],
) -> None:
    caplog.set_level(logging.INFO, logger="wstrust_wsgi.sts")
    path = tmp_path / "nonces" / "nonces.db"
    path.parent.mkdir()
    cache: ReplayCache
    outage: Callable[[], Callable[[], None]]  # makes the cache unusable; returns how to restore it
    if backend_name == "redis":
        server: RedisServer = request.getfixturevalue("own_redis")
        cache = RedisReplayCache(server.url)

        def outage() -> Callable[[], None]:
            server.stop()
            return server.start
    else:
        cache = SQLiteReplayCache(path)

        def outage() -> Callable[[], None]:
            return _break_by_removing_the_directory(path)

    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users,
                       relying_parties=[RelyingParty(SERVICE_URL)], clock=clock, nonce_cache=cache)
    client = StsClient(STS_URL, username="admin", password="admin", digest=True,
                       transport=WSGITransport(sts), clock=clock)
    client.request_token(SERVICE_URL)
    issued = len(_xmlsec1_checks_every_token)
    assert issued == 1
    restore = outage()
    caplog.clear()
    with pytest.raises(RemoteFault) as info:
        client.request_token(SERVICE_URL)
    assert info.value.local_code == "RequestFailed"
    assert len(_xmlsec1_checks_every_token) == issued  # nothing was signed
    assert any(r.name == "wstrust_wsgi.sts" and "unavailable" in r.getMessage() for r in caplog.records)
    restore()
    body = client.build_request(SERVICE_URL)
    transport = WSGITransport(sts)
    headers = {"Content-Type": client.soap.content_type(client.dialect.issue_action)}
    status, _, answer = transport(STS_URL, body, headers)
    assert status == 200 and parse_response(answer).applies_to == SERVICE_URL
    status, _, answer = transport(STS_URL, body, headers)
    with pytest.raises(RemoteFault) as replay:
        parse_response(answer, status=status)
    assert replay.value.local_code == "FailedAuthentication"


def test_demo_service_without_replay_cache_variable_admits_a_token_twice(
    monkeypatch: pytest.MonkeyPatch, users: MemoryUserStore,
) -> None:
    """The documented default: no replay detection, a bearer token is reusable for its lifetime."""
    import demo_service.app as demo

    monkeypatch.setattr(demo, "REPLAY_CACHE", "")
    sts = demo_signed_sts(demo.ISSUER, demo.SERVICE_URL, users)
    token = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts)).request_token(
        demo.SERVICE_URL)
    service = WSGITransport(demo.make_app())
    for _ in range(2):
        reply = call_service(demo.SERVICE_URL, token, _echo_payload("again"), transport=service)
        assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


def test_demo_sts_refuses_to_start_with_an_unknown_nonce_cache_url() -> None:
    env = dict(os.environ, WSTRUST_DEMO_NONCE_CACHE="mongodb://127.0.0.1/nonces")
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", "import demo_sts.app"], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=env)
    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr and "mongodb://127.0.0.1/nonces" in result.stderr


# ----------------------------------------------------------------- real gunicorn processes

def demo_signed_sts(issuer: str, audience: str, users: MemoryUserStore) -> TokenService:
    """An in-process STS signing with the demo key, as the demo service trusts it."""
    key = SigningKey.from_files(ROOT / "certs" / "sts.key", ROOT / "certs" / "sts.crt")
    return TokenService(issuer=issuer, signing_key=key, users=users, relying_parties=[RelyingParty(audience)])


@dataclass
class Server:
    """One gunicorn master serving a demo on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    access_log: Path

    def worker_pids(self) -> set[str]:
        """The worker pids that answered a POST, from the access log (``%(p)s %(s)s``)."""
        if not self.access_log.exists():
            return set()
        lines = [line.split() for line in self.access_log.read_text().splitlines()]
        return {fields[0] for fields in lines if len(fields) == 2 and fields[1] != "404"}  # not the probe


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start demos under gunicorn with several workers; every one is stopped at the end."""
    started: list[Server] = []

    def start(app: str, env: dict[str, str], port: int, *, workers: int = 3, preload: bool = False) -> Server:
        log, access = tmp_path / f"gunicorn-{port}.log", tmp_path / f"access-{port}.log"
        command = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
                   "--worker-class", "sync", "--workers", str(workers), "--timeout", "60",
                   "--graceful-timeout", "5", "--access-logfile", str(access), "--access-logformat", "%(p)s %(s)s"]
        if preload:
            command.append("--preload")
        with open(log, "wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(process, port, log, access)
        started.append(server)
        assert roundtrip.wait_ready(process, port), log.read_text()
        # a GET is answered 405 by the app itself: a worker has loaded it
        status, _, _ = http_post(f"http://127.0.0.1:{port}/", None, {})
        assert status in (404, 405), log.read_text()
        return server

    try:
        yield start
    finally:
        for server in started:
            roundtrip.stop(server.process)


def http_post(url: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """One request on a new connection (urllib sends Connection: close); GET when body is None."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def sts_outcome(status: int, body: bytes) -> str:
    """``issued`` or the fault's local code."""
    try:
        parse_response(body, status=status)
    except RemoteFault as fault:
        return fault.local_code
    return "issued"


def service_outcome(url: str, token: IssuedToken) -> str:
    """``admitted`` or the fault's local code, over real HTTP."""
    try:
        reply = call_service(url, token, _echo_payload("once"), transport=UrllibTransport(timeout=30))
    except RemoteFault as fault:
        return fault.local_code
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    return "admitted"


def fire_at_once(count: int, send: Callable[[], str]) -> list[str]:
    """``count`` calls of ``send`` released together from as many threads."""
    barrier = threading.Barrier(count, timeout=30)

    def go() -> str:
        barrier.wait()
        return send()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return [f.result(timeout=120) for f in [pool.submit(go) for _ in range(count)]]


def digest_rst(sts_url: str, audience: str) -> tuple[bytes, dict[str, str]]:
    """One PasswordDigest RST (one nonce) and its headers, built once to be replayed."""
    client = StsClient(sts_url, username="admin", password="admin", digest=True)
    return client.build_request(audience), {"Content-Type": client.soap.content_type(client.dialect.issue_action)}


def test_sts_with_three_workers_and_sqlite_nonces_issues_once_per_nonce(
    gunicorn: Callable[..., Server], tmp_path: Path,
) -> None:
    port = free_port()
    env = roundtrip.demo_env(port, free_port())
    env["WSTRUST_DEMO_NONCE_CACHE"] = f"sqlite://{tmp_path}/nonces.db"
    server = gunicorn("demo_sts.app:app", env, port, workers=3)
    url = f"http://127.0.0.1:{port}/services/sts"
    rounds = 0
    while rounds < 10 and (rounds < 2 or len(server.worker_pids()) < 2):
        rounds += 1
        body, headers = digest_rst(url, env["WSTRUST_DEMO_SERVICE_URL"])
        outcomes = fire_at_once(RACE, lambda: sts_outcome(*_status_body(http_post(url, body, headers))))
        assert outcomes.count("issued") == 1, outcomes
        assert outcomes.count("FailedAuthentication") == RACE - 1, outcomes
        # and once more, alone, after the race
        assert sts_outcome(*_status_body(http_post(url, body, headers))) == "FailedAuthentication"
    assert len(server.worker_pids()) >= 2, "every request went to one worker: the race proved nothing"
    log = server.log.read_text()
    assert log.count("issued: SAML") == rounds and "nonce replayed" in log


def _status_body(answer: tuple[int, str, bytes]) -> tuple[int, bytes]:
    return answer[0], answer[2]


def test_two_sts_instances_sharing_redis_refuse_a_nonce_the_other_accepted(
    gunicorn: Callable[..., Server], redis_server: RedisServer,
) -> None:
    service_url = f"http://127.0.0.1:{free_port()}/services/echo"
    urls = []
    for _ in range(2):
        port = free_port()
        env = roundtrip.demo_env(port, 1)
        env["WSTRUST_DEMO_SERVICE_URL"] = service_url
        env["WSTRUST_DEMO_NONCE_CACHE"] = redis_server.url
        gunicorn("demo_sts.app:app", env, port, workers=2)
        urls.append(f"http://127.0.0.1:{port}/services/sts")
    first, second = urls
    body, headers = digest_rst(first, service_url)
    assert sts_outcome(*_status_body(http_post(first, body, headers))) == "issued"
    assert sts_outcome(*_status_body(http_post(second, body, headers))) == "FailedAuthentication"
    # the second instance itself is fine: a fresh nonce gets a token there, and is then refused by the first
    body, headers = digest_rst(second, service_url)
    assert sts_outcome(*_status_body(http_post(second, body, headers))) == "issued"
    assert sts_outcome(*_status_body(http_post(first, body, headers))) == "FailedAuthentication"


def test_service_with_three_workers_and_sqlite_replay_cache_admits_a_token_once(
    gunicorn: Callable[..., Server], tmp_path: Path, users: MemoryUserStore,
) -> None:
    port = free_port()
    env = roundtrip.demo_env(free_port(), port)
    env["WSTRUST_DEMO_REPLAY_CACHE"] = f"sqlite://{tmp_path}/assertions.db"
    # --preload: the cache is built in the master and inherited by the forked workers
    server = gunicorn("demo_service.app:app", env, port, workers=3, preload=True)
    url = env["WSTRUST_DEMO_SERVICE_URL"]
    sts = demo_signed_sts(env["WSTRUST_DEMO_ISSUER"], url, users)
    client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts))
    rounds = 0
    while rounds < 10 and (rounds < 2 or len(server.worker_pids()) < 2):
        rounds += 1
        token = client.request_token(url)
        outcomes = fire_at_once(RACE, lambda: service_outcome(url, token))
        assert outcomes.count("admitted") == 1, outcomes
        assert outcomes.count("InvalidSecurityToken") == RACE - 1, outcomes
        assert service_outcome(url, token) == "InvalidSecurityToken"
    assert len(server.worker_pids()) >= 2, "every request went to one worker: the race proved nothing"


def test_two_service_instances_sharing_redis_refuse_a_token_the_other_admitted(
    gunicorn: Callable[..., Server], redis_server: RedisServer, users: MemoryUserStore,
) -> None:
    service_url = "http://127.0.0.1:8081/services/echo"  # one audience for both instances, as behind a balancer
    sts_port, ports = free_port(), [free_port(), free_port()]
    for port in ports:
        env = roundtrip.demo_env(sts_port, port)
        env["WSTRUST_DEMO_SERVICE_URL"] = service_url
        env["WSTRUST_DEMO_REPLAY_CACHE"] = redis_server.url
        gunicorn("demo_service.app:app", env, port, workers=2)
    first, second = (f"http://127.0.0.1:{port}/services/echo" for port in ports)
    sts = demo_signed_sts(env["WSTRUST_DEMO_ISSUER"], service_url, users)
    client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts))
    token = client.request_token(service_url)
    assert service_outcome(first, token) == "admitted"
    assert service_outcome(second, token) == "InvalidSecurityToken"
    assert service_outcome(first, token) == "InvalidSecurityToken"
    other = client.request_token(service_url)
    assert service_outcome(second, other) == "admitted"
    assert service_outcome(first, other) == "InvalidSecurityToken"
