"""The client's side of holder-of-key: asking for a symmetric key, holding it, proving it.

Tokens come from the real STS in-process; the signed service requests are
checked by the independent ``xmlsec1 --verify --hmackey`` with the proof key
given outside the message (and refused by it with another key), and their
shape is read back: what is signed, how KeyInfo names the assertion.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from _support import OTHER_URL, SERVICE_URL, XMLSEC1
from _support.hok import HokWorld, hok_world, rp_key_files
from wstrust_wsgi import ConfigurationError, ns
from wstrust_wsgi.client import service_request
from wstrust_wsgi.xmlenc import Decrypter

TOKEN_TYPES = pytest.mark.parametrize(("address", "version"), [(SERVICE_URL, "2.0"), (OTHER_URL, "1.1")],
                                      ids=["saml2.0", "saml1.1"])
PAYLOAD = b"<Ping xmlns='urn:example'>hi</Ping>"


@pytest.fixture
def world(sts_keys, keydir, users, clock) -> HokWorld:  # type: ignore[no-untyped-def]
    return hok_world(sts_keys, rp_key_files(keydir), users, clock)


def xmlsec1_hmac(message: bytes, key: bytes, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify --hmackey`` on the message's proof signature (found by its Id), ``key`` given outside."""
    if XMLSEC1 is None:
        pytest.fail("xmlsec1 is not installed (Debian package xmlsec1); .ci/run installs it")
    root = etree.fromstring(message)
    [signature] = [s for s in root.iter(f"{{{ns.DS}}}Signature") if s.get("Id")]
    (workdir / "message.xml").write_bytes(message)
    (workdir / "key.bin").write_bytes(key)
    soap_ns = etree.QName(root).namespace
    return subprocess.run(
        [XMLSEC1, "--verify", "--hmackey", str(workdir / "key.bin"),
         "--id-attr:Id", f"{ns.WSU}:Timestamp", "--id-attr:Id", f"{soap_ns}:Body",
         "--id-attr:Id", f"{ns.DS}:Signature", "--node-id", signature.get("Id"), str(workdir / "message.xml")],
        capture_output=True, text=True, timeout=30)


@TOKEN_TYPES
@pytest.mark.parametrize("method", ["hmac-sha256", "hmac-sha1"])
@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_xmlsec1_verifies_our_proof_signature_with_the_proof_key(world, tmp_path, address, version, method,
                                                                 soap) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(address, key_type="symmetric")
    body, _ = service_request(token, PAYLOAD, soap_version=soap, signature_algorithm=method)
    result = xmlsec1_hmac(body, token.proof_key, tmp_path)  # type: ignore[arg-type]
    assert result.returncode == 0 and result.stderr.startswith("OK\nSignedInfo References (ok/all): 2/2"), result.stderr
    wrong = xmlsec1_hmac(body, bytes(len(token.proof_key)), tmp_path)  # type: ignore[arg-type]
    assert wrong.returncode != 0


@TOKEN_TYPES
def test_the_proof_signature_covers_body_and_timestamp_and_names_the_assertion(world, address,
                                                                                version) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(address, key_type="symmetric")
    body, _ = service_request(token, PAYLOAD)
    assert token.assertion in body  # spliced unchanged
    root = etree.fromstring(body)
    [signature] = [s for s in root.iter(f"{{{ns.DS}}}Signature") if s.get("Id")]
    assert signature.getparent().tag == f"{{{ns.WSSE}}}Security"
    uris = [r.get("URI") for r in signature.iter(f"{{{ns.DS}}}Reference")]
    wsu_id = f"{{{ns.WSU}}}Id"
    body_el = root.find(f"{{{ns.SOAP11}}}Body")
    stamp = root.find(f".//{{{ns.WSU}}}Timestamp")
    assert uris == ["#" + body_el.get(wsu_id), "#" + stamp.get(wsu_id)]
    assert signature.find(f".//{{{ns.DS}}}SignatureMethod").get("Algorithm") == ns.ALG_HMAC_SHA256
    reference = signature.find(f"{{{ns.DS}}}KeyInfo/{{{ns.WSSE}}}SecurityTokenReference")
    identifier = reference.find(f"{{{ns.WSSE}}}KeyIdentifier")
    expected = {"2.0": (ns.SAML20_TOKEN_PROFILE_TYPE, ns.SAML20_KEYID_VALUE_TYPE),
                "1.1": (ns.SAML11_TOKEN_PROFILE_TYPE, ns.SAML11_KEYID_VALUE_TYPE)}[version]
    assert (reference.get(f"{{{ns.WSSE11}}}TokenType"), identifier.get("ValueType")) == expected
    assert identifier.text == token.assertion_id


def test_the_token_holds_the_key_the_relying_party_decrypts_and_never_shows_it(world) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL, key_type="symmetric", key_size=128)
    assert token.key_type == "symmetric" and len(token.proof_key) == 16  # type: ignore[arg-type]
    root = etree.fromstring(token.assertion)
    key = Decrypter([world.rp.load()]).unwrap(next(root.iter(f"{{{ns.XENC}}}EncryptedKey")), sizes=range(16, 65))
    assert key == token.proof_key
    assert token.proof_key.hex() not in repr(token) and "proof_key" not in repr(token)  # type: ignore[union-attr]


def test_a_bearer_token_is_sent_unsigned_as_before(world) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL)
    assert token.proof_key is None and token.key_type == "bearer"
    body, _ = service_request(token, PAYLOAD)
    assert b"SignatureValue" not in body.replace(token.assertion, b"")


@pytest.mark.parametrize(("options", "message"), [
    ({"key_type": "public"}, "client_key: key_type='public' needs the client's SigningKey"),
    ({"key_type": "secret"}, "key_type: must be 'bearer' or 'symmetric' or 'public'"),
    ({"key_type": "symmetric", "key_size": 100}, "key_size: must be a multiple of 8 from 128 to 512"),
    ({"key_type": "symmetric", "entropy": "none"}, "entropy: must be 'both' or 'client' or 'sts'"),
])
def test_client_options_are_checked(world, options, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match=message):
        world.client().request_token(SERVICE_URL, **options)


def test_an_unknown_signature_algorithm_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL, key_type="symmetric")
    with pytest.raises(ConfigurationError, match="signature_algorithm"):
        service_request(token, PAYLOAD, signature_algorithm="rsa-sha256")
