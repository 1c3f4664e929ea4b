"""Renewing holder-of-key tokens against the real thing: the STS and the echo service each under gunicorn
(two workers) on loopback, sharing one Redis token store, the client speaking HTTP to both."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _support import ROOT
from _support.hok import hok_servers
from wstrust_wsgi import RemoteFault, SigningKey, StsClient, UrllibTransport, call_service
from wstrust_wsgi.cli import ECHO_NS, echo_payload

if TYPE_CHECKING:
    from _support.redis_server import RedisServer


def test_holder_of_key_tokens_are_renewed_over_http(tmp_path: Path, redis_server: RedisServer) -> None:
    http = UrllibTransport()
    with hok_servers(tmp_path, tokens=redis_server.url, workers=2) as servers:
        sts_url, service_url, keydir = servers.sts_url, servers.service_url, servers.keydir
        client = StsClient(sts_url, username="admin", password="admin")
        token = client.request_token(service_url, key_type="symmetric")
        renewed = client.renew(token)
        assert renewed.assertion_id != token.assertion_id and renewed.proof_key == token.proof_key
        reply = call_service(service_url, renewed, echo_payload("renewed"), transport=http)
        assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
        with pytest.raises(RemoteFault) as retired:  # the service shares the store: the old token is refused
            call_service(service_url, token, echo_payload("old"), transport=http)
        assert retired.value.local_code == "InvalidSecurityToken"
        with pytest.raises(RemoteFault) as unproven:
            client.renew(replace(renewed, proof_key=os.urandom(32)))
        assert unproven.value.local_code == "UnableToRenew"
        public = client.request_token(service_url, key_type="public",
                                      client_key=SigningKey.from_files(keydir / "client.key", keydir / "client.crt"))
        reply = call_service(service_url, client.renew(public), echo_payload("public"), transport=http)
        assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
        command = subprocess.run(
            [sys.executable, "-m", "wstrust_wsgi", "client", "--sts", sts_url, "--service", service_url,
             "--password", "admin", "--key-type", "symmetric", "--renew", "--message", "renewed by the command"],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert command.returncode == 0, command.stderr
        assert "Renewed token" in command.stdout and "renewed by the command" in command.stdout
    log = servers.sts.text()
    assert f"renewed: token {token.assertion_id} as {renewed.assertion_id}" in log, log
    assert log.count("holder-of-key (symmetric), possession proven") == 2
    assert log.count("holder-of-key (public), possession proven") == 1
    assert "proof of possession refused" in log
