"""Holder-of-key tokens from the npm ``saml`` package, proven with their key, admitted by the middleware.

``Saml11.create`` with ``subjectConfirmationMethod: "holder-of-key"`` and an
``encryptionCert`` puts the proof key (``holderOfKeyProofSecret``, given here)
as an ``xenc:EncryptedKey`` for that certificate (npm ``xml-encryption``,
rsa-oaep-mgf1p) in each SubjectConfirmation, signs, then encrypts the whole
assertion for the same certificate. Our client signs the request with that
key; the middleware decrypts the token, verifies it, unwraps the proof key and
checks the signature. The same token with a request signed by another key,
or unsigned, is refused.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from datetime import timezone
from pathlib import Path

import pytest
import webtest

from _forge import RecordingApp, read_fault
from _support import EMAIL, ISSUER, SERVICE_URL, FixedClock, KeyFiles
from _support.hok import rp_key_files
from wstrust_wsgi import IssuedToken, RelyingPartyMiddleware, ns, saml
from wstrust_wsgi.client import service_request

from test_encrypted_foreign_tokens import node

PAYLOAD = b"<Ping xmlns='urn:example'/>"


@pytest.fixture
def minted_with_secret(sts_keys: KeyFiles, keydir: Path, clock: FixedClock,
                       tmp_path: Path) -> tuple[IssuedToken, KeyFiles]:
    """A SAML 1.1 holder-of-key token minted and encrypted by npm saml, with the proof key we chose."""
    rp = rp_key_files(keydir)
    secret = os.urandom(32)
    uid = os.urandom(8).hex()
    spec = {"version": "1.1", "keyFile": str(sts_keys.key), "certFile": str(sts_keys.cert),
            "now": clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "encryptionCertFile": str(rp.cert), "holderOfKeyProofSecretBase64": base64.b64encode(secret).decode(),
            "options": {"issuer": ISSUER, "audiences": SERVICE_URL, "lifetimeInSeconds": 300,
                        "nameIdentifier": "admin", "subjectConfirmationMethod": "holder-of-key", "uid": uid,
                        "attributes": {EMAIL: "admin@example.org"}}}
    token = node("mint_saml.js", spec, tmp_path)
    return IssuedToken(token, saml.SAML11.token_type, f"_{uid}", None, None, SERVICE_URL, proof_key=secret,
                       key_type="symmetric"), rp


def guard(recorder: RecordingApp, sts_keys: KeyFiles, rp: KeyFiles, clock: FixedClock) -> webtest.TestApp:
    return webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
        clock=clock, decryption_keys=[(rp.key, rp.cert)], confirmation="holder-of-key"))


def post(app: webtest.TestApp, token: IssuedToken | bytes) -> webtest.TestResponse:
    body, headers = service_request(token, PAYLOAD)
    return app.post("/soap", body, headers=headers, expect_errors=True)


def test_node_saml_holder_of_key_token_proven_with_its_key_is_admitted(minted_with_secret, sts_keys,
                                                                       clock) -> None:  # type: ignore[no-untyped-def]
    token, rp = minted_with_secret
    recorder = RecordingApp()
    response = post(guard(recorder, sts_keys, rp, clock), token)
    assert response.status_int == 200, response.body
    verified = recorder.calls[0]["assertion"]
    assert (verified.subject, verified.encrypted, verified.confirmation, verified.version) == (
        "admin", True, "holder-of-key", "1.1")


def test_node_saml_holder_of_key_token_with_another_key_or_no_proof_is_refused(minted_with_secret, sts_keys,
                                                                               clock) -> None:  # type: ignore[no-untyped-def]
    token, rp = minted_with_secret
    recorder = RecordingApp()
    app = guard(recorder, sts_keys, rp, clock)
    wrong = post(app, dataclasses.replace(token, proof_key=os.urandom(32)))
    assert read_fault(wrong.body).code == f"{{{ns.WSSE}}}FailedCheck"
    unsigned = post(app, token.assertion)
    assert read_fault(unsigned.body).code == f"{{{ns.WSSE}}}InvalidSecurity"
    assert recorder.calls == []
