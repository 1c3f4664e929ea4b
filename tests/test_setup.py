"""Setting a host up: ``init`` makes the registry's folder, ``certs --tls``, ``check``, and the health answers.

* ``certs --tls HOST ...``: a certificate whose subjectAltName holds each
  host name and IP address, served by real gunicorn (``--certfile``/``--keyfile``)
  on 127.0.0.1 and reached with ``UrllibTransport(cafile=...)`` with hostname
  checking on (also under OpenSSL's strict X.509 rules, Python 3.13's default);
  a host it does not name is refused.
* ``check FILE``: one line per check and the exit status, for a good file, a
  Redis that is down, and a file whose key is missing.
* Health: ``GET <sts path>/health`` from the deployed STS and the middleware's
  opt-in ``health_path`` under real gunicorn, 200 with Redis up, 503 with it
  stopped, 200 again after it restarts; the body never names a URL or host.

Every server listens on 127.0.0.1 only and is stopped in a finally.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from webtest import TestApp

from _support.net import stop, wait_listening
from _support import ROOT, KeyFiles
from _support.deployment import (
    ADMIN_PASSWORD, ISSUER, SERVICE, Gunicorn, free_port, init_registry, ldap_tables, sqlite_url, write_config,
)
from _support.redis_server import RedisServer
from wstrust_wsgi import (
    MemoryReplayCache, MemoryUserStore, RelyingPartyMiddleware, StsClient, TokenService, TransportError,
    UrllibTransport,
)
from wstrust_wsgi.cli import main
from wstrust_wsgi.errors import ConfigurationError, StoreUnavailable
from wstrust_wsgi.keys import generate_tls_pair

# ---------------------------------------------------------------------- helpers


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``wstrust-wsgi ARGS`` in-process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def get(url: str) -> tuple[int, str, Any]:
    """GET ``url``: status, Content-Type and the body (decoded when it is JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, content_type, body = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        status, content_type, body = exc.code, exc.headers["Content-Type"], exc.read()
    return status, content_type, json.loads(body) if content_type.startswith("application/json") else body


def deployment(tmp_path: Path, sts_keys: KeyFiles, nonce_cache: str) -> Path:
    """A registry made as an operator makes it, and a deployment file for it with ``nonce_cache``."""
    registry = tmp_path / "var" / "registry.db"
    registry.parent.mkdir(exist_ok=True)
    init_registry(sqlite_url(registry))
    return write_config(tmp_path, {
        "sts": {"path": "/services/sts"},
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry)},
        "replay": {"nonce_cache": nonce_cache},
    })


# ---------------------------------------------------------------------- init makes the registry's folder


def test_init_creates_the_folder_of_a_sqlite_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "var" / "lib" / "wstrust" / "registry.db"
    code, out, err = cli(capsys, "init", "--issuer", ISSUER, "--keys", str(tmp_path / "keys"),
                         "--registry", f"sqlite://{registry}")
    assert code == 0, err
    assert registry.is_file()
    assert registry.parent.stat().st_mode & 0o777 == 0o700
    assert f"made the folder {registry.parent}" in out
    code, _, err = cli(capsys, "user", "list", "--registry", f"sqlite://{registry}")
    assert code == 0, err


# ---------------------------------------------------------------------- certs --tls


def test_certs_tls_names_every_host_in_subject_alt_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "certs", "--tls", "sts.example.org", "--tls", "127.0.0.1", "--tls", "::1",
                         "--tls", "*.Internal.Example.org", "--dir", str(tmp_path / "tls"))
    assert code == 0, err
    key, crt = tmp_path / "tls" / "tls.key", tmp_path / "tls" / "tls.crt"
    assert key.stat().st_mode & 0o777 == 0o600
    assert f"--certfile {crt} --keyfile {key}" in out and f"--cafile {crt}" in out
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["sts.example.org", "*.internal.example.org"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                         ipaddress.ip_address("::1")]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    # never replaces a pair
    code, _, err = cli(capsys, "certs", "--tls", "sts.example.org", "--dir", str(tmp_path / "tls"))
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize("host", ["", "exa mple.org", "-bad.example.org", "a..b", "*.org", "sts.*.example.org",
                                  "x" * 64 + ".org"])
