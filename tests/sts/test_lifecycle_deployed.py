"""Validate, Renew and Cancel against the real gunicorn STS and echo service, sharing one Redis token store."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _support import ROOT
from _support.deployment import ADMIN_PASSWORD, SERVICE, init_registry, running_demos, sqlite_url, write_config
from wstrust_wsgi import StsClient, UrllibTransport, WSGITransport, call_service
from wstrust_wsgi.config import load_config
from wstrust_wsgi.deploy import StartupError, make_app
from wstrust_wsgi.errors import ConfigurationError, RemoteFault
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.tokens import RegistryTokenStore

if TYPE_CHECKING:
    from _support.redis_server import RedisServer

HELLO = b'<Hello xmlns="urn:example"/>'


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[tuple[str, str, Path]]:
    """The demo STS recording tokens in Redis, the echo service refusing those cancelled there."""
    with running_demos(tmp_path_factory.mktemp("gunicorn"), WSTRUST_DEMO_TOKEN_STORE=redis_server.url,
                       WSTRUST_DEMO_REVOCATION_STORE=redis_server.url) as servers:
        yield servers


@pytest.mark.parametrize("trust, soap", [("1.3", "1.2"), ("1.3", "1.1"), ("2005", "1.2"), ("2005", "1.1")])
def test_round_trip_over_http(servers: tuple[str, str, Path], trust: str, soap: str) -> None:
    sts_url, service_url, logs = servers
    http = UrllibTransport()
    admin = StsClient(sts_url, username="admin", password="admin", trust_version=trust, soap_version=soap)
    token = admin.request_token(service_url)
    assert admin.validate(token).valid
    renewed = admin.renew(token)
    assert renewed.assertion_id != token.assertion_id and admin.validate(renewed).valid
    assert not admin.validate(token).valid
    assert call_service(service_url, renewed, HELLO, transport=http) is not None
    admin.cancel(renewed)
    assert not admin.validate(renewed).valid
    for used in (token, renewed):  # the service shares the STS's store: both are refused now
        with pytest.raises(RemoteFault) as caught:
            call_service(service_url, used, HELLO, transport=http)
        assert caught.value.local_code == "InvalidSecurityToken"
    with pytest.raises(RemoteFault) as caught:
        StsClient(sts_url, username="alice", password="alice").renew(token)
    assert caught.value.local_code == "RequestFailed"  # alice holds no allowed role
    text = "".join(log.read_text() for log in logs.glob("*.log"))
    assert f"renewed: token {token.assertion_id} as {renewed.assertion_id}" in text
    assert f"cancelled: token {renewed.assertion_id} of 'admin' by 'admin'" in text


def test_the_client_command_validates_renews_and_cancels(servers: tuple[str, str, Path], tmp_path: Path) -> None:
    sts_url, service_url, _ = servers
    command = [sys.executable, "-m", "wstrust_wsgi", "client", "--sts", sts_url, "--service", service_url,
               "--username", "admin", "--password", "admin", "--validate", "--renew", "--cancel", "--raw"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Validate: valid (The token is valid.)" in result.stdout
    assert "Renewed token (urn:oasis:names:tc:SAML:2.0:assertion)" in result.stdout
    assert "<echo:Caller>admin</echo:Caller>" in result.stdout and "Cancelled token _" in result.stdout
    after = result.stdout.split("Renewed token", 1)[1]
    renewed = after[after.index("<Assertion"):after.index("</Assertion>") + len("</Assertion>")].encode()
    saved = tmp_path / "token.xml"
    saved.write_bytes(renewed)
    again = subprocess.run([*command[:-4], "--token", str(saved), "--validate", "--no-call"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "Validate: INVALID (The token has been cancelled.)" in again.stdout, again
    refused = subprocess.run([*command[:-4], "--token", str(saved), "--renew", "--no-call"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "refused to renew the token: The token has been cancelled. (UnableToRenew)" in refused.stderr


def test_the_client_command_asks_for_claims(servers: tuple[str, str, Path]) -> None:
    sts_url, service_url, _ = servers
    email = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
    command = [sys.executable, "-m", "wstrust_wsgi", "client", "--sts", sts_url, "--service", service_url,
               "--username", "admin", "--password", "admin", "--claim", email, "--claim", "urn:example:x?"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f'<echo:Attribute Name="{email}">admin@example.org</echo:Attribute>' in result.stdout
    assert "claims/role" not in result.stdout  # roles were not asked for
    missing = subprocess.run([*command[:-2], "--claim", "urn:example:x"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1
    assert "The required claim urn:example:x cannot be supplied for this user. (InvalidRequest)" in missing.stderr


# ---------------------------------------------------------------------- the deployment file's [tokens] table


def test_the_deployment_file_turns_the_bindings_on_with_the_registry_as_store(tmp_path: Path, sts_keys) -> None:  # type: ignore[no-untyped-def]
    url = sqlite_url(tmp_path / "registry.db")
    init_registry(url)
    tables = {"keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
              "registry": {"url": url}, "replay": {"nonce_cache": "memory:"}}
    plain = make_app(write_config(tmp_path, tables))
    admin = StsClient("http://sts.invalid/services/sts", username="admin", password=ADMIN_PASSWORD,
                      transport=WSGITransport(plain))
    with pytest.raises(RemoteFault) as caught:  # off by default: Issue only
        admin.validate(admin.request_token(SERVICE))
    assert caught.value.local_code == "InvalidRequest"

    tables["tokens"] = {"enabled": True, "renewal_window": 600, "administrators": ["admin"]}
    config = load_config(write_config(tmp_path, tables))
    assert config.tokens is not None and config.tokens[1] == "registry"
    assert config.tokens[0].renewal_window.total_seconds() == 600 and config.tokens[0].administrators == {"admin"}
    admin = StsClient("http://sts.invalid/services/sts", username="admin", password=ADMIN_PASSWORD,
                      transport=WSGITransport(make_app(write_config(tmp_path, tables))))
    token = admin.request_token(SERVICE)
    assert admin.validate(token).valid
    renewed = admin.renew(token)
    admin.cancel(renewed)
    assert not admin.validate(renewed).valid
    with Registry.open(url) as registry:  # recorded in the registry's table, where other hosts see it
        assert RegistryTokenStore(registry).get(renewed.assertion_id, datetime.now(timezone.utc)).state == "cancelled"  # type: ignore[union-attr]

    for key, value, problem in (("enabled", "yes", "[tokens] enabled: must be true or false"),
                                ("renewal_window", "30m", "[tokens] renewal_window: must be a whole number"),
                                ("validators", "auditor", "[tokens] validators: must be a list of role names"),
                                ("lifetime", 1, "[tokens]")):
        bad = {**tables, "tokens": {"enabled": True, key: value}}
        with pytest.raises(ConfigurationError, match=re.escape(problem)):
            load_config(write_config(tmp_path, bad))
    tables["tokens"] = {"enabled": True, "store": "sqlite:///nowhere.db"}
    with pytest.raises(StartupError, match=re.escape("[tokens] store: token store: 'sqlite:///nowhere.db'")):
        make_app(write_config(tmp_path, tables))
