"""Renewing holder-of-key tokens in-process: the proof of possession the Renew needs, the key binding kept,
the renewed token proven to the middleware; the claims asked at issue kept; and the attacks refused."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from _support.remote import refused
from _support import EMAIL, ISSUER, OTHER_URL, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.hok import HokWorld, hok_world, rp_key_files
from wstrust_wsgi import (MemoryUserStore, RelyingParty, RelyingPartyMiddleware, SigningKey, StsClient, TokenService,
                          User, WSGITransport, call_service, ns, wssecurity, xmldsig)
from wstrust_wsgi.cli import ECHO_NS, echo_payload
from wstrust_wsgi.client import IssuedToken, raise_for_fault
from wstrust_wsgi.errors import RemoteFault
from wstrust_wsgi.keys import KeySet
from wstrust_wsgi.saml import SAML2
from wstrust_wsgi.stores.memory import MemoryReplayCache
from wstrust_wsgi.stores.tokens import ISSUED, RENEWED, MemoryTokenStore
from wstrust_wsgi.sts.possession import KEK_INFO, thumbprint

from demo_service.app import echo

ADDRESS = {"2.0": SERVICE_URL, "1.1": OTHER_URL}
DEPARTMENT = "http://example.org/claims/department"
NO_PROOF = "Renewing a holder-of-key token needs a signature made with its proof key over the body and timestamp."
NOT_KEPT = "The holder-of-key token's proof key is not available to this STS; request a new token."


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def world(sts_keys: KeyFiles, keydir: Any, users: MemoryUserStore, clock: FixedClock,
          store: MemoryTokenStore) -> HokWorld:
    return hok_world(sts_keys, rp_key_files(keydir), users, clock, confirmation="holder-of-key",
                     revocation_store=store, sts_options={"issued_tokens": store})


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate("test client")


def resent(app: Any, body: bytes) -> RemoteFault:
    """The fault the STS answers ``body`` (an envelope the test made or replays) with."""
    status, _, answer = WSGITransport(app)("http://sts", body, {"Content-Type": "application/soap+xml; charset=utf-8"})
    with pytest.raises(RemoteFault) as caught:
        raise_for_fault(etree.fromstring(answer), status)
    return caught.value


class Recording:
    """A transport to the STS that keeps what it sent and received."""

    def __init__(self, app: Any) -> None:
        self.inner = WSGITransport(app)
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        self.sent.append(body)
        status, content_type, answer = self.inner(url, body, headers)
        self.received.append(answer)
        return status, content_type, answer


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
@pytest.mark.parametrize(("trust", "soap"), [("1.3", "1.2"), ("2005", "1.1")])
def test_a_symmetric_token_is_renewed_with_its_key_and_the_renewed_token_proven(world, store, token_type, trust,  # type: ignore[no-untyped-def]
                                                                                 soap) -> None:
    recording = Recording(world.sts)
    client = world.client(trust_version=trust, soap_version=soap, transport=recording)
    token = client.request_token(ADDRESS[token_type], key_type="symmetric")
    renewed = client.renew(token)
    assert renewed.assertion_id != token.assertion_id and renewed.key_type == "symmetric"
    assert renewed.proof_key == token.proof_key  # the client keeps its key ...
    assert b"RequestedProofToken" not in recording.received[-1]  # ... and the STS does not send it again
    assert world.caller(renewed, ADDRESS[token_type]) == "admin"  # the renewed token names the same key
    assert store.get(token.assertion_id, world.sts._clock()).state == RENEWED
    assert refused("InvalidSecurityToken", lambda: world.caller(token, ADDRESS[token_type]))  # the old one retired
    record = store.get(renewed.assertion_id, world.sts._clock())
    assert record.proof and record.proof_wrapped_by == thumbprint(world.sts.keys.current().primary.certificate)
    assert base64.b64encode(token.proof_key) not in record.proof.encode()  # kept wrapped, never in clear
    assert client.renew(renewed).proof_key == token.proof_key  # and renewed again


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_a_public_key_token_is_renewed_with_a_signature_by_the_client_key(world, store, client_key,  # type: ignore[no-untyped-def]
                                                                          token_type) -> None:
    client = world.client()
    token = client.request_token(ADDRESS[token_type], key_type="public", client_key=client_key)
    renewed = client.renew(token)
    assert renewed.assertion_id != token.assertion_id and renewed.private_key is client_key.private_key
    assert world.caller(renewed, ADDRESS[token_type]) == "admin"
    carried = {base64.b64decode(c.text) for c in etree.fromstring(renewed.assertion).iter(f"{{{ns.DS}}}X509Certificate")}
    assert base64.b64decode(store.get(token.assertion_id, world.sts._clock()).proof) in carried  # the same key bound
    other = SigningKey.generate("another client")
    assert refused("UnableToRenew", lambda: client.renew(replace(renewed, private_key=other.private_key))
                   ).reason == NO_PROOF


def test_a_holder_of_key_renewal_without_a_proof_is_refused_and_the_token_stays(world, store) -> None:  # type: ignore[no-untyped-def]
    client = world.client()
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    assert refused("UnableToRenew", lambda: client.renew(token.assertion)).reason == NO_PROOF  # bytes: no key
    assert refused("UnableToRenew", lambda: client.renew(replace(token, proof_key=os.urandom(32)))
                   ).reason == NO_PROOF  # a proof by another key
    assert store.get(token.assertion_id, world.sts._clock()).state == ISSUED
    assert world.caller(token, SERVICE_URL) == "admin"


def test_a_proof_that_does_not_cover_the_body_is_refused(world, caplog) -> None:  # type: ignore[no-untyped-def]
    """The signature is made with the right key and names the token, but signs the Timestamp only: the
    RenewTarget (the Body) could be swapped under it."""
    recording = Recording(world.sts)
    client = world.client(transport=recording)
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    with pytest.raises(RemoteFault):
        client.renew(token.assertion)  # only to get a Renew envelope with a Timestamp, unsigned
    envelope = etree.fromstring(recording.sent[-1])
    security = envelope.find(f".//{{{ns.WSSE}}}Security")
    stamp = security.find(f"{{{ns.WSU}}}Timestamp")
    stamp.set(f"{{{ns.WSU}}}Id", "TS-1")
    signature = xmldsig.Signer(xmldsig.HmacKey(token.proof_key), ns.ALG_HMAC_SHA256).detached([("TS-1", stamp)])
    wssecurity.key_identifier_reference(etree.SubElement(signature, f"{{{ns.DS}}}KeyInfo"),
                                        token_type=SAML2.profile_token_type,
                                        value_type=SAML2.key_identifier_value_type, identifier=token.assertion_id)
    security.append(signature)
    fault = resent(world.sts, etree.tostring(envelope))
    assert (fault.local_code, fault.reason) == ("UnableToRenew", NO_PROOF)
    assert "the proof signature does not cover the message's Body" in caplog.text


def test_a_replayed_proof_is_refused(sts_keys, keydir, users, clock, store) -> None:  # type: ignore[no-untyped-def]
    """The first Renew passes the proof and then fails (the party lost its certificate for a moment); the very
    same request sent again is refused by the replay cache, even though the party is back."""
    rp = rp_key_files(keydir)
    party = RelyingParty(SERVICE_URL, certificate_pem=open(rp.cert, "rb").read(), encryption="none")
    current = {SERVICE_URL: party}

    class Parties:
        def get(self, address: str) -> RelyingParty | None:
            return current.get(address)

    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock, relying_parties=Parties(),
                       issued_tokens=store, nonce_cache=MemoryReplayCache())
    recording = Recording(sts)
    client = StsClient("http://sts", username="admin", password="admin", transport=recording, clock=clock)
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    current[SERVICE_URL] = RelyingParty(SERVICE_URL)  # no certificate to encrypt the proof key for
    assert refused("UnableToRenew", lambda: client.renew(token)).reason == (
        "The relying party can no longer receive a proof key.")
    current[SERVICE_URL] = party
    fault = resent(sts, recording.sent[-1])
    assert (fault.local_code, fault.reason) == ("UnableToRenew", "The message has already been received.")
    assert client.renew(token).assertion_id != token.assertion_id  # a fresh proof is fine


def test_a_tampered_wrapped_key_is_refused_never_a_token(world, store) -> None:  # type: ignore[no-untyped-def]
    client = world.client()
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    now = world.sts._clock()
    record = store.get(token.assertion_id, now)
    blob = bytearray(base64.b64decode(record.proof))
    blob[-1] ^= 1  # one bit of the GCM tag
    store.record(replace(record, proof=base64.b64encode(bytes(blob)).decode()), keep_until=now.replace(year=now.year + 1),
                 now=now)
    recording = Recording(world.sts)
    fault = refused("UnableToRenew", lambda: world.client(transport=recording).renew(token))
    assert fault.reason == NOT_KEPT and b"Assertion" not in recording.received[-1]
    moved = store.get(token.assertion_id, now)
    other = client.request_token(SERVICE_URL, key_type="symmetric")  # a valid wrapped key, of another token
    store.record(replace(store.get(other.assertion_id, now), proof=record.proof), keep_until=now.replace(
        year=now.year + 1), now=now)
    assert refused("UnableToRenew", lambda: client.renew(other)).reason == NOT_KEPT  # bound to its token's ID
    assert moved.state == ISSUED


class Rolling:
    """A key source whose primary the test changes, holding the other keys' private parts or not."""

    def __init__(self, key: SigningKey) -> None:
        self.keys = KeySet.of(key)

    def signing_keys(self) -> KeySet:
        return self.keys


