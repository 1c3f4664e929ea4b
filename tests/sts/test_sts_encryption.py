"""The STS encrypts the signed token for a relying party that has an encryption certificate.

Sign, then encrypt: SAML 2.0 as ``saml2:EncryptedAssertion``, SAML 1.1 as a
bare ``xenc:EncryptedData`` in ``wst:RequestedSecurityToken`` (as AD FS does).
Each token is decrypted with :class:`wstrust_wsgi.xmlenc.Decrypter` and the
assertion inside verified with the STS certificate by the usual SAML path: the
signed bytes survive encryption unchanged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

import pytest
import webtest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from lxml import etree

from _support import ISSUER, OTHER_URL, SERVICE_URL, FixedClock, KeyFiles, client_factory, demo_users
from wstrust_wsgi import RelyingParty, SigningKey, TokenService, ns, saml, xmlenc
from wstrust_wsgi.errors import BadValue, ConfigurationError, DecryptionFailed, SecurityWarning
from wstrust_wsgi.model import ENCRYPTION_ALGORITHMS, KEY_REFERENCES, KEY_TRANSPORTS
from wstrust_wsgi.sts import encryption

X = {"wst": ns.WST13, "wst5": ns.WST2005, "xenc": ns.XENC, "saml2": ns.SAML2, "saml1": ns.SAML1, "ds": ns.DS,
     "wsse": ns.WSSE}
SOAP_TRUST = [("1.1", "1.3"), ("1.2", "2005")]
URIS = {"aes256-gcm": ns.ALG_AES256_GCM, "aes128-gcm": ns.ALG_AES128_GCM,
        "aes256-cbc": ns.ALG_AES256_CBC, "aes128-cbc": ns.ALG_AES128_CBC}


@pytest.fixture(scope="module")
def rp_key() -> SigningKey:
    """The relying party's decryption key and its (encryption) certificate."""
    return SigningKey.generate("test relying party")


@pytest.fixture(scope="module")
def cbc_decrypter(rp_key: SigningKey) -> xmlenc.Decrypter:
    with pytest.warns(SecurityWarning):
        return xmlenc.Decrypter([rp_key], policy=xmlenc.DecryptionPolicy(allow_cbc=True))


def service(sts_keys: KeyFiles, clock: FixedClock, *parties: RelyingParty) -> TokenService:
    return TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=demo_users(), relying_parties=parties,
                        clock=clock)


def issue(sts: TokenService, clock: FixedClock, address: str, *, soap: str = "1.2", trust: str = "1.3",
          token_type: str | None = None) -> etree._Element:
    """The RSTR of an Issue answered 200."""
    client = client_factory(sts, clock)(soap_version=soap, trust_version=trust)
    response = webtest.TestApp(sts).post(
        "/services/sts", client.build_request(address, token_type=token_type),
        content_type=client.soap.content_type(client.dialect.issue_action),
        headers={"SOAPAction": f'"{client.dialect.issue_action}"'} if soap == "1.1" else {})
    assert response.status_int == 200, response.text
    root = etree.fromstring(response.body)
    return next(root.iter(f"{{{client.dialect.namespace}}}RequestSecurityTokenResponse"))


def verified(plaintext: bytes, sts_keys: KeyFiles, clock: FixedClock, audience: str) -> saml.VerifiedAssertion:
    """The decrypted assertion verified by the middleware's SAML path with the STS certificate only."""
    policy = saml.policy(trusted_certs=[sts_keys.load().certificate], issuers=[ISSUER], audiences=[audience])
    return saml.verify_assertion(etree.fromstring(plaintext), policy, now=clock())


def referenced_ids(rstr: etree._Element) -> list[str]:
    trust = etree.QName(rstr).namespace
    return [identifier.text for name in ("RequestedAttachedReference", "RequestedUnattachedReference")
            for identifier in rstr.iterfind(f"{{{trust}}}{name}/wsse:SecurityTokenReference/wsse:KeyIdentifier", X)]


