"""XML Encryption (wstrust_wsgi.xmlenc): round trips, the allow-list, and one failure for every cause.

The security tests follow the published attacks: bit flips in IV, ciphertext
and tag; a wrong key and a token encrypted for another certificate; CBC and
RSA 1.5 refused before any key is used under the default policy; a
RetrievalMethod pointing outside the token; a DTD, an entity and an oversized
document inside the plaintext. Every refusal is the same DecryptionFailed with
the same reason, and the secret-dependent ones also take the same path
(content decryption and parsing run even when no key unwrapped the content key).
Real Okta output, encrypted for pysaml2's public test certificate, is a known answer.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from lxml import etree

from wstrust_wsgi import SigningKey, _xml, ns, soap, xmlenc
from wstrust_wsgi.errors import ConfigurationError, DecryptionFailed, FailedCheck, SecurityWarning
from wstrust_wsgi.xmlenc import Decrypter, DecryptionPolicy, EncryptionSettings, decrypt, encrypt
from _support import vector

PLAINTEXT = (b'<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0">'
             b"<saml2:Issuer>https://sts.example/</saml2:Issuer></saml2:Assertion>")
CONTENT = [ns.ALG_AES128_GCM, ns.ALG_AES256_GCM, ns.ALG_AES128_CBC, ns.ALG_AES256_CBC]
TRANSPORTS = [  # (key transport, OAEP digest, MGF)
    (ns.ALG_RSA_OAEP_MGF1P, ns.ALG_SHA1, ns.ALG_MGF1_SHA1),
    (ns.ALG_RSA_OAEP_MGF1P, ns.ALG_SHA256, ns.ALG_MGF1_SHA1),
    (ns.ALG_RSA_OAEP, ns.ALG_SHA1, ns.ALG_MGF1_SHA1),
    (ns.ALG_RSA_OAEP, ns.ALG_SHA256, ns.ALG_MGF1_SHA256),
    (ns.ALG_RSA_OAEP, ns.ALG_SHA256, ns.ALG_MGF1_SHA1),
]
X = {"xenc": ns.XENC, "ds": ns.DS, "xenc11": ns.XENC11, "wsse": ns.WSSE}
REASON = DecryptionFailed.default_reason


@pytest.fixture(scope="module")
def cbc_policy() -> DecryptionPolicy:
    with pytest.warns(SecurityWarning, match="allow_cbc"):
        return DecryptionPolicy(allow_cbc=True)


@pytest.fixture(scope="module")
def sts(sts_keys: Any) -> SigningKey:
    return sts_keys.load()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rogue(rogue_keys: Any) -> SigningKey:
    return rogue_keys.load()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def sts2(sts2_keys: Any) -> SigningKey:
    return sts2_keys.load()  # type: ignore[no-any-return]


def _cipher_value(encrypted: etree._Element, path: str = "xenc:CipherData/xenc:CipherValue") -> etree._Element:
    found = encrypted.find(path, X)
    assert found is not None
    return found


def _flip(encrypted: etree._Element, index: int, path: str = "xenc:CipherData/xenc:CipherValue") -> etree._Element:
    """A copy of ``encrypted`` with one bit of the CipherValue at ``path`` flipped (negative index from the end)."""
    changed = copy.deepcopy(encrypted)
    value = _cipher_value(changed, path)
    data = bytearray(base64.b64decode(value.text or ""))
    data[index] ^= 0x01
    value.text = base64.b64encode(bytes(data)).decode()
    return changed


def _refusal(action: Callable[[], object]) -> DecryptionFailed:
    with pytest.raises(DecryptionFailed) as caught:
        action()
    assert caught.value.reason == REASON
    assert isinstance(caught.value, FailedCheck) and caught.value.code == "FailedCheck"
    return caught.value


def _no_secret_touched(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every call of the secret path (content-key unwrapping): a policy refusal must make none."""
    calls: list[object] = []
    original = Decrypter._content_key

    def spy(self: Decrypter, plan: Any) -> Any:
        calls.append(plan)
        return original(self, plan)

    monkeypatch.setattr(Decrypter, "_content_key", spy)
    return calls


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("algorithm", CONTENT, ids=lambda u: u.rsplit("#", 1)[1])
@pytest.mark.parametrize("transport", TRANSPORTS, ids=lambda t: "-".join(u.rsplit("#", 1)[1] for u in t))
def test_round_trip_for_every_algorithm_pair(algorithm: str, transport: tuple[str, str, str], sts: SigningKey,
                                             cbc_policy: DecryptionPolicy) -> None:
    key_transport, digest, mgf = transport
    settings = EncryptionSettings(algorithm=algorithm, key_transport=key_transport, digest=digest, mgf=mgf)
    encrypted = encrypt(PLAINTEXT, sts.certificate, settings)
    result = decrypt(encrypted, [sts], policy=cbc_policy)
    assert result.plaintext == PLAINTEXT
    assert result.element.get("ID") == "_a1" and result.element.getparent() is None
    assert (result.algorithm, result.key_transport, result.certificate) == (algorithm, key_transport, sts.certificate)
    if algorithm in xmlenc.GCM_ALGORITHMS:  # and the default policy reads GCM without being asked
        assert decrypt(encrypted, [sts]).plaintext == PLAINTEXT


