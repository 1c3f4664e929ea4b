"""Renew, Validate and Cancel of encrypted tokens in-process: the STS finds the record of a token it cannot
decrypt by the SHA-256 of the element it sent; the renewed token is decrypted and admitted by the
middleware, the old one refused; and the encrypted tokens we did not produce exactly are refused as unknown."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from lxml import etree

from _support.remote import refused
from _support import ISSUER, OTHER_URL, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.hok import HokWorld, hok_world, rp_key_files
from wstrust_wsgi import (MemoryUserStore, RelyingParty, SigningKey, StsClient, TokenService, User, WSGITransport,
                          ns, xmlenc)
from wstrust_wsgi.client import IssuedToken
from wstrust_wsgi.errors import DecryptionFailed
from wstrust_wsgi.saml import SAML2, SAML11
from wstrust_wsgi.stores.tokens import CANCELLED, ISSUED, RENEWED, MemoryTokenStore
from wstrust_wsgi.sts.encryption import encrypt_token
from wstrust_wsgi.sts.lifecycle import encrypted_digest

ADDRESS = {"2.0": SERVICE_URL, "1.1": OTHER_URL}
WRAPPER = {"2.0": f"{{{ns.SAML2}}}EncryptedAssertion", "1.1": f"{{{ns.XENC}}}EncryptedData"}
UNKNOWN = "The token was not issued by this STS, or is no longer known."
USERS = [User("admin", "admin", roles=["admin"]), User("bob", "bob", roles=["admin"])]


@pytest.fixture
def store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture
def world(sts_keys: KeyFiles, keydir: Any, clock: FixedClock, store: MemoryTokenStore) -> HokWorld:
    """Both parties encrypt their tokens (AES-256-GCM for rp.crt); the middleware decrypts them with rp.key and
    consults the STS's store for renewed and cancelled tokens."""
    return hok_world(sts_keys, rp_key_files(keydir), MemoryUserStore(USERS), clock, encryption="aes256-gcm",
                     revocation_store=store, sts_options={"issued_tokens": store})


def opened(world: HokWorld, token: IssuedToken) -> xmlenc.Decrypted:
    """The relying party's view of ``token``: decrypted with rp.key."""
    keys = [SigningKey.from_files(world.rp.key, world.rp.cert)]
    return xmlenc.Decrypter(keys).decrypt(xmlenc.encrypted_data_of(etree.fromstring(token.assertion)))


# ---------------------------------------------------------------------- round trips


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
@pytest.mark.parametrize(("trust", "soap"), [("1.3", "1.2"), ("2005", "1.1")])
def test_an_encrypted_bearer_token_is_renewed_as_sent_and_the_renewed_one_admitted(world, store, token_type,  # type: ignore[no-untyped-def]
                                                                                   trust, soap) -> None:
    client = world.client(trust_version=trust, soap_version=soap)
    token = client.request_token(ADDRESS[token_type])
    assert token.encrypted and etree.fromstring(token.assertion).tag == WRAPPER[token_type]
    record = store.get(token.assertion_id, world.sts._clock())
    assert record.encrypted_sha256 == encrypted_digest(etree.fromstring(token.assertion))  # the full SHA-256
    assert len(record.encrypted_sha256) == 64
    renewed = client.renew(token)
    assert renewed.encrypted and renewed.assertion_id != token.assertion_id
    assert etree.fromstring(renewed.assertion).tag == WRAPPER[token_type]
    assert opened(world, renewed).element.get("ID" if token_type == "2.0" else "AssertionID") == renewed.assertion_id
    assert world.caller(renewed, ADDRESS[token_type]) == "admin"  # decrypted and admitted
    assert store.get(token.assertion_id, world.sts._clock()).state == RENEWED
    assert refused("InvalidSecurityToken", lambda: world.caller(token, ADDRESS[token_type]))  # the old one retired
    assert store.find_encrypted(encrypted_digest(etree.fromstring(renewed.assertion)),
                                world.sts._clock()).assertion_id == renewed.assertion_id
    assert client.renew(renewed).encrypted  # and renewed again


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_an_encrypted_symmetric_holder_of_key_token_is_renewed_with_its_key(world, store, token_type) -> None:  # type: ignore[no-untyped-def]
    client = world.client()
    token = client.request_token(ADDRESS[token_type], key_type="symmetric")
    assert token.encrypted and token.proof_key
    renewed = client.renew(token)
    assert renewed.encrypted and renewed.proof_key == token.proof_key and renewed.key_type == "symmetric"
    assert world.caller(renewed, ADDRESS[token_type]) == "admin"  # proven with the same key, decrypted
    assert refused("InvalidSecurityToken", lambda: world.caller(token, ADDRESS[token_type]))
    assert store.get(renewed.assertion_id, world.sts._clock()).proof  # the key kept (wrapped) again
    # without a proof of the key (the bytes alone, or a proof by another key) the renewal is refused
    again = client.renew(renewed)
    assert refused("UnableToRenew", lambda: client.renew(again.assertion)).reason.startswith("Renewing a holder")
    assert refused("UnableToRenew", lambda: client.renew(replace(again, proof_key=bytes(32)))
                   ).reason.startswith("Renewing a holder")
    assert store.get(again.assertion_id, world.sts._clock()).state == ISSUED


