"""Holder-of-key requests signed by WSS4J (Debian ``libwss4j-java`` 1.6), admitted by the middleware.

``java/WssHmacSign.java`` signs as CXF's WS-Security layer does: ``WSSecSignature``
with the proof key our STS issued, a custom KeyIdentifier naming the token
(``#SAMLID`` for SAML 2.0, ``#SAMLAssertionID`` for 1.1), over the Body and the
wsu:Timestamp, exclusive c14n with ``ec:InclusiveNamespaces`` in SignedInfo's
CanonicalizationMethod (which the XML-DSig schema alone refused: see
``xmldsig.verify._schema_view``), HMAC-SHA1 and SHA-1 digests (WSS4J 1.6's
defaults), so the service sets ``allow_sha1``. Signed with another key: refused.

``java/WssRsaSign.java`` signs a PublicKey token's request with the client's
own RSA key (RSA-SHA256, SHA-256 digests), WSSecSignature taking the private
key from a ``Merlin`` crypto, the same custom KeyIdentifier: admitted (as
holder-of-key, proven with a public key); signed by another RSA key, refused.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
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

JAVA_DIR = Path(__file__).resolve().parent / "java"
JARS = [Path("/usr/share/java") / name for name in
        ("wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "commons-codec.jar")]


def _java() -> str:
    java = shutil.which("java")
    if java is None or not all(jar.is_file() for jar in JARS):
        pytest.fail("java and WSS4J's jars are needed (Debian default-jdk-headless libwss4j-java); .ci/run "
                    "installs them")
    return java


def _run(program: str, *args: str) -> bytes:
    """``java WssXxxSign.java ARGS`` with WSS4J on the class path: the signed envelope it prints."""
    result = subprocess.run([_java(), "-cp", ":".join(map(str, JARS)), str(JAVA_DIR / program), *args],
                            capture_output=True, timeout=120, cwd=JAVA_DIR)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def wss4j_signed(token, tmp_path: Path, key: bytes) -> bytes:  # type: ignore[no-untyped-def]
    unsigned = unsigned_request(token, tmp_path)
    version = saml.version_for_token_type(token.token_type)
    return _run("WssHmacSign.java", str(unsigned), base64.b64encode(key).decode(), token.assertion_id,
                version.key_identifier_value_type, ns.ALG_HMAC_SHA1)


def wss4j_rsa_signed(token, tmp_path: Path, key: KeyFiles) -> bytes:  # type: ignore[no-untyped-def]
    """Our request for the PublicKey ``token`` without our proof signature, signed again by WSS4J with ``key``."""
    unsigned = unsigned_request(token, tmp_path)
    version = saml.version_for_token_type(token.token_type)
    return _run("WssRsaSign.java", str(unsigned), str(key.key), str(key.cert), token.assertion_id,
                version.key_identifier_value_type, ns.ALG_RSA_SHA256)


@pytest.fixture(scope="module")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyFiles, KeyFiles]:
    """The client's RSA key pair, and another one (a thief's)."""
    from wstrust_wsgi import generate_demo_key_pair
    directory = tmp_path_factory.mktemp("clients")
    for stem in ("client", "other"):
        generate_demo_key_pair(f"test {stem}", directory, stem)
    return (KeyFiles(directory / "client.key", directory / "client.crt"),
            KeyFiles(directory / "other.key", directory / "other.crt"))


@pytest.mark.parametrize("address", [SERVICE_URL, OTHER_URL], ids=["saml2.0-SAMLID", "saml1.1-SAMLAssertionID"])
def test_wss4j_signed_proof_is_admitted_and_another_key_refused(sts_keys, keydir, users, clock, tmp_path,
                                                                address) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        world = hok_world(sts_keys, rp_key_files(keydir), users, clock, allow_sha1=True)
    token = world.client().request_token(address, key_type="symmetric")
    signed = wss4j_signed(token, tmp_path, token.proof_key)
    assert b"InclusiveNamespaces" in signed and token.assertion_id.encode() in signed
    post = lambda body: webtest.TestApp(world.service).post("/soap", body, content_type="text/xml",  # noqa: E731
                                                            expect_errors=True)
    admitted = post(signed)
    assert admitted.status_int == 200, admitted.body
    forged = post(wss4j_signed(token, tmp_path, os.urandom(32)))
    assert read_fault(forged.body).code == f"{{{ns.WSSE}}}FailedCheck"


@pytest.mark.parametrize("address", [SERVICE_URL, OTHER_URL], ids=["saml2.0-SAMLID", "saml1.1-SAMLAssertionID"])
def test_wss4j_rsa_signed_proof_of_a_public_key_token_is_admitted_and_another_key_refused(
        sts_keys, keydir, users, clock, tmp_path, client_keys, address) -> None:  # type: ignore[no-untyped-def]
    recorder = RecordingApp()
    world = hok_world(sts_keys, rp_key_files(keydir), users, clock, app=recorder, confirmation="holder-of-key")
    client, other = client_keys
    token = world.client().request_token(address, key_type="public", client_key=client.load())
    version = saml.version_for_token_type(token.token_type)
    signed = wss4j_rsa_signed(token, tmp_path, client)
    [proof] = [s for s in etree.fromstring(signed).iter(f"{{{ns.DS}}}Signature")
               if s.find(f"{{{ns.DS}}}KeyInfo/{{{ns.WSSE}}}SecurityTokenReference") is not None]
    method = proof.find(f"{{{ns.DS}}}SignedInfo/{{{ns.DS}}}CanonicalizationMethod")
    assert method.find(f"{{{ns.ALG_EXC_C14N}}}InclusiveNamespaces") is not None  # WSS4J's BSP style: not ours
    assert proof.find(f"{{{ns.DS}}}SignedInfo/{{{ns.DS}}}SignatureMethod").get("Algorithm") == ns.ALG_RSA_SHA256
    assert proof.find(f".//{{{ns.WSSE}}}KeyIdentifier").get("ValueType") == version.key_identifier_value_type
    post = lambda body: webtest.TestApp(world.service).post("/soap", body, content_type="text/xml",  # noqa: E731
                                                            expect_errors=True)
    admitted = post(signed)
    assert admitted.status_int == 200, admitted.body
    [call] = recorder.calls
    assert (call["assertion"].confirmation, call["assertion"].proof_key) == ("holder-of-key", "public")
    forged = post(wss4j_rsa_signed(token, tmp_path, other))
    assert read_fault(forged.body).code == f"{{{ns.WSSE}}}FailedCheck" and len(recorder.calls) == 1