def test_an_element_is_serialized_standalone(sts: SigningKey) -> None:
    outer = etree.fromstring(b'<w xmlns:s="urn:x"><s:a s:b="1"><s:c/></s:a></w>')
    result = decrypt(encrypt(outer[0], sts.certificate), [sts])
    assert result.element.tag == "{urn:x}a" and result.element.get("{urn:x}b") == "1"


def test_the_wire_form(sts: SigningKey) -> None:
    encrypted = encrypt(PLAINTEXT, sts.certificate, data_id="_enc1")
    assert encrypted.tag == f"{{{ns.XENC}}}EncryptedData"
    assert (encrypted.get("Type"), encrypted.get("Id")) == (ns.XENC_TYPE_ELEMENT, "_enc1")
    assert encrypted.find("xenc:EncryptionMethod", X).get("Algorithm") == ns.ALG_AES256_GCM  # type: ignore[union-attr]
    key = encrypted.find("ds:KeyInfo/xenc:EncryptedKey", X)
    assert key is not None
    assert key.find("xenc:EncryptionMethod", X).get("Algorithm") == ns.ALG_RSA_OAEP_MGF1P  # type: ignore[union-attr]
    assert key.find("xenc:EncryptionMethod/ds:DigestMethod", X).get("Algorithm") == ns.ALG_SHA1  # type: ignore[union-attr]
    assert key.find("xenc:EncryptionMethod/xenc11:MGF", X) is None
    serial = key.find("ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial", X)
    assert serial is not None
    assert serial.findtext("ds:X509SerialNumber", namespaces=X) == str(sts.certificate.serial_number)
    assert serial.findtext("ds:X509IssuerName", namespaces=X) == sts.certificate.issuer.rfc4514_string()
    assert key.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", X) is None
    cipher = base64.b64decode(_cipher_value(encrypted).text or "")
    assert len(cipher) == 12 + len(PLAINTEXT) + 16  # IV || ciphertext || tag
    oaep11 = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(key_transport=ns.ALG_RSA_OAEP, mgf=ns.ALG_MGF1_SHA256))
    assert oaep11.find(".//xenc11:MGF", X).get("Algorithm") == ns.ALG_MGF1_SHA256  # type: ignore[union-attr]


@pytest.mark.parametrize("reference", ["issuer-serial", "ski", "thumbprint"])
@pytest.mark.parametrize("include_certificate", [False, True])
def test_the_encrypted_key_names_the_certificate(reference: Any, include_certificate: bool, sts: SigningKey,
                                                 sts2: SigningKey) -> None:
    settings = EncryptionSettings(reference=reference, include_certificate=include_certificate)
    encrypted = encrypt(PLAINTEXT, sts.certificate, settings)
    key_info = encrypted.find("ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo", X)
    assert key_info is not None
    der = sts.certificate.public_bytes(serialization.Encoding.DER)
    if reference != "issuer-serial":
        identifier = key_info.find("wsse:SecurityTokenReference/wsse:KeyIdentifier", X)
        assert identifier is not None
        expected = (x509.SubjectKeyIdentifier.from_public_key(sts.certificate.public_key()).digest  # type: ignore[arg-type]
                    if reference == "ski" else hashlib.sha1(der).digest())
        assert base64.b64decode(identifier.text or "") == expected
        assert identifier.get("ValueType") == (ns.WSSE_X509_SKI if reference == "ski" else ns.WSSE_THUMBPRINT_SHA1)
    carried = key_info.findtext("ds:X509Data/ds:X509Certificate", namespaces=X)
    assert (carried is not None) == include_certificate
    if carried is not None:
        assert base64.b64decode(carried) == der
    # the name chooses the key among the configured ones (rollover: the right one is second)
    assert Decrypter([sts2, sts]).decrypt(encrypted).certificate == sts.certificate