def test_validate_and_cancel_take_the_encrypted_token_itself_or_its_id(world, store) -> None:  # type: ignore[no-untyped-def]
    client = world.client()
    by_id, itself = client.request_token(SERVICE_URL), client.request_token(OTHER_URL)
    assert client.validate(by_id).valid  # an IssuedToken: named by its ID (a SecurityTokenReference)
    assert client.validate(itself.assertion).valid  # its bytes: the encrypted element, found by its digest
    client.cancel(itself.assertion)
    assert store.get(itself.assertion_id, world.sts._clock()).state == CANCELLED
    status = client.validate(itself.assertion)
    assert not status.valid and status.reason == "The token has been cancelled."
    assert refused("UnableToRenew", lambda: client.renew(itself)).reason == "The token has been cancelled."
    assert refused("InvalidSecurityToken", lambda: world.caller(itself, OTHER_URL))  # the middleware refuses it
    client.cancel(by_id)
    assert not client.validate(by_id.assertion).valid


def test_the_digest_is_of_the_element_wherever_it_is_embedded(world) -> None:  # type: ignore[no-untyped-def]
    """Exclusive c14n: the element the STS sent, re-embedded under other namespace declarations and prefixes
    (another envelope, another WS-Trust version), gives the same digest; a change inside it does not."""
    for address in (SERVICE_URL, OTHER_URL):
        sent = world.client().request_token(address).assertion
        alone = encrypted_digest(etree.fromstring(sent))
        host = (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns="urn:other" '
                b'xmlns:saml2="urn:not-saml" xmlns:xenc="urn:not-xenc" xmlns:ds="urn:not-ds"><e:Body><holder>'
                + sent + b"</holder></e:Body></e:Envelope>")
        embedded = etree.fromstring(host).find(".//{urn:other}holder")[0]
        assert encrypted_digest(embedded) == alone
        assert encrypted_digest(etree.fromstring(sent.replace(b"CipherValue>", b"CipherValue> ", 1))) != alone


def test_an_expired_encrypted_token_is_renewed_only_with_ok_and_within_the_window(world, clock) -> None:  # type: ignore[no-untyped-def]
    """The times are the record's (the STS cannot read the token's): the same Renewing rules as in clear."""
    client = world.client()
    plain, ok = client.request_token(SERVICE_URL), client.request_token(SERVICE_URL, renew_after_expiry=True)
    late = client.request_token(OTHER_URL, renew_after_expiry=True)
    never = client.request_token(OTHER_URL, allow_renewal=False)
    assert refused("UnableToRenew", lambda: client.renew(never)).reason == "The token was issued as not renewable."
    clock.advance(minutes=11)  # past NotOnOrAfter (5 minutes) and the clock skew (5 minutes)
    status = client.validate(ok.assertion)
    assert not status.valid and status.reason == "The security token has expired."
    assert "expired" in refused("UnableToRenew", lambda: client.renew(plain)).reason
    renewed = client.renew(ok)
    assert renewed.encrypted and client.validate(renewed.assertion).valid
    clock.advance(minutes=25)  # 31 minutes after it expired: past the 30-minute window
    assert refused("UnableToRenew", lambda: client.renew(late)).reason == "The token expired too long ago to be renewed."