@pytest.mark.parametrize("soap, trust", SOAP_TRUST)
@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_a_party_with_a_certificate_gets_its_token_signed_then_encrypted(sts_keys, clock, rp_key, soap, trust,
                                                                         token_type):
    party = RelyingParty(SERVICE_URL, token_type=token_type, certificate_pem=rp_key.certificate_pem)
    rstr = issue(service(sts_keys, clock, party), clock, SERVICE_URL, soap=soap, trust=trust)
    requested = rstr.find(f"{{{etree.QName(rstr).namespace}}}RequestedSecurityToken")
    [token] = list(requested)
    if token_type == "2.0":  # SAML Core 2.3.4
        assert token.tag == f"{{{ns.SAML2}}}EncryptedAssertion"
        [encrypted_data] = list(token)
    else:  # SAML 1.1 has no EncryptedAssertion: the EncryptedData stands alone, as AD FS sends it
        encrypted_data = token
    assert encrypted_data.tag == f"{{{ns.XENC}}}EncryptedData"
    assert encrypted_data.get("Type") == ns.XENC_TYPE_ELEMENT
    assert encrypted_data.find("xenc:EncryptionMethod", X).get("Algorithm") == ns.ALG_AES256_GCM  # the default
    assert b"admin@example.org" not in etree.tostring(rstr)
    decrypted = xmlenc.Decrypter([rp_key]).decrypt(xmlenc.encrypted_data_of(token), scope=token)
    assert decrypted.key_transport == ns.ALG_RSA_OAEP_MGF1P
    result = verified(decrypted.plaintext, sts_keys, clock, SERVICE_URL)
    assert result.subject == "admin" and result.attributes[
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"] == ("admin@example.org",)
    assert referenced_ids(rstr) == [result.assertion_id] * 2  # the references still name the assertion


@pytest.mark.parametrize("algorithm", ENCRYPTION_ALGORITHMS)
def test_each_content_algorithm_is_written_as_chosen(sts_keys, clock, rp_key, cbc_decrypter, algorithm):
    party = RelyingParty(OTHER_URL, token_type="1.1", certificate_pem=rp_key.certificate_pem, encryption=algorithm)
    token = issue(service(sts_keys, clock, party), clock, OTHER_URL).find(".//xenc:EncryptedData", X)
    assert token.find("xenc:EncryptionMethod", X).get("Algorithm") == URIS[algorithm]
    decrypted = cbc_decrypter.decrypt(token)
    assert decrypted.algorithm == URIS[algorithm]
    assert verified(decrypted.plaintext, sts_keys, clock, OTHER_URL).subject == "admin"
    if algorithm.endswith("-cbc"):  # CBC is an opt-in at the receiver too: the default policy refuses it
        with pytest.raises(DecryptionFailed):
            xmlenc.Decrypter([rp_key]).decrypt(token)


@pytest.mark.parametrize("transport, reference", [("rsa-oaep", "ski"), ("rsa-oaep-mgf1p", "thumbprint")])
def test_key_transport_and_certificate_name_are_written_as_chosen(sts_keys, clock, rp_key, transport, reference):
    party = RelyingParty(SERVICE_URL, certificate_pem=rp_key.certificate_pem, key_transport=transport,
                         key_reference=reference)
    token = issue(service(sts_keys, clock, party), clock, SERVICE_URL).find(".//saml2:EncryptedAssertion", X)
    key = token.find(".//xenc:EncryptedKey", X)
    assert key.find("xenc:EncryptionMethod", X).get("Algorithm") == (
        ns.ALG_RSA_OAEP if transport == "rsa-oaep" else ns.ALG_RSA_OAEP_MGF1P)
    value_type = key.find("ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier", X).get("ValueType")
    assert value_type == (ns.WSSE_X509_SKI if reference == "ski" else ns.WSSE_THUMBPRINT_SHA1)
    decrypted = xmlenc.Decrypter([rp_key]).decrypt(xmlenc.encrypted_data_of(token), scope=token)
    assert verified(decrypted.plaintext, sts_keys, clock, SERVICE_URL).subject == "admin"


def test_the_encrypted_plaintext_is_exactly_the_signed_assertion(sts_keys, clock, rp_key, _xmlsec1_checks_every_token):
    party = RelyingParty(SERVICE_URL, certificate_pem=rp_key.certificate_pem)
    token = issue(service(sts_keys, clock, party), clock, SERVICE_URL).find(".//saml2:EncryptedAssertion", X)
    decrypted = xmlenc.Decrypter([rp_key]).decrypt(xmlenc.encrypted_data_of(token), scope=token)
    [(signed, _)] = _xmlsec1_checks_every_token
    assert decrypted.plaintext == signed


def test_a_party_without_a_certificate_still_gets_a_plain_token(sts_keys, clock, rp_key):
    parties = RelyingParty(SERVICE_URL), RelyingParty(OTHER_URL, certificate_pem=rp_key.certificate_pem)
    rstr = issue(service(sts_keys, clock, *parties), clock, SERVICE_URL)
    assert rstr.find(".//saml2:Assertion", X) is not None and rstr.find(".//xenc:EncryptedData", X) is None


# ------------------------------------------------------------------ a certificate that cannot be used


def certificate(*, days: int = 30, not_before: dt.datetime | None = None, key=None) -> bytes:  # type: ignore[no-untyped-def]
    key = key if key is not None else SigningKey.generate("x").private_key
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test rp")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def sts_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="wstrust_wsgi")
    yield caplog


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_an_expired_encryption_certificate_is_a_fault_and_a_log_line_never_a_plain_token(
        sts_keys, clock, rp_key, sts_log, soap):
    expired = certificate(not_before=clock() - dt.timedelta(days=40), days=30)
    sts = service(sts_keys, clock, RelyingParty(SERVICE_URL, certificate_pem=expired))
    client = client_factory(sts, clock)(soap_version=soap)
    response = webtest.TestApp(sts).post(
        "/services/sts", client.build_request(SERVICE_URL), expect_errors=True,
        content_type=client.soap.content_type(client.dialect.issue_action),
        headers={"SOAPAction": f'"{client.dialect.issue_action}"'} if soap == "1.1" else {})
    assert response.status_int == 500
    assert b"encryption certificate is not usable" in response.body
    assert b"Assertion" not in response.body
    logged = " ".join(record.getMessage() for record in sts_log.records)
    assert f"relying party {SERVICE_URL}: the encryption certificate (CN=test rp) expired on" in logged


def test_a_certificate_not_yet_valid_is_refused_at_request_time(sts_keys, clock):
    later = certificate(not_before=clock() + dt.timedelta(days=2))
    with pytest.raises(Exception, match="not valid before"):
        encryption.usable_certificate(RelyingParty(SERVICE_URL, certificate_pem=later), clock())


@pytest.mark.parametrize("pem, message", [
    (b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n", "not a PEM certificate"),
    ("text", "must be PEM bytes"),
], ids=["garbage", "text"])
def test_an_unreadable_certificate_is_refused_when_the_sts_is_configured(sts_keys, clock, pem, message):
    with pytest.raises(ConfigurationError, match=message):
        service(sts_keys, clock, RelyingParty(SERVICE_URL, certificate_pem=pem))


def test_a_certificate_without_an_rsa_key_is_refused_when_the_sts_is_configured(sts_keys, clock):
    pem = certificate(key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match="holds no RSA key .an ECPublicKey.; tokens are encrypted with RSA-OAEP"):
        service(sts_keys, clock, RelyingParty(SERVICE_URL, certificate_pem=pem))


@pytest.mark.parametrize("field, value", [("encryption", "aes192-gcm"), ("encryption", "tripledes-cbc"),
                                          ("key_transport", "rsa-1_5"), ("key_reference", "subject")])
def test_the_encryption_choice_is_a_short_validated_list(field, value):
    with pytest.raises(BadValue, match=f"{field.replace('_', ' ')} must be one of"):
        RelyingParty(SERVICE_URL, **{field: value})


def test_every_model_name_has_its_uri_and_its_settings():
    for algorithm in ENCRYPTION_ALGORITHMS:
        for transport in KEY_TRANSPORTS:
            for reference in KEY_REFERENCES:
                settings = encryption.settings_for(RelyingParty(
                    SERVICE_URL, encryption=algorithm, key_transport=transport, key_reference=reference))
                assert settings.algorithm == URIS[algorithm] and settings.reference == reference
                assert settings.key_transport.endswith("#" + transport) and settings.digest == ns.ALG_SHA1