def test_certs_tls_refuses_what_is_neither_a_host_name_nor_an_ip(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigurationError, match="neither an IP address nor a DNS name"):
        generate_tls_pair([host], tmp_path)
    assert not list(tmp_path.iterdir())


def test_gunicorn_serves_a_certs_tls_certificate_that_passes_hostname_checks(
        tmp_path: Path, sts_keys: KeyFiles, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "certs", "--tls", "127.0.0.1", "--tls", "localhost", "--dir", str(tmp_path / "tls"))
    assert code == 0, err
    tls_key, tls_cert = tmp_path / "tls" / "tls.key", tmp_path / "tls" / "tls.crt"
    config = deployment(tmp_path, sts_keys, "memory:")
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log", args=("--certfile", str(tls_cert), "--keyfile", str(tls_key)))
    try:
        server.wait_started()
        for host in ("127.0.0.1", "localhost"):
            client = StsClient(f"https://{host}:{port}/services/sts", username="admin", password=ADMIN_PASSWORD,
                               transport=UrllibTransport(cafile=str(tls_cert)))
            assert client.request_token(SERVICE).applies_to == SERVICE
        strict = ssl.create_default_context(cafile=str(tls_cert))  # Python 3.13's default flags
        strict.verify_flags |= ssl.VERIFY_X509_STRICT
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with strict.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() is not None
        # hostname checking is really on: a name the certificate does not carry is refused
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
                ssl.create_default_context(cafile=str(tls_cert)).wrap_socket(raw, server_hostname="sts.example.org")
        with pytest.raises(TransportError, match="certificate"):  # the system store does not trust it
            StsClient(f"https://127.0.0.1:{port}/services/sts", username="admin", password=ADMIN_PASSWORD,
                      transport=UrllibTransport()).request_token(SERVICE)
    finally:
        server.stop()


def test_certs_days_applies_to_tls_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "certs", "--days", "30", "--dir", str(tmp_path))
    assert code == 2 and "--tls" in err and not list(tmp_path.iterdir())
    code, _, err = cli(capsys, "certs", "--tls", "127.0.0.1", "--days", "30", "--dir", str(tmp_path))
    assert code == 0, err
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30


# ---------------------------------------------------------------------- check


def test_check_a_good_file_prints_one_ok_line_per_check(tmp_path: Path, sts_keys: KeyFiles,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = deployment(tmp_path, sts_keys, sqlite_url(tmp_path / "var" / "nonces.db"))
    code, out, err = cli(capsys, "check", str(config))
    assert code == 0, out + err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", "file"], ["ok", "keys"], ["ok", "registry"],
                                                   ["ok", "users"], ["ok", "replay"], ["ok", "encryption"]], out
    assert f"issuer {ISSUER}" in lines[2] and "nonces.db" in lines[4]
    assert "no relying party has an encryption certificate" in lines[5]


def test_check_fails_a_relying_party_whose_encryption_certificate_has_expired(
        tmp_path: Path, sts_keys: KeyFiles, capsys: pytest.CaptureFixture[str]) -> None:
    import datetime as dt

    from wstrust_wsgi import RelyingParty, SigningKey
    from wstrust_wsgi.stores.sql import Registry

    config = deployment(tmp_path, sts_keys, "memory:")
    now = dt.datetime.now(dt.timezone.utc)
    fresh = SigningKey.generate("fresh", days=90).certificate_pem
    expired = SigningKey.generate("expired", days=1, valid_from=now - dt.timedelta(days=10)).certificate_pem
    with Registry.open(sqlite_url(tmp_path / "var" / "registry.db")) as registry:
        registry.add_relying_party(RelyingParty("https://fresh.example/soap", certificate_pem=fresh))
        code, out, err = cli(capsys, "check", str(config))
        assert code == 0 and "ok   encryption" in out and "1 relying party gets encrypted tokens" in out, out + err
        registry.add_relying_party(RelyingParty("https://old.example/soap", certificate_pem=expired))
    code, out, err = cli(capsys, "check", str(config))
    assert code == 1, out + err
    [line] = [line for line in out.splitlines() if "encryption" in line.split()[:2]]
    assert line.startswith("FAIL") and "relying party https://old.example/soap: the encryption certificate " \
        "(O=wstrust-wsgi DEMO ONLY - do not use in production,CN=expired) expired on" in line, line