# ---------------------------------------------------------------------- attacks


def _one_byte_altered(assertion: bytes) -> bytes:
    """The token with one base64 character of its content's CipherValue changed (still well-formed)."""
    root = etree.fromstring(assertion)
    cipher = [c for c in root.iter(f"{{{ns.XENC}}}CipherValue")][-1]  # the content's, after the EncryptedKey's
    text = cipher.text.strip()
    start = assertion.index(text.encode())
    position = start + len(text) // 2
    changed = b"A" if assertion[position:position + 1] != b"A" else b"B"
    return assertion[:position] + changed + assertion[position + 1:]


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_an_encrypted_token_altered_by_one_byte_is_unknown(world, store, token_type) -> None:  # type: ignore[no-untyped-def]
    client = world.client()
    token = client.request_token(ADDRESS[token_type])
    altered = _one_byte_altered(token.assertion)
    assert len(altered) == len(token.assertion) and altered != token.assertion
    assert refused("UnableToRenew", lambda: client.renew(altered)).reason == UNKNOWN
    status = client.validate(altered)
    assert not status.valid and status.reason == UNKNOWN
    assert refused("InvalidRequest", lambda: client.cancel(altered)).reason == UNKNOWN
    assert store.get(token.assertion_id, world.sts._clock()).state == ISSUED  # the real one untouched
    assert client.renew(token).encrypted


@pytest.mark.parametrize("version", [SAML2, SAML11], ids=["2.0", "1.1"])
def test_our_signed_assertion_encrypted_again_is_not_ours(world, store, version) -> None:  # type: ignore[no-untyped-def]
    """The relying party (or anyone holding its key) decrypts our token and encrypts the signed assertion again:
    the bytes are not the ones we produced, so the STS knows no such token (the signature inside it is ours, but
    the STS cannot check it, and the record it would name is found only by the bytes we sent)."""
    client = world.client()
    token = client.request_token(ADDRESS[version.name])
    party = RelyingParty(ADDRESS[version.name], certificate_pem=open(world.rp.cert, "rb").read())
    again = encrypt_token(version, opened(world, token).plaintext, party, world.sts._clock())
    assert refused("UnableToRenew", lambda: client.renew(again)).reason == UNKNOWN
    assert not client.validate(again).valid
    assert refused("InvalidRequest", lambda: client.cancel(again)).reason == UNKNOWN
    assert store.get(token.assertion_id, world.sts._clock()).state == ISSUED


def test_an_encrypted_token_another_sts_issued_is_unknown(world, sts_keys, keydir, clock, store) -> None:  # type: ignore[no-untyped-def]
    """Same signing key, same issuer, same party certificate, but another store: signed by our key and
    encrypted for the party, yet never recorded here."""
    other = hok_world(sts_keys, rp_key_files(keydir), MemoryUserStore(USERS), clock, encryption="aes256-gcm",
                      sts_options={"issued_tokens": MemoryTokenStore()})
    ours = world.client().request_token(SERVICE_URL)  # the store is not empty: a lookup must name the right one
    elsewhere = other.client().request_token(SERVICE_URL)
    assert elsewhere.encrypted and world.caller(elsewhere, SERVICE_URL) == "admin"  # a valid token ...
    client = world.client()
    assert refused("UnableToRenew", lambda: client.renew(elsewhere)).reason == UNKNOWN  # ... but not ours
    assert not client.validate(elsewhere.assertion).valid
    assert refused("InvalidRequest", lambda: client.cancel(elsewhere.assertion)).reason == UNKNOWN
    assert store.get(ours.assertion_id, clock()).state == ISSUED


