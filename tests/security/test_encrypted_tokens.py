"""Attacks on encrypted tokens: one fault for every refusal, and the protected app never runs.

Following the published attacks on XML Encryption: bit flips in the content's
ciphertext, GCM tag and IV and in the wrapped key (Jager and Somorovsky, CCS
2011, need an answer that tells them apart); a wrong key and a token encrypted
for another certificate; AES-CBC and RSA PKCS#1 v1.5 under the default policy
(Bleichenbacher, ESORICS 2012; One Bad Apple, NDSS 2013); an EncryptedKey or a
RetrievalMethod reaching outside the token; a DTD, an entity, an oversized or
too deep document inside the plaintext; an encrypted unsigned assertion, one
signed by an untrusted key, one tampered with after signing; signature wrapping
inside the plaintext and around the EncryptedData. Each is refused with the one
``DecryptionFailed`` fault, and every refusal's answer is byte-identical; the
log alone says which.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import webtest
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from _forge import RecordingApp, read_fault
from _support.encrypted import encrypted_token, wrap
from wstrust_wsgi import RelyingPartyMiddleware, SigningKey, generate_demo_key_pair, ns
from wstrust_wsgi.errors import DecryptionFailed
from wstrust_wsgi.testing import TokenFactory, soap_request
from wstrust_wsgi.xmlenc import encrypt

X = {"xenc": ns.XENC, "ds": ns.DS, "saml2": ns.SAML2}
#: Large enough for the oversized plaintext to reach the decrypter, whose own cap refuses it.
MAX_BODY = 4 * 1024 * 1024


class Keys:
    def __init__(self, directory: Path) -> None:
        for stem in ("rp", "other"):
            generate_demo_key_pair(f"test {stem}", directory, stem)
        self.rp_files = directory / "rp.key", directory / "rp.crt"
        self.rp = SigningKey.from_files(*self.rp_files)
        self.other = SigningKey.from_files(directory / "other.key", directory / "other.crt")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("attack-keys"))


@pytest.fixture(scope="module")
def tokens() -> TokenFactory:
    return TokenFactory()


# --------------------------------------------------------------------------- forging


def _edit(token: bytes, change: Callable[[etree._Element], object]) -> bytes:
    root = etree.fromstring(token)
    change(root)
    return etree.tostring(root)


def _find(root: etree._Element, path: str) -> etree._Element:
    found = root.find(path, X)
    assert found is not None, path
    return found


def _flip(path: str, index: int) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        value = _find(root, path)
        data = bytearray(base64.b64decode(value.text or ""))
        data[index] ^= 0x01
        value.text = base64.b64encode(bytes(data)).decode()
    return change


CONTENT = ".//xenc:EncryptedData/xenc:CipherData/xenc:CipherValue"
WRAPPED = ".//xenc:EncryptedKey/xenc:CipherData/xenc:CipherValue"


def _rsa_1_5(plaintext: bytes, keys: Keys) -> bytes:
    """A well-formed token whose content key is wrapped with RSA PKCS#1 v1.5 for our certificate."""
    encrypted = encrypt(plaintext, keys.rp.certificate)
    content_key, iv = os.urandom(32), os.urandom(12)
    _find(encrypted, "xenc:CipherData/xenc:CipherValue").text = base64.b64encode(
        iv + AESGCM(content_key).encrypt(iv, plaintext, None)).decode()
    method = _find(encrypted, ".//xenc:EncryptedKey/xenc:EncryptionMethod")
    method.set("Algorithm", ns.ALG_RSA_1_5)
    for child in list(method):
        method.remove(child)
    _find(encrypted, WRAPPED).text = base64.b64encode(
        keys.rp.certificate.public_key().encrypt(content_key, padding.PKCS1v15())).decode()  # type: ignore[union-attr]
    return wrap(encrypted, "2.0")


def _key_retrieved(token: bytes, uri: str, *, outside: bool) -> bytes:
    """The EncryptedKey moved out of KeyInfo, reached by a RetrievalMethod; outside the token if ``outside``."""
    root = etree.fromstring(token)
    key_info = _find(root, ".//xenc:EncryptedData/ds:KeyInfo")
    key = key_info[0]
    key_info.remove(key)
    key.set("Id", "ek1")
    method = etree.SubElement(key_info, f"{{{ns.DS}}}RetrievalMethod", Type=ns.XENC_TYPE_ENCRYPTED_KEY, URI=uri)
    assert method is not None
    if outside:
        return etree.tostring(root) + etree.tostring(key)  # the key a sibling in wsse:Security
    root.append(key)
    return etree.tostring(root)


