"""xmldsig: the algorithm registry, HMAC signatures, detached signatures, and the KeyInfo resolver hook.

The RSA enveloped path is held to signxml and to a tree-built signer in
``test_fast_paths.py`` and ``test_verify_differential.py``; these tests cover
what only this package does.
"""

from __future__ import annotations

import base64
import copy
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from wstrust_wsgi import _xml, ns, xmldsig
from wstrust_wsgi.errors import FailedCheck, UnsupportedAlgorithm
from wstrust_wsgi.model import SIGNATURE_ALGORITHMS

NOW = datetime.now(timezone.utc)
SECRET = xmldsig.HmacKey(b"a shared secret of thirty-two b!")
HMAC_POLICY = xmldsig.AlgorithmPolicy.of([ns.ALG_HMAC_SHA256, ns.ALG_SHA256])
DS = f"{{{ns.DS}}}"


def document() -> etree._Element:
    return etree.fromstring(b'<doc xmlns:x="urn:x"><x:part ID="_p1">text &amp; more</x:part><x:other Id="_p2"/></doc>')


def hmac_signed(key: xmldsig.HmacKey = SECRET, method: str = "hmac-sha256") -> etree._Element:
    root = document()[0]
    xmldsig.Signer(key, method).sign_enveloped(root, "_p1")
    return _xml.parse(etree.tostring(root))


def verify_hmac(root: etree._Element, keys: xmldsig.KeyResolver | None = None,
                policy: xmldsig.AlgorithmPolicy = HMAC_POLICY) -> xmldsig.Verified:
    return xmldsig.verify_enveloped(root, id_attribute="ID", algorithms=policy,
                                    keys=keys or xmldsig.shared_secrets([SECRET]), now=NOW)


# ----------------------------------------------------------------------------- the registry


def test_registry_setting_names_are_the_stores_signature_algorithms() -> None:
    """model.SIGNATURE_ALGORITHMS (tier 0, cannot import xmldsig) must name exactly the RSA records."""
    assert xmldsig.setting_names("rsa") == SIGNATURE_ALGORITHMS
    for name in SIGNATURE_ALGORITHMS:
        method, digest = xmldsig.for_setting(name)
        assert method.key_kind == "rsa" and digest.key_kind is None and method.hash is digest.hash


def test_default_policy_is_rsa_sha2_and_sha1_only_on_request() -> None:
    default = xmldsig.AlgorithmPolicy.default()
    assert default.signature_methods == {ns.ALG_RSA_SHA256, ns.ALG_RSA_SHA384, ns.ALG_RSA_SHA512}
    assert default.digest_methods == {ns.ALG_SHA256, ns.ALG_SHA384, ns.ALG_SHA512}
    sha1 = xmldsig.AlgorithmPolicy.default(allow_sha1=True)
    assert sha1.signature_methods - default.signature_methods == {ns.ALG_RSA_SHA1}  # never HMAC
    assert sha1.digest_methods - default.digest_methods == {ns.ALG_SHA1}
    with pytest.raises(UnsupportedAlgorithm):
        default.signature_method(ns.ALG_HMAC_SHA256)


def test_unknown_setting_and_mismatched_key_are_refused(sts_keys: Any) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        xmldsig.for_setting("rsa-md5")
    with pytest.raises(UnsupportedAlgorithm):
        xmldsig.Signer(SECRET, "rsa-sha256")
    with pytest.raises(UnsupportedAlgorithm):
        xmldsig.Signer(sts_keys.load().private_key, "hmac-sha256")
    with pytest.raises(ValueError, match="certificate"):
        xmldsig.Signer(SECRET, "hmac-sha256", certificate=sts_keys.load().certificate)


# ----------------------------------------------------------------------------- HMAC


@pytest.mark.parametrize("method", ["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha1"])
def test_hmac_round_trip(method: str) -> None:
    root = hmac_signed(method=method)
    assert root.find(f"{DS}Signature/{DS}KeyInfo") is None  # the secret is never named in the message
    uri = xmldsig.BY_SETTING[method].uri
    policy = xmldsig.AlgorithmPolicy.of([uri, xmldsig.BY_SETTING[method].digest_uri])
    verified = verify_hmac(root, policy=policy)
    assert verified.signed == (root,) and verified.key is SECRET and verified.certificate is None
    assert verified.signature_method == uri
    assert root.find(f"{DS}Signature") is None and root.text == "text & more"


