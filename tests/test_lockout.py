"""Brute force (issue 10 item 6): failures counted per user and per address, a timed lock, no oracle.

* In-process, with the fixed clock: the lock after ``max_failures``, its
  window and expiry, a success resetting the count, the locked answer being
  byte for byte the wrong-password answer (after a password check that cannot
  succeed), the precise log lines, familiar addresses and the bound on what one
  address can lock.
* Each store (memory, the registry's table in SQLite and PostgreSQL, Redis) follows the same
  rules; ``wstrust-wsgi user unlock`` lifts a lock in the registry and in Redis.
* Across hosts: two STS apps sharing one real redis-server count together.
* Across workers: ``make_app`` under real gunicorn with three workers and a
  SQLite registry; failures sent at once reach different workers and still
  lock the user after exactly ``max_failures``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp

from _support import ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles, key_files
from _support.pg import PostgresServer, PostgresUnavailable
from _support.deployment import (
    ADMIN_PASSWORD, SERVICE, Gunicorn, free_port, init_registry, sqlite_url, write_config,
)
from _support.redis_server import RedisServer
from wstrust_wsgi import (
    LockoutPolicy,
    MemoryLockoutStore,
    MemoryUserStore,
    RedisLockoutStore,
    RegistryLockoutStore,
    RelyingParty,
    RemoteFault,
    SigningKey,
    StsClient,
    TokenService,
    UrllibTransport,
    User,
)
from wstrust_wsgi.cli import main as cli_main
from wstrust_wsgi.config import load_config
from wstrust_wsgi.deploy import StartupError, make_app
from wstrust_wsgi.errors import ConfigurationError
from wstrust_wsgi.stores import LockoutStore
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.sts.lockout import address_key, settings_from_table

ATTACKER = "203.0.113.9"  # TEST-NET-3: only ever written into a WSGI environ
HOME = "198.51.100.7"  # TEST-NET-2: where the real user signs in from
ELSEWHERE = "192.0.2.44"  # TEST-NET-1
USERS = [User(name, name, roles=["admin"]) for name in ("admin", "bob", "carol", "dave", "erin", "frank", "grace")]
T0 = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def user_store() -> MemoryUserStore:
    return MemoryUserStore(USERS)


def registry_at(tmp_path: Path) -> Registry:
    registry = Registry.open(sqlite_url(tmp_path / "registry.db"))
    registry.init_schema(issuer=ISSUER)
    return registry


class Counting:
    """A user store that remembers every password it was asked to check."""

    def __init__(self, inner: MemoryUserStore) -> None:
        self.inner = inner
        self.checked: list[str] = []

    def authenticate(self, token: Any) -> Any:
        self.checked.append(token.password)
        return self.inner.authenticate(token)


@pytest.fixture(scope="module")
def signing_key(keydir: Path) -> SigningKey:
    return key_files(keydir, "sts").load()


def sts(users: Any, clock: FixedClock, store: LockoutStore | None = None, *, key: SigningKey,
        **policy: Any) -> TokenService:
    return TokenService(issuer=ISSUER, signing_key=key, users=users, relying_parties=[RelyingParty(SERVICE_URL)],
                        clock=clock, lockout=LockoutPolicy(**policy), lockout_store=store)


def ask(app: TokenService, clock: FixedClock, user: str = "admin", password: str | None = None,
        address: str = ATTACKER) -> Any:
    """One PasswordText RST over HTTPS from ``address``; the webtest response (faults included)."""
    client = StsClient(STS_URL, username=user, password=user if password is None else password, clock=clock)
    return TestApp(app, extra_environ={"wsgi.url_scheme": "https", "REMOTE_ADDR": address}).post(
        "/services/sts", client.build_request(SERVICE_URL), content_type="application/soap+xml; charset=utf-8",
        expect_errors=True)


def issued(response: Any) -> bool:
    return response.status_int == 200 and b"Assertion" in response.body


def fail(app: TokenService, clock: FixedClock, times: int, user: str = "admin", address: str = ATTACKER) -> None:
    for _ in range(times):
        assert ask(app, clock, user, "wrong", address).status_int == 400


# ----------------------------------------------------------------- the policy, in-process, fixed clock


def test_five_failures_lock_the_user_and_the_right_password_then_gets_exactly_the_wrong_password_answer(
        user_store: MemoryUserStore, caplog: pytest.LogCaptureFixture, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    counting = Counting(user_store)
    app = sts(counting, clock, key=signing_key)
    fail(app, clock, 4)
    assert issued(ask(app, clock)), "4 failures do not lock (and the success resets the count)"
    wrong = ask(app, clock, password="wrong")
    fail(app, clock, 4)
    caplog.clear()
    checked = len(counting.checked)
    with caplog.at_level(logging.INFO, logger="wstrust_wsgi.sts"):
        locked = ask(app, clock)  # the right password, during the lock
    assert (locked.status, locked.content_type, locked.body) == (wrong.status, wrong.content_type, wrong.body)
    assert b"FailedAuthentication" in locked.body
    # the password check ran anyway, with a password that cannot match, not the one sent
    assert len(counting.checked) == checked + 1 and counting.checked[-1] != "admin"
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("refused:"))
    assert re.search(r"user 'admin' \(failures from its familiar addresses\) is locked out until "
                     r"2030-06-01T12:05:00\+00:00: 'admin' from 203\.0\.113\.9 refused", line), line


def test_the_lock_start_is_logged_with_user_count_window_and_address(
        user_store: MemoryUserStore, caplog: pytest.LogCaptureFixture, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, key=signing_key)
    with caplog.at_level(logging.WARNING, logger="wstrust_wsgi.sts"):
        fail(app, clock, 5)
    assert ("lockout: user 'admin' from unfamiliar addresses locked until 2030-06-01T12:05:00+00:00 after 5 "
            "failed authentications within 0:15:00 (last from 203.0.113.9)") in caplog.text


def test_the_lock_ends_by_itself_after_duration(user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, duration=timedelta(minutes=5), key=signing_key)
    fail(app, clock, 5)
    clock.advance(minutes=4, seconds=59)
    assert not issued(ask(app, clock))
    clock.advance(seconds=1)
    assert issued(ask(app, clock))


def test_failures_only_count_together_within_the_window(user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, window=timedelta(minutes=15), key=signing_key)
    fail(app, clock, 4)
    clock.advance(minutes=15)  # the window of the first failure is over: the count starts afresh
    fail(app, clock, 4)
    assert issued(ask(app, clock))


def test_failures_during_a_lock_do_not_extend_it(user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, key=signing_key)
    fail(app, clock, 5)
    for _ in range(4):
        clock.advance(minutes=1)
        fail(app, clock, 3)
    clock.advance(minutes=1)
    assert issued(ask(app, clock))


def test_a_success_resets_the_count(user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, key=signing_key)
    for _ in range(3):
        fail(app, clock, 4)
        assert issued(ask(app, clock))


def test_an_unknown_user_is_locked_alike_and_answered_alike(user_store: MemoryUserStore,
                                                            signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, key=signing_key)
    fail(app, clock, 5, user="nobody")
    assert ask(app, clock, "nobody", "x").body == ask(app, clock, "admin", "wrong").body


def test_a_familiar_address_keeps_working_while_an_attacker_locks_the_user_elsewhere(
        user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, key=signing_key)
    assert issued(ask(app, clock, address=HOME))  # HOME becomes familiar
    fail(app, clock, 5, address=ATTACKER)
    assert not issued(ask(app, clock, address=ATTACKER))
    assert not issued(ask(app, clock, address=ELSEWHERE))  # every unfamiliar address is locked out
    assert issued(ask(app, clock, address=HOME))
    assert not issued(ask(app, clock, address=ATTACKER)), "a success at home leaves the lock elsewhere in place"
    # failures from the familiar address have their own count and lock
    fail(app, clock, 5, address=HOME)
    assert not issued(ask(app, clock, address=HOME))


def test_behind_a_trusted_proxy_the_forwarded_client_is_the_address_counted(
        user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    """The proxy's own address is every client's REMOTE_ADDR: counting it would make home unfamiliar."""
    proxy = "10.0.0.5"
    clock = FixedClock(T0)
    app = TokenService(issuer=ISSUER, signing_key=signing_key, users=user_store,
                       relying_parties=[RelyingParty(SERVICE_URL)], clock=clock, lockout=LockoutPolicy(),
                       trusted_proxies=["10.0.0.0/8"])

    def via_proxy(client: str, password: str | None = None) -> Any:
        request = StsClient(STS_URL, username="admin", password="admin" if password is None else password,
                            clock=clock).build_request(SERVICE_URL)
        return TestApp(app, extra_environ={"wsgi.url_scheme": "https", "REMOTE_ADDR": proxy,
                                           "HTTP_X_FORWARDED_FOR": client}).post(
            "/services/sts", request, content_type="application/soap+xml; charset=utf-8", expect_errors=True)

    assert issued(via_proxy(HOME))  # HOME becomes familiar, as the forwarded client
    for _ in range(5):
        assert via_proxy(ATTACKER, "wrong").status_int == 400
    assert not issued(via_proxy(ATTACKER)), "the attacker's side is locked"
    assert issued(via_proxy(HOME)), "home is told apart from the attacker although both come through the proxy"


def test_one_address_locks_a_bounded_number_of_users_then_itself(user_store: MemoryUserStore,
                                                                 signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, max_failures=5, address_max_failures=10, key=signing_key)
    assert issued(ask(app, clock, "grace", address=HOME))
    assert issued(ask(app, clock, "erin", address=ATTACKER))  # erin shares the attacker's address (a NAT)
    fail(app, clock, 5, user="admin")
    fail(app, clock, 5, user="bob")  # the 10th failure locks the address
    # the address is blocked for users to whom it is unfamiliar, and attempts there no longer count on them
    for _ in range(5):
        assert not issued(ask(app, clock, "carol", "wrong"))
    assert not issued(ask(app, clock, "carol"))
    assert issued(ask(app, clock, "carol", address=ELSEWHERE)), "carol was not locked: only the address was"
    assert issued(ask(app, clock, "grace", address=HOME))
    # a user to whom the blocked address is familiar still gets in from it
    assert issued(ask(app, clock, "erin", address=ATTACKER))
    assert not issued(ask(app, clock, "dave", address=ATTACKER))
    clock.advance(minutes=5)
    assert issued(ask(app, clock, "carol")) and issued(ask(app, clock, "admin"))


def test_ipv6_addresses_are_counted_by_their_64(user_store: MemoryUserStore, signing_key: SigningKey) -> None:
    clock = FixedClock(T0)
    app = sts(user_store, clock, address_max_failures=3, max_failures=50, key=signing_key)
    for host in (1, 2, 3):
        assert ask(app, clock, "bob", "wrong", address=f"2001:db8:1:2::{host}").status_int == 400
    assert not issued(ask(app, clock, "carol", address="2001:db8:1:2:ffff::9"))
    assert issued(ask(app, clock, "carol", address="2001:db8:1:3::1"))
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1" and address_key("") == "in-process"


def test_lockout_none_turns_it_off(user_store: MemoryUserStore, sts_keys: KeyFiles) -> None:
    clock = FixedClock(T0)
    app = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=user_store,
                       relying_parties=[RelyingParty(SERVICE_URL)], clock=clock, lockout=None)
    fail(app, clock, 20)
    assert issued(ask(app, clock))


@pytest.mark.parametrize("bad", [
    {"max_failures": 0}, {"max_failures": True}, {"address_max_failures": -1},
    {"window": timedelta(0)}, {"duration": timedelta(days=400)}, {"familiar_for": 30},
])
def test_a_policy_out_of_range_is_refused_at_construction(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=f"lockout {next(iter(bad))}"):
        LockoutPolicy(**bad)


# ----------------------------------------------------------------- every store follows the same rules


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is required for the registry lockout tests: {exc}")
    with server:
        yield server


@pytest.fixture(params=["memory", "registry", "registry-postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LockoutStore]:
    if request.param == "memory":
        yield MemoryLockoutStore()
    elif request.param.startswith("registry"):
        if request.param == "registry":
            registry = registry_at(tmp_path)
        else:
            registry = Registry.open(request.getfixturevalue("postgres").create_database())
            registry.init_schema(issuer=ISSUER)
        yield RegistryLockoutStore(registry)
        registry.close()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        server.client().flushdb()
        redis_store = RedisLockoutStore(server.url)
        yield redis_store
        redis_store.close()


def test_store_counts_locks_and_leaves_a_locked_key_alone(store: LockoutStore) -> None:
    window, lock_for = timedelta(minutes=15), timedelta(minutes=5)
    for _ in range(2):
        assert store.fail([("k", 3), ("a", 100)], now=T0, window=window, lock_for=lock_for) == {}
    assert store.read(["k"], T0)["k"].failures == 2
    assert store.fail([("k", 3)], now=T0, window=window, lock_for=lock_for) == {"k": T0 + lock_for}
    assert store.read(["k"], T0)["k"].locked(T0)
    assert store.fail([("k", 3)] * 5, now=T0, window=window, lock_for=lock_for) == {}
    assert store.read(["a"], T0)["a"].failures == 2
    store.mark("m", now=T0, until=T0 + window)
    assert store.read(["m", "unknown"], T0)["m"].failures == 0 and "unknown" not in store.read(["unknown"], T0)
    cleared = store.clear(["k", "a"], T0)
    assert set(cleared) == {"k", "a"} and cleared["k"].locked(T0)
    assert store.read(["k", "a"], T0) == {}


def test_store_counts_every_failure_of_racing_threads_once(store: LockoutStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        locked = list(pool.map(lambda _: store.fail([("race", 20)], now=T0, window=timedelta(minutes=1),
                                                    lock_for=timedelta(minutes=1)), range(20)))
    assert sum(1 for item in locked if item) == 1


@pytest.mark.parametrize("kind", ["memory", "registry"])
def test_store_window_and_lock_follow_the_callers_clock(kind: str, tmp_path: Path) -> None:
    store: LockoutStore = MemoryLockoutStore() if kind == "memory" else RegistryLockoutStore(registry_at(tmp_path))
    window, lock_for = timedelta(minutes=15), timedelta(minutes=5)
    store.fail([("k", 3)], now=T0, window=window, lock_for=lock_for)
    store.fail([("k", 3)], now=T0 + timedelta(minutes=14), window=window, lock_for=lock_for)
    later = T0 + timedelta(minutes=15)
    assert store.fail([("k", 3)], now=later, window=window, lock_for=lock_for) == {}  # a fresh window
    assert store.read(["k"], later)["k"].failures == 1
    assert store.read(["k"], later + window) == {}


def test_memory_store_stays_bounded() -> None:
    store = MemoryLockoutStore(max_entries=10)
    for number in range(100):
        store.fail([(f"k{number}", 5)], now=T0, window=timedelta(minutes=1), lock_for=timedelta(minutes=1))
    kept = store.read([f"k{n}" for n in range(100)], T0)
    assert 9 <= len(kept) <= 10 and "k99" in kept


# ----------------------------------------------------------------- unlock, and the registry table


def test_user_unlock_lifts_a_lock_kept_in_the_registry(user_store: MemoryUserStore, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       signing_key: SigningKey) -> None:
    clock = FixedClock(datetime.now(timezone.utc).replace(microsecond=0))  # the command reads the real clock
    registry = registry_at(tmp_path)
    app = sts(user_store, clock, RegistryLockoutStore(registry), key=signing_key)
    fail(app, clock, 5)
    assert not issued(ask(app, clock))
    url = sqlite_url(tmp_path / "registry.db")
    assert cli_main(["user", "unlock", "admin", "--registry", url]) == 0
    assert "Unlocked 'admin' (it was locked until" in capsys.readouterr().out
    assert issued(ask(app, clock))
    assert cli_main(["--json", "user", "unlock", "admin", "--registry", url]) == 0
    assert '"was_locked": false' in capsys.readouterr().out
    registry.close()


def test_an_older_registry_gets_the_lockout_table_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wstrust_wsgi.stores.sql import schema
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])  # a registry made by version-1 code
    registry_at(tmp_path).close()
    monkeypatch.undo()
    with Registry.open(sqlite_url(tmp_path / "registry.db")) as reopened:
        RegistryLockoutStore(reopened).fail([("k", 2)], now=T0, window=timedelta(minutes=1),
                                            lock_for=timedelta(minutes=1))


# ----------------------------------------------------------------- across hosts: two STS apps, one Redis


def test_two_sts_apps_sharing_redis_count_together_and_unlock_reaches_both(
        user_store: MemoryUserStore, redis_server: RedisServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], signing_key: SigningKey) -> None:
    redis_server.client().flushdb()
    clock = FixedClock(datetime.now(timezone.utc).replace(microsecond=0))
    host_a = sts(user_store, clock, RedisLockoutStore(redis_server.url), key=signing_key)
    host_b = sts(user_store, clock, RedisLockoutStore(redis_server.url), key=signing_key)
    fail(host_a, clock, 3)
    fail(host_b, clock, 2)
    assert not issued(ask(host_a, clock)) and not issued(ask(host_b, clock))
    registry_at(tmp_path).close()
    assert cli_main(["user", "unlock", "admin", "--registry", sqlite_url(tmp_path / "registry.db"),
                     "--store", redis_server.url]) == 0
    assert "Unlocked 'admin'" in capsys.readouterr().out
    assert issued(ask(host_b, clock)) and issued(ask(host_a, clock))


# ----------------------------------------------------------------- the deployment file


def test_lockout_table_in_the_deployment_file() -> None:
    policy, store = settings_from_table({"max_failures": 3, "window": 60, "duration": 30, "store": "redis://r/0"})
    assert policy == LockoutPolicy(max_failures=3, window=timedelta(seconds=60), duration=timedelta(seconds=30))
    assert store == "redis://r/0"
    assert settings_from_table({"enabled": False}) == (None, "registry")
    assert settings_from_table({}) == (LockoutPolicy(), "registry")
    with pytest.raises(ConfigurationError, match=r"^f: \[lockout\] window: must be a whole number of seconds"):
        settings_from_table({"window": "1h"}, "f: [lockout] ")
    with pytest.raises(ConfigurationError, match=r"duration: must be from 1 second to 366 days, not 0 seconds"):
        settings_from_table({"duration": 0})


def test_load_config_reads_lockout_and_refuses_unknown_keys(tmp_path: Path, sts_keys: KeyFiles) -> None:
    (tmp_path / "r.db").touch()
    tables: dict[str, dict[str, Any]] = {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(tmp_path / "r.db")},
        "lockout": {"max_failures": 7, "store": "registry"},
    }
    config = load_config(write_config(tmp_path, tables))
    assert config.lockout is not None and config.lockout.max_failures == 7 and config.lockout_store == "registry"
    tables["lockout"] = {"max_failure": 7}
    with pytest.raises(ConfigurationError, match=r"\[lockout\] max_failure: unknown setting \(did you mean max_fail"):
        load_config(write_config(tmp_path, tables))


# ----------------------------------------------------------------- across workers: real gunicorn, SQLite registry


def test_gunicorn_workers_share_the_count_in_the_sqlite_registry(tmp_path: Path, sts_keys: KeyFiles,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "var" / "registry.db"
    registry.parent.mkdir()
    init_registry(sqlite_url(registry))
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry)},
    })
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log", args=("--workers", "3"))
    url = f"http://127.0.0.1:{port}/services/sts"

    def request(password: str) -> str:
        client = StsClient(url, username="admin", password=password, transport=UrllibTransport(timeout=20))
        try:
            client.request_token(SERVICE)
        except RemoteFault as fault:
            return fault.local_code
        return "issued"

    try:
        server.wait_started(workers=3)
        with ThreadPoolExecutor(5) as pool:  # at once, so that the three workers share them
            assert list(pool.map(request, ["wrong"] * 5)) == ["FailedAuthentication"] * 5
        assert request(ADMIN_PASSWORD) == "FailedAuthentication"
        assert cli_main(["user", "unlock", "admin", "--registry", sqlite_url(registry)]) == 0
        assert "Unlocked 'admin'" in capsys.readouterr().out
        assert request(ADMIN_PASSWORD) == "issued"
    finally:
        server.stop()
    log = server.text()
    pids = set(re.findall(r"\[(\d+)\] \[WARNING\] .*refused: FailedAuthentication: wrong password", log))
    assert len(pids) >= 2, f"the failures should have reached several workers:\n{log}"
    assert "lockout: user 'admin' from unfamiliar addresses locked until" in log, log
    assert "is locked out until" in log and "'admin' from 127.0.0.1 refused as a wrong password is" in log, log


def test_make_app_checks_the_lockout_store_at_start_up(tmp_path: Path, sts_keys: KeyFiles,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    registry = tmp_path / "registry.db"
    init_registry(sqlite_url(registry))
    tables: dict[str, dict[str, Any]] = {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry)},
        "lockout": {"store": "redis://127.0.0.1:1/0"},  # nothing listens on port 1
    }
    with pytest.raises(StartupError, match=r"\[lockout\] store: redis://127.0.0.1:1/0 does not answer"):
        make_app(write_config(tmp_path, tables))
    tables["lockout"] = {"store": "ldap://nowhere"}
    with pytest.raises(StartupError, match=r"\[lockout\] store: lockout store: 'ldap://nowhere' is not"):
        make_app(write_config(tmp_path, tables))
    tables["lockout"] = {"store": "memory:"}
    with caplog.at_level(logging.INFO, logger="wstrust_wsgi"):
        make_app(write_config(tmp_path, tables))
    assert "failures are counted per worker process" in caplog.text
    tables["lockout"] = {}
    with caplog.at_level(logging.INFO, logger="wstrust_wsgi"):
        make_app(write_config(tmp_path, tables))
    assert "lockout after 5 failures per user or 25 per address within 900 s for 300 s (counted in registry)" \
        in caplog.text


def test_two_gunicorn_hosts_count_together_in_redis(tmp_path: Path, sts_keys: KeyFiles,
                                                    redis_server: RedisServer) -> None:
    """Two hosts, each its own SQLite registry, sharing one Redis for lockout (``[lockout] store``)."""
    redis_server.client().flushdb()
    servers, urls = [], []
    try:
        for host in ("a", "b"):
            directory = tmp_path / host
            directory.mkdir()
            init_registry(sqlite_url(directory / "registry.db"))
            config = write_config(directory, {
                "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
                "registry": {"url": sqlite_url(directory / "registry.db")},
                "lockout": {"store": redis_server.url},
            })
            port = free_port()
            servers.append(Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=directory,
                                    log=directory / "gunicorn.log"))
            urls.append(f"http://127.0.0.1:{port}/services/sts")
        for server in servers:
            server.wait_started()

        def request(url: str, password: str) -> str:
            client = StsClient(url, username="admin", password=password, transport=UrllibTransport(timeout=20))
            try:
                client.request_token(SERVICE)
            except RemoteFault as fault:
                return fault.local_code
            return "issued"

        assert [request(urls[n % 2], "wrong") for n in range(5)] == ["FailedAuthentication"] * 5
        assert request(urls[0], ADMIN_PASSWORD) == "FailedAuthentication"
        assert request(urls[1], ADMIN_PASSWORD) == "FailedAuthentication"
        assert cli_main(["user", "unlock", "admin", "--registry", sqlite_url(tmp_path / "a" / "registry.db"),
                         "--store", redis_server.url]) == 0
        assert request(urls[1], ADMIN_PASSWORD) == "issued"
    finally:
        for server in servers:
            server.stop()
    assert "lockout: user 'admin' from unfamiliar addresses locked until" in servers[0].text() + servers[1].text()
