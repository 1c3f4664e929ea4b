"""Holder-of-key end to end: client -> STS (SymmetricKey) -> signed request -> middleware -> echo service.

In-process for each entropy mode, SAML version, SOAP version and WS-Trust
version (and both HMAC methods); then for real, the STS and the service each
under gunicorn on loopback, the client speaking HTTP to both, through the same
matrix (SAML 2.0 and 1.1, SOAP 1.1 and 1.2, WS-Trust 1.3 and 2005, each entropy
mode), then the command line, a public key, and a bearer token refused.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _support import OTHER_URL, ROOT, SERVICE_URL
from _support.hok import hok_servers, hok_world, rp_key_files, saml11_address
from _support.apps import echo
from wstrust_wsgi import (RemoteFault, StsClient, UrllibTransport, WSGITransport, call_service, get_assertion,
                          saml)
from wstrust_wsgi.cli import ECHO_NS, echo_payload

MATRIX = [(entropy, token, soap, trust) for entropy, token, soap, trust
          in itertools.product(["both", "client", "sts"], ["2.0", "1.1"], ["1.1", "1.2"], ["1.3", "2005"])
          if (soap, trust) in (("1.1", "1.3"), ("1.2", "2005")) or entropy == "both"]
ADDRESS = {"2.0": SERVICE_URL, "1.1": OTHER_URL}


@pytest.fixture
def world(sts_keys, keydir, users, clock):  # type: ignore[no-untyped-def]
    return hok_world(sts_keys, rp_key_files(keydir), users, clock, confirmation="holder-of-key")


@pytest.mark.parametrize(("entropy", "token_type", "soap", "trust"), MATRIX)
def test_in_process_holder_of_key_round_trip(world, entropy, token_type, soap, trust) -> None:  # type: ignore[no-untyped-def]
    client = world.client(soap_version=soap, trust_version=trust)
    token = client.request_token(ADDRESS[token_type], key_type="symmetric", entropy=entropy)
    reply = call_service(ADDRESS[token_type], token, echo_payload("proven"), soap_version=soap,
                         transport=WSGITransport(world.service))
    assert (reply.findtext(f"{{{ECHO_NS}}}Message"), reply.findtext(f"{{{ECHO_NS}}}Caller")) == ("proven", "admin")


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_an_encrypted_holder_of_key_token_is_decrypted_then_proven(sts_keys, keydir, users, clock,  # type: ignore[no-untyped-def]
                                                                    token_type) -> None:
    """A party whose tokens are encrypted too (the default with a certificate, as AD FS does): the service opens
    the token with its key, then the proof key inside it, and the request's signature proves possession."""
    seen = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        seen.append(get_assertion(environ))
        return echo(environ, start_response)

    world = hok_world(sts_keys, rp_key_files(keydir), users, clock, app=app, encryption="aes256-gcm",
                      confirmation="holder-of-key")
    token = world.client().request_token(ADDRESS[token_type], key_type="symmetric")
    assert token.encrypted and token.proof_key
    reply = call_service(ADDRESS[token_type], token, echo_payload("sealed and proven"),
                         transport=WSGITransport(world.service))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    [verified] = seen
    assert verified.encrypted and verified.confirmation == "holder-of-key" and verified.proof_key == "symmetric"


@pytest.mark.parametrize("method", ["hmac-sha1", "hmac-sha512"])
def test_other_hmac_methods(sts_keys, keydir, users, clock, method) -> None:  # type: ignore[no-untyped-def]
    world = hok_world(sts_keys, rp_key_files(keydir), users, clock, allow_sha1=method == "hmac-sha1")
    token = world.client().request_token(SERVICE_URL, key_type="symmetric")
    reply = call_service(SERVICE_URL, token, echo_payload("x"), transport=WSGITransport(world.service),
                         signature_algorithm=method)
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


def test_hmac_sha1_is_refused_unless_allowed(world) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL, key_type="symmetric")
    with pytest.raises(RemoteFault) as refused:
        call_service(SERVICE_URL, token, echo_payload("x"), transport=WSGITransport(world.service),
                     signature_algorithm="hmac-sha1")
    assert refused.value.local_code == "UnsupportedAlgorithm"


def test_under_gunicorn(tmp_path: Path) -> None:
    with hok_servers(tmp_path) as servers:
        sts_url, service_url, keydir = servers.sts_url, servers.service_url, servers.keydir
        client = StsClient(sts_url, username="admin", password="admin")
        for entropy, token_type, soap, trust in MATRIX:  # every combination of the in-process test, over HTTP
            address = service_url if token_type == "2.0" else saml11_address(service_url)
            versioned = StsClient(sts_url, username="admin", password="admin",
                                  soap_version=soap, trust_version=trust)
            token = versioned.request_token(address, key_type="symmetric", entropy=entropy)
            assert saml.version_for_token_type(token.token_type).name == token_type
            message = f"{entropy} {token_type} {soap} {trust}"
            reply = call_service(address, token, echo_payload(message), soap_version=soap,
                                 transport=UrllibTransport())
            assert reply.findtext(f"{{{ECHO_NS}}}Message") == message
        command = subprocess.run(
            [sys.executable, "-m", "wstrust_wsgi", "client", "--sts", sts_url,
             "--service", service_url, "--password", "admin", "--key-type", "symmetric", "--entropy", "sts",
             "--show-messages", "--message", "from the command"],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert command.returncode == 0, command.stderr
        assert "holder-of-key (256-bit proof key held, not shown)" in command.stdout
        assert "from the command" in command.stdout and "Caller>admin<" in command.stdout.replace("echo:", "")
        secret = re.search(r"BinarySecret[^>]*>([^<]*)<", command.stdout)
        assert secret is not None and len(secret.group(1)) < 40, secret  # masked, not the 44-character key
        public = subprocess.run(
            [sys.executable, "-m", "wstrust_wsgi", "client", "--sts", sts_url,
             "--service", service_url, "--password", "admin", "--key-type", "public",
             "--client-key", str(keydir / "client.key"), "--client-cert", str(keydir / "client.crt")],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert public.returncode == 0 and "holder-of-key (your public key)" in public.stdout, public.stderr
        bearer = client.request_token(service_url)
        with pytest.raises(RemoteFault) as refused:
            call_service(service_url, bearer, echo_payload("x"), transport=UrllibTransport())
        assert refused.value.reason == "This service requires a holder-of-key token."
    log = servers.service.text()
    assert log.count("holder-of-key proven") == len(MATRIX) + 2 and "requires holder-of-key" in log, log
