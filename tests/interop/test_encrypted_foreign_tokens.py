"""Encrypted tokens made by others, admitted by our RelyingPartyMiddleware.

Two independent encrypters, both Node packages already in ``node/``:

* the npm ``saml`` package 4.0.0 (``node/mint_saml.js`` with ``encryptionCertFile``):
  ``Saml20.create`` signs, then encrypts with its ``encryptionCert`` option into a
  ``saml:EncryptedAssertion`` (aes256-gcm and rsa-oaep-mgf1p with SHA-1 by default).
  Its SAML 1.1 encryption turns the token into holder-of-key (it adds a proof key
  to the SubjectConfirmation), which a bearer-only middleware refuses by design, so
  SAML 1.1 is covered by the second encrypter;
* the npm ``xml-encryption`` package 4 (``node/xmlenc_peer.js``), Auth0's, which
  ``saml`` uses: it encrypts tokens signed by our testing kit and by ``saml``, SAML
  2.0 wrapped in ``saml2:EncryptedAssertion`` and SAML 1.1 as the bare
  ``xenc:EncryptedData`` AD FS sends. With ``keyEncryptionDigest: "sha256"`` it
  names the OAEP digest ``xmldsig#sha256``, a URI no W3C spec defines; we read it
  as SHA-256 (see ``wstrust_wsgi.xmlenc``), so these tokens are admitted too.

AES-CBC from either is admitted only for the one issuer a ``LegacyCbcKey`` names.
A missing ``node`` fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import webtest

from _forge import RecordingApp, read_fault, soap_request
from _support import EMAIL, ISSUER, SERVICE_URL, FixedClock, KeyFiles
from wstrust_wsgi import LegacyCbcKey, RelyingPartyMiddleware, SigningKey, generate_demo_key_pair, ns
from wstrust_wsgi.errors import DecryptionFailed, SecurityWarning
from wstrust_wsgi.testing import TokenFactory

NODE_DIR = Path(__file__).resolve().parent / "node"
GCM = pytest.mark.parametrize("algorithm", [ns.ALG_AES128_GCM, ns.ALG_AES256_GCM], ids=["aes128-gcm", "aes256-gcm"])
VERSIONS = pytest.mark.parametrize("version", ["2.0", "1.1"], ids=["saml2.0", "saml1.1"])


def node(script: str, spec: dict[str, Any], tmp_path: Path) -> bytes:
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.json"
    path.write_text(json.dumps(spec))
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not installed: the interop tests need it")
    result = subprocess.run([executable, str(NODE_DIR / script), str(path)], capture_output=True, timeout=60,
                            cwd=NODE_DIR)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.strip()


def node_saml(tmp_path: Path, signer: KeyFiles, now: datetime, *, version: str = "2.0",
              encrypt_for: Path | None = None, **options: Any) -> bytes:
    """A token from the npm ``saml`` package, signed by ``signer``, encrypted by it for ``encrypt_for``."""
    spec: dict[str, Any] = {
        "version": version, "keyFile": str(signer.key), "certFile": str(signer.cert),
        "now": now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": {"issuer": ISSUER, "audiences": SERVICE_URL, "lifetimeInSeconds": 300, "nameIdentifier": "admin",
                    "attributes": {EMAIL: "admin@example.org", ns.CLAIM_ROLE: ["admin"]}, **options},
    }
    if encrypt_for is not None:
        spec["encryptionCertFile"] = str(encrypt_for)
    return node("mint_saml.js", spec, tmp_path)


def xml_encryption(tmp_path: Path, assertion: bytes, version: str, cert: Path, algorithm: str,
                   digest: str = "sha1") -> bytes:
    """``assertion`` encrypted by npm ``xml-encryption``, in its version's wire form (bytes as the package wrote)."""
    plain = tmp_path / f"plain-{len(list(tmp_path.glob('plain-*')))}.xml"
    plain.write_bytes(assertion)
    encrypted = node("xmlenc_peer.js", {
        "op": "encrypt", "input": str(plain), "certFile": str(cert),
        "options": {"encryptionAlgorithm": algorithm, "keyEncryptionAlgorithm": ns.ALG_RSA_OAEP_MGF1P,
                    "keyEncryptionDigest": digest, "disallowEncryptionWithInsecureAlgorithm": False}}, tmp_path)
    assert encrypted.startswith(b"<xenc:EncryptedData")
    if version == "1.1":
        return encrypted
    return b'<saml2:EncryptedAssertion xmlns:saml2="' + ns.SAML2.encode() + b'">' + encrypted + \
        b"</saml2:EncryptedAssertion>"