def test_rollover_tries_every_key_when_the_encrypted_key_names_none(sts: SigningKey, sts2: SigningKey) -> None:
    encrypted = encrypt(PLAINTEXT, sts.certificate)
    inner = encrypted.find("ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo", X)
    assert inner is not None
    inner.getparent().remove(inner)  # type: ignore[union-attr]
    assert Decrypter([sts2, sts]).decrypt(encrypted).certificate == sts.certificate


def test_a_decrypter_serves_many_messages(sts: SigningKey) -> None:
    decrypter = Decrypter([sts])
    for _ in range(3):
        assert decrypter.decrypt(encrypt(PLAINTEXT, sts.certificate)).plaintext == PLAINTEXT


# ------------------------------------------------------------------ the vectors


def test_okta_encrypted_assertion_is_a_known_answer_under_the_cbc_opt_in(cbc_policy: DecryptionPolicy) -> None:
    """Real Okta output (aes256-cbc, rsa-oaep-mgf1p + SHA-1, RetrievalMethod to a sibling EncryptedKey)."""
    token = _xml.parse(vector("breadth/pysaml2_okta-encryptedassertion-aes256cbc-rsaoaep.xml").read_bytes())
    key = serialization.load_pem_private_key(vector("breadth/pysaml2_test-1-encryption-key.pem").read_bytes(), None)
    carried = token.findtext(".//xenc:EncryptedKey/ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=X)
    certificate = x509.load_der_x509_certificate(base64.b64decode(carried or ""))
    pair = SigningKey(key, certificate)  # type: ignore[arg-type]
    result = Decrypter([pair], policy=cbc_policy).decrypt(xmlenc.encrypted_data_of(token), scope=token)
    assert result.element.tag == f"{{{ns.SAML2}}}Assertion"
    assert (result.algorithm, result.key_transport) == (ns.ALG_AES256_CBC, ns.ALG_RSA_OAEP_MGF1P)
    assert result.element.findtext(f"{{{ns.SAML2}}}Issuer") is not None


def test_okta_encrypted_assertion_is_refused_by_default_before_any_key_is_used(
        monkeypatch: pytest.MonkeyPatch, sts: SigningKey) -> None:
    token = _xml.parse(vector("breadth/pysaml2_okta-encryptedassertion-aes256cbc-rsaoaep.xml").read_bytes())
    calls = _no_secret_touched(monkeypatch)
    refused = _refusal(lambda: Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token), scope=token))
    assert "aes256-cbc" in str(refused) and calls == []


def test_dauth_saml11_encrypted_data_is_refused_for_its_3des(monkeypatch: pytest.MonkeyPatch, sts: SigningKey,
                                                             cbc_policy: DecryptionPolicy) -> None:
    """AD FS-style SAML 1.1 token: EncryptedData directly in RequestedSecurityToken, tripledes-cbc, SKI reference."""
    envelope = _xml.parse(vector("breadth/identitymodel-dotnet_dauth-rstr-symmetric-encrypted-saml11.xml").read_bytes())
    holder = envelope.find(f".//{{{ns.WST2005}}}RequestedSecurityToken")
    assert holder is not None
    encrypted = xmlenc.encrypted_data_of(holder)
    assert encrypted.find("ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo/wsse:SecurityTokenReference", X) is not None
    calls = _no_secret_touched(monkeypatch)
    for policy in (None, cbc_policy):
        refused = _refusal(lambda: Decrypter([sts], policy=policy).decrypt(encrypted, scope=holder))
        assert "tripledes-cbc" in str(refused)
    assert calls == []


# ------------------------------------------------------------------ the allow-list


