"""msal against the deployed STS over real TLS: its MEX reader finds our endpoint, its WS-Trust modules get a token.

The STS runs under gunicorn with a TLS certificate for 127.0.0.1, deployed from
its TOML file; msal is given a ``requests`` session trusting that certificate,
exactly as msal's ``application.py`` calls ``mex.send_request`` and then
``wstrust_request.send_request`` with the endpoint the MEX document names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from msal import mex as msal_mex
from msal import wstrust_request, wstrust_response

from _support import KeyFiles, xmlsec1_verify
from _support.deployment import ADMIN_PASSWORD, SERVICE, Gunicorn, init_registry, sqlite_url, write_config
from _support.net import free_port
from wstrust_wsgi.keys import generate_tls_pair


@pytest.fixture
def sts_over_tls(tmp_path: Path, sts_keys: KeyFiles) -> Iterator[tuple[str, Path]]:
    registry = sqlite_url(tmp_path / "registry.db")
    init_registry(registry)
    tls_key, tls_cert = generate_tls_pair(["127.0.0.1"], tmp_path)
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": registry}, "replay": {"nonce_cache": "memory:"},
    })
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log", args=("--certfile", str(tls_cert), "--keyfile", str(tls_key)))
    try:
        server.wait_started()
        yield f"https://127.0.0.1:{port}/services/sts", tls_cert
    finally:
        server.stop()


def test_msal_reads_mex_then_gets_a_token(sts_over_tls: tuple[str, Path], sts_keys: KeyFiles,
                                          tmp_path: Path) -> None:
    sts_url, tls_cert = sts_over_tls
    session = requests.Session()
    session.trust_env = False  # else $REQUESTS_CA_BUNDLE overrides the session's verify
    session.verify = str(tls_cert)
    endpoint = msal_mex.send_request(sts_url + "/mex", session)
    assert endpoint == {"address": sts_url, "action": msal_mex.Mex.ACTION_13}
    result = wstrust_request.send_request("admin", ADMIN_PASSWORD, SERVICE, endpoint["address"], endpoint["action"],
                                          session)
    assert result["type"] == wstrust_response.SAML_TOKEN_TYPE_V2
    verified = xmlsec1_verify(result["token"], sts_keys.cert, tmp_path)
    assert verified.returncode == 0, verified.stderr
    metadata = session.get(sts_url.replace("/services/sts", "/FederationMetadata/2007-06/FederationMetadata.xml"))
    assert metadata.status_code == 200 and metadata.headers["ETag"]
    assert session.get(metadata.url, headers={"If-None-Match": metadata.headers["ETag"]}).status_code == 304