@pytest.fixture(scope="module")
def rp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyFiles]:
    """The service's key pairs: ``gcm`` for every peer, ``cbc`` for the one CBC peer only."""
    directory = tmp_path_factory.mktemp("rp-keys")
    for stem in ("gcm", "cbc"):
        generate_demo_key_pair(f"test rp {stem}", directory, stem)
    return {stem: KeyFiles(directory / f"{stem}.key", directory / f"{stem}.crt") for stem in ("gcm", "cbc")}


def guard(recorder: RecordingApp, trusted: list[Any], clock: Any, keys: list[Any]) -> webtest.TestApp:
    return webtest.TestApp(RelyingPartyMiddleware(recorder, audience=SERVICE_URL, issuer=ISSUER,
                                                  trusted_certs=trusted, clock=clock, decryption_keys=keys))


def cbc_guard(recorder: RecordingApp, trusted: list[Any], clock: Any, rp: dict[str, KeyFiles]) -> webtest.TestApp:
    with pytest.warns(SecurityWarning):
        return guard(recorder, trusted, clock, [(rp["gcm"].key, rp["gcm"].cert),
                                                LegacyCbcKey((rp["cbc"].key, rp["cbc"].cert), issuer=ISSUER)])


def post(app: webtest.TestApp, token: bytes) -> webtest.TestResponse:
    body = soap_request(token)
    assert token in body  # spliced unchanged
    return app.post("/services/echo", body, headers={"Content-Type": "text/xml; charset=utf-8"}, expect_errors=True)


def assert_admitted(response: webtest.TestResponse, recorder: RecordingApp, subject: str = "admin") -> None:
    assert response.status_int == 200, response.body
    verified = recorder.calls[-1]["assertion"]
    assert (recorder.calls[-1]["REMOTE_USER"], verified.encrypted) == (subject, True)


def assert_refused(response: webtest.TestResponse, recorder: RecordingApp, calls: int = 0) -> None:
    assert read_fault(response.body).reason == DecryptionFailed.default_reason
    assert len(recorder.calls) == calls


# --------------------------------------------------------------------------- npm saml


@pytest.mark.parametrize("algorithm", [None, ns.ALG_AES128_GCM], ids=["default", "aes128-gcm"])
def test_node_saml_encrypted_assertion_is_admitted(algorithm: str | None, rp: dict[str, KeyFiles], sts_keys: KeyFiles,
                                                   clock: FixedClock, tmp_path: Path) -> None:
    options = {"encryptionAlgorithm": algorithm} if algorithm else {}
    token = node_saml(tmp_path, sts_keys, clock(), encrypt_for=rp["gcm"].cert, **options)
    assert token.startswith(b"<saml:EncryptedAssertion") and (algorithm or ns.ALG_AES256_GCM).encode() in token
    recorder = RecordingApp()
    assert_admitted(post(guard(recorder, [sts_keys.cert], clock, [(rp["gcm"].key, rp["gcm"].cert)]), token), recorder)
    assert recorder.calls[0]["assertion"].attributes[EMAIL] == ("admin@example.org",)


def test_node_saml_cbc_is_admitted_only_for_the_named_peers_key(rp: dict[str, KeyFiles], sts_keys: KeyFiles,
                                                               clock: FixedClock, tmp_path: Path) -> None:
    token = node_saml(tmp_path, sts_keys, clock(), encrypt_for=rp["cbc"].cert,
                      encryptionAlgorithm=ns.ALG_AES256_CBC, disallowEncryptionWithInsecureAlgorithm=False)
    recorder = RecordingApp()
    assert_admitted(post(cbc_guard(recorder, [sts_keys.cert], clock, rp), token), recorder)
    refusing = RecordingApp()  # the same key without the opt-in
    assert_refused(post(guard(refusing, [sts_keys.cert], clock, [(rp["cbc"].key, rp["cbc"].cert)]), token), refusing)