def test_a_key_wrapped_before_a_signing_key_rollover_is_read_with_the_previous_key(keydir, users, clock,  # type: ignore[no-untyped-def]
                                                                                  store) -> None:
    first, second = SigningKey.generate("sts one"), SigningKey.generate("sts two")
    rp = rp_key_files(keydir)
    source = Rolling(first)
    sts = TokenService(issuer=ISSUER, signing_key=source, users=users, clock=clock, issued_tokens=store,
                       relying_parties=[RelyingParty(SERVICE_URL, certificate_pem=open(rp.cert, "rb").read(), encryption="none")],
                       settings_ttl=0)
    service = RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, clock=clock,
                                     trusted_certs=[first.certificate, second.certificate],
                                     decryption_keys=[(rp.key, rp.cert)], confirmation="holder-of-key")
    client = StsClient("http://sts", username="admin", password="admin", transport=WSGITransport(sts), clock=clock)
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    late = client.request_token(SERVICE_URL, key_type="symmetric")
    source.keys = KeySet(second, (second.certificate, first.certificate), (first,))  # rolled; the old key held
    renewed = client.renew(token)
    assert store.get(renewed.assertion_id, clock()).proof_wrapped_by == thumbprint(second.certificate)
    reply = call_service(SERVICE_URL, renewed, echo_payload("x"), transport=WSGITransport(service))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    source.keys = KeySet(second, (second.certificate, first.certificate))  # the old private key gone
    assert refused("UnableToRenew", lambda: client.renew(late)).reason == NOT_KEPT
    assert KEK_INFO == b"wstrust-wsgi issued-token proof key v1"


