"""Key confusion: trust must come from the configured certificate, never from the message.

The attacker signs an assertion claiming admin with a key of their own and
advertises a key in ``ds:KeyInfo`` in every way XML-DSig allows (their
certificate, a bare RSAKeyValue, the *trusted* certificate, a self-made
certificate with the trusted one's subject, issuer and serial number), or
computes an HMAC whose secret is the trusted certificate's *public* bytes (the
classic RS256 -> HS256 confusion). Each forgery is cryptographically valid for
the key it names (HMACs are checked with signxml itself), so only the trust
decision can refuse it. Controls: the trusted key's signature is admitted
whatever KeyInfo says.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree
from signxml import SignatureConfiguration, SignatureMethod, XMLVerifier

from _attacks import (  # noqa: F401  (fixtures)
    ALG_HMAC_SHA1,
    ALG_HMAC_SHA256,
    SAML_VERSIONS,
    SOAP_VERSIONS,
    admitted,
    build,
    envelope,
    forge_signature,
    guard,
    guarded,
    key_info_rsa,
    key_info_x509,
    low_privilege,
    post,
    recorder,
    refused,
    rogue_key,
    sts_key,
    tostring,
)
from _forge import DS, qn
from wstrust_wsgi import ns


@pytest.fixture(scope="module")
def lookalike_cert(sts_key, rogue_key):  # type: ignore[no-untyped-def]
    """A certificate copying the trusted one's subject, issuer, serial, validity and extensions,
    for the attacker's key, self-signed by the attacker."""
    trusted = sts_key.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(trusted.subject)
        .issuer_name(trusted.issuer)
        .serial_number(trusted.serial_number)
        .not_valid_before(trusted.not_valid_before_utc)
        .not_valid_after(trusted.not_valid_after_utc)
        .public_key(rogue_key.private_key.public_key())
    )
    for extension in trusted.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(rogue_key.private_key, hashes.SHA256())


def evil(clock):  # type: ignore[no-untyped-def]
    return low_privilege(clock.now, subject="admin", attributes={ns.CLAIM_ROLE: ["admin"]})


def _key_info(kind, sts_key, rogue_key, lookalike):  # type: ignore[no-untyped-def]
    rogue_public = rogue_key.private_key.public_key()
    if kind == "none":
        return None
    if kind == "rogue-certificate":
        return key_info_x509(rogue_key.certificate)
    if kind == "rogue-bare-rsa-key-value":
        return key_info_rsa(rogue_public)
    if kind == "rogue-certificate-and-key-value":
        info = key_info_x509(rogue_key.certificate)
        info.append(key_info_rsa(rogue_public)[0])
        return info
    if kind == "trusted-certificate":
        return key_info_x509(sts_key.certificate)
    if kind == "trusted-certificate-and-rogue-key-value":
        info = key_info_x509(sts_key.certificate)
        info.append(key_info_rsa(rogue_public)[0])
        return info
    if kind == "lookalike-certificate":
        return key_info_x509(lookalike)
    if kind == "key-name-of-the-trusted-subject":
        info = etree.Element(qn(DS, "KeyInfo"), nsmap={"ds": DS})
        etree.SubElement(info, qn(DS, "KeyName")).text = sts_key.certificate.subject.rfc4514_string()
        return info
    raise AssertionError(kind)


KEY_INFOS = [
    "none", "rogue-certificate", "rogue-bare-rsa-key-value", "rogue-certificate-and-key-value",
    "trusted-certificate", "trusted-certificate-and-rogue-key-value", "lookalike-certificate",
    "key-name-of-the-trusted-subject",
]


def test_lookalike_certificate_names_the_trusted_subject_but_not_its_key(sts_key, rogue_key, lookalike_cert):
    trusted = sts_key.certificate
    assert (lookalike_cert.subject, lookalike_cert.issuer, lookalike_cert.serial_number) == (
        trusted.subject, trusted.issuer, trusted.serial_number)
    assert lookalike_cert.public_key().public_numbers() != trusted.public_key().public_numbers()
    assert lookalike_cert.public_key().public_numbers() == rogue_key.private_key.public_key().public_numbers()


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("key_info", KEY_INFOS)
def test_attackers_rsa_signature_is_refused_whatever_key_info_says(
    guarded, recorder, sts_key, rogue_key, lookalike_cert, clock, soap, version, key_info
):
    root = build(version, evil(clock))
    forge_signature(root, private_key=rogue_key.private_key,
                    key_info=_key_info(key_info, sts_key, rogue_key, lookalike_cert))
    fault = refused(post(guarded, envelope([tostring(root)], soap=soap), soap), soap, "wsse:FailedCheck",
                    recorder=recorder)
    assert fault.reason == "The signature or decryption was invalid."  # no hint which certs are trusted