def test_check_names_every_store_that_does_not_answer(tmp_path: Path, sts_keys: KeyFiles,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    config = deployment(tmp_path, sts_keys, f"redis://127.0.0.1:{port}/0")
    code, out, err = cli(capsys, "check", str(config))
    assert code == 1, out + err
    states = {line.split()[1]: line for line in out.splitlines()}
    assert states["registry"].startswith("ok") and states["users"].startswith("ok"), out
    assert states["replay"].startswith("FAIL") and f"127.0.0.1:{port}" in states["replay"], out
    assert "does not answer" in states["replay"], out


def test_check_names_a_directory_and_a_redis_that_are_down_in_one_run(
        tmp_path: Path, sts_keys: KeyFiles, capsys: pytest.CaptureFixture[str]) -> None:
    deployment(tmp_path, sts_keys, "memory:")  # the registry
    ldap_url = f"ldap://127.0.0.1:{free_port()}"
    tables = {"sts": {"path": "/services/sts"},
              "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
              "registry": {"url": sqlite_url(tmp_path / "var" / "registry.db")},
              "replay": {"nonce_cache": f"redis://127.0.0.1:{free_port()}/0"}}
    config = write_config(tmp_path, ldap_tables(tables, None, tmp_path, ldap_url), "ldap.toml")
    code, out, err = cli(capsys, "check", str(config))
    assert code == 1, out + err
    states = {line.split()[1]: line for line in out.splitlines()}
    assert states["registry"].startswith("ok"), out
    assert states["users"].startswith("FAIL") and f"[ldap] urls: {ldap_url}: the start-up lookup failed" in out, out
    assert states["replay"].startswith("FAIL"), out


def test_check_a_file_with_a_missing_key_stops_at_the_file(tmp_path: Path, sts_keys: KeyFiles,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = deployment(tmp_path, sts_keys, "memory:")
    config.write_text(config.read_text().replace(str(sts_keys.key), "/nonexistent/sts.key"))
    code, out, _ = cli(capsys, "check", str(config))
    assert code == 1
    assert out.splitlines() == [f"FAIL file      {config}: [keys] signing_key: /nonexistent/sts.key cannot be read "
                                "(No such file or directory)"], out


def test_check_without_a_file_says_how_to_name_one(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSTRUST_CONFIG", raising=False)
    code, out, err = cli(capsys, "check")
    assert code == 2 and "WSTRUST_CONFIG" in err and not out


# ---------------------------------------------------------------------- health, in-process


class Broken(MemoryReplayCache):
    """A replay cache whose backend is down."""

    def add(self, key: str, **kwargs: Any) -> bool:
        raise StoreUnavailable("backend at redis://secret-host:6379 refused", reason="down")


def test_the_sts_health_answer(sts_keys: KeyFiles) -> None:
    def sts(cache: MemoryReplayCache) -> TokenService:
        return TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=MemoryUserStore([]),
                            relying_parties=[], nonce_cache=cache)

    healthy = TestApp(sts(MemoryReplayCache())).get("/services/sts/health")
    assert healthy.status_int == 200 and healthy.content_type == "application/json"
    assert healthy.json == {"status": "ok", "checks": {"settings": "ok", "relying_parties": "ok",
                                                       "nonce_cache": "ok"}}
    assert healthy.headers["Cache-Control"] == "no-store"
    broken = TestApp(sts(Broken())).get("/services/sts/health", expect_errors=True)
    assert broken.status_int == 503
    assert broken.json == {"status": "unavailable", "checks": {"settings": "ok", "relying_parties": "ok",
                                                               "nonce_cache": "failed"}}
    assert "secret-host" not in broken.text
    assert TestApp(sts(MemoryReplayCache())).post("/services/sts/health", expect_errors=True).status_int == 415
    off = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=MemoryUserStore([]), relying_parties=[],
                       health=False)
    assert TestApp(off).get("/services/sts/health", expect_errors=True).status_int == 405


def test_the_middleware_health_answer_is_opt_in(sts_keys: KeyFiles) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the app"]

    def protected(**options: Any) -> TestApp:
        return TestApp(RelyingPartyMiddleware(app, audience=SERVICE, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                              **options))

    assert protected().get("/health", expect_errors=True).status_int == 405  # off by default
    healthy = protected(health_path="/health").get("/health")
    assert healthy.json == {"status": "ok", "checks": {"trusted_certs": "ok"}}
    assert protected(health_path="/health").get("/other", expect_errors=True).status_int == 405
    broken = protected(health_path="/health", replay_cache=Broken()).get("/health", expect_errors=True)
    assert broken.status_int == 503
    assert broken.json == {"status": "unavailable", "checks": {"trusted_certs": "ok", "replay_cache": "failed"}}
    with pytest.raises(ConfigurationError, match="health_path"):
        RelyingPartyMiddleware(app, audience=SERVICE, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                               health_path="health")


# ---------------------------------------------------------------------- health under gunicorn, Redis stopped


def assert_health_follows_redis(url: str, redis: RedisServer, check: str) -> None:
    """200 with Redis up, 503 naming ``check`` failed once it is stopped, 200 again after it restarts."""
    status, content_type, body = get(url)
    assert (status, body["status"], body["checks"][check]) == (200, "ok", "ok"), body
    assert content_type.startswith("application/json")
    redis.stop()
    time.sleep(1.1)  # past the one second a process keeps its last answer
    status, _, body = get(url)
    assert (status, body["status"], body["checks"][check]) == (503, "unavailable", "failed"), body
    assert "127.0.0.1" not in json.dumps(body) and "redis" not in json.dumps(body)
    redis.start()
    deadline = time.monotonic() + 10
    while get(url)[0] != 200:
        assert time.monotonic() < deadline, "health did not recover after Redis restarted"
        time.sleep(0.3)


def test_deployed_sts_health_under_gunicorn_follows_its_redis(tmp_path: Path, sts_keys: KeyFiles) -> None:
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    server: Gunicorn | None = None
    try:
        config = deployment(tmp_path, sts_keys, redis.url)
        server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=free_port(), cwd=tmp_path,
                          log=tmp_path / "gunicorn.log")
        server.wait_started()
        url = f"http://127.0.0.1:{server.port}/services/sts/health"
        assert_health_follows_redis(url, redis, "nonce_cache")
        assert get(f"http://127.0.0.1:{server.port}/services/other/health")[0] == 404
    finally:
        if server is not None:
            server.stop()
        redis.stop()
    assert "health: nonce_cache failed: StoreUnavailable" in server.text(), server.text()


SERVICE_MODULE = '''\
from demo_service.app import echo
from wstrust_wsgi import RelyingPartyMiddleware
from wstrust_wsgi.stores.replay import RedisReplayCache

app = RelyingPartyMiddleware(echo, audience={service!r}, issuer={issuer!r}, trusted_certs=[{cert!r}],
                             replay_cache=RedisReplayCache({redis!r}), health_path="/health")
'''


def test_middleware_health_under_gunicorn_follows_its_redis(tmp_path: Path, sts_keys: KeyFiles) -> None:
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    (tmp_path / "service_app.py").write_text(SERVICE_MODULE.format(
        service=SERVICE, issuer=ISSUER, cert=str(sts_keys.cert), redis=redis.url))
    port, log = free_port(), tmp_path / "service.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "service_app:app", "--bind", f"127.0.0.1:{port}",
             "--chdir", str(tmp_path), "--no-control-socket", "--graceful-timeout", "5"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, log)
        assert_health_follows_redis(f"http://127.0.0.1:{port}/health", redis, "replay_cache")
    finally:
        stop(process)
        redis.stop()
    assert "health: replay_cache failed: StoreUnavailable" in log.read_text(), log.read_text()
