"""XML Encryption against independent peers: ``xmlsec1`` (libxmlsec1) and the npm ``xml-encryption`` package.

Both ways: what :func:`wstrust_wsgi.xmlenc.encrypt` writes is decrypted by the
peer with the private key, and what the peer encrypts is decrypted by
:class:`wstrust_wsgi.xmlenc.Decrypter` (CBC only under the opt-in, RSA 1.5 never).
The peers' limits decide the pairs: xmlsec1 1.2 knows only ``rsa-oaep-mgf1p``
with SHA-1; ``xml-encryption`` 4 reads ``rsa-oaep-mgf1p`` only and names a
SHA-256 OAEP digest by a non-standard URI, so SHA-1 is what both sides share.
A missing tool fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from wstrust_wsgi import SigningKey, _xml, ns
from wstrust_wsgi.errors import DecryptionFailed, SecurityWarning
from wstrust_wsgi.xmlenc import Decrypter, DecryptionPolicy, EncryptionSettings, encrypt

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
PEER = NODE_DIR / "xmlenc_peer.js"
PLAINTEXT = (b'<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_p1" Version="2.0">'
             b"<saml2:Issuer>https://sts.example/</saml2:Issuer><saml2:Subject>caf\xc3\xa9</saml2:Subject>"
             b"</saml2:Assertion>")
CONTENT = pytest.mark.parametrize("algorithm", [ns.ALG_AES128_GCM, ns.ALG_AES256_GCM, ns.ALG_AES128_CBC,
                                                ns.ALG_AES256_CBC], ids=lambda u: u.rsplit("#", 1)[1])
SESSION_KEY = {ns.ALG_AES128_GCM: "aes-128", ns.ALG_AES256_GCM: "aes-256", ns.ALG_AES128_CBC: "aes-128",
               ns.ALG_AES256_CBC: "aes-256"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the interop tests need it")
    return path


def c14n(data: bytes) -> bytes:
    return etree.tostring(_xml.parse(data), method="c14n", exclusive=True)


@pytest.fixture(scope="module")
def sts(sts_keys: Any) -> SigningKey:
    return sts_keys.load()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cbc_policy() -> DecryptionPolicy:
    with pytest.warns(SecurityWarning):
        return DecryptionPolicy(allow_cbc=True)


def _policy(algorithm: str, cbc_policy: DecryptionPolicy) -> DecryptionPolicy | None:
    return cbc_policy if "cbc" in algorithm else None


# --------------------------------------------------------------------------- xmlsec1


@CONTENT
@pytest.mark.parametrize("reference", ["issuer-serial", "ski"])
def test_xmlsec1_decrypts_what_we_encrypt(algorithm: str, reference: Any, sts: SigningKey, sts_keys: Any,
                                          tmp_path: Path) -> None:
    encrypted = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(algorithm=algorithm, reference=reference))
    path = tmp_path / "encrypted.xml"
    path.write_bytes(etree.tostring(encrypted))
    result = subprocess.run([tool("xmlsec1"), "--decrypt", "--privkey-pem", f"{sts_keys.key},{sts_keys.cert}",
                             str(path)], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    assert c14n(result.stdout) == c14n(PLAINTEXT)


def _xmlsec1_template(algorithm: str, key_transport: str) -> bytes:
    return f"""<xenc:EncryptedData xmlns:xenc="{ns.XENC}" xmlns:ds="{ns.DS}" Type="{ns.XENC_TYPE_ELEMENT}">
  <xenc:EncryptionMethod Algorithm="{algorithm}"/>
  <ds:KeyInfo>
    <xenc:EncryptedKey>
      <xenc:EncryptionMethod Algorithm="{key_transport}"/>
      <ds:KeyInfo><ds:X509Data/></ds:KeyInfo>
      <xenc:CipherData><xenc:CipherValue/></xenc:CipherData>
    </xenc:EncryptedKey>
  </ds:KeyInfo>
  <xenc:CipherData><xenc:CipherValue/></xenc:CipherData>
