"""Tokens our STS encrypts, decrypted by independent software, then verified by ``xmlsec1``.

The STS signs, then encrypts for a relying party's certificate; ``xmlsec1
--decrypt`` (libxmlsec1) and the npm ``xml-encryption`` package decrypt the
token with the relying party's key, and ``xmlsec1 --verify`` checks the
signature of what came out against the STS certificate. ``xml-encryption``
hands back the plaintext as it was encrypted, so its answer must be exactly the
bytes the STS signed. Both peers read only ``rsa-oaep-mgf1p`` with SHA-1 (see
``test_xmlenc_peers.py``), so every content algorithm is tried with that key
transport; ``rsa-oaep`` (xmlenc 1.1) has our own decrypter as its peer
(``tests/sts/test_sts_encryption.py``). A missing tool fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from _support import ISSUER, SERVICE_URL, STS_URL, KeyFiles, demo_users, key_files, xmlsec1_verify
from wstrust_wsgi import (
    RelyingParty, StsClient, TokenService, WSGITransport, generate_demo_key_pair, ns, saml,
)
from wstrust_wsgi.model import ENCRYPTION_ALGORITHMS

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
PEER = NODE_DIR / "xmlenc_peer.js"
TOKEN_TYPES = pytest.mark.parametrize("token_type", ["2.0", "1.1"])


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the interop tests need it")
    return path


@pytest.fixture(scope="module")
def rp_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    """The relying party's decryption key and encryption certificate, as files the peers read."""
    directory = tmp_path_factory.mktemp("rp-keys")
    generate_demo_key_pair("test relying party", directory, "rp")
    return key_files(directory, "rp")


def issue(sts_keys: KeyFiles, clock: Any, party: RelyingParty) -> bytes:
    """The encrypted token as the client received it."""
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=demo_users(), relying_parties=[party],
                       clock=clock)
    token = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts),
                      clock=clock).request_token(party.address)
    assert token.encrypted
    return token.assertion


def assertion_in(document: bytes) -> bytes:
    """The (one) SAML assertion in a decrypted document, serialized alone for ``xmlsec1 --verify``."""
    root = etree.fromstring(document)
    [assertion] = [element for element in root.iter() if saml.version_of(element) is not None]
    return etree.tostring(assertion)


def c14n(data: bytes) -> bytes:
    return etree.tostring(etree.fromstring(data), method="c14n", exclusive=True)


@TOKEN_TYPES
@pytest.mark.parametrize("reference", ["issuer-serial", "ski"])
def test_xmlsec1_decrypts_our_token_and_verifies_the_assertion_inside(
        sts_keys, rp_keys, clock, tmp_path, _xmlsec1_checks_every_token, token_type, reference):
    party = RelyingParty(SERVICE_URL, token_type=token_type, certificate_pem=rp_keys.cert.read_bytes(),
                         key_reference=reference)
    path = tmp_path / "token.xml"
    path.write_bytes(issue(sts_keys, clock, party))
    decrypted = subprocess.run([tool("xmlsec1"), "--decrypt", "--privkey-pem", f"{rp_keys.key},{rp_keys.cert}",
                                str(path)], capture_output=True, timeout=30)
    assert decrypted.returncode == 0, decrypted.stderr.decode()
    assertion = assertion_in(decrypted.stdout)
    [(signed, _)] = _xmlsec1_checks_every_token
    assert c14n(assertion) == c14n(signed)
    verified = xmlsec1_verify(assertion, sts_keys.cert, tmp_path)
    assert verified.returncode == 0 and "\nOK\n" in verified.stderr, verified.stderr


@TOKEN_TYPES
@pytest.mark.parametrize("algorithm", ENCRYPTION_ALGORITHMS)
def test_xml_encryption_decrypts_every_algorithm_we_emit_to_exactly_the_signed_bytes(
        sts_keys, rp_keys, clock, tmp_path, _xmlsec1_checks_every_token, token_type, algorithm):
    party = RelyingParty(SERVICE_URL, token_type=token_type, certificate_pem=rp_keys.cert.read_bytes(),
                         encryption=algorithm, key_reference="thumbprint")
    token = tmp_path / "token.xml"
    token.write_bytes(issue(sts_keys, clock, party))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"op": "decrypt", "input": str(token), "keyFile": str(rp_keys.key),
                                "options": {"disallowDecryptionWithInsecureAlgorithm": False}}))
    result = subprocess.run([tool("node"), str(PEER), str(spec)], capture_output=True, timeout=30, cwd=NODE_DIR)
    assert result.returncode == 0, result.stderr.decode()
    [(signed, _)] = _xmlsec1_checks_every_token
    assert result.stdout == signed  # the signed serialization, unchanged by the trip
    verified = xmlsec1_verify(result.stdout, sts_keys.cert, tmp_path)
    assert verified.returncode == 0 and "\nOK\n" in verified.stderr, verified.stderr
