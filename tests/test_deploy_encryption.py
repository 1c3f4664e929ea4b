"""Encrypted tokens from the deployed STS: real gunicorn, a registry changed by the CLI, the client command.

The operator's steps: ``rp add ADDRESS --encrypt-cert rp.crt`` on the registry
a running gunicorn STS reads; the client then receives an encrypted token that
only the relying party's key opens (and whose assertion verifies with the STS
certificate); ``wstrust-wsgi client`` says the token is encrypted for the
service; ``rp set --no-encrypt`` reaches the running STS at its next request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lxml import etree

from _support import KeyFiles, key_files, xmlsec1_verify
from _support.deployment import (
    ADMIN_PASSWORD, ISSUER, Gunicorn, free_port, init_registry, sqlite_url, write_config,
)
from _support.net import wait_listening
from wstrust_wsgi import StsClient, UrllibTransport, generate_demo_key_pair, xmlenc

ENCRYPTED_SERVICE = "https://secret.example.org/soap"


def admin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTRUST_")}
    return subprocess.run([sys.executable, "-m", "wstrust_wsgi", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_the_deployed_sts_encrypts_for_a_party_registered_with_rp_add_encrypt_cert(
        tmp_path: Path, sts_keys: KeyFiles) -> None:
    generate_demo_key_pair("test relying party", tmp_path, "rp")
    rp_keys = key_files(tmp_path, "rp")
    registry = sqlite_url(tmp_path / "registry.db")
    init_registry(registry)
    added = admin("rp", "add", ENCRYPTED_SERVICE, "--token-type", "1.1", "--encrypt-cert", str(rp_keys.cert),
                  "--registry", registry, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": registry},
        "replay": {"nonce_cache": "memory:"},
    })
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=free_port(), cwd=tmp_path,
                      log=tmp_path / "gunicorn.log")
    url = f"http://127.0.0.1:{server.port}/services/sts"
    try:
        server.wait_started()
        client = StsClient(url, username="admin", password=ADMIN_PASSWORD, transport=UrllibTransport(timeout=30))
        token = client.request_token(ENCRYPTED_SERVICE)
        assert token.encrypted and token.encrypted_for and token.encrypted_for.startswith("the certificate of issuer")
        encrypted = etree.fromstring(token.assertion)
        decrypted = xmlenc.Decrypter([rp_keys.load()]).decrypt(encrypted)
        assert decrypted.element.get("AssertionID") == token.assertion_id  # SAML 1.1, the party's type
        verified = xmlsec1_verify(decrypted.plaintext, sts_keys.cert, tmp_path)
        assert verified.returncode == 0 and "\nOK\n" in verified.stderr, verified.stderr

        printed = admin("client", "--sts", url, "--applies-to", ENCRYPTED_SERVICE, "--password", ADMIN_PASSWORD,
                        "--no-call", cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        assert ("encrypted for the service (the certificate of issuer" in printed.stdout
                and "only the service can read its claims" in printed.stdout), printed.stdout
        assert "EncryptedData" not in printed.stdout and "CipherValue" not in printed.stdout

        changed = admin("rp", "set", ENCRYPTED_SERVICE, "--no-encrypt", "--registry", registry, cwd=tmp_path)
        assert changed.returncode == 0, changed.stderr
        plain = client.request_token(ENCRYPTED_SERVICE)  # the running STS reads the registry per request
        assert not plain.encrypted and b"AssertionID" in plain.assertion
    finally:
        server.stop()
    log = server.text()
    assert f"encrypted (aes256-gcm, rsa-oaep-mgf1p) to 'admin' for {ENCRYPTED_SERVICE}" in log, log


def test_the_whole_round_trip_under_gunicorn_sts_client_and_a_decrypting_service(
        tmp_path: Path, sts_keys: KeyFiles) -> None:
    """Both sides deployed: the STS encrypts for the service's certificate, ``wstrust-wsgi client`` carries the
    opaque token, the service (``require_encryption=True``) decrypts it and answers. GCM by default; CBC
    only once the operator chose it for the party and the service opted in for this STS with a key of its
    own; CBC under the GCM key is refused."""
    keydir = tmp_path / "keys"
    keydir.mkdir()
    for stem in ("rp", "peer"):
        generate_demo_key_pair(f"test {stem}", keydir, stem)
    (keydir / "sts.crt").write_bytes(sts_keys.cert.read_bytes())
    service_port, sts_port = free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}/soap"
    registry = sqlite_url(tmp_path / "registry.db")
    init_registry(registry)

    def rp(*args: str) -> None:
        done = admin("rp", *args, "--registry", registry, cwd=tmp_path)
        assert done.returncode == 0, done.stderr

    def client() -> subprocess.CompletedProcess[str]:
        return admin("client", "--sts", f"http://127.0.0.1:{sts_port}/services/sts", "--service", service_url,
                     "--password", ADMIN_PASSWORD, "--message", "sealed", cwd=tmp_path)

    rp("add", service_url, "--encrypt-cert", str(keydir / "rp.crt"))
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": registry},
        "replay": {"nonce_cache": "memory:"},
    })
    sts = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=sts_port, cwd=tmp_path,
                   log=tmp_path / "sts.log")
    service = Gunicorn(f'_support.encrypted:sts_peer_app("{keydir}", "{ISSUER}", "{service_url}")',
                       port=service_port, cwd=tmp_path, log=tmp_path / "service.log",
                       args=("--pythonpath", str(Path(__file__).resolve().parent)))
    try:
        sts.wait_started()
        wait_listening(service_port, service.process, service.log)
        answered = client()
        assert answered.returncode == 0, answered.stderr
        assert "encrypted for the service" in answered.stdout
        assert "<echo:Message>sealed</echo:Message>" in answered.stdout, answered.stdout

        rp("set", service_url, "--encrypt-cert", str(keydir / "peer.crt"), "--encryption", "aes256-cbc")
        answered = client()
        assert answered.returncode == 0 and "<echo:Message>sealed</echo:Message>" in answered.stdout, (
            answered.stdout + answered.stderr)

        rp("set", service_url, "--encrypt-cert", str(keydir / "rp.crt"))  # still CBC, now under the GCM key
        refused = client()
        assert refused.returncode != 0 and "<echo:Message>" not in refused.stdout
    finally:
        sts.stop()
        service.stop()
    sts_log, service_log = sts.text(), service.text()
    assert "encrypted (aes256-gcm, rsa-oaep-mgf1p) to 'admin'" in sts_log
    assert "encrypted (aes256-cbc, rsa-oaep-mgf1p) to 'admin'" in sts_log
    assert service_log.count("admitted: ") == 2, service_log