def _attributes(token: IssuedToken) -> set[str]:
    root = etree.fromstring(token.assertion)
    return ({a.get("Name") for a in root.iter(f"{{{ns.SAML2}}}Attribute")}
            | {f"{a.get('AttributeNamespace')}/{a.get('AttributeName')}" for a in root.iter(f"{{{ns.SAML1}}}Attribute")})


class Users:
    """A user store whose users the test changes (a claim revoked in the registry)."""

    def __init__(self, *users: User) -> None:
        self.now = MemoryUserStore(users)

    def authenticate(self, token: Any) -> Any:
        return self.now.authenticate(token)


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_a_renewed_token_keeps_the_claims_asked_with_their_values_now(sts_keys, clock, store, token_type) -> None:  # type: ignore[no-untyped-def]
    users = Users(User("admin", "admin", roles=["admin"], claims={EMAIL: ["a@example.org"], DEPARTMENT: ["ops"]}))
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock, issued_tokens=store,
                       relying_parties=[RelyingParty(SERVICE_URL, token_type=token_type)])
    client = StsClient("http://sts", username="admin", password="admin", transport=WSGITransport(sts), clock=clock)
    token = client.request_token(SERVICE_URL, claims=[EMAIL, (DEPARTMENT, True)])
    asked = {EMAIL, DEPARTMENT}
    assert _attributes(token) == asked and store.get(token.assertion_id, clock()).claims == (
        (EMAIL, False), (DEPARTMENT, True))
    renewed = client.renew(token)
    assert _attributes(renewed) == asked  # not the role, not every claim: the subset asked
    users.now = MemoryUserStore([User("admin", "admin", roles=["admin"], claims={EMAIL: ["b@example.org"]})])
    renewed = client.renew(renewed)
    assert _attributes(renewed) == {EMAIL} and b"b@example.org" in renewed.assertion  # optional dropped, value now
    users.now = MemoryUserStore([User("admin", "admin", roles=["admin"])])
    fault = refused("UnableToRenew", lambda: client.renew(renewed))
    assert fault.reason == f"The required claim {EMAIL} cannot be supplied for this user."
    assert store.get(renewed.assertion_id, clock()).state == ISSUED  # a failed renewal retires nothing