def test_cbc_is_refused_under_the_default_policy_before_any_key_is_used(monkeypatch: pytest.MonkeyPatch,
                                                                        sts: SigningKey) -> None:
    calls = _no_secret_touched(monkeypatch)
    for algorithm in (ns.ALG_AES128_CBC, ns.ALG_AES256_CBC):
        encrypted = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(algorithm=algorithm))
        assert "is not allowed by the decryption policy" in str(_refusal(lambda: decrypt(encrypted, [sts])))
    assert calls == []


def _with_key_transport(encrypted: etree._Element, uri: str, wrapped: bytes) -> etree._Element:
    changed = copy.deepcopy(encrypted)
    method = changed.find("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod", X)
    assert method is not None
    method.set("Algorithm", uri)
    for child in list(method):
        method.remove(child)
    _cipher_value(changed, "ds:KeyInfo/xenc:EncryptedKey/xenc:CipherData/xenc:CipherValue").text = (
        base64.b64encode(wrapped).decode())
    return changed


def test_rsa_1_5_is_refused_under_every_policy_before_any_key_is_used(
        monkeypatch: pytest.MonkeyPatch, sts: SigningKey, cbc_policy: DecryptionPolicy) -> None:
    key = os.urandom(32)
    iv = os.urandom(12)
    encrypted = encrypt(PLAINTEXT, sts.certificate)
    _cipher_value(encrypted).text = base64.b64encode(iv + AESGCM(key).encrypt(iv, PLAINTEXT, None)).decode()
    wrapped = sts.certificate.public_key().encrypt(key, padding.PKCS1v15())  # type: ignore[union-attr]
    rsa15 = _with_key_transport(encrypted, ns.ALG_RSA_1_5, wrapped)
    calls = _no_secret_touched(monkeypatch)
    for policy in (None, cbc_policy):
        assert "rsa-1_5" in str(_refusal(lambda: decrypt(rsa15, [sts], policy=policy)))
    assert calls == []
    with pytest.raises(ConfigurationError):
        EncryptionSettings(key_transport=ns.ALG_RSA_1_5)


@pytest.mark.parametrize("where, uri", [
    ("xenc:EncryptionMethod", "http://www.w3.org/2001/04/xmlenc#aes192-cbc"),
    ("xenc:EncryptionMethod", "urn:unknown"),
    ("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod/ds:DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5"),
], ids=["aes192-cbc", "unknown", "md5-oaep"])
def test_algorithms_outside_the_allow_list_are_refused(where: str, uri: str, sts: SigningKey,
                                                       cbc_policy: DecryptionPolicy) -> None:
    encrypted = encrypt(PLAINTEXT, sts.certificate)
    encrypted.find(where, X).set("Algorithm", uri)  # type: ignore[union-attr]
    assert "not allowed by the decryption policy" in str(_refusal(lambda: decrypt(encrypted, [sts], policy=cbc_policy)))


def test_an_mgf_on_rsa_oaep_mgf1p_and_an_unknown_mgf_are_refused(sts: SigningKey) -> None:
    encrypted = encrypt(PLAINTEXT, sts.certificate)
    method = encrypted.find("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod", X)
    etree.SubElement(method, f"{{{ns.XENC11}}}MGF").set("Algorithm", ns.ALG_MGF1_SHA256)  # type: ignore[arg-type]
    _refusal(lambda: decrypt(encrypted, [sts]))
    oaep11 = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(key_transport=ns.ALG_RSA_OAEP))
    oaep11.find(".//xenc11:MGF", X).set("Algorithm", "urn:mgf1sha999")  # type: ignore[union-attr]
    _refusal(lambda: decrypt(oaep11, [sts]))


def test_settings_and_policies_are_checked_at_construction(sts: SigningKey, rogue: SigningKey) -> None:
    for bad in ({"algorithm": ns.ALG_TRIPLEDES_CBC}, {"digest": "urn:md5"}, {"mgf": ns.ALG_MGF1_SHA256},
                {"reference": "subject"}):
        with pytest.raises(ConfigurationError):
            EncryptionSettings(**bad)
    with pytest.raises(ConfigurationError):
        DecryptionPolicy(max_bytes=0)
    with pytest.raises(ConfigurationError):
        Decrypter([])
    with pytest.raises(ConfigurationError, match="another public key"):
        Decrypter([SigningKey(sts.private_key, rogue.certificate)])
    assert DecryptionPolicy().content_algorithms == xmlenc.GCM_ALGORITHMS