def _truncate(root: etree._Element) -> None:
    value = _find(root, CONTENT)
    value.text = base64.b64encode(base64.b64decode(value.text or "")[:20]).decode()


def _cipher_reference(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        value = _find(root, path)
        cipher_data = value.getparent()
        assert cipher_data is not None
        cipher_data.remove(value)
        etree.SubElement(cipher_data, f"{{{ns.XENC}}}CipherReference", URI="http://attacker.example/cipher")
    return change


def _name_rp(keys: Keys) -> Callable[[etree._Element], None]:
    """Make the EncryptedKey name our certificate, though its key was wrapped for another one."""
    def change(root: etree._Element) -> None:
        _find(root, ".//ds:X509IssuerName").text = keys.rp.certificate.issuer.rfc4514_string()
        _find(root, ".//ds:X509SerialNumber").text = str(keys.rp.certificate.serial_number)
    return change


def _wrapped_inside(tokens: TokenFactory) -> bytes:
    """XSW inside the plaintext: mallory's unsigned assertion holding the genuinely signed one."""
    genuine = etree.fromstring(tokens.mint("alice").assertion)
    evil = etree.fromstring(tokens.unsigned("mallory").assertion)
    evil.set("ID", genuine.get("ID", ""))
    evil.append(genuine)
    return etree.tostring(evil)


def _signature_transplanted(tokens: TokenFactory) -> bytes:
    """Mallory's assertion carrying the ID and the Signature of a genuine token."""
    genuine = etree.fromstring(tokens.mint("alice").assertion)
    evil = etree.fromstring(tokens.unsigned("mallory").assertion)
    evil.set("ID", genuine.get("ID", ""))
    signature = genuine.find(f"{{{ns.DS}}}Signature")
    assert signature is not None
    evil.insert(1, signature)
    return etree.tostring(evil)


def _two_encrypted_data(tokens: TokenFactory, keys: Keys) -> bytes:
    """Around the EncryptedData: the genuine one and mallory's in one EncryptedAssertion."""
    genuine = etree.fromstring(encrypted_token(tokens.mint("alice").assertion, keys.rp.certificate))
    genuine.append(encrypt(tokens.unsigned("mallory").assertion, keys.rp.certificate))
    return etree.tostring(genuine)


def _before_end_tag(signed: bytes, inserted: bytes) -> bytes:
    """``inserted`` as the signed assertion's last content (its signature no longer matters: size and depth
    are refused before it is checked)."""
    head, tail = signed.rsplit(b"</", 1)
    return head + inserted + b"</" + tail


def _deep(tokens: TokenFactory) -> bytes:
    return _before_end_tag(tokens.mint().assertion, b"<x>" * 300 + b"</x>" * 300)


def attacks(tokens: TokenFactory, keys: Keys) -> dict[str, Callable[[], bytes]]:
    """Name -> what to put in wsse:Security. Built lazily: each mints its own token."""
    good = lambda **kw: encrypted_token(tokens.mint(**kw).assertion, keys.rp.certificate)  # noqa: E731
    cert = keys.rp.certificate
    return {
        "ciphertext bit flip": lambda: _edit(good(), _flip(CONTENT, 40)),
        "GCM tag bit flip": lambda: _edit(good(), _flip(CONTENT, -1)),
        "GCM IV bit flip": lambda: _edit(good(), _flip(CONTENT, 0)),
        "wrapped key bit flip": lambda: _edit(good(), _flip(WRAPPED, 17)),
        "truncated ciphertext": lambda: _edit(good(), _truncate),
        "encrypted for another certificate": lambda: encrypted_token(tokens.mint().assertion, keys.other.certificate),
        "another key, naming ours": lambda: _edit(encrypted_token(tokens.mint().assertion, keys.other.certificate),
                                                  _name_rp(keys)),
        "saml2.0 AES-CBC by default": lambda: encrypted_token(tokens.mint().assertion, cert,
                                                              algorithm=ns.ALG_AES256_CBC),
        "saml1.1 AES-CBC by default": lambda: encrypted_token(tokens.mint(version="1.1").assertion, cert,
                                                              algorithm=ns.ALG_AES128_CBC),
        "RSA 1.5 key transport": lambda: _rsa_1_5(tokens.mint().assertion, keys),
        "unknown content algorithm": lambda: _edit(good(), lambda r: _find(
            r, ".//xenc:EncryptedData/xenc:EncryptionMethod").set("Algorithm", "urn:example:rot13")),
        "RetrievalMethod to a key outside the token": lambda: _key_retrieved(good(), "#ek1", outside=True),
        "RetrievalMethod to another document": lambda: _key_retrieved(good(), "http://attacker.example/k#ek1",
                                                                      outside=False),
        "EncryptedKey with a CipherReference": lambda: _edit(good(), _cipher_reference(WRAPPED)),
        "EncryptedData with a CipherReference": lambda: _edit(good(), _cipher_reference(CONTENT)),
        "DTD in the plaintext": lambda: encrypted_token_raw(
            b'<!DOCTYPE a [<!ELEMENT a ANY>]>' + tokens.mint().assertion, keys),
        "entity in the plaintext": lambda: encrypted_token_raw(
            b'<!DOCTYPE Assertion [<!ENTITY e "alice">]>' + tokens.mint().assertion.replace(b">alice<", b">&e;<", 1),
            keys),
        "oversized plaintext": lambda: encrypted_token_raw(
            _before_end_tag(tokens.mint().assertion, b"<!--" + b"x" * (1024 * 1024 + 10) + b"-->"), keys),
        "too deep plaintext": lambda: encrypted_token_raw(_deep(tokens), keys),
        "plaintext not XML": lambda: encrypted_token_raw(b"not xml at all", keys),
        "plaintext not an assertion": lambda: encrypted_token_raw(b"<x xmlns='urn:x'/>", keys),
        "encrypted unsigned assertion": lambda: encrypted_token(tokens.unsigned().assertion, cert),
        "encrypted assertion signed by an untrusted key": lambda: encrypted_token(tokens.untrusted().assertion, cert),
        "encrypted assertion tampered after signing": lambda: encrypted_token(tokens.tampered().assertion, cert),
        "signature wrapping inside the plaintext": lambda: encrypted_token_raw(_wrapped_inside(tokens), keys),
        "signature transplanted onto another assertion": lambda: encrypted_token_raw(
            _signature_transplanted(tokens), keys),
        "two EncryptedData around the genuine one": lambda: _two_encrypted_data(tokens, keys),
        "expired encrypted token": lambda: encrypted_token(tokens.expired().assertion, cert),
        "encrypted token for another audience": lambda: encrypted_token(tokens.wrong_audience().assertion, cert),
    }


def encrypted_token_raw(plaintext: bytes, keys: Keys) -> bytes:
    """Any bytes encrypted for our certificate, in an EncryptedAssertion."""
    return wrap(encrypt(plaintext, keys.rp.certificate), "2.0")


#: What the log says for each attack of :func:`attacks` (the client never sees it); SECRET where the cause
#: is which secret step failed (unwrap, tag, parse), which the log does not tell either.
SECRET = "decryption failed (content key, content or plaintext refused)"
REASONS = {
    'ciphertext bit flip': SECRET,
    'GCM tag bit flip': SECRET,
    'GCM IV bit flip': SECRET,
    'wrapped key bit flip': SECRET,
    'truncated ciphertext': 'CipherValue of 20 bytes cannot be',
    'encrypted for another certificate': SECRET,
    'another key, naming ours': SECRET,
    'saml2.0 AES-CBC by default': "content encryption 'http://www.w3.org/2001/04/xmlenc#aes256-cbc' is not allowed",
    'saml1.1 AES-CBC by default': "content encryption 'http://www.w3.org/2001/04/xmlenc#aes128-cbc' is not allowed",
    'RSA 1.5 key transport': "key transport 'http://www.w3.org/2001/04/xmlenc#rsa-1_5' is not allowed",
    'unknown content algorithm': "content encryption 'urn:example:rot13' is not allowed",
    'RetrievalMethod to a key outside the token': "RetrievalMethod URI '#ek1' names 0 elements in the token",
    'RetrievalMethod to another document': 'is not a same-document #id',
    'EncryptedKey with a CipherReference': 'EncryptedKey has no CipherData/CipherValue',
    'EncryptedData with a CipherReference': 'EncryptedData has no CipherData/CipherValue',
    'DTD in the plaintext': SECRET,
    'entity in the plaintext': SECRET,
    'oversized plaintext': 'exceeds the limit of 1048576',
    'too deep plaintext': SECRET,
    'plaintext not XML': SECRET,
    'plaintext not an assertion': 'is not a standalone SAML 1.1 or 2.0 assertion',
    'encrypted unsigned assertion': 'FailedCheck: Assertion is not signed',
    'encrypted assertion signed by an untrusted key': 'FailedCheck: signature did not verify with any trusted',
    'encrypted assertion tampered after signing': 'FailedCheck: signature refused: _Refused: digest mismatch',
    'signature wrapping inside the plaintext': 'FailedCheck: Assertion must carry exactly one signature',
    'signature transplanted onto another assertion': 'FailedCheck: signature refused: _Refused: digest mismatch',
    'two EncryptedData around the genuine one': 'EncryptedAssertion holds 2 EncryptedData elements',
    'expired encrypted token': 'InvalidSecurityToken: expired at',
    'encrypted token for another audience': "InvalidSecurityToken: audiences ['urn:wstrust-wsgi:testing:wrong",
}
ATTACK_NAMES = list(REASONS)


def guard(tokens: TokenFactory, keys: Keys, recorder: RecordingApp, **options: Any) -> webtest.TestApp:
    return webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience=tokens.audience, issuer=tokens.issuer, trusted_certs=tokens.trusted_certs,
        decryption_keys=[keys.rp_files], max_body=MAX_BODY, **options))