@pytest.fixture
def x509_world(sts_keys: KeyFiles, keydir: Any, clock: FixedClock, store: MemoryTokenStore,
               client_key: SigningKey) -> HokWorld:
    """admin holds a password and the registered certificate ``client_key``."""
    users = MemoryUserStore([User("admin", "admin", roles=["admin"], certificates=[client_key.certificate_pem])])
    return hok_world(sts_keys, rp_key_files(keydir), users, clock, confirmation="holder-of-key",
                     revocation_store=store, sts_options={"issued_tokens": store})


def by_certificate(world: HokWorld, key: SigningKey, **kwargs: Any) -> StsClient:
    kwargs.setdefault("transport", WSGITransport(world.sts))
    return StsClient(STS_URL, client_cert=key, clock=world.sts._clock, **kwargs)


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_a_certificate_authenticated_client_renews_the_token_bound_to_its_certificate(  # type: ignore[no-untyped-def]
        x509_world, store, client_key, token_type) -> None:
    """vCenter's shape: the X.509 signature that authenticates the Renew is by the key the token is bound to,
    so it is the proof too (one signature per request)."""
    recording = Recording(x509_world.sts)
    client = by_certificate(x509_world, client_key, transport=recording)
    token = client.request_token(ADDRESS[token_type], key_type="public")
    renewed = client.renew(token)
    security = etree.fromstring(recording.sent[-1]).find(f".//{{{ns.WSSE}}}Security")
    assert len(security.findall(f"{{{ns.DS}}}Signature")) == 1  # the X.509 one, no second
    assert renewed.assertion_id != token.assertion_id and renewed.private_key is client_key.private_key
    assert x509_world.caller(renewed, ADDRESS[token_type]) == "admin"
    assert store.get(token.assertion_id, x509_world.sts._clock()).state == RENEWED