def test_the_cbc_opt_in_warns_where_it_is_made() -> None:
    with pytest.warns(SecurityWarning, match="allow_cbc") as record:
        DecryptionPolicy(allow_cbc=True)
    assert record[0].filename == __file__


def test_a_certificate_without_an_rsa_key_cannot_be_encrypted_for() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    with pytest.raises(ConfigurationError, match="not an RSA key"):
        encrypt(PLAINTEXT, cert)


# ------------------------------------------------------------------ secret failures: one error, one path


def _secret_failures(sts: SigningKey, rogue: SigningKey) -> dict[str, Callable[[], object]]:
    """Every refusal whose cause depends on a secret (the key, the padding, the tag, the plaintext)."""
    gcm = encrypt(PLAINTEXT, sts.certificate)
    cbc = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(algorithm=ns.ALG_AES256_CBC))
    with pytest.warns(SecurityWarning):
        cbc_policy = DecryptionPolicy(allow_cbc=True)
        cbc_limited = DecryptionPolicy(allow_cbc=True, max_bytes=64)
    wrapped = "ds:KeyInfo/xenc:EncryptedKey/xenc:CipherData/xenc:CipherValue"
    short_key = _with_key_transport(gcm, ns.ALG_RSA_OAEP_MGF1P,
                                    sts.certificate.public_key().encrypt(  # type: ignore[union-attr]
                                        os.urandom(16), padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)))
    return {
        "gcm IV bit": lambda: decrypt(_flip(gcm, 0), [sts]),
        "gcm ciphertext bit": lambda: decrypt(_flip(gcm, 20), [sts]),
        "gcm tag bit": lambda: decrypt(_flip(gcm, -1), [sts]),
        "gcm wrapped key bit": lambda: decrypt(_flip(gcm, 5, wrapped), [sts]),
        "gcm wrong key": lambda: decrypt(gcm, [rogue]),
        "gcm for another certificate": lambda: decrypt(encrypt(PLAINTEXT, rogue.certificate), [sts]),
        "gcm content key of the wrong length": lambda: decrypt(short_key, [sts]),
        "cbc IV bit (plaintext no longer XML)": lambda: decrypt(_flip(cbc, 0), [sts], policy=cbc_policy),
        "cbc padding": lambda: decrypt(_flip(cbc, -17), [sts], policy=cbc_policy),
        "cbc last block": lambda: decrypt(_flip(cbc, -1), [sts], policy=cbc_policy),
        "cbc wrong key": lambda: decrypt(cbc, [rogue], policy=cbc_policy),
        "cbc wrapped key bit": lambda: decrypt(_flip(cbc, 5, wrapped), [sts], policy=cbc_policy),
        "dtd in the plaintext": lambda: decrypt(encrypt(b'<!DOCTYPE a [<!ELEMENT a ANY>]><a/>', sts.certificate), [sts]),
        "entity in the plaintext": lambda: decrypt(
            encrypt(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', sts.certificate), [sts]),
        "external entity in the plaintext": lambda: decrypt(
            encrypt(b'<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>', sts.certificate), [sts]),
        "plaintext not XML": lambda: decrypt(encrypt(b"not xml at all", sts.certificate), [sts]),
        "plaintext too deep": lambda: decrypt(encrypt(b"<a>" * 100 + b"</a>" * 100, sts.certificate), [sts]),
        # 65 bytes: CBC pads to 80, which the size check before decryption lets through; the parser's limit refuses
        "cbc plaintext over the limit": lambda: decrypt(
            encrypt(b"<a>" + b"x" * 58 + b"</a>", sts.certificate, EncryptionSettings(algorithm=ns.ALG_AES128_CBC)),
            [sts], policy=cbc_limited),
    }


def test_every_secret_failure_is_the_same_error_with_the_same_reason_and_log_text(
        sts: SigningKey, rogue: SigningKey) -> None:
    refusals = {name: _refusal(action) for name, action in _secret_failures(sts, rogue).items()}
    assert {type(e) for e in refusals.values()} == {DecryptionFailed}
    assert {e.reason for e in refusals.values()} == {REASON}
    assert {str(e) for e in refusals.values()} == {xmlenc._SECRET_DETAIL}, refusals
    for version in (soap.SOAP11, soap.SOAP12):  # and the peer gets byte-identical answers
        answers = {soap.fault_response(version, e) for e in refusals.values()}
        assert len(answers) == 1
        status, _, body = answers.pop()
        assert b"wsse:FailedCheck" in body and REASON.encode() in body and status in (400, 500)


def test_public_refusals_share_the_class_and_reason_and_name_their_cause_in_the_log(
        monkeypatch: pytest.MonkeyPatch, sts: SigningKey) -> None:
    """What the sender chose (algorithm, size) is no secret: the log says which rule it broke."""
    calls = _no_secret_touched(monkeypatch)
    encrypted = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(algorithm=ns.ALG_AES128_CBC))
    refused = _refusal(lambda: decrypt(encrypted, [sts]))
    assert type(refused) is DecryptionFailed and "aes128-cbc" in str(refused)
    oversized = encrypt(b"<a>" + b"x" * 59 + b"</a>", sts.certificate)  # 66 bytes under a 64-byte limit
    refused = _refusal(lambda: decrypt(oversized, [sts], policy=DecryptionPolicy(max_bytes=64)))
    assert "exceeds the limit of 64" in str(refused) and calls == []


def test_content_decryption_and_parsing_run_even_when_no_key_unwraps(monkeypatch: pytest.MonkeyPatch,
                                                                    sts: SigningKey, rogue: SigningKey) -> None:
    """The wrong-key path does the same work as the bad-ciphertext path (no early return to time)."""
    steps: list[str] = []
    content, parse = Decrypter._content, _xml.parse

    def spy_content(algorithm: str, key: bytes, cipher_value: bytes) -> tuple[bytes, bool]:
        steps.append("content")
        return content(algorithm, key, cipher_value)

    def spy_parse(data: bytes, **kwargs: Any) -> etree._Element:
        steps.append("parse")
        return parse(data, **kwargs)

    monkeypatch.setattr(Decrypter, "_content", staticmethod(spy_content))
    monkeypatch.setattr(_xml, "parse", spy_parse)
    cbc = encrypt(PLAINTEXT, sts.certificate, EncryptionSettings(algorithm=ns.ALG_AES256_CBC))
    with pytest.warns(SecurityWarning):
        policy = DecryptionPolicy(allow_cbc=True)
    for action in (lambda: decrypt(cbc, [rogue], policy=policy),  # no key unwraps: a random one runs instead
                   lambda: decrypt(_flip(cbc, -17), [sts], policy=policy),  # bad padding: still parsed
                   lambda: decrypt(encrypt(PLAINTEXT, sts.certificate), [rogue])):  # GCM, wrong key
        steps.clear()
        _refusal(action)
        assert steps == ["content", "parse"]


# ------------------------------------------------------------------ shape: nothing outside the token


def _retrieved(sts: SigningKey, *, outside: bool = False, uri: str = "#ek1") -> tuple[etree._Element, etree._Element]:
    """(document, token): the EncryptedKey moved out of KeyInfo to a sibling reached by RetrievalMethod."""
    encrypted = encrypt(PLAINTEXT, sts.certificate)
    key_info = encrypted.find("ds:KeyInfo", X)
    assert key_info is not None
    key = key_info[0]
    key_info.remove(key)
    key.set("Id", "ek1")
    method = etree.SubElement(key_info, f"{{{ns.DS}}}RetrievalMethod")
    method.set("Type", ns.XENC_TYPE_ENCRYPTED_KEY)
    method.set("URI", uri)
    document = etree.Element("{urn:test}Envelope")
    token = etree.SubElement(document, f"{{{ns.SAML2}}}EncryptedAssertion")
    token.append(encrypted)
    (document if outside else token).append(key)
    return document, token


def test_retrieval_method_to_a_sibling_encrypted_key(sts: SigningKey) -> None:
    document, token = _retrieved(sts)
    assert Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token), scope=token).plaintext == PLAINTEXT
    assert Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token)).plaintext == PLAINTEXT  # whole document


