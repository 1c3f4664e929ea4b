"""Validate, Renew and Cancel in-process: round trips in every WS-Trust and SOAP version, and the attacks refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import webtest
from lxml import etree

from _support.remote import refused
from _support import EMAIL, ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles, vector
from demo_service.app import echo
from wstrust_wsgi import (
    MemoryUserStore,
    RelyingParty,
    RelyingPartyMiddleware,
    StsClient,
    TokenService,
    User,
    WSGITransport,
    call_service,
    ns,
)
from wstrust_wsgi.client import IssuedToken
from wstrust_wsgi.errors import ConfigurationError
from wstrust_wsgi.saml import SAML2, AssertionContent, AssertionSigner
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.tokens import CANCELLED, RENEWED, IssuedTokenStore, MemoryTokenStore, RedisTokenStore, RegistryTokenStore
from wstrust_wsgi.sts.lifecycle import TokenPolicy
from wstrust_wsgi.wstrust.lifecycle import read_cancelled, read_status

if TYPE_CHECKING:
    from _support.redis_server import RedisServer

ROLE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
HELLO = b'<Hello xmlns="urn:example"/>'
USERS = [User("admin", "admin", roles=["admin"], claims={EMAIL: ["admin@example.org"]}),
         User("bob", "bob", roles=["admin"]),
         User("carol", "carol", roles=["admin", "tokenadmin"])]
VERSIONS = [("1.3", "1.2"), ("1.3", "1.1"), ("2005", "1.2"), ("2005", "1.1")]


def sts(keys: KeyFiles, clock: FixedClock, store: IssuedTokenStore | None, users: Any = None,
        **options: Any) -> TokenService:
    return TokenService(issuer=ISSUER, signing_key=keys.load(), users=users or MemoryUserStore(USERS),
                        relying_parties=[RelyingParty(SERVICE_URL)], clock=clock, issued_tokens=store, **options)


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def app(sts_keys: KeyFiles, clock: FixedClock, store: MemoryTokenStore) -> TokenService:
    return sts(sts_keys, clock, store, token_policy=TokenPolicy(administrators="tokenadmin"))


@pytest.fixture
def client(app: TokenService, clock: FixedClock) -> Callable[..., StsClient]:
    def make(username: str = "admin", trust: str = "1.3", soap: str = "1.2") -> StsClient:
        return StsClient(STS_URL, username=username, password=username, trust_version=trust, soap_version=soap,
                         transport=WSGITransport(app), clock=clock)
    return make


def service(keys: KeyFiles, clock: FixedClock, revocations: IssuedTokenStore | None) -> RelyingPartyMiddleware:
    return RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[keys.cert], clock=clock,
                                  revocation_store=revocations)


def claims(token: IssuedToken) -> etree._Element:
    return etree.fromstring(token.assertion)


# ---------------------------------------------------------------------- round trips


@pytest.mark.parametrize("trust, soap", VERSIONS)
def test_validate_renew_cancel_round_trip(client, sts_keys, clock, store, trust, soap):  # type: ignore[no-untyped-def]
    admin = client(trust=trust, soap=soap)
    protected = service(sts_keys, clock, store)
    token = admin.request_token(SERVICE_URL)
    status = admin.validate(token)
    assert status.valid and status.code.endswith("/status/valid") and status.reason == "The token is valid."

    clock.advance(minutes=2)
    renewed = admin.renew(token)
    assert renewed.assertion_id != token.assertion_id and renewed.applies_to == SERVICE_URL
    assert renewed.expires == clock() + timedelta(minutes=5) and renewed.expires > token.expires
    assert claims(renewed).findtext(f".//{{{ns.SAML2}}}NameID") == "admin"
    assert claims(renewed).findtext(f".//{{{ns.SAML2}}}Audience") == SERVICE_URL
    assert store.get(token.assertion_id, clock()).state == RENEWED  # type: ignore[union-attr]
    old = admin.validate(token)
    assert not old.valid and old.code.endswith("/status/invalid") and "renewed" in old.reason
    assert call_service(SERVICE_URL, renewed, HELLO, transport=WSGITransport(protected)) is not None
    refused("InvalidSecurityToken", lambda: call_service(SERVICE_URL, token, HELLO, transport=WSGITransport(protected)))

    admin.cancel(renewed)
    assert store.get(renewed.assertion_id, clock()).state == CANCELLED  # type: ignore[union-attr]
    assert not admin.validate(renewed).valid
    fault = refused("InvalidSecurityToken",
                    lambda: call_service(SERVICE_URL, renewed, HELLO, transport=WSGITransport(protected)))
    assert fault.reason == "The security token has been cancelled."
    admin.cancel(renewed)  # again: still cancelled
    # a relying party consulting no store admits the cancelled bearer token until it expires (documented)
    assert call_service(SERVICE_URL, renewed, HELLO, transport=WSGITransport(service(sts_keys, clock, None))) is not None


def test_saml11_tokens_renew_as_saml11(client, clock):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL, token_type="1.1")
    renewed = admin.renew(token)
    assert claims(renewed).tag == f"{{{ns.SAML1}}}Assertion" and admin.validate(renewed).valid


def test_the_wsdl_advertises_the_bindings_with_their_actions(app, sts_keys, clock):  # type: ignore[no-untyped-def]
    wsdl = etree.fromstring(webtest.TestApp(app).get("/services/sts?wsdl").body)
    operations = {op.get("name") for op in wsdl.iter(f"{{{ns.WSDL}}}operation") if op.getparent().tag.endswith("portType")}
    assert operations == {"Issue", "Validate", "Renew", "Cancel"}
    actions = {io.get(f"{{{ns.WSAM}}}Action") for io in wsdl.iter(f"{{{ns.WSDL}}}input", f"{{{ns.WSDL}}}output")}
    assert {f"{ns.WST13}/RST/Renew", f"{ns.WST13}/RSTR/RenewFinal", f"{ns.WST2005}/RST/Cancel",
            f"{ns.WST2005}/RSTR/Cancel", f"{ns.WST13}/RSTR/ValidateFinal"} <= actions
    plain = etree.fromstring(webtest.TestApp(sts(sts_keys, clock, None)).get("/services/sts?wsdl").body)
    assert {op.get("name") for op in plain.iter(f"{{{ns.WSDL}}}operation")} == {"Issue"}


def test_a_revoked_role_is_not_renewed_and_claims_are_the_registrys_now(sts_keys, clock, tmp_path):  # type: ignore[no-untyped-def]
    with Registry.open(f"sqlite://{tmp_path}/registry.db") as registry:
        registry.init_schema(issuer=ISSUER)
        registry.add_role("finance")
        registry.add_user("dave", "dave", roles=["admin", "finance"])
        registry.set_claim("dave", EMAIL, ["dave@example.org"])
        app = sts(sts_keys, clock, RegistryTokenStore(registry), users=registry)
        dave = StsClient(STS_URL, username="dave", password="dave", transport=WSGITransport(app), clock=clock)
        token = dave.request_token(SERVICE_URL)
        roles = [v.text for v in claims(token).iter(f"{{{ns.SAML2}}}AttributeValue")]
        assert "finance" in roles
        registry.revoke_role("dave", "finance")
        registry.set_claim("dave", EMAIL, ["dave@new.example.org"])
        renewed = dave.renew(token)
        values = [v.text for v in claims(renewed).iter(f"{{{ns.SAML2}}}AttributeValue")]
        assert "finance" not in values and "admin" in values and "dave@new.example.org" in values


# ---------------------------------------------------------------------- Renewing flags and windows


def test_renewing_allow_false_at_issue_is_kept(client):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL, allow_renewal=False)
    fault = refused("UnableToRenew", lambda: admin.renew(token))
    assert fault.reason == "The token was issued as not renewable."


def test_an_expired_token_is_renewed_only_with_ok_and_within_the_window(client, clock):  # type: ignore[no-untyped-def]
    admin = client()
    plain = admin.request_token(SERVICE_URL)
    ok = admin.request_token(SERVICE_URL, renew_after_expiry=True)
    late = admin.request_token(SERVICE_URL, renew_after_expiry=True)
    later = admin.request_token(SERVICE_URL, renew_after_expiry=True)
    clock.advance(minutes=11)  # past NotOnOrAfter (5 minutes) and the clock skew (5 minutes)
    assert not admin.validate(ok).valid
    fault = refused("UnableToRenew", lambda: admin.renew(plain))
    assert "expired" in fault.reason
    renewed = admin.renew(ok)
    assert renewed.expires == clock() + timedelta(minutes=5) and admin.validate(renewed).valid
    clock.advance(minutes=25)  # 36 minutes after issue: 31 after expiry, past the 30-minute window
    fault = refused("UnableToRenew", lambda: admin.renew(late))
    assert fault.reason == "The token expired too long ago to be renewed."
    clock.advance(minutes=5)  # the record is kept for the window and the clock skew, then forgotten
    fault = refused("UnableToRenew", lambda: admin.renew(later))
    assert fault.reason == "The token was not issued by this STS, or is no longer known."


def test_racing_renewals_give_one_token(client):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL)
    admin.renew(token)
    fault = refused("UnableToRenew", lambda: admin.renew(token))
    assert fault.reason == "The token has already been renewed."


# ---------------------------------------------------------------------- attacks


def rogue_token(keys: KeyFiles, clock: FixedClock, **changes: Any) -> bytes:
    content = AssertionContent(issuer=ISSUER, subject="admin", audience=SERVICE_URL, issue_instant=clock(),
                               not_before=clock(), not_on_or_after=clock() + timedelta(minutes=5),
                               **changes)
    return AssertionSigner(keys.load()).sign(SAML2, content)


def test_a_token_we_did_not_issue_is_not_renewed_validated_or_cancelled(client, sts_keys, rogue_keys, clock, store):  # type: ignore[no-untyped-def]
    admin = client()
    # signed by our key but never recorded (an STS without the store, same key)
    unrecorded = StsClient(STS_URL, username="admin", password="admin", clock=clock,
                           transport=WSGITransport(sts(sts_keys, clock, None))).request_token(SERVICE_URL)
    assert refused("UnableToRenew", lambda: admin.renew(unrecorded)).reason.startswith("The token was not issued")
    assert not admin.validate(unrecorded).valid
    refused("InvalidRequest", lambda: admin.cancel(unrecorded))
    # a recorded ID, signed by another key: the signature decides
    real = admin.request_token(SERVICE_URL)
    forged = rogue_token(rogue_keys, clock, assertion_id=real.assertion_id)
    refused("FailedCheck", lambda: admin.renew(forged))
    status = admin.validate(forged)
    assert not status.valid and status.reason == "The signature or decryption was invalid."
    refused("FailedCheck", lambda: admin.cancel(forged))
    assert store.get(real.assertion_id, clock()).state == "issued"  # type: ignore[union-attr]


def test_a_tampered_token_is_invalid(client):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL)
    tampered = token.assertion.replace(b">admin<", b">carol<")
    assert tampered != token.assertion
    assert not admin.validate(tampered).valid
    refused("FailedCheck", lambda: admin.renew(tampered))


def test_someone_elses_token_is_neither_renewed_nor_cancelled(client, clock, store):  # type: ignore[no-untyped-def]
    token = client("admin").request_token(SERVICE_URL)
    bob = client("bob")
    assert refused("RequestFailed", lambda: bob.renew(token)).reason == "The requester may not renew this token."
    assert refused("RequestFailed", lambda: bob.cancel(token)).reason == "The requester may not cancel this token."
    assert bob.validate(token).valid  # any authenticated requester may validate (configurable, below)
    client("carol").cancel(token)  # an administrator may
    assert store.get(token.assertion_id, clock()).state == CANCELLED  # type: ignore[union-attr]


def test_a_cancelled_token_is_not_renewed_and_validates_invalid(client):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL)
    admin.cancel(token)
    assert refused("UnableToRenew", lambda: admin.renew(token)).reason == "The token has been cancelled."
    status = admin.validate(token)
    assert not status.valid and status.reason == "The token has been cancelled."


def test_who_may_validate_is_configurable(sts_keys, clock, store):  # type: ignore[no-untyped-def]
    app = sts(sts_keys, clock, store, token_policy=TokenPolicy(validators=["tokenadmin"]))
    make = lambda name: StsClient(STS_URL, username=name, password=name, transport=WSGITransport(app), clock=clock)  # noqa: E731
    token = make("admin").request_token(SERVICE_URL)
    assert refused("RequestFailed", lambda: make("admin").validate(token)).reason == "The requester may not validate tokens."
    assert make("carol").validate(token).valid


def test_options_are_checked_at_construction(sts_keys, clock):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="token_policy: give issued_tokens"):
        sts(sts_keys, clock, None, token_policy=TokenPolicy())
    with pytest.raises(ConfigurationError, match="issued_tokens"):
        sts(sts_keys, clock, "memory:")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="renewal_window"):
        TokenPolicy(renewal_window="long")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="revocation_store"):
        RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                               revocation_store="redis://x")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- request shapes of other clients


def with_security(make: StsClient, rst: etree._Element, token: bytes | None) -> tuple[bytes, str]:
    """``rst`` as the body of an envelope with ``make``'s Security header; its target's token replaced by ``token``."""
    envelope = etree.fromstring(make.build_request(SERVICE_URL))
    body = envelope.find(f"{{{ns.SOAP12}}}Body")
    body.remove(body[0])
    body.append(rst)
    if token is not None:
        target = next(e for e in rst if e.tag.endswith("Target"))
        target.remove(target[0])
        target.append(etree.Comment("token"))
    data = etree.tostring(envelope)
    return (data.replace(b"<!--token-->", token) if token is not None else data), rst.findtext(f"{{{ns.WST13}}}RequestType")


def post(app: TokenService, data: bytes, request_type: str) -> webtest.TestResponse:
    action = request_type.replace("/200512/", "/200512/RST/")
    return webtest.TestApp(app).post("/services/sts", params=data, expect_errors=True,
                                     content_type=f'application/soap+xml; charset=utf-8; action="{action}"')


@pytest.mark.parametrize("name", ["validate", "renew", "cancel"])
def test_picketlink_requests_are_read(app, client, name):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL)
    shape = lambda: etree.fromstring(vector(f"breadth/picketlink_rst-{name}-saml2.xml").read_bytes())  # noqa: E731
    # as sent: its own token is a fixture (a typo'd SignatureMethod, an ID we never issued)
    response = post(app, *with_security(admin, shape(), None))
    if name == "validate":
        assert response.status_int == 200 and b"/status/invalid" in response.body
        assert b'Context="validatecontext"' in response.body
    else:
        assert response.status_int == 400 and (b"UnableToRenew" in response.body or b"InvalidRequest" in response.body)
    # the same shape carrying our token
    response = post(app, *with_security(admin, shape(), token.assertion))
    assert response.status_int == 200, response.body
    assert {"validate": b"/status/valid<", "renew": b"RequestedSecurityToken",
            "cancel": b"RequestedTokenCancelled"}[name] in response.body
    assert f'Context="{name}context"'.encode() in response.body


def test_a_token_named_by_reference_is_validated_and_cancelled_on_its_record(app, client, clock, store):  # type: ignore[no-untyped-def]
    admin = client()
    token = admin.request_token(SERVICE_URL)
    for rst_text in (
        f'<wst:RequestSecurityToken xmlns:wst="{ns.WST13}"><wst:RequestType>{ns.WST13}/Validate</wst:RequestType>'
        f'<wst:ValidateTarget><wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"><wsse:KeyIdentifier '
        f'ValueType="{ns.SAML20_KEYID_VALUE_TYPE}">{token.assertion_id}</wsse:KeyIdentifier>'
        '</wsse:SecurityTokenReference></wst:ValidateTarget></wst:RequestSecurityToken>',
        f'<wst:RequestSecurityToken xmlns:wst="{ns.WST13}"><wst:RequestType>{ns.WST13}/Cancel</wst:RequestType>'
        f'<wst:CancelTarget><wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"><wsse:Reference '
        f'URI="#{token.assertion_id}"/></wsse:SecurityTokenReference></wst:CancelTarget></wst:RequestSecurityToken>',
    ):
        response = post(app, *with_security(admin, etree.fromstring(rst_text), None))
        assert response.status_int == 200, response.body
    assert b"/status/valid<" not in response.body and b"RequestedTokenCancelled" in response.body
    assert store.get(token.assertion_id, clock()).state == CANCELLED  # type: ignore[union-attr]
    refused("UnableToRenew", lambda: admin.renew(token))


# ---------------------------------------------------------------------- the middleware's revocation store, shared


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[IssuedTokenStore, IssuedTokenStore]]:
    """Two handles on one store, as the STS and a relying party in other processes hold it."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.client().flushdb()
        yield RedisTokenStore(server.url), RedisTokenStore(server.url)
        return
    url = f"sqlite://{tmp_path}/registry.db"
    with Registry.open(url) as one:
        one.init_schema(issuer=ISSUER)
        with Registry.open(url) as other:
            yield RegistryTokenStore(one), RegistryTokenStore(other)