def test_hmac_tampered_is_refused() -> None:
    root = hmac_signed()
    root.find(f"{DS}Signature").tail = " and a change"
    with pytest.raises(FailedCheck, match="digest"):
        verify_hmac(root)
    root = hmac_signed()
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[0] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(FailedCheck, match="HMAC mismatch"):
        verify_hmac(root)


def test_hmac_output_length_is_refused() -> None:
    """A truncated HMAC (CVE-2009-0217) is refused whatever its length, even 'the full length'."""
    for length in ("0", "80", "256"):
        root = hmac_signed()
        method = root.find(f"{DS}Signature/{DS}SignedInfo/{DS}SignatureMethod")
        etree.SubElement(method, f"{DS}HMACOutputLength").text = length
        with pytest.raises(UnsupportedAlgorithm, match="HMACOutputLength"):
            verify_hmac(root)


def test_hmac_with_the_wrong_key_is_refused(sts_keys: Any) -> None:
    with pytest.raises(FailedCheck, match="HMAC mismatch"):
        verify_hmac(hmac_signed(), xmldsig.shared_secrets([xmldsig.HmacKey(b"another secret")]))
    # a trusted certificate never keys an HMAC: its RSA key does not verify an HMAC method
    with pytest.raises(FailedCheck, match="RSAPublicKey"):
        verify_hmac(hmac_signed(), xmldsig.trusted_certificates([sts_keys.load().certificate]))


def test_hmac_key_refuses_public_material(sts_keys: Any) -> None:
    """Keying an HMAC with what the verifier publishes (certificate, public key) is the classic forgery."""
    cert = sts_keys.load().certificate
    public = cert.public_key()
    for material in (
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        b"",
    ):
        with pytest.raises(ValueError, match="HMAC key"):
            xmldsig.HmacKey(material)


# ----------------------------------------------------------------------------- RSA, detached, KeyInfo hook


def test_rsa_detached_round_trip_and_tampering(sts_keys: Any) -> None:
    key = sts_keys.load()
    doc = document()
    part, other = doc[0], doc[1]
    signature = xmldsig.Signer(key.private_key, "rsa-sha256", certificate=key.certificate).detached(
        [("_p1", part), ("_p2", other)])
    doc.append(signature)
    doc = _xml.parse(etree.tostring(doc))
    keys = xmldsig.trusted_certificates([key.certificate])
    options: dict[str, Any] = {"id_attributes": ["ID", "Id"], "algorithms": xmldsig.AlgorithmPolicy.default(),
                               "keys": keys, "now": NOW}
    verified = xmldsig.verify_detached(doc[2], **options)
    assert [e.get("ID") or e.get("Id") for e in verified.signed] == ["_p1", "_p2"]
    assert verified.certificate == key.certificate
    tampered = copy.deepcopy(doc)
    tampered[0].text = "changed"
    with pytest.raises(FailedCheck, match="digest"):
        xmldsig.verify_detached(tampered[2], **options)
    wrapped = copy.deepcopy(doc)  # a second holder of the ID: ambiguous, refused
    etree.SubElement(wrapped, "copy", ID="_p1")
    with pytest.raises(FailedCheck, match="2 elements"):
        xmldsig.verify_detached(wrapped[2], **options)


def test_key_resolver_hook_sees_the_signature_and_chooses_the_keys(sts_keys: Any, rogue_keys: Any) -> None:
    """A resolver (a SecurityTokenReference one, later) picks among trusted keys; the default ignores KeyInfo."""
    trusted, rogue = sts_keys.load(), rogue_keys.load()
    root = document()[0]
    xmldsig.Signer(rogue.private_key, "rsa-sha256", certificate=rogue.certificate).sign_enveloped(root, "_p1")
    data = etree.tostring(root)
    policy = xmldsig.AlgorithmPolicy.default()
    with pytest.raises(FailedCheck, match="any trusted certificate"):  # the rogue cert in KeyInfo is not trusted
        xmldsig.verify_enveloped(_xml.parse(data), id_attribute="ID", algorithms=policy,
                                 keys=xmldsig.trusted_certificates([trusted.certificate]), now=NOW)
    seen: list[str] = []

    def resolver(signature: etree._Element) -> list[xmldsig.Candidate]:
        seen.append(etree.QName(signature).localname)
        return [xmldsig.Candidate.of(trusted.certificate), xmldsig.Candidate.of(rogue.certificate)]

    verified = xmldsig.verify_enveloped(_xml.parse(data), id_attribute="ID", algorithms=policy, keys=resolver,
                                        now=NOW)
    assert seen == ["Signature"] and verified.certificate == rogue.certificate