def test_a_certificate_authenticated_renewal_of_a_token_bound_to_another_key_is_refused(  # type: ignore[no-untyped-def]
        x509_world, store, client_key) -> None:
    """The STS side: a token bound to another key (here a symmetric one, and a public key the password
    client bound) is not proven by the authenticating X.509 signature, whoever its subject; the client
    says so before sending, and a hand-made request gets the no-proof fault."""
    from wstrust_wsgi.errors import ConfigurationError

    symmetric = x509_world.client().request_token(SERVICE_URL, key_type="symmetric")
    other = SigningKey.generate("another client key")
    public = x509_world.client().request_token(SERVICE_URL, key_type="public", client_key=other)
    client = by_certificate(x509_world, client_key)
    for token in (symmetric, public):
        with pytest.raises(ConfigurationError, match="renew: this holder-of-key token's key is not the client"):
            client.renew(token)
        assert refused("UnableToRenew", lambda: client.renew(token.assertion)).reason == NO_PROOF  # bytes: sent
        assert store.get(token.assertion_id, x509_world.sts._clock()).state == ISSUED


def test_a_key_value_bound_token_is_renewed_and_keeps_its_bare_key(world, store, client_key) -> None:  # type: ignore[no-untyped-def]
    """A PublicKey token bound as ``ds:KeyValue`` (no certificate): the record keeps the bare key, and the
    renewed token carries the same KeyValue."""
    client = world.client()
    token = client.request_token(SERVICE_URL, key_type="public", client_key=client_key, use_key="key-value")
    renewed = client.renew(token)
    kept = store.get(token.assertion_id, world.sts._clock()).proof
    assert kept.startswith("spki:")
    assert base64.b64decode(kept[5:]) == client_key.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    confirmation = etree.fromstring(renewed.assertion).find(f".//{{{ns.SAML2}}}SubjectConfirmation")
    assert confirmation.find(f".//{{{ns.DS}}}KeyValue") is not None
    assert confirmation.find(f".//{{{ns.DS}}}X509Certificate") is None
    assert world.caller(renewed, SERVICE_URL) == "admin"
    other = SigningKey.generate("another client")
    assert refused("UnableToRenew", lambda: client.renew(replace(renewed, private_key=other.private_key))
                   ).reason == NO_PROOF


def test_the_renewed_key_is_encrypted_for_the_relying_partys_certificate_of_the_moment(sts_keys, users, clock,  # type: ignore[no-untyped-def]
                                                                                        store, tmp_path) -> None:
    """The party rolled its certificate between issue and renewal: the renewed token's proof key is encrypted
    for the new one (a service holding only the new key reads it); a party that stopped accepting symmetric
    tokens gets no renewal."""
    old, new = SigningKey.generate("rp before"), SigningKey.generate("rp after")
    for key, stem in ((old, "old"), (new, "new")):
        (tmp_path / f"{stem}.crt").write_bytes(key.certificate_pem)
        (tmp_path / f"{stem}.key").write_bytes(key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    current = {SERVICE_URL: RelyingParty(SERVICE_URL, certificate_pem=old.certificate_pem, encryption="none")}

    class Parties:
        def get(self, address: str) -> RelyingParty | None:
            return current.get(address)

    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock, relying_parties=Parties(),
                       issued_tokens=store)
    client = StsClient("http://sts", username="admin", password="admin", transport=WSGITransport(sts), clock=clock)
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    current[SERVICE_URL] = RelyingParty(SERVICE_URL, certificate_pem=new.certificate_pem, encryption="none")
    renewed = client.renew(token)
    service = RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                     clock=clock, confirmation="holder-of-key",
                                     decryption_keys=[(tmp_path / "new.key", tmp_path / "new.crt")])
    reply = call_service(SERVICE_URL, renewed, echo_payload("x"), transport=WSGITransport(service))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    with pytest.raises(RemoteFault):  # the first token's key was encrypted for the old certificate only
        call_service(SERVICE_URL, token, echo_payload("x"), transport=WSGITransport(service))
    current[SERVICE_URL] = RelyingParty(SERVICE_URL, certificate_pem=new.certificate_pem, encryption="none",
                                        key_types=["bearer", "public"])
    assert refused("UnableToRenew", lambda: client.renew(renewed)).reason == (
        "The relying party no longer accepts this token's key type.")