def test_the_middleware_refuses_a_token_cancelled_at_the_sts(shared, sts_keys, clock):  # type: ignore[no-untyped-def]
    at_sts, at_service = shared
    app = sts(sts_keys, clock, at_sts)
    admin = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(app), clock=clock)
    protected = WSGITransport(service(sts_keys, clock, at_service))
    token = admin.request_token(SERVICE_URL)
    assert call_service(SERVICE_URL, token, HELLO, transport=protected) is not None  # admitted, and remembered
    admin.cancel(token)
    fault = refused("InvalidSecurityToken", lambda: call_service(SERVICE_URL, token, HELLO, transport=protected))
    assert fault.reason == "The security token has been cancelled."


# ---------------------------------------------------------------------- health, and the answers other clients read


def test_health_asks_the_token_stores(sts_keys, clock):  # type: ignore[no-untyped-def]
    down = RedisTokenStore("redis://127.0.0.1:1/0", socket_timeout=0.5)
    health = webtest.TestApp(sts(sts_keys, clock, down)).get("/services/sts/health", expect_errors=True)
    assert health.status_int == 503 and health.json["checks"]["issued_tokens"] == "failed"
    assert "issued_tokens" not in webtest.TestApp(sts(sts_keys, clock, None)).get("/services/sts/health").json["checks"]
    protected = RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                       clock=clock, revocation_store=down, health_path="/health")
    health = webtest.TestApp(protected).get("/health", expect_errors=True)
    assert health.status_int == 503 and health.json["checks"]["revocation_store"] == "failed"


