"""Renewing encrypted tokens against the real thing: the STS and the echo service each under gunicorn (two
workers) on loopback, sharing one Redis token store; the STS finds an encrypted token by its digest in
whichever worker the request lands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from _support.deployment import Gunicorn
from _support.net import free_port, wait_listening
from wstrust_wsgi import RemoteFault, StsClient, UrllibTransport, call_service, generate_demo_key_pair, ns
from wstrust_wsgi.cli import ECHO_NS, echo_payload

if TYPE_CHECKING:
    from _support.redis_server import RedisServer


def test_encrypted_tokens_are_renewed_and_cancelled_over_http(tmp_path: Path, redis_server: RedisServer) -> None:
    keydir = tmp_path / "keys"
    keydir.mkdir()
    for stem in ("sts", "rp"):
        generate_demo_key_pair(f"test {stem}", keydir, stem)
    sts_port, service_port = free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}/soap"
    sts_url = f"http://127.0.0.1:{sts_port}/sts"
    support = ("--pythonpath", str(Path(__file__).resolve().parent.parent), "--workers", "2")
    servers = [Gunicorn(f'_support.hok:gunicorn_sts("{keydir}", "{service_url}", "{redis_server.url}", True)',
                        port=sts_port, cwd=tmp_path, log=tmp_path / "sts.log", args=support),
               Gunicorn(f'_support.hok:gunicorn_service("{keydir}", "{service_url}", "{redis_server.url}")',
                        port=service_port, cwd=tmp_path, log=tmp_path / "service.log", args=support)]
    http = UrllibTransport()
    try:
        for server in servers:
            wait_listening(server.port, server.process, server.log)
        client = StsClient(sts_url, username="admin", password="admin")
        token = client.request_token(service_url, key_type="symmetric")
        assert token.encrypted and etree.fromstring(token.assertion).tag == f"{{{ns.SAML2}}}EncryptedAssertion"
        renewed = client.renew(token)
        assert renewed.encrypted and renewed.proof_key == token.proof_key
        reply = call_service(service_url, renewed, echo_payload("renewed"), transport=http)
        assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"  # decrypted, proven, admitted
        with pytest.raises(RemoteFault) as retired:
            call_service(service_url, token, echo_payload("old"), transport=http)
        assert retired.value.local_code == "InvalidSecurityToken"
        altered = renewed.assertion.replace(b"CipherValue>", b"CipherValue>A", 1)
        with pytest.raises(RemoteFault) as unknown:
            client.renew(altered)
        assert unknown.value.local_code == "UnableToRenew" and "not issued by this STS" in unknown.value.reason
        assert client.validate(renewed.assertion).valid  # the token itself, found by its digest
        client.cancel(renewed.assertion)
        assert not client.validate(renewed).valid  # and named by its ID
        with pytest.raises(RemoteFault) as cancelled:
            call_service(service_url, renewed, echo_payload("cancelled"), transport=http)
        assert cancelled.value.local_code == "InvalidSecurityToken"
    finally:
        for server in servers:
            server.stop()
    log = servers[0].text()
    assert f"renewed: encrypted token {token.assertion_id} as {renewed.assertion_id}" in log, log
    assert "no record of token '(encrypted, SHA-256 " in log