@SAML_VERSIONS
@pytest.mark.parametrize(
    ("key_info", "outcome"),
    [
        ("rogue-certificate", "admitted"),
        ("lookalike-certificate", "admitted"),
        ("key-name-of-the-trusted-subject", "admitted"),
        # signxml compares a KeyValue with the configured certificate and refuses a mismatch:
        # ambiguous key material fails closed even under a genuine signature.
        ("rogue-bare-rsa-key-value", "wsse:FailedCheck"),
    ],
)
def test_trusted_signature_with_a_misleading_key_info(
    guarded, recorder, sts_key, rogue_key, lookalike_cert, clock, version, key_info, outcome
):
    """Control: a certificate in KeyInfo is never used, so a misleading one does not spoil a genuine
    signature either; a contradicting bare KeyValue is refused rather than silently ignored."""
    root = build(version, low_privilege(clock.now))
    forge_signature(root, private_key=sts_key.private_key,
                    key_info=_key_info(key_info, sts_key, rogue_key, lookalike_cert))
    response = post(guarded, envelope([tostring(root)]))
    if outcome == "admitted":
        admitted(response, recorder, "alice")
    else:
        refused(response, "1.1", outcome, recorder=recorder)


def _public_secrets(cert: x509.Certificate) -> dict[str, bytes]:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = cert.public_bytes(serialization.Encoding.DER)
    numbers = cert.public_key().public_numbers()
    return {
        "certificate-pem": cert.public_bytes(serialization.Encoding.PEM),
        "certificate-der": der,
        "certificate-base64-as-in-key-info": base64.b64encode(der),
        "public-key-pem": cert.public_key().public_bytes(serialization.Encoding.PEM, spki),
        "public-key-der": cert.public_key().public_bytes(serialization.Encoding.DER, spki),
        "modulus-bytes": numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"),
    }


SECRETS = ["certificate-pem", "certificate-der", "certificate-base64-as-in-key-info", "public-key-pem",
           "public-key-der", "modulus-bytes"]
HMACS = {
    ALG_HMAC_SHA256: (SignatureMethod.HMAC_SHA256, False),
    ALG_HMAC_SHA1: (SignatureMethod.HMAC_SHA1, True),  # against a middleware that allows SHA-1
}


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("method", list(HMACS), ids=["hmac-sha256", "hmac-sha1"])
@pytest.mark.parametrize("secret", SECRETS)
def test_hmac_keyed_with_the_trusted_public_key_is_an_unsupported_algorithm(
    recorder, sts_key, sts_keys, clock, soap, version, method, secret
):
    signxml_method, allow_sha1 = HMACS[method]
    key = _public_secrets(sts_key.certificate)[secret]
    root = build(version, evil(clock))
    forge_signature(root, hmac_key=key, signature_method=method, key_info=key_info_x509(sts_key.certificate))
    data = tostring(root)
    # The forgery is genuine: signxml verifies it with that "secret" (KeyInfo left out of the copy).
    bare = etree.fromstring(data)
    signature = bare.find(qn(DS, "Signature"))
    signature.remove(signature.find(qn(DS, "KeyInfo")))
    checked = XMLVerifier().verify(
        bare, hmac_key=key, id_attribute=version.id_attribute,
        expect_config=SignatureConfiguration(signature_methods=frozenset({signxml_method}), require_x509=False,
                                             location="./"),
    )
    assert checked.signed_xml is not None
    app = guard(recorder, sts_keys.cert, clock, allow_sha1=allow_sha1)
    refused(post(app, envelope([data], soap=soap), soap), soap, "wsse:UnsupportedAlgorithm", recorder=recorder)


@SAML_VERSIONS
def test_token_signed_by_a_key_whose_certificate_is_not_yet_trusted_is_refused_until_configured(
    recorder, sts2_keys, sts_keys, clock, version
):
    """Rollover done right: the new key's certificate must be configured before its tokens count."""
    new_key = sts2_keys.load()
    root = build(version, low_privilege(clock.now))
    forge_signature(root, private_key=new_key.private_key, key_info=key_info_x509(new_key.certificate))
    data = tostring(root)
    refused(post(guard(recorder, sts_keys.cert, clock), envelope([data])), "1.1", "wsse:FailedCheck",
            recorder=recorder)
    both = guard(recorder, [sts_keys.cert, sts2_keys.cert], clock)
    admitted(post(both, envelope([data])), recorder, "alice")


@SAML_VERSIONS
def test_trusted_certificate_that_expired_does_not_verify(recorder, tmp_path, sts_key, clock, version):
    """The configured certificate's validity is checked at verification time (clock), so a leaked
    key of a retired certificate cannot mint tokens: the clock moved past its NotAfter refuses them."""
    clock.now = sts_key.certificate.not_valid_after_utc + timedelta(days=1)
    root = build(version, low_privilege(clock.now))
    forge_signature(root, private_key=sts_key.private_key)
    cert_path = tmp_path / "sts.crt"
    cert_path.write_bytes(sts_key.certificate_pem)
    refused(post(guard(recorder, cert_path, clock), envelope([tostring(root)])), "1.1", "wsse:FailedCheck",
            recorder=recorder)