@pytest.mark.parametrize("trust, soap", VERSIONS)
def test_refusals_in_every_version(client, trust, soap):  # type: ignore[no-untyped-def]
    admin = client(trust=trust, soap=soap)
    token = admin.request_token(SERVICE_URL, allow_renewal=False)
    assert refused("UnableToRenew", lambda: admin.renew(token)).reason == "The token was issued as not renewable."
    assert refused("RequestFailed", lambda: client("bob", trust, soap).cancel(token)).status in (400, 500)
    admin.cancel(token)
    assert not admin.validate(token).valid


def test_the_picketlink_answers_read_as_ours():  # type: ignore[no-untyped-def]
    valid = read_status(etree.fromstring(vector("breadth/picketlink_rstr-validate-status-valid.xml").read_bytes()))
    invalid = read_status(etree.fromstring(vector("breadth/picketlink_rstr-validate-status-invalid.xml").read_bytes()))
    assert valid is not None and valid.valid and valid.reason == "SAMLV2.0 Assertion successfuly validated"
    assert invalid is not None and not invalid.valid
    assert invalid.reason == "Validation failure: digital signature is invalid"
    cancel = etree.fromstring(vector("breadth/picketlink_rstr-cancel-requestedtokencancelled.xml").read_bytes())
    assert read_cancelled(cancel) and not read_cancelled(etree.fromstring(b"<x/>"))


