"""The fast paths keep every rule: the signer's skeletons, the verified-token cache, the password cache."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree

from _forge import content, soap_request
from _support import EMAIL, ISSUER, SERVICE_URL, FixedClock
from _support.signing_oracles import sign_with_signxml, sign_with_tree, signed_info_tree
from wstrust_wsgi import MemoryUserStore, RelyingPartyMiddleware, User, ns, saml
from wstrust_wsgi.saml import verify as saml_verify
from wstrust_wsgi.saml.build import _SKELETONS
from wstrust_wsgi.xmldsig import _template, for_setting
from wstrust_wsgi.errors import ConfigurationError, FailedCheck, InvalidSecurityToken
from wstrust_wsgi.stores import Principal
from wstrust_wsgi.stores.cache import CachedUserStore
from wstrust_wsgi.stores.memory import MemoryReplayCache, hash_password
from wstrust_wsgi.wssecurity import UsernameToken
from demo_service.app import echo


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


# ----------------------------------------------------------------------------- signing


CONTENTS = [
    {},
    {"attributes": {}},
    {"attributes": {EMAIL: ["a@example.org", "b@example.org"], ns.CLAIM_ROLE: ["admin", "x"], "plain": ["v"]}},
    {"attributes": {EMAIL: [], ns.CLAIM_ROLE: ["admin"]}},
    {"subject": "a & <b> \"c\" 'd' \u00e9\u4e2d", "audience": "urn:x:y?a=1&b=2", "issuer": "https://i.example/ x"},
    {"name_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "assertion_id": "_custom.id-1"},
    {"actors": ("bob",), "attributes": {ns.CLAIM_ACTOR: ["bob"]}},  # ActAs: SAML 2.0 DelegationRestriction
]


@pytest.mark.parametrize("overrides", CONTENTS)
@pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["2.0", "1.1"])
def test_skeleton_builds_what_the_builder_builds(version: saml.SamlVersion, overrides: dict[str, Any]) -> None:
    what = content(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc), **overrides)
    built = (saml.build_saml2 if version is saml.SAML2 else saml.build_saml11)(what)
    built.remove(built.find(f"{{{ns.DS}}}Signature"))
    assert c14n(_SKELETONS[version.name].build(what)) == c14n(built)


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-sha1"])
@pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["2.0", "1.1"])
def test_signer_makes_signxmls_signature_byte_for_byte(sts_keys: Any, version: saml.SamlVersion, algorithm: str) -> None:
    """PKCS#1 v1.5 is deterministic: the same assertion signed three ways is the same canonical document."""
    key = sts_keys.load()
    signer = saml.AssertionSigner(key)
    what = content(datetime.now(timezone.utc), attributes={ns.CLAIM_ROLE: ["admin"]})
    ours = signer.sign(version, what, algorithm=algorithm)
    reference = sign_with_signxml(key, version, what, algorithm=algorithm)
    assert c14n(etree.fromstring(ours)) == c14n(etree.fromstring(reference))
    assert c14n(etree.fromstring(sign_with_tree(key, version, what, algorithm=algorithm))) == c14n(etree.fromstring(ours))


def test_signer_rejects_what_the_builder_rejects(sts_keys: Any) -> None:
    signer = saml.AssertionSigner(sts_keys.load())
    with pytest.raises(ValueError):
        signer.sign(saml.SAML2, content(datetime.now(timezone.utc), subject="bad\x00char"))
    with pytest.raises(ValueError):  # naive times are refused, as by the builders
        signer.sign(saml.SAML2, content(datetime(2026, 1, 1)))


# ----------------------------------------------------------------------------- verified-token cache


class Counting:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = saml_verify._verify_signature_and_cert

        def counted(*args: Any) -> Any:
            self.calls += 1
            return original(*args)
        monkeypatch.setattr(saml_verify, "_verify_signature_and_cert", counted)


@pytest.fixture
def token(sts_keys: Any, clock: FixedClock) -> bytes:
    return saml.AssertionSigner(sts_keys.load()).sign(saml.SAML2, content(clock.now))


def element(data: bytes) -> etree._Element:
    return etree.fromstring(b"<w>" + data + b"</w>")[0]


