"""Holder-of-key requests signed by WSS4J (Debian ``libwss4j-java`` 1.6), admitted by the middleware.

``java/WssHmacSign.java`` signs as CXF's WS-Security layer does: ``WSSecSignature``
with the proof key our STS issued, a custom KeyIdentifier naming the token
(``#SAMLID`` for SAML 2.0, ``#SAMLAssertionID`` for 1.1), over the Body and the
wsu:Timestamp, exclusive c14n with ``ec:InclusiveNamespaces`` in SignedInfo's
CanonicalizationMethod (which the XML-DSig schema alone refused: see
``xmldsig.verify._schema_view``), HMAC-SHA1 and SHA-1 digests (WSS4J 1.6's
defaults), so the service sets ``allow_sha1``. Signed with another key: refused.
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

from _forge import read_fault
from _support import OTHER_URL, SERVICE_URL
from _support.hok import hok_world, rp_key_files, unsigned_request
from wstrust_wsgi import ns, saml
from wstrust_wsgi.errors import SecurityWarning

JAVA_DIR = Path(__file__).resolve().parent / "java"
JARS = [Path("/usr/share/java") / name for name in
        ("wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "commons-codec.jar")]


def wss4j_signed(token, tmp_path: Path, key: bytes) -> bytes:  # type: ignore[no-untyped-def]
    java = shutil.which("java")
    if java is None or not all(jar.is_file() for jar in JARS):
        pytest.fail("java and WSS4J's jars are needed (Debian default-jdk-headless libwss4j-java); .ci/run "
                    "installs them")
    unsigned = unsigned_request(token, tmp_path)
    version = saml.version_for_token_type(token.token_type)
    result = subprocess.run(
        [java, "-cp", ":".join(map(str, JARS)), str(JAVA_DIR / "WssHmacSign.java"), str(unsigned),
         base64.b64encode(key).decode(), token.assertion_id, version.key_identifier_value_type, ns.ALG_HMAC_SHA1],
        capture_output=True, timeout=120, cwd=JAVA_DIR)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


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
