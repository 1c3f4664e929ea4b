"""Key rollover end to end under real gunicorn, with no restart of either side.

The STS is deployed from its TOML file (two workers) with its signing keys in
the registry; the relying party is the echo service behind the middleware
(two gthread workers) following the STS's federation metadata every 0.3 s,
the metadata's signer pinned (the current and the next key). Then, with
``wstrust-wsgi keys`` against the registry while both run:

1. ``add-next``: the STS publishes the next key; the middleware trusts it
   before any token is signed with it;
2. ``promote``: the STS signs with the new key; tokens of both keys are admitted;
3. ``retire``: once the middleware has refreshed, the old key's tokens are refused.

Each step waits for the condition it needs (with a deadline), never for a
fixed time.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _support import KeyFiles
from _support.deployment import ADMIN_PASSWORD, ISSUER, SERVICE, Gunicorn, init_registry, sqlite_url, write_config
from _support.net import free_port, wait_listening
from wstrust_wsgi import IssuedToken, StsClient
from wstrust_wsgi.cli import main
from wstrust_wsgi.config import load_config
from wstrust_wsgi.deploy import StartupError, check_deployment, make_app
from wstrust_wsgi.metadata import read_metadata
from wstrust_wsgi.testing import TokenFactory, soap_request
from wstrust_wsgi.xmldsig import certificate_base64

RP_APP = '''
import os
from demo_service.app import echo
from wstrust_wsgi import RelyingPartyMiddleware

app = RelyingPartyMiddleware(
    echo, audience=os.environ["RP_AUDIENCE"], issuer=os.environ["RP_ISSUER"],
    metadata_url=os.environ["RP_METADATA"], metadata_refresh=0.3, metadata_cache=os.environ["RP_CACHE"],
    metadata_signing_certs=os.environ["RP_PINNED"].split(os.pathsep),
)
'''
PAYLOAD = b'<e:echo xmlns:e="urn:demo:echo">rolling</e:echo>'


def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def status(url: str, token: IssuedToken) -> int:
    body, headers = soap_request(token, PAYLOAD)
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def signed_by(token: IssuedToken, keys: KeyFiles) -> bool:
    ours = certificate_base64(keys.load().certificate).replace("\n", "").encode()
    return ours in token.assertion.replace(b"\n", b"")


@pytest.fixture
def running(tmp_path: Path, sts_keys: KeyFiles, sts2_keys: KeyFiles,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, str]]:
    registry = sqlite_url(tmp_path / "registry.db")
    init_registry(registry)
    monkeypatch.setenv("WSTRUST_KEY_PASSPHRASE", "rollover test passphrase")
    for step in (["add-next", "--key", str(sts_keys.key), "--cert", str(sts_keys.cert)], ["promote"]):
        assert main(["--registry", registry, "keys", *step]) == 0
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": registry}, "replay": {"nonce_cache": "memory:"},
    })
    sts_port, rp_port = free_port(), free_port()
    metadata = f"http://127.0.0.1:{sts_port}/FederationMetadata/2007-06/FederationMetadata.xml"
    (tmp_path / "rp_app.py").write_text(RP_APP)
    sts = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=sts_port, cwd=tmp_path,
                   log=tmp_path / "sts.log", args=("--workers", "2"))
    rp = None
    try:
        sts.wait_started(workers=2)
        for name, value in (("RP_AUDIENCE", SERVICE), ("RP_ISSUER", ISSUER), ("RP_METADATA", metadata),
                            ("RP_CACHE", str(tmp_path / "sts-metadata.xml")),
                            ("RP_PINNED", f"{sts_keys.cert}:{sts2_keys.cert}")):
            monkeypatch.setenv(name, value)
        rp = Gunicorn("rp_app:app", port=rp_port, cwd=tmp_path, log=tmp_path / "rp.log",
                      args=("--worker-class", "gthread", "--workers", "2", "--threads", "4"))
        wait_listening(rp_port, rp.process, rp.log)
        yield registry, f"http://127.0.0.1:{sts_port}/services/sts", f"http://127.0.0.1:{rp_port}/soap"
    finally:
        if rp is not None:
            rp.stop()
        sts.stop()


def test_rollover_without_restart(running: tuple[str, str, str], sts_keys: KeyFiles, sts2_keys: KeyFiles) -> None:
    registry, sts_url, rp_url = running
    client = StsClient(sts_url, username="admin", password=ADMIN_PASSWORD)
    metadata_url = sts_url.replace("/services/sts", "/FederationMetadata/2007-06/FederationMetadata.xml")
    next_key = TokenFactory(audience=SERVICE, issuer=ISSUER, signing_key=sts2_keys.load())

    def published() -> int:
        with urllib.request.urlopen(metadata_url, timeout=10) as answer:
            return len(read_metadata(answer.read(), issuer=ISSUER, now=next_key.clock(),
                                     signing_certs=[sts_keys.load().certificate, sts2_keys.load().certificate]
                                     ).signing_certificates)

    old_token = client.request_token(SERVICE)
    assert signed_by(old_token, sts_keys) and status(rp_url, old_token) == 200
    assert status(rp_url, next_key.mint()) == 500  # not published yet: not trusted

    assert main(["--registry", registry, "keys", "add-next", "--key", str(sts2_keys.key),
                 "--cert", str(sts2_keys.cert)]) == 0
    until(lambda: published() == 2, "the STS publishes the next key")
    # every worker of the relying party (several requests, several connections) trusts it before it signs
    until(lambda: all(status(rp_url, next_key.mint()) == 200 for _ in range(8)), "the middleware trusts the next key")
    assert signed_by(client.request_token(SERVICE), sts_keys)  # still signing with the old one

    assert main(["--registry", registry, "keys", "promote"]) == 0
    until(lambda: all(signed_by(client.request_token(SERVICE), sts2_keys) for _ in range(4)),
          "every STS worker signs with the promoted key")
    new_token = client.request_token(SERVICE)
    assert status(rp_url, new_token) == 200 and status(rp_url, old_token) == 200

    assert main(["--registry", registry, "keys", "retire"]) == 0
    until(lambda: published() == 1, "the STS stops publishing the retired key")
    until(lambda: all(status(rp_url, old_token) == 500 for _ in range(8)), "the middleware refuses the old key")
    assert status(rp_url, new_token) == 200


def test_a_registry_key_without_its_passphrase_is_one_sentence_at_start(
        tmp_path: Path, sts_keys: KeyFiles, sts2_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = sqlite_url(tmp_path / "registry.db")
    init_registry(registry)
    monkeypatch.setenv("WSTRUST_KEY_PASSPHRASE", "the right one")
    for step in (["add-next", "--key", str(sts2_keys.key), "--cert", str(sts2_keys.cert)], ["promote"]):
        assert main(["--registry", registry, "keys", *step]) == 0
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": registry}, "replay": {"nonce_cache": "memory:"},
    })
    monkeypatch.delenv("WSTRUST_KEY_PASSPHRASE")
    with pytest.raises(StartupError, match=r"\[registry\] url: .*is encrypted: give its passphrase in "
                                        r"\$WSTRUST_KEY_PASSPHRASE_FILE") as refused:
        make_app(config)
    assert "\n" not in str(refused.value)
    checks = {c.name: c for c in check_deployment(load_config(config))}
    assert not checks["registry"].ok and "give its passphrase" in checks["registry"].text  # `wstrust-wsgi check`
    monkeypatch.setenv("WSTRUST_KEY_PASSPHRASE", "a wrong one")
    with pytest.raises(StartupError, match="passphrase is wrong"):
        make_app(config)
    monkeypatch.setenv("WSTRUST_KEY_PASSPHRASE", "the right one")
    checks = {c.name: c for c in check_deployment(load_config(config))}
    assert checks["registry"].ok and "its primary key signs, 1 key(s) published" in checks["registry"].text