def test_a_holder_of_key_record_that_keeps_no_proof_is_not_renewed(client, sts_keys, clock, store):  # type: ignore[no-untyped-def]
    """A record written before schema version 8 keeps no proof key: its holder-of-key token cannot be renewed
    (tests/sts/test_renew_hok.py renews those that do)."""
    admin = client()
    token = admin.request_token(SERVICE_URL)
    record = store.get(token.assertion_id, clock())
    store.record(replace(record, key_type=f"{ns.WST13}/PublicKey"), keep_until=clock() + timedelta(hours=1),
                 now=clock())
    assert refused("UnableToRenew", lambda: admin.renew(token)).reason == (
        "The holder-of-key token's proof key is not available to this STS; request a new token.")


def test_encrypted_tokens_are_named_by_id_renewed_as_sent_and_a_renewed_token_is_encrypted_too(sts_keys, clock,  # type: ignore[no-untyped-def]
                                                                                                 store):
    """The STS cannot read a token it encrypted for a relying party: the client names it by its ID for Validate
    and Cancel (judged on the record) and sends it as received to renew it (found by its digest); and a token
    renewed for a party that has an encryption certificate now is encrypted like a first one (never in clear)."""
    from wstrust_wsgi import SigningKey, xmlenc

    rp_key = SigningKey.generate("relying party")
    sealed_party = RelyingParty(SERVICE_URL, certificate_pem=rp_key.certificate_pem)
    current = {"party": sealed_party}

    class Parties:
        def get(self, address: str) -> RelyingParty | None:
            return current["party"] if address == SERVICE_URL else None

    app = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=MemoryUserStore(USERS),
                       relying_parties=Parties(), clock=clock, issued_tokens=store)
    admin = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(app), clock=clock)
    token = admin.request_token(SERVICE_URL)
    assert token.encrypted and token.assertion_id
    assert admin.validate(token).valid
    again = admin.renew(token)
    assert again.encrypted and again.assertion_id != token.assertion_id
    assert store.get(token.assertion_id, clock()).state == RENEWED  # type: ignore[union-attr]
    assert admin.validate(again).valid and not admin.validate(token).valid
    admin.cancel(again)
    assert store.get(again.assertion_id, clock()).state == CANCELLED  # type: ignore[union-attr]
    assert not admin.validate(again).valid

    current["party"] = RelyingParty(SERVICE_URL)
    plain = admin.request_token(SERVICE_URL)
    assert not plain.encrypted
    current["party"] = sealed_party  # the operator ran `rp set --encrypt-cert` since
    renewed = admin.renew(plain)
    assert renewed.encrypted and b"admin" not in renewed.assertion
    opened = xmlenc.Decrypter([rp_key]).decrypt(xmlenc.encrypted_data_of(etree.fromstring(renewed.assertion)))
    assert opened.element.get("ID") == renewed.assertion_id