def test_reused_token_is_verified_once(sts_keys: Any, clock: FixedClock, token: bytes,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(monkeypatch)
    policy = saml.policy(trusted_certs=[sts_keys.load().certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    cache = saml.VerificationCache()
    first = saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    again = saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    assert again is first and counting.calls == 1 and len(cache) == 1
    other_policy = saml.policy(trusted_certs=policy.trusted_certs, issuers=[ISSUER], audiences=[SERVICE_URL])
    saml.verify_assertion(element(token), other_policy, now=clock.now, cache=cache)
    assert counting.calls == 2  # another policy never reads this policy's entries


def test_cache_hit_rechecks_the_time_window(sts_keys: Any, clock: FixedClock, token: bytes) -> None:
    policy = saml.policy(trusted_certs=[sts_keys.load().certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    cache = saml.VerificationCache()
    saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    with pytest.raises(InvalidSecurityToken, match="expired"):
        saml.verify_assertion(element(token), policy, now=clock.now + timedelta(minutes=10, seconds=1), cache=cache)
    with pytest.raises(InvalidSecurityToken, match="not valid before|IssueInstant"):
        saml.verify_assertion(element(token), policy, now=clock.now - timedelta(minutes=5, seconds=1), cache=cache)
    assert saml.verify_assertion(element(token), policy, now=clock.now + timedelta(minutes=9), cache=cache)


def test_cache_hit_rechecks_the_certificate(sts_keys: Any, clock: FixedClock, token: bytes,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(monkeypatch)
    policy = saml.policy(trusted_certs=[sts_keys.load().certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    cache = saml.VerificationCache()
    saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    later = sts_keys.load().certificate.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(FailedCheck, match="expired"):
        saml.verify_assertion(element(token), policy, now=later, cache=cache)
    assert counting.calls == 2  # verified again, and refused as a first verification is


def test_refused_and_tampered_tokens_never_enter(sts_keys: Any, clock: FixedClock, token: bytes) -> None:
    cert = sts_keys.load().certificate
    cache = saml.VerificationCache()
    wrong_audience = saml.policy(trusted_certs=[cert], issuers=[ISSUER], audiences=["urn:other"])
    with pytest.raises(InvalidSecurityToken):
        saml.verify_assertion(element(token), wrong_audience, now=clock.now, cache=cache)
    policy = saml.policy(trusted_certs=[cert], issuers=[ISSUER], audiences=[SERVICE_URL])
    saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    tampered = token.replace(b">admin<", b">root!<", 1)
    with pytest.raises(FailedCheck):
        saml.verify_assertion(element(tampered), policy, now=clock.now, cache=cache)
    assert len(cache) == 1


def test_verification_cache_is_bounded(sts_keys: Any, clock: FixedClock) -> None:
    key = sts_keys.load()
    policy = saml.policy(trusted_certs=[key.certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    cache = saml.VerificationCache(max_entries=3)
    for _ in range(7):
        token = saml.AssertionSigner(key).sign(saml.SAML2, content(clock.now))
        saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
        assert len(cache) <= 3


def test_verification_cache_evicts_by_the_callers_clock(sts_keys: Any, clock: FixedClock) -> None:
    """A full cache first drops entries expired at the request's ``now`` (the injected clock), not at wall time."""
    key = sts_keys.load()
    policy = saml.policy(trusted_certs=[key.certificate], issuers=[ISSUER], audiences=[SERVICE_URL])
    cache = saml.VerificationCache(max_entries=3)
    clock.now += timedelta(days=30)  # a month ahead: by wall time these tokens are all still live
    for _ in range(3):
        token = saml.AssertionSigner(key).sign(saml.SAML2, content(clock.now))
        saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    clock.now += timedelta(hours=1)  # by the clock, all three expired
    token = saml.AssertionSigner(key).sign(saml.SAML2, content(clock.now))
    saml.verify_assertion(element(token), policy, now=clock.now, cache=cache)
    assert len(cache) == 1


def test_middleware_still_consults_the_replay_cache(sts_keys: Any, clock: FixedClock, token: bytes) -> None:
    import webtest
    app = webtest.TestApp(RelyingPartyMiddleware(
        echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert], clock=clock,
        replay_cache=MemoryReplayCache()))
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    assert app.post("/", soap_request(token), headers=headers).status_int == 200
    refused = app.post("/", soap_request(token), headers=headers, expect_errors=True)
    assert refused.status_int == 500 and b"already been used" in refused.body


def test_middleware_cache_option_is_checked(sts_keys: Any) -> None:
    for bad in (-1, 1.5, "10"):
        with pytest.raises(ConfigurationError, match="verified_cache_size"):
            RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                   verified_cache_size=bad)  # type: ignore[arg-type]
    off = RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                 verified_cache_size=0)
    assert off._verified is None


# ----------------------------------------------------------------------------- password cache


class MutableStore:
    """A user store whose passwords and roles change under the cache; counts its KDF runs."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[bytes, bytes, frozenset[str]]] = {}
        self.kdf_runs = 0
        self._dummy = hash_password("dummy")

    def set(self, name: str, password: str, roles: tuple[str, ...] = ("admin",)) -> None:
        salt, digest = hash_password(password)
        self.users[name] = (salt, digest, frozenset(roles))

    def password_record(self, username: str) -> tuple[bytes, Principal] | None:
        user = self.users.get(username)
        return None if user is None else (user[0] + user[1], Principal(username, user[2]))

    def authenticate(self, token: UsernameToken) -> Principal | None:
        self.kdf_runs += 1
        user = self.users.get(token.username)
        salt, expected = (user[0], user[1]) if user else self._dummy
        ok = hmac.compare_digest(hash_password(token.password, salt)[1], expected)
        return Principal(token.username, user[2]) if user and ok else None


def text(username: str, password: str) -> UsernameToken:
    return UsernameToken(username=username, password=password, digest=False, nonce=None, created_text=None, created=None)


class Ticking:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_password_cache_skips_the_kdf_for_a_repeated_good_password() -> None:
    store, clock = MutableStore(), Ticking()
    store.set("admin", "s3cret")
    cached = CachedUserStore(store, clock=clock)
    assert cached.authenticate(text("admin", "s3cret")) == Principal("admin", frozenset({"admin"}))
    assert cached.authenticate(text("admin", "s3cret")) == Principal("admin", frozenset({"admin"}))
    assert store.kdf_runs == 1
    clock.now += 121  # past the two-minute ttl
    assert cached.authenticate(text("admin", "s3cret")) is not None and store.kdf_runs == 2


def test_wrong_password_and_unknown_user_never_cached() -> None:
    store = MutableStore()
    store.set("admin", "s3cret")
    cached = CachedUserStore(store, clock=Ticking())
    for _ in range(3):
        assert cached.authenticate(text("admin", "wrong")) is None
        assert cached.authenticate(text("nobody", "s3cret")) is None
    assert store.kdf_runs == 6 and len(cached) == 0


def test_password_change_takes_effect_at_once() -> None:
    store = MutableStore()
    store.set("admin", "old")
    cached = CachedUserStore(store, clock=Ticking())
    assert cached.authenticate(text("admin", "old")) is not None
    store.set("admin", "new")
    assert cached.authenticate(text("admin", "old")) is None
    assert cached.authenticate(text("admin", "new")) is not None


def test_role_change_takes_effect_at_once() -> None:
    store = MutableStore()
    store.set("admin", "pw", roles=("admin",))
    cached = CachedUserStore(store, clock=Ticking())
    assert cached.authenticate(text("admin", "pw")).roles == {"admin"}  # type: ignore[union-attr]
    salt, digest, _ = store.users["admin"]
    store.users["admin"] = (salt, digest, frozenset())  # role revoked, password unchanged
    runs = store.kdf_runs
    assert cached.authenticate(text("admin", "pw")).roles == frozenset()  # type: ignore[union-attr]
    assert store.kdf_runs == runs  # a cache hit, with the roles read now
    del store.users["admin"]  # user removed
    assert cached.authenticate(text("admin", "pw")) is None


def test_password_cache_is_bounded_and_holds_no_password() -> None:
    store = MutableStore()
    for i in range(10):
        store.set(f"u{i}", f"password-{i}")
    cached = CachedUserStore(store, max_entries=4, clock=Ticking())
    for i in range(10):
        assert cached.authenticate(text(f"u{i}", f"password-{i}")) is not None
        assert len(cached) <= 4
    for key, expiry in cached._entries.items():
        assert isinstance(key, bytes) and len(key) == 32 and isinstance(expiry, float)
        assert not any(f"password-{i}".encode() in key for i in range(10))


def test_digest_tokens_are_not_cached() -> None:
    store = MutableStore()
    store.set("admin", "pw")
    cached = CachedUserStore(store, clock=Ticking())
    digest = UsernameToken(username="admin", password="x", digest=True, nonce=b"n", created_text="t", created=None)
    cached.authenticate(digest)
    cached.authenticate(digest)
    assert store.kdf_runs == 2 and len(cached) == 0


def test_memory_store_is_cacheable_and_others_must_expose_their_verifier() -> None:
    cached = CachedUserStore(MemoryUserStore([User("admin", "pw", roles=["admin"])]))
    assert cached.authenticate(text("admin", "pw")) is not None
    assert cached.authenticate(text("admin", "pw")) is not None
    assert cached.authenticate(text("admin", "nope")) is None

    class Opaque:
        def authenticate(self, token: UsernameToken) -> Principal | None:
            return None
    with pytest.raises(ConfigurationError, match="password_record"):
        CachedUserStore(Opaque())
    with pytest.raises(ConfigurationError, match="ttl"):
        CachedUserStore(MutableStore(), ttl=timedelta(hours=1))


def test_sts_issues_with_the_cached_store(sts_keys: Any, clock: FixedClock) -> None:
    from wstrust_wsgi import RelyingParty, StsClient, TokenService, WSGITransport
    store = MutableStore()
    store.set("admin", "admin")
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=CachedUserStore(store),
                       relying_parties=[RelyingParty(SERVICE_URL)], clock=clock)
    client = StsClient("http://127.0.0.1/sts", username="admin", password="admin",
                       transport=WSGITransport(sts), clock=clock)
    assert client.request_token(SERVICE_URL).assertion
    assert client.request_token(SERVICE_URL).assertion
    assert store.kdf_runs == 1
    salt, digest, _ = store.users["admin"]
    store.users["admin"] = (salt, digest, frozenset({"everyone"}))  # admin role revoked
    from wstrust_wsgi.client import RemoteFault
    with pytest.raises(RemoteFault, match="not authorized|RequestFailed"):
        client.request_token(SERVICE_URL)


@pytest.mark.parametrize("assertion_id", ["_plain.ID-1", "_needs&escaping\"<here>"])
@pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["2.0", "1.1"])
def test_both_signing_paths_match_signxml(sts_keys: Any, version: saml.SamlVersion, assertion_id: str) -> None:
    """The fixed-bytes SignedInfo escapes any ID as c14n does: plain or not, it makes signxml's signature."""
    key = sts_keys.load()
    what = content(datetime.now(timezone.utc), assertion_id=assertion_id)
    ours = saml.AssertionSigner(key).sign(version, what)
    assert c14n(etree.fromstring(ours)) == c14n(etree.fromstring(sign_with_signxml(key, version, what)))
    assert c14n(etree.fromstring(ours)) == c14n(etree.fromstring(sign_with_tree(key, version, what)))


@pytest.mark.parametrize("reference_id", ["_probe.ID-1", "_needs&escaping\"<here>", "a\tb\nc\rd>e", "\u00e9\u4e2d"])
@pytest.mark.parametrize("algorithm", ["rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-sha1"])
def test_signed_info_template_is_libxml2s_canonical_form(algorithm: str, reference_id: str) -> None:
    """The template's bytes are what lxml's exclusive c14n writes for the same SignedInfo built as a tree."""
    method, digest = for_setting(algorithm)
    template = _template.SignedInfoBytes(method, digest, b"")
    rendered = template.render([_template.Reference("#" + reference_id, b"digest", True)])
    assert rendered == signed_info_tree(algorithm, "#" + reference_id, "ZGlnZXN0")