# --------------------------------------------------------------------------- npm xml-encryption


@VERSIONS
@GCM
@pytest.mark.parametrize("digest", ["sha1", "sha256"])
def test_xml_encryption_encrypted_kit_tokens_are_admitted(version: str, algorithm: str, digest: str,
                                                          rp: dict[str, KeyFiles], tmp_path: Path) -> None:
    tokens = TokenFactory(issuer=ISSUER, audience=SERVICE_URL)
    token = xml_encryption(tmp_path, tokens.mint("admin", version=version).assertion, version, rp["gcm"].cert,
                           algorithm, digest)
    if digest == "sha256":
        assert b"http://www.w3.org/2000/09/xmldsig#sha256" in token  # the package's nonstandard URI
    recorder = RecordingApp()
    app = webtest.TestApp(RelyingPartyMiddleware(recorder, audience=SERVICE_URL, issuer=ISSUER,
                                                 trusted_certs=tokens.trusted_certs,
                                                 decryption_keys=[(rp["gcm"].key, rp["gcm"].cert)]))
    assert_admitted(post(app, token), recorder)
    assert recorder.calls[0]["assertion"].version == version


@VERSIONS
def test_node_saml_tokens_encrypted_by_xml_encryption_are_admitted(version: str, rp: dict[str, KeyFiles],
                                                                   sts_keys: KeyFiles, clock: FixedClock,
                                                                   tmp_path: Path) -> None:
    """Neither the signature nor the encryption is ours: SAML 1.1 as the bare EncryptedData AD FS sends."""
    assertion = node_saml(tmp_path, sts_keys, clock(), version=version)
    token = xml_encryption(tmp_path, assertion, version, rp["gcm"].cert, ns.ALG_AES256_GCM)
    recorder = RecordingApp()
    assert_admitted(post(guard(recorder, [sts_keys.cert], clock, [(rp["gcm"].key, rp["gcm"].cert)]), token), recorder)
    assert recorder.calls[0]["assertion"].raw == assertion


@VERSIONS
def test_xml_encryption_cbc_is_admitted_only_from_the_named_peer(version: str, rp: dict[str, KeyFiles],
                                                                 sts_keys: KeyFiles, clock: FixedClock,
                                                                 tmp_path: Path) -> None:
    recorder = RecordingApp()
    app = cbc_guard(recorder, [sts_keys.cert], clock, rp)
    assertion = node_saml(tmp_path, sts_keys, clock(), version=version)
    assert_admitted(post(app, xml_encryption(tmp_path, assertion, version, rp["cbc"].cert, ns.ALG_AES256_CBC)),
                    recorder)
    # the same CBC content for the GCM key: refused before any key is used
    assert_refused(post(app, xml_encryption(tmp_path, assertion, version, rp["gcm"].cert, ns.ALG_AES256_CBC)),
                   recorder, calls=1)


def test_xml_encryption_rsa_1_5_is_refused(rp: dict[str, KeyFiles], sts_keys: KeyFiles, clock: FixedClock,
                                           tmp_path: Path) -> None:
    assertion = node_saml(tmp_path, sts_keys, clock())
    plain = tmp_path / "plain.xml"
    plain.write_bytes(assertion)
    encrypted = node("xmlenc_peer.js", {
        "op": "encrypt", "input": str(plain), "certFile": str(rp["gcm"].cert),
        "options": {"encryptionAlgorithm": ns.ALG_AES256_GCM, "keyEncryptionAlgorithm": ns.ALG_RSA_1_5,
                    "disallowEncryptionWithInsecureAlgorithm": False}}, tmp_path)
    recorder = RecordingApp()
    token = b'<saml2:EncryptedAssertion xmlns:saml2="' + ns.SAML2.encode() + b'">' + encrypted + \
        b"</saml2:EncryptedAssertion>"
    assert_refused(post(cbc_guard(recorder, [sts_keys.cert], clock, rp), token), recorder)