</xenc:EncryptedData>""".encode()


def _xmlsec1_encrypt(algorithm: str, key_transport: str, cert: Path, tmp_path: Path) -> etree._Element:
    template, data = tmp_path / "template.xml", tmp_path / "plain.xml"
    template.write_bytes(_xmlsec1_template(algorithm, key_transport))
    data.write_bytes(PLAINTEXT)
    result = subprocess.run([tool("xmlsec1"), "--encrypt", "--pubkey-cert-pem", str(cert), "--session-key",
                             SESSION_KEY[algorithm], "--xml-data", str(data), str(template)],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    encrypted = _xml.parse(result.stdout)
    assert encrypted.tag == f"{{{ns.XENC}}}EncryptedData"
    return encrypted


@CONTENT
def test_we_decrypt_what_xmlsec1_encrypts(algorithm: str, sts: SigningKey, sts_keys: Any, tmp_path: Path,
                                          cbc_policy: DecryptionPolicy) -> None:
    encrypted = _xmlsec1_encrypt(algorithm, ns.ALG_RSA_OAEP_MGF1P, sts_keys.cert, tmp_path)
    result = Decrypter([sts], policy=_policy(algorithm, cbc_policy)).decrypt(encrypted)
    assert c14n(result.plaintext) == c14n(PLAINTEXT) and result.algorithm == algorithm
    if "cbc" in algorithm:
        with pytest.raises(DecryptionFailed):
            Decrypter([sts]).decrypt(encrypted)


def test_xmlsec1_rsa_1_5_is_refused(sts: SigningKey, sts_keys: Any, tmp_path: Path,
                                     cbc_policy: DecryptionPolicy) -> None:
    encrypted = _xmlsec1_encrypt(ns.ALG_AES256_GCM, ns.ALG_RSA_1_5, sts_keys.cert, tmp_path)
    for policy in (None, cbc_policy):
        with pytest.raises(DecryptionFailed, match="rsa-1_5"):
            Decrypter([sts], policy=policy).decrypt(encrypted)


# --------------------------------------------------------------------------- npm xml-encryption


def _node(spec: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.json"
    path.write_text(json.dumps(spec))
    return subprocess.run([tool("node"), str(PEER), str(path)], capture_output=True, timeout=30, cwd=NODE_DIR)


@CONTENT
@pytest.mark.parametrize("reference", ["issuer-serial", "thumbprint"])
def test_xml_encryption_decrypts_what_we_encrypt(algorithm: str, reference: Any, sts: SigningKey, sts_keys: Any,
                                                 tmp_path: Path) -> None:
    encrypted = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(algorithm=algorithm, reference=reference))
    path = tmp_path / "encrypted.xml"
    path.write_bytes(etree.tostring(encrypted))
    result = _node({"op": "decrypt", "input": str(path), "keyFile": str(sts_keys.key),
                    "options": {"disallowDecryptionWithInsecureAlgorithm": False}}, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert c14n(result.stdout) == c14n(PLAINTEXT)


@CONTENT
def test_we_decrypt_what_xml_encryption_encrypts(algorithm: str, sts: SigningKey, sts_keys: Any, tmp_path: Path,
                                                 cbc_policy: DecryptionPolicy) -> None:
    plain = tmp_path / "plain.xml"
    plain.write_bytes(PLAINTEXT)
    result = _node({"op": "encrypt", "input": str(plain), "certFile": str(sts_keys.cert),
                    "options": {"encryptionAlgorithm": algorithm, "keyEncryptionAlgorithm": ns.ALG_RSA_OAEP_MGF1P,
                                "disallowEncryptionWithInsecureAlgorithm": False}}, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    encrypted = _xml.parse(result.stdout)
    decrypted = Decrypter([sts], policy=_policy(algorithm, cbc_policy)).decrypt(encrypted)
    assert c14n(decrypted.plaintext) == c14n(PLAINTEXT)


def test_xml_encryption_rsa_1_5_is_refused(sts: SigningKey, sts_keys: Any, tmp_path: Path,
                                           cbc_policy: DecryptionPolicy) -> None:
    plain = tmp_path / "plain.xml"
    plain.write_bytes(PLAINTEXT)
    result = _node({"op": "encrypt", "input": str(plain), "certFile": str(sts_keys.cert),
                    "options": {"encryptionAlgorithm": ns.ALG_AES256_GCM, "keyEncryptionAlgorithm": ns.ALG_RSA_1_5,
                                "disallowEncryptionWithInsecureAlgorithm": False}}, tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    encrypted = _xml.parse(result.stdout)
    for policy in (None, cbc_policy):
        with pytest.raises(DecryptionFailed, match="rsa-1_5"):
            Decrypter([sts], policy=policy).decrypt(encrypted)
