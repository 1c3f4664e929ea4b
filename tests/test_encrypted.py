"""_encrypted.py: the middleware admits encrypted tokens, decrypted then verified as plain ones.

Tokens are minted by the testing kit (:class:`TokenFactory`, signed exactly as
the STS signs) and encrypted with :func:`wstrust_wsgi.xmlenc.encrypt` for the
middleware's certificate; SAML 2.0 as ``saml2:EncryptedAssertion``, SAML 1.1 as
a bare ``xenc:EncryptedData``. Posted through WebTest to the real middleware
guarding a recording app. Also: the forms ``decryption_keys`` takes, the CBC
opt-in bound to one peer's key and issuer, ``require_encryption``, and reuse
(decryption runs once per distinct token).
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
from lxml import etree

from _forge import RecordingApp, read_fault
from _support.deployment import Gunicorn
from _support.net import free_port, wait_listening
from _support.encrypted import encrypted_token
from wstrust_wsgi import (ConfigurationError, LegacyCbcKey, RelyingPartyMiddleware, SigningKey,
                          generate_demo_key_pair, ns)
from wstrust_wsgi.errors import DecryptionFailed, SecurityWarning
from wstrust_wsgi.testing import SettableClock, TokenFactory, soap_request
from wstrust_wsgi.xmlenc import Decrypter

PEER = "http://adfs.example/adfs/services/trust"  # the one peer allowed to send AES-CBC
VERSIONS = pytest.mark.parametrize("version", ["2.0", "1.1"], ids=["saml2.0", "saml1.1"])
PAYLOAD = b"<Ping xmlns='urn:example'/>"


def wsse(local: str) -> str:
    return f"{{{ns.WSSE}}}{local}"


class Keys:
    """Key pairs on disk: rp (the service's GCM key), rp2 (rollover), peer (CBC for PEER), other (not ours)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        for stem in ("rp", "rp2", "peer", "other"):
            generate_demo_key_pair(f"test {stem}", directory, stem)
        self.rp, self.rp2, self.peer, self.other = (self.pair(s) for s in ("rp", "rp2", "peer", "other"))

    def files(self, stem: str) -> tuple[Path, Path]:
        return self.dir / f"{stem}.key", self.dir / f"{stem}.crt"

    def pair(self, stem: str) -> SigningKey:
        return SigningKey.from_files(*self.files(stem))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("decryption-keys"))


@pytest.fixture(scope="module")
def tokens() -> TokenFactory:
    return TokenFactory()


def guard(tokens: TokenFactory, recorder: RecordingApp, **options: Any) -> webtest.TestApp:
    options.setdefault("issuer", [tokens.issuer, PEER])
    return webtest.TestApp(RelyingPartyMiddleware(recorder, audience=tokens.audience,
                                                  trusted_certs=tokens.trusted_certs, **options))


def legacy(keys: Keys) -> LegacyCbcKey:
    return LegacyCbcKey(keys.files("peer"), issuer=PEER)


def cbc_guard(tokens: TokenFactory, recorder: RecordingApp, keys: Keys, **options: Any) -> webtest.TestApp:
    with pytest.warns(SecurityWarning, match="allow_cbc"):
        return guard(tokens, recorder, decryption_keys=[keys.files("rp"), legacy(keys)], **options)


def post(app: webtest.TestApp, token: bytes) -> webtest.TestResponse:
    body, headers = soap_request(token, PAYLOAD)
    assert token in body  # spliced unchanged
    return app.post("/soap", body, headers=headers, expect_errors=True)


def assert_refused_as_decryption_failed(response: webtest.TestResponse, recorder: RecordingApp) -> None:
    fault = read_fault(response.body)
    assert (response.status_int, fault.code, fault.reason) == (500, wsse("FailedCheck"),
                                                               DecryptionFailed.default_reason)
    assert recorder.calls == []


# --------------------------------------------------------------------------- round trips