def post(app: webtest.TestApp, security: bytes) -> webtest.TestResponse:
    body, headers = soap_request(security, b"<Ping xmlns='urn:example'/>")
    return app.post("/soap", body, headers=headers, expect_errors=True)


# --------------------------------------------------------------------------- the tests


def test_the_attack_list_is_complete(tokens: TokenFactory, keys: Keys) -> None:
    assert list(attacks(tokens, keys)) == ATTACK_NAMES


def test_the_genuine_token_is_admitted(tokens: TokenFactory, keys: Keys) -> None:
    """The baseline every attack is a change of."""
    recorder = RecordingApp()
    assert post(guard(tokens, keys, recorder), encrypted_token(tokens.mint().assertion,
                                                               keys.rp.certificate)).status_int == 200
    assert recorder.calls[0]["REMOTE_USER"] == "alice"


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_each_attack_gets_the_one_fault_and_the_app_never_runs(name: str, tokens: TokenFactory, keys: Keys,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    recorder = RecordingApp()
    app = guard(tokens, keys, recorder)
    security = attacks(tokens, keys)[name]()
    with caplog.at_level(logging.WARNING, logger="wstrust_wsgi.middleware"):
        response = post(app, security)
    fault = read_fault(response.body)
    assert (response.status_int, fault.code, fault.reason) == (
        500, f"{{{ns.WSSE}}}FailedCheck", DecryptionFailed.default_reason)
    assert recorder.calls == []
    assert "refused: DecryptionFailed: encrypted token refused: " in caplog.text
    assert REASONS[name] in caplog.text  # refused for the reason the attack is about, said in the log only


def test_every_refusal_is_byte_identical_and_only_the_log_tells_them_apart(
        tokens: TokenFactory, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    recorder = RecordingApp()
    app = guard(tokens, keys, recorder)
    answers: dict[tuple[int, str, bytes], list[str]] = {}
    details = set()
    for name, make in attacks(tokens, keys).items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wstrust_wsgi.middleware"):
            response = post(app, make())
        answers.setdefault((response.status_int, response.headers["Content-Type"], response.body), []).append(name)
        [record] = [r for r in caplog.records if r.getMessage().startswith("refused:")]
        details.add(record.getMessage().split(" (client")[0])
    assert len(answers) == 1, answers.values()
    assert recorder.calls == []
    assert len(details) >= 10  # the precise reasons differ, in the server log only


def test_the_secret_failures_share_one_log_text(tokens: TokenFactory, keys: Keys,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Which secret step failed (unwrap, tag, padding, parse) is not even in the log."""
    app = guard(tokens, keys, RecordingApp())
    made = attacks(tokens, keys)
    lines = set()
    for name in (n for n, reason in REASONS.items() if reason == SECRET):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wstrust_wsgi.middleware"):
            post(app, made[name]())
        lines.add(caplog.records[-1].getMessage().split(" (client")[0])
    assert lines == {f"refused: DecryptionFailed: encrypted token refused: {SECRET}"}


def test_the_fast_path_and_the_full_path_answer_alike(tokens: TokenFactory, keys: Keys) -> None:
    """The cut-token path (first seen, then reused) reaches the full path's verdict, byte for byte."""
    cutting, scratch = RecordingApp(), RecordingApp()
    fast = guard(tokens, keys, cutting)
    full = guard(tokens, keys, scratch, verified_cache_size=0)
    full.app._cutting = False
    genuine = encrypted_token(tokens.mint().assertion, keys.rp.certificate)
    made = [genuine, genuine] + [make() for make in attacks(tokens, keys).values()]
    for security in made:
        one, other = post(fast, security), post(full, security)
        assert (one.status_int, one.body) == (other.status_int, other.body)
    assert len(cutting.calls) == len(scratch.calls) == 2
    assert len(fast.app._fast.seen) == 1  # the genuine token, cut and remembered