def test_a_testing_kit_token_encrypted_for_the_party_is_unknown(world, keydir) -> None:  # type: ignore[no-untyped-def]
    """A token made by :mod:`wstrust_wsgi.testing`'s STS (its own key), encrypted for our relying party."""
    from wstrust_wsgi.testing import InProcessSts

    pem = open(world.rp.cert, "rb").read()
    kit = InProcessSts(relying_parties=[RelyingParty(SERVICE_URL, certificate_pem=pem)], issuer=ISSUER)
    foreign = kit.token(SERVICE_URL)
    assert foreign.encrypted
    client = world.client()
    client.request_token(SERVICE_URL)  # the store is not empty
    assert refused("UnableToRenew", lambda: client.renew(foreign)).reason == UNKNOWN
    assert not client.validate(foreign.assertion).valid


def test_someone_elses_encrypted_token_is_neither_renewed_nor_cancelled(world, store) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL)
    bob = StsClient(STS_URL, username="bob", password="bob", transport=WSGITransport(world.sts), clock=world.sts._clock)
    assert refused("RequestFailed", lambda: bob.renew(token)).reason == "The requester may not renew this token."
    assert refused("RequestFailed", lambda: bob.cancel(token.assertion)).reason == (
        "The requester may not cancel this token.")
    assert store.get(token.assertion_id, world.sts._clock()).state == ISSUED
    assert world.caller(token, SERVICE_URL) == "admin"


def test_a_renewed_encrypted_token_is_encrypted_for_the_partys_certificate_of_the_moment(sts_keys, clock, store):  # type: ignore[no-untyped-def]
    """The party rolled its encryption certificate between issue and renewal: the old token (encrypted for the
    old certificate) is still found by its digest, and the renewed one opens with the new key only."""
    old, new = SigningKey.generate("rp old"), SigningKey.generate("rp new")
    current = {SERVICE_URL: RelyingParty(SERVICE_URL, certificate_pem=old.certificate_pem)}

    class Parties:
        def get(self, address: str) -> RelyingParty | None:
            return current.get(address)

    app = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=MemoryUserStore(USERS),
                       relying_parties=Parties(), clock=clock, issued_tokens=store)
    client = StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(app), clock=clock)
    token = client.request_token(SERVICE_URL)
    current[SERVICE_URL] = RelyingParty(SERVICE_URL, certificate_pem=new.certificate_pem)
    renewed = client.renew(token)
    encrypted = xmlenc.encrypted_data_of(etree.fromstring(renewed.assertion))
    assert xmlenc.Decrypter([new]).decrypt(encrypted).element.get("ID") == renewed.assertion_id
    with pytest.raises(DecryptionFailed):
        xmlenc.Decrypter([old]).decrypt(encrypted)
    assert base64.b64encode(b"admin") not in renewed.assertion and b">admin<" not in renewed.assertion


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "redis"])
def test_an_encrypted_token_is_renewed_and_cancelled_with_a_shared_store(kind, request, tmp_path, sts_keys, keydir,  # type: ignore[no-untyped-def]
                                                                         clock) -> None:
    """The STS finds the record by digest in the registry (SQLite, PostgreSQL) or Redis, as workers share it."""
    from _support.pg import registry_url
    from wstrust_wsgi.stores.sql import Registry
    from wstrust_wsgi.stores.tokens import RedisTokenStore, RegistryTokenStore

    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        server.client().flushdb()
        shared: Any = RedisTokenStore(server.url)
        request.addfinalizer(shared.close)
    else:
        registry = Registry.open(registry_url(kind, request, tmp_path))
        registry.init_schema(issuer=ISSUER)
        request.addfinalizer(registry.close)
        shared = RegistryTokenStore(registry)
    world = hok_world(sts_keys, rp_key_files(keydir), MemoryUserStore(USERS), clock, encryption="aes256-gcm",
                      revocation_store=shared, sts_options={"issued_tokens": shared})
    client = world.client()
    token = client.request_token(SERVICE_URL, key_type="symmetric")
    renewed = client.renew(token)
    assert world.caller(renewed, SERVICE_URL) == "admin"
    assert refused("UnableToRenew", lambda: client.renew(token)).reason == "The token has already been renewed."
    assert refused("UnableToRenew", lambda: client.renew(_one_byte_altered(renewed.assertion))).reason == UNKNOWN
    client.cancel(renewed.assertion)
    assert shared.get(renewed.assertion_id, clock()).state == CANCELLED
    assert refused("InvalidSecurityToken", lambda: world.caller(renewed, SERVICE_URL))