@pytest.mark.parametrize("uri", ["#ek1", "http://attacker.example/key.xml#ek1", "file:///etc/passwd", "ek1", "#",
                                 "#missing"])
def test_retrieval_method_never_leaves_the_token(uri: str, sts: SigningKey) -> None:
    document, token = _retrieved(sts, outside=True, uri=uri)
    _refusal(lambda: Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token), scope=token))


def test_retrieval_method_refuses_a_duplicated_id_transforms_and_other_types(sts: SigningKey) -> None:
    document, token = _retrieved(sts)
    twin = etree.SubElement(token, "{urn:test}Other", Id="ek1")
    _refusal(lambda: Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token), scope=token))
    token.remove(twin)
    method = token.find(".//ds:RetrievalMethod", X)
    assert method is not None
    method.set("Type", "http://www.w3.org/2000/09/xmldsig#X509Data")
    _refusal(lambda: Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token), scope=token))
    method.set("Type", ns.XENC_TYPE_ENCRYPTED_KEY)
    etree.SubElement(method, f"{{{ns.DS}}}Transforms")
    _refusal(lambda: Decrypter([sts]).decrypt(xmlenc.encrypted_data_of(token), scope=token))


def test_shapes_that_are_refused(sts: SigningKey) -> None:
    def variant(change: Callable[[etree._Element], object]) -> etree._Element:
        encrypted = encrypt(PLAINTEXT, sts.certificate)
        change(encrypted)
        return encrypted

    def cipher_reference(e: etree._Element) -> None:
        data = e.find("xenc:CipherData", X)
        data.remove(data[0])  # type: ignore[union-attr]
        etree.SubElement(data, f"{{{ns.XENC}}}CipherReference", URI="http://attacker.example/")  # type: ignore[arg-type]

    def nested_key(e: etree._Element) -> None:
        inner = e.find("ds:KeyInfo/xenc:EncryptedKey/ds:KeyInfo", X)
        inner.append(copy.deepcopy(e.find("ds:KeyInfo/xenc:EncryptedKey", X)))  # type: ignore[union-attr,arg-type]

    def many_keys(e: etree._Element) -> None:
        key_info = e.find("ds:KeyInfo", X)
        for _ in range(xmlenc.MAX_ENCRYPTED_KEYS):
            key_info.append(copy.deepcopy(key_info[0]))  # type: ignore[union-attr]

    def two_methods(e: etree._Element) -> None:
        e.insert(0, copy.deepcopy(e[0]))

    changes: list[Callable[[etree._Element], object]] = [
        lambda e: e.set("Type", "http://www.w3.org/2001/04/xmlenc#Content"),
        lambda e: e.remove(e.find("ds:KeyInfo", X)),  # type: ignore[arg-type]
        lambda e: e.find("ds:KeyInfo", X).remove(e.find("ds:KeyInfo/xenc:EncryptedKey", X)),  # type: ignore[union-attr,arg-type]
        lambda e: setattr(_cipher_value(e), "text", "!!not base64!!"),
        lambda e: setattr(_cipher_value(e), "text", base64.b64encode(b"short").decode()),
        cipher_reference, nested_key, many_keys, two_methods,
    ]
    for change in changes:
        _refusal(lambda: decrypt(variant(change), [sts]))
    _refusal(lambda: decrypt(etree.fromstring(PLAINTEXT), [sts]))
    _refusal(lambda: xmlenc.encrypted_data_of(etree.fromstring(b"<t/>")))


def test_npm_xml_encryptions_sha256_dialect_is_read_as_it_writes_it(sts: SigningKey) -> None:
    """rsa-oaep-mgf1p with DigestMethod ``xmldsig#sha256``: OAEP with SHA-256 and MGF1-SHA-256 (Node's OAEP)."""
    key, iv = os.urandom(32), os.urandom(12)
    encrypted = encrypt(PLAINTEXT, sts.certificate)
    _cipher_value(encrypted).text = base64.b64encode(iv + AESGCM(key).encrypt(iv, PLAINTEXT, None)).decode()
    node_oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = sts.certificate.public_key().encrypt(key, node_oaep)  # type: ignore[union-attr]
    npm = _with_key_transport(encrypted, ns.ALG_RSA_OAEP_MGF1P, wrapped)
    method = npm.find("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod", X)
    assert method is not None
    etree.SubElement(method, f"{{{ns.DS}}}DigestMethod", Algorithm=ns.ALG_SHA256_XMLENC_NPM)
    assert decrypt(npm, [sts]).plaintext == PLAINTEXT
    method.set("Algorithm", ns.ALG_RSA_OAEP)  # the URI means something only where the package writes it
    _refusal(lambda: decrypt(npm, [sts]))