def test_validate_and_renew_follow_a_key_rollover(sts_keys, sts2_keys, clock, store):  # type: ignore[no-untyped-def]
    """A token signed by the key that was primary stays ours while that key is published (previous), and
    is no longer once it is retired: Validate asks the key set of the moment, not the key of start-up."""
    from wstrust_wsgi.keys import KeySet

    old, new = sts_keys.load(), sts2_keys.load()
    keys = {"now": KeySet(old, (old.certificate, new.certificate))}

    class Rolling:
        def signing_keys(self) -> KeySet:
            return keys["now"]

    app = TokenService(issuer=ISSUER, signing_key=Rolling(), users=MemoryUserStore(USERS),
                       relying_parties=[RelyingParty(SERVICE_URL)], clock=clock, issued_tokens=store, settings_ttl=0)
    admin = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(app), clock=clock)
    token = admin.request_token(SERVICE_URL)
    keys["now"] = KeySet(new, (new.certificate, old.certificate))  # promoted: the old key is previous
    assert admin.validate(token).valid
    renewed = admin.renew(token)
    keys["now"] = KeySet(new, (new.certificate,))  # the old key retired
    assert admin.validate(renewed).valid  # signed by the new key
    other = admin.request_token(SERVICE_URL)
    keys["now"] = KeySet(old, (old.certificate,))  # a set without the key that signed it
    assert not admin.validate(other).valid