@VERSIONS
@pytest.mark.parametrize("algorithm", [ns.ALG_AES128_GCM, ns.ALG_AES256_GCM], ids=["aes128-gcm", "aes256-gcm"])
def test_an_encrypted_token_is_admitted_as_the_signed_assertion_it_holds(
        version: str, algorithm: str, keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp")])
    token = tokens.mint("alice", roles=["admin"], version=version)
    response = post(app, encrypted_token(token.assertion, keys.rp.certificate, algorithm=algorithm))
    assert response.status_int == 200, response.body
    [call] = recorder.calls
    verified = call["assertion"]
    assert (call["REMOTE_USER"], verified.version, verified.roles, verified.encrypted) == ("alice", version,
                                                                                          ("admin",), True)
    assert verified.raw == token.assertion  # the decrypted, signed assertion, byte for byte
    assert verified.assertion_id == token.assertion_id


def test_a_plain_token_is_still_admitted_and_says_so(keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp")])
    assert post(app, tokens.mint().assertion).status_int == 200
    assert recorder.calls[0]["assertion"].encrypted is False


def test_rollover_every_configured_key_decrypts(keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp"), keys.files("rp2")])
    for pair in (keys.rp, keys.rp2):
        assert post(app, encrypted_token(tokens.mint().assertion, pair.certificate)).status_int == 200
    assert len(recorder.calls) == 2


def test_the_forms_decryption_keys_takes(keys: Keys, tokens: TokenFactory) -> None:
    key_file, cert_file = keys.files("rp")
    combined = key_file.read_bytes() + cert_file.read_bytes()
    (keys.dir / "rp-combined.pem").write_bytes(combined)
    forms: list[object] = [
        (key_file, cert_file),                                # one pair, not two files
        [(str(key_file), str(cert_file))],
        [(key_file.read_bytes(), cert_file.read_bytes())],
        combined,                                             # one PEM holding both
        [keys.dir / "rp-combined.pem"],
        keys.rp,                                              # an object
        [keys.rp2, keys.rp],
    ]
    token = encrypted_token(tokens.mint().assertion, keys.rp.certificate)
    for form in forms:
        recorder = RecordingApp()
        assert post(guard(tokens, recorder, decryption_keys=form), token).status_int == 200, form
        assert recorder.calls[0]["assertion"].encrypted


@pytest.mark.parametrize(("value", "message"), [
    (42, "decryption_keys: give a list of keys, not int"),
    ([("missing.key", "missing.crt")], "decryption_keys[0]: key missing.key: cannot be read"),
    ([b"not a pem"], "decryption_keys[0]: PEM bytes (private key) is not a PEM private key"),
    ([object()], "decryption_keys[0]: give a (key, certificate) tuple"),
])
def test_unusable_keys_are_refused_at_construction_naming_the_argument(value: object, message: str,
                                                                       tokens: TokenFactory) -> None:
    with pytest.raises(ConfigurationError) as raised:
        guard(tokens, RecordingApp(), decryption_keys=value)
    assert str(raised.value).startswith(message)


def test_a_key_and_a_certificate_that_do_not_match_are_refused(keys: Keys, tokens: TokenFactory) -> None:
    with pytest.raises(ConfigurationError, match=r"decryption_keys\[0\]: certificate .*other.crt does not match"):
        guard(tokens, RecordingApp(), decryption_keys=[(keys.files("rp")[0], keys.files("other")[1])])


def test_configuration_mistakes_of_the_cbc_opt_in_and_of_require_encryption(keys: Keys, tokens: TokenFactory) -> None:
    with pytest.raises(ConfigurationError, match=r"decryption_keys\[0\]: LegacyCbcKey issuer 'urn:nobody' is not one"):
        guard(tokens, RecordingApp(), decryption_keys=[LegacyCbcKey(keys.files("peer"), issuer="urn:nobody")])
    with pytest.raises(ConfigurationError, match=r"decryption_keys\[1\]: this key is listed twice"):
        guard(tokens, RecordingApp(), decryption_keys=[keys.files("peer"), legacy(keys)])  # GCM and CBC: One Bad Apple
    with pytest.raises(ConfigurationError, match="require_encryption: needs decryption_keys"):
        guard(tokens, RecordingApp(), require_encryption=True)
    with pytest.raises(ConfigurationError, match="require_encryption: must be True or False"):
        guard(tokens, RecordingApp(), decryption_keys=[keys.files("rp")], require_encryption="yes")


# --------------------------------------------------------------------------- CBC: one named peer, its own key


@VERSIONS
def test_cbc_from_the_named_peer_with_its_key_is_admitted(version: str, keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    app = cbc_guard(tokens, recorder, keys)
    token = tokens.mint("bob", issuer=PEER, version=version)
    response = post(app, encrypted_token(token.assertion, keys.peer.certificate, algorithm=ns.ALG_AES256_CBC))
    assert response.status_int == 200, response.body
    assert (recorder.calls[0]["REMOTE_USER"], recorder.calls[0]["assertion"].issuer) == ("bob", PEER)
    gcm = encrypted_token(tokens.mint("bob", issuer=PEER, version=version).assertion, keys.peer.certificate)
    assert post(app, gcm).status_int == 200  # the peer's key reads its GCM too (the same peer's traffic)


def test_the_same_cbc_token_is_refused_without_the_opt_in(keys: Keys, tokens: TokenFactory) -> None:
    token = encrypted_token(tokens.mint(issuer=PEER).assertion, keys.peer.certificate, algorithm=ns.ALG_AES256_CBC)
    recorder = RecordingApp()
    assert_refused_as_decryption_failed(post(guard(tokens, recorder, decryption_keys=[keys.files("peer")]), token),
                                        recorder)


@pytest.mark.parametrize("algorithm", [ns.ALG_AES256_CBC, ns.ALG_AES256_GCM], ids=["cbc", "gcm"])
def test_what_the_peers_key_decrypts_must_come_from_the_peer(algorithm: str, keys: Keys, tokens: TokenFactory) -> None:
    """Signed by a trusted key and issued by a trusted issuer, but not by the peer the CBC key is for."""
    recorder = RecordingApp()
    app = cbc_guard(tokens, recorder, keys)
    token = encrypted_token(tokens.mint().assertion, keys.peer.certificate, algorithm=algorithm)
    assert_refused_as_decryption_failed(post(app, token), recorder)


def test_cbc_for_a_key_that_is_not_the_peers_is_refused(keys: Keys, tokens: TokenFactory) -> None:
    """The GCM key never decrypts CBC, even from the named peer (One Bad Apple)."""
    recorder = RecordingApp()
    app = cbc_guard(tokens, recorder, keys)
    token = encrypted_token(tokens.mint(issuer=PEER).assertion, keys.rp.certificate, algorithm=ns.ALG_AES256_CBC)
    assert_refused_as_decryption_failed(post(app, token), recorder)
    gcm = encrypted_token(tokens.mint(issuer=PEER).assertion, keys.rp.certificate)
    assert post(app, gcm).status_int == 200  # GCM from the peer, for the GCM key: fine


# --------------------------------------------------------------------------- plaintext, no keys, two tokens


def test_require_encryption_refuses_a_plaintext_token(keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp")], require_encryption=True)
    for _ in range(2):  # the second time too: no fast path admits it
        fault = read_fault(post(app, tokens.mint().assertion).body)
        assert (fault.code, fault.reason) == (wsse("InvalidSecurityToken"),
                                              "This service accepts encrypted security tokens only.")
    assert recorder.calls == []
    assert post(app, encrypted_token(tokens.mint().assertion, keys.rp.certificate)).status_int == 200


def test_an_encrypted_token_without_decryption_keys_is_refused_plainly(keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    fault = read_fault(post(guard(tokens, recorder), encrypted_token(tokens.mint().assertion,
                                                                     keys.rp.certificate)).body)
    assert (fault.code, fault.reason) == (wsse("InvalidSecurityToken"),
                                          "This service does not accept encrypted security tokens.")
    assert recorder.calls == []


def test_a_plain_and_an_encrypted_token_together_are_two_tokens(keys: Keys, tokens: TokenFactory) -> None:
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp")])
    plain = tokens.mint().assertion
    assert post(app, plain).status_int == 200  # remembered by the fast path
    both = plain + encrypted_token(tokens.mint("mallory").assertion, keys.rp.certificate)
    for _ in range(2):
        fault = read_fault(post(app, both).body)
        assert fault.code == wsse("InvalidSecurity")
    assert len(recorder.calls) == 1


# --------------------------------------------------------------------------- reuse


@pytest.fixture
def decryptions(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every decryption the middleware runs, by the CipherValue it was given."""
    seen: list[bytes] = []
    original = Decrypter.decrypt

    def counting(self: Decrypter, encrypted_data: etree._Element, **kwargs: Any) -> Any:
        seen.append(etree.tostring(encrypted_data))
        return original(self, encrypted_data, **kwargs)

    monkeypatch.setattr(Decrypter, "decrypt", counting)
    return seen


@VERSIONS
def test_a_reused_encrypted_token_is_decrypted_once(version: str, decryptions: list[bytes], keys: Keys,
                                                    tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp")])
    middleware = app.app
    full: list[int] = []
    original = middleware._verify
    monkeypatch.setattr(middleware, "_verify", lambda *a: full.append(1) or original(*a))
    token = encrypted_token(tokens.mint(version=version).assertion, keys.rp.certificate)
    for _ in range(3):
        assert post(app, token).status_int == 200
    assert len(decryptions) == 1
    assert full == [] and len(middleware._fast.seen) == 1  # cut out, then recognised by its bytes
    assert all(call["assertion"].encrypted for call in recorder.calls) and len(recorder.calls) == 3
    # one bit changed in the content's ciphertext: a distinct token, decrypted, and refused
    value = etree.fromstring(token).find(f".//{{{ns.XENC}}}CipherData/{{{ns.XENC}}}CipherValue[last()]")
    assert value is not None
    data = bytearray(base64.b64decode(value.text or ""))
    data[20] ^= 0x01
    flipped = token.replace((value.text or "").encode(), base64.b64encode(bytes(data)))
    assert flipped != token
    assert_refused_as_decryption_failed(post(app, flipped), RecordingApp())
    assert len(decryptions) == 2 and len(recorder.calls) == 3


def test_the_full_path_also_decrypts_a_reused_token_once(decryptions: list[bytes], keys: Keys,
                                                         tokens: TokenFactory) -> None:
    """A token the fast path does not cut (a default namespace declared inside it only) is still cached."""
    app = guard(tokens, RecordingApp(), decryption_keys=[keys.files("rp")])
    token = encrypted_token(tokens.mint().assertion, keys.rp.certificate)
    token = token.replace(b"<ds:X509Data>", b'<X509Data xmlns="http://www.w3.org/2000/09/xmldsig#">', 1)
    token = token.replace(b"</ds:X509Data>", b"</X509Data>", 1)
    for _ in range(2):
        assert post(app, token).status_int == 200
    assert len(decryptions) == 1 and len(app.app._fast.seen) == 0


def test_without_the_cache_every_request_decrypts(decryptions: list[bytes], keys: Keys, tokens: TokenFactory) -> None:
    app = guard(tokens, RecordingApp(), decryption_keys=[keys.files("rp")], verified_cache_size=0)
    token = encrypted_token(tokens.mint().assertion, keys.rp.certificate)
    for _ in range(2):
        assert post(app, token).status_int == 200
    assert len(decryptions) == 2


def test_a_cached_token_that_expired_is_refused_with_the_same_fault(keys: Keys) -> None:
    clock = SettableClock()
    tokens = TokenFactory(clock=clock)
    recorder = RecordingApp()
    app = guard(tokens, recorder, decryption_keys=[keys.files("rp")], clock=clock)
    token = encrypted_token(tokens.mint().assertion, keys.rp.certificate)
    assert post(app, token).status_int == 200
    clock.advance(timedelta(hours=1))
    recorder.calls.clear()
    assert_refused_as_decryption_failed(post(app, token), recorder)


def test_no_warning_without_the_cbc_opt_in(keys: Keys, tokens: TokenFactory) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guard(tokens, RecordingApp(), decryption_keys=[keys.files("rp"), keys.files("rp2")])


# --------------------------------------------------------------------------- under real gunicorn


def test_encrypted_tokens_under_real_gunicorn(tmp_path: Path) -> None:
    """The middleware in a gunicorn worker: GCM tokens (SAML 2.0 and 1.1) for its key admitted, the named
    peer's CBC token for the peer's key admitted, and the same CBC bytes refused for the GCM key and from
    another issuer, with the one fault."""
    keydir = tmp_path / "keys"
    keydir.mkdir()
    for stem in ("sts", "rp", "peer"):
        generate_demo_key_pair(f"test {stem}", keydir, stem)
    tokens = TokenFactory(signing_key=SigningKey.from_files(keydir / "sts.key", keydir / "sts.crt"))
    rp, peer = (SigningKey.from_files(keydir / f"{s}.key", keydir / f"{s}.crt").certificate for s in ("rp", "peer"))
    port = free_port()
    app = f'_support.encrypted:gunicorn_app("{keydir}", "{tokens.issuer}", "{tokens.audience}", "{PEER}")'
    server = Gunicorn(app, port=port, cwd=tmp_path, log=tmp_path / "gunicorn.log",
                      args=("--pythonpath", str(Path(__file__).resolve().parent)))
    try:
        wait_listening(port, server.process, server.log)

        def call(token: bytes) -> tuple[int, bytes]:
            body, headers = soap_request(token, PAYLOAD)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/soap", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status, answer.read()
            except urllib.error.HTTPError as refused:
                return refused.code, refused.read()

        for version in ("2.0", "1.1"):
            status, answer = call(encrypted_token(tokens.mint("carol", version=version).assertion, rp))
            assert status == 200 and b"carol" in answer, answer
        cbc = tokens.mint("dave", issuer=PEER).assertion
        status, answer = call(encrypted_token(cbc, peer, algorithm=ns.ALG_AES256_CBC))
        assert status == 200 and b"dave" in answer, answer
        refusals = {call(encrypted_token(cbc, rp, algorithm=ns.ALG_AES256_CBC)),  # CBC for the GCM key
                    call(encrypted_token(tokens.mint("dave").assertion, peer, algorithm=ns.ALG_AES256_CBC))}
        assert len(refusals) == 1  # byte-identical
        [(status, answer)] = refusals
        fault = read_fault(answer)
        assert (status, fault.reason) == (500, DecryptionFailed.default_reason)
    finally:
        server.stop()
    log = server.text()
    assert log.count("admitted: ") == 3 and "with SAML 1.1 token" in log
    assert "which admits that issuer's tokens only" in log  # the precise reason, in the server log only
