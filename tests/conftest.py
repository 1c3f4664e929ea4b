"""Shared fixtures: key pairs, a settable clock, the STS and the protected echo service in-process.

Only fixtures live here; what they build comes from the ``_support`` package,
which test modules import directly (``from _support import ...``).

Every assertion signed while a test runs is also verified, at the test's end,
by the independent ``xmlsec1`` command against the signing certificate (see
``_xmlsec1_checks_every_token``). A missing xmlsec1 fails the test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING
from datetime import datetime, timezone
from pathlib import Path

import pytest

from wstrust_wsgi import MemoryUserStore, RelyingPartyMiddleware, TokenService
from wstrust_wsgi import saml as saml_module
from _support import (
    FixedClock,
    KeyFiles,
    assert_xmlsec1_accepts,
    client_factory,
    demo_users,
    echo_service,
    key_files,
    make_key_pairs,
    token_service,
)

if TYPE_CHECKING:
    from _support.pg import PostgresServer
    from _support.redis_server import RedisServer


@pytest.fixture(scope="session")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_key_pairs(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def sts_keys(keydir: Path) -> KeyFiles:
    return key_files(keydir, "sts")


@pytest.fixture(scope="session")
def rogue_keys(keydir: Path) -> KeyFiles:
    """A key pair nobody trusts."""
    return key_files(keydir, "rogue")


@pytest.fixture(scope="session")
def sts2_keys(keydir: Path) -> KeyFiles:
    """A second trusted key, for rollover tests."""
    return key_files(keydir, "sts2")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture(scope="session")
def users() -> MemoryUserStore:
    return demo_users()


@pytest.fixture
def sts_app(sts_keys: KeyFiles, users: MemoryUserStore, clock: FixedClock) -> TokenService:
    return token_service(sts_keys, users, clock)


@pytest.fixture
def service_app(sts_keys: KeyFiles, clock: FixedClock) -> RelyingPartyMiddleware:
    return echo_service(sts_keys, clock)


@pytest.fixture
def make_client(sts_app: TokenService, clock: FixedClock):  # type: ignore[no-untyped-def]
    return client_factory(sts_app, clock)


@pytest.fixture(autouse=True)
def _xmlsec1_checks_every_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    issued: list[tuple[bytes, bytes]] = []
    original = saml_module.AssertionSigner.sign

    def recording_sign(self, version, content, **kwargs):  # type: ignore[no-untyped-def]
        signed = original(self, version, content, **kwargs)
        issued.append((signed, self._key.certificate_pem))
        return signed

    monkeypatch.setattr(saml_module.AssertionSigner, "sign", recording_sign)
    yield issued
    assert_xmlsec1_accepts(issued, tmp_path)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """make_app and configure_logging set the wstrust_wsgi logger's level and handlers; undo it after each test."""
    logger = logging.getLogger("wstrust_wsgi")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started when a test first needs it; each test that uses it
    makes a database of its own (``create_database``)."""
    from _support.pg import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is required for the registry tests: {exc}")
    with server:
        yield server


@pytest.fixture(scope="module")
def demo_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """Both demos under real gunicorn on free loopback ports, for one test module; stopped afterwards."""
    from _support.deployment import running_demos

    with running_demos(tmp_path_factory.mktemp("gunicorn")) as servers:
        yield servers


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator["RedisServer"]:
    """A real redis-server shared by one module's tests that do not stop it."""
    from _support.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
