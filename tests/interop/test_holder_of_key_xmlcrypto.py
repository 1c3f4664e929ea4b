"""Holder-of-key requests signed by the npm ``xml-crypto`` package (6.3.2), admitted by the middleware.

``node/sign_wss.js`` signs the way a Node WS-Security client does: HMAC-SHA1
(what WCF and AD FS peers use, so the service sets ``allow_sha1``) with the
proof key our STS issued, over the soap Body and the wsu:Timestamp, KeyInfo a
SecurityTokenReference to the assertion. The same request signed with another
key is refused, and so is an HMAC-SHA1 proof at a service without ``allow_sha1``.
For a PublicKey token it signs with the client's own RSA key (RSA-SHA256): admitted,
as holder-of-key proven with a public key; signed by another RSA key, refused.
"""

from __future__ import annotations

import base64
import os
import warnings
from pathlib import Path

import pytest
import webtest
from lxml import etree

from _forge import RecordingApp, read_fault
from _support import OTHER_URL, SERVICE_URL, KeyFiles
from _support.hok import hok_world, rp_key_files, unsigned_request
from wstrust_wsgi import ns, saml
from wstrust_wsgi.errors import SecurityWarning

from test_encrypted_foreign_tokens import node


def xml_crypto_signed(token, tmp_path: Path, key: bytes | KeyFiles) -> bytes:  # type: ignore[no-untyped-def]
    """Our request for ``token`` without our proof signature, signed again by xml-crypto with ``key``: an HMAC
    proof key, or an RSA key pair's files (its private key signs)."""
    envelope = unsigned_request(token, tmp_path)
    version = saml.version_for_token_type(token.token_type)
    signing = {"keyFile": str(key.key)} if isinstance(key, KeyFiles) else {"keyBase64": base64.b64encode(key).decode()}
    return node("sign_wss.js", {
        "envelopeFile": str(envelope), **signing, "tokenId": token.assertion_id,
        "tokenType": version.profile_token_type, "valueType": version.key_identifier_value_type}, tmp_path)


@pytest.mark.parametrize("address", [SERVICE_URL, OTHER_URL], ids=["saml2.0", "saml1.1"])
def test_xml_crypto_signed_proof_is_admitted_and_another_key_refused(sts_keys, keydir, users, clock, tmp_path,
                                                                     address) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        world = hok_world(sts_keys, rp_key_files(keydir), users, clock, allow_sha1=True)
    strict = hok_world(sts_keys, rp_key_files(keydir), users, clock)
    token = world.client().request_token(address, key_type="symmetric")
    signed = xml_crypto_signed(token, tmp_path, token.proof_key)
    assert b"hmac-sha1" in signed and b"SecurityTokenReference" in signed
    post = lambda app, body: webtest.TestApp(app).post("/soap", body, content_type="text/xml",  # noqa: E731
                                                       expect_errors=True)
    admitted = post(world.service, signed)
    assert admitted.status_int == 200, admitted.body
    forged = post(world.service, xml_crypto_signed(token, tmp_path, os.urandom(32)))
    assert read_fault(forged.body).code == f"{{{ns.WSSE}}}FailedCheck"
    sha1_refused = post(strict.service, signed)
    assert read_fault(sha1_refused.body).code == f"{{{ns.WSSE}}}UnsupportedAlgorithm"


@pytest.mark.parametrize("address", [SERVICE_URL, OTHER_URL], ids=["saml2.0", "saml1.1"])
def test_xml_crypto_rsa_signed_proof_of_a_public_key_token_is_admitted_and_another_key_refused(
        sts_keys, keydir, users, clock, tmp_path, address) -> None:  # type: ignore[no-untyped-def]
    from wstrust_wsgi import generate_demo_key_pair
    for stem in ("client", "other"):
        generate_demo_key_pair(f"test {stem}", tmp_path, stem)
    client, other = (KeyFiles(tmp_path / f"{stem}.key", tmp_path / f"{stem}.crt") for stem in ("client", "other"))
    recorder = RecordingApp()
    world = hok_world(sts_keys, rp_key_files(keydir), users, clock, app=recorder, confirmation="holder-of-key")
    token = world.client().request_token(address, key_type="public", client_key=client.load())
    signed = xml_crypto_signed(token, tmp_path, client)
    [proof] = [s for s in etree.fromstring(signed).iter(f"{{{ns.DS}}}Signature")
               if s.find(f"{{{ns.DS}}}KeyInfo/{{{ns.WSSE}}}SecurityTokenReference") is not None]
    assert proof.get("Id") is None  # xml-crypto's, not ours (which unsigned_request took out)
    assert proof.find(f"{{{ns.DS}}}SignedInfo/{{{ns.DS}}}SignatureMethod").get("Algorithm") == ns.ALG_RSA_SHA256
    post = lambda body: webtest.TestApp(world.service).post("/soap", body, content_type="text/xml",  # noqa: E731
                                                            expect_errors=True)
    admitted = post(signed)
    assert admitted.status_int == 200, admitted.body
    [call] = recorder.calls
    assert (call["assertion"].confirmation, call["assertion"].proof_key) == ("holder-of-key", "public")
    forged = post(xml_crypto_signed(token, tmp_path, other))
    assert read_fault(forged.body).code == f"{{{ns.WSSE}}}FailedCheck" and len(recorder.calls) == 1
