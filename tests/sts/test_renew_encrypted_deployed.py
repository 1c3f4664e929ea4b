"""Renewing encrypted tokens against the real thing: the STS and the echo service each under gunicorn (two
workers) on loopback, sharing one Redis token store; the STS finds an encrypted token by its digest in
whichever worker the request lands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lxml import etree

from _support.hok import hok_servers
from wstrust_wsgi import RemoteFault, StsClient, UrllibTransport, call_service, ns
from wstrust_wsgi.cli import ECHO_NS, echo_payload

if TYPE_CHECKING:
    from _support.redis_server import RedisServer


def test_encrypted_tokens_are_renewed_and_cancelled_over_http(tmp_path: Path, redis_server: RedisServer) -> None:
    http = UrllibTransport()
    with hok_servers(tmp_path, tokens=redis_server.url, encrypted=True, workers=2) as servers:
        sts_url, service_url = servers.sts_url, servers.service_url
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
    log = servers.sts.text()
    assert f"renewed: encrypted token {token.assertion_id} as {renewed.assertion_id}" in log, log
    assert "no record of token '(encrypted, SHA-256 " in log
