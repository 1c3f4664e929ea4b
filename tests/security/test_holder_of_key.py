"""Attacks on holder-of-key: each refused with its own fault, and the protected app never called.

Tokens are issued by the real STS in-process (or, for proof keys the STS would
never write, signed by the same key from hand-made content); requests are
signed by the real client and then changed with lxml. The middleware guards
a recording app, posted to through WebTest.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import os
from datetime import timedelta

import pytest
import webtest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from _forge import RecordingApp, content, read_fault, sign
from _support import OTHER_URL, SERVICE_URL
from _support.hok import hok_world, rp_key_files
from wstrust_wsgi import IssuedToken, MemoryReplayCache, ns, saml, xmldsig
from wstrust_wsgi.client import service_request
from wstrust_wsgi.errors import DecryptionFailed
from wstrust_wsgi.xmlenc import encrypt_key

WSSE = lambda local: f"{{{ns.WSSE}}}{local}"  # noqa: E731
PAYLOAD = b"<Transfer xmlns='urn:example'><Amount>10</Amount></Transfer>"
NO_PROOF = "A holder-of-key token needs a signature made with its proof key over the body and timestamp."
NOT_COVERED = "The signature does not cover the message body, timestamp and addressing headers."
VERSIONS = pytest.mark.parametrize("address", [SERVICE_URL, OTHER_URL], ids=["saml2.0", "saml1.1"])


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def make_world(sts_keys, keydir, users, clock, recorder):  # type: ignore[no-untyped-def]
    def make(**options):  # type: ignore[no-untyped-def]
        return hok_world(sts_keys, rp_key_files(keydir), users, clock, app=recorder, **options)
    return make


@pytest.fixture
def world(make_world):  # type: ignore[no-untyped-def]
    return make_world()


def post(world, body: bytes) -> webtest.TestResponse:  # type: ignore[no-untyped-def]
    return webtest.TestApp(world.service).post("/soap", body, content_type="text/xml; charset=utf-8",
                                              expect_errors=True)


def refused(response: webtest.TestResponse, recorder: RecordingApp, code: str, reason: str | None = None) -> None:
    fault = read_fault(response.body)
    assert fault.code == WSSE(code), (fault, response.body)
    if reason is not None:
        assert fault.reason == reason
    assert recorder.calls == []


def symmetric(world, address: str = SERVICE_URL) -> IssuedToken:  # type: ignore[no-untyped-def]
    return world.client().request_token(address, key_type="symmetric")


def signed_tree(token: IssuedToken, **options) -> etree._Element:  # type: ignore[no-untyped-def]
    body, _ = service_request(token, PAYLOAD, **options)
    return etree.fromstring(body)


def proof_signature(root: etree._Element) -> etree._Element:
    [signature] = [s for s in root.iter(f"{{{ns.DS}}}Signature") if s.get("Id")]
    return signature


def serialized(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


# --------------------------------------------------------------------------- the good case


@VERSIONS
def test_a_proven_holder_of_key_token_is_admitted_and_says_so(world, recorder, address) -> None:  # type: ignore[no-untyped-def]
    token = symmetric(world, address)
    response = post(world, service_request(token, PAYLOAD)[0])
    assert response.status_int == 200, response.body
    [call] = recorder.calls
    verified = call["assertion"]
    assert (verified.confirmation, verified.proof_key, verified.confirmations) == (
        "holder-of-key", "symmetric", frozenset({"holder-of-key"}))
    assert call["body"].count(b"<Amount>10</Amount>") == 1


def test_bearer_tokens_are_admitted_as_bearer_under_the_default_policy(world, recorder) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL)
    assert post(world, service_request(token, PAYLOAD)[0]).status_int == 200
    assert (recorder.calls[0]["assertion"].confirmation, recorder.calls[0]["assertion"].proof_key) == ("bearer", None)


# --------------------------------------------------------------------------- attacks


@VERSIONS
def test_no_proof_holder_of_key_token_presented_as_bearer(world, recorder, address) -> None:  # type: ignore[no-untyped-def]
    token = symmetric(world, address)
    body, _ = service_request(token.assertion, PAYLOAD)  # the bare token, unsigned request
    refused(post(world, body), recorder, "InvalidSecurity", NO_PROOF)


def test_holder_of_key_token_under_a_bearer_policy(make_world, recorder) -> None:  # type: ignore[no-untyped-def]
    world = make_world(confirmation="bearer")
    refused(post(world, service_request(symmetric(world), PAYLOAD)[0]), recorder, "InvalidSecurityToken",
            "This service accepts bearer tokens only.")


def test_bearer_token_under_a_holder_of_key_policy(make_world, recorder) -> None:  # type: ignore[no-untyped-def]
    world = make_world(confirmation="holder-of-key")
    token = world.client().request_token(SERVICE_URL)
    refused(post(world, service_request(token, PAYLOAD)[0]), recorder, "InvalidSecurityToken",
            "This service requires a holder-of-key token.")


def test_proof_by_another_key(world, recorder) -> None:  # type: ignore[no-untyped-def]
    token = dataclasses.replace(symmetric(world), proof_key=os.urandom(32))
    refused(post(world, service_request(token, PAYLOAD)[0]), recorder, "FailedCheck")


def test_proof_over_a_body_wrapped_away_from_the_one_processed(world, recorder) -> None:  # type: ignore[no-untyped-def]
    root = signed_tree(symmetric(world))
    signed_body = root.find(f"{{{ns.SOAP11}}}Body")
    wrapper = etree.SubElement(root.find(f"{{{ns.SOAP11}}}Header"), "{urn:attacker}Wrapper")
    wrapper.append(signed_body)  # the signed Body, unchanged, now in a header
    evil = etree.SubElement(root, f"{{{ns.SOAP11}}}Body")
    evil.append(etree.fromstring(b"<Transfer xmlns='urn:example'><Amount>1000000</Amount></Transfer>"))
    refused(post(world, serialized(root)), recorder, "FailedCheck", NOT_COVERED)


def test_proof_over_a_changed_body(world, recorder) -> None:  # type: ignore[no-untyped-def]
    root = signed_tree(symmetric(world))
    root.find(f".//{{urn:example}}Amount").text = "1000000"
    refused(post(world, serialized(root)), recorder, "FailedCheck")


def test_proof_over_the_timestamp_only(world, recorder) -> None:  # type: ignore[no-untyped-def]
    token = symmetric(world)
    root = signed_tree(token)
    old = proof_signature(root)
    stamp = root.find(f".//{{{ns.WSU}}}Timestamp")
    only = xmldsig.Signer(xmldsig.HmacKey(token.proof_key), "hmac-sha256").detached(  # type: ignore[arg-type]
        [(stamp.get(f"{{{ns.WSU}}}Id"), stamp)])
    only.append(old.find(f"{{{ns.DS}}}KeyInfo"))
    old.getparent().replace(old, only)
    refused(post(world, serialized(root)), recorder, "FailedCheck", NOT_COVERED)


def test_a_stale_timestamp(world, recorder, clock) -> None:  # type: ignore[no-untyped-def]
    token = symmetric(world)
    body, _ = service_request(token, PAYLOAD, clock=lambda: clock() - timedelta(minutes=20))
    refused(post(world, body), recorder, "MessageExpired")


def test_an_hmac_keyed_with_the_sts_certificate_bytes(world, recorder, sts_keys) -> None:  # type: ignore[no-untyped-def]
    root = signed_tree(symmetric(world))
    signature = proof_signature(root)
    der = sts_keys.load().certificate.public_bytes(serialization.Encoding.DER)
    signed_info = etree.tostring(signature.find(f"{{{ns.DS}}}SignedInfo"), method="c14n", exclusive=True)
    signature.find(f"{{{ns.DS}}}SignatureValue").text = base64.b64encode(
        hmac.new(der, signed_info, hashlib.sha256).digest()).decode()
    refused(post(world, serialized(root)), recorder, "FailedCheck")


def test_hmac_output_length(world, recorder) -> None:  # type: ignore[no-untyped-def]
    root = signed_tree(symmetric(world))
    method = proof_signature(root).find(f".//{{{ns.DS}}}SignatureMethod")
    etree.SubElement(method, f"{{{ns.DS}}}HMACOutputLength").text = "80"
    refused(post(world, serialized(root)), recorder, "UnsupportedAlgorithm")


def test_a_replayed_proof_signature(make_world, recorder) -> None:  # type: ignore[no-untyped-def]
    world = make_world(replay_cache=MemoryReplayCache())
    body, _ = service_request(symmetric(world), PAYLOAD)
    assert post(world, body).status_int == 200
    recorder.calls.clear()
    refused(post(world, body), recorder, "FailedCheck", "The message has already been received.")


def _hand_made(world, sts_keys, clock, key_info: etree._Element, key: bytes) -> IssuedToken:  # type: ignore[no-untyped-def]
    """A token the trusted STS key signed around ``key_info``, holding ``key``."""
    what = content(clock(), proof_key_info=key_info)
    assertion = sign(sts_keys.load(), saml.SAML2, what)
    return IssuedToken(assertion, saml.SAML2.token_type, what.assertion_id, what.not_before, what.not_on_or_after,
                       SERVICE_URL, proof_key=key, key_type="symmetric")


def _key_info(encrypted_key: etree._Element) -> etree._Element:
    key_info = etree.Element(f"{{{ns.DS}}}KeyInfo", nsmap={"ds": ns.DS})
    key_info.append(encrypted_key)
    return key_info


def test_a_proof_key_encrypted_with_rsa_1_5(world, recorder, sts_keys, clock) -> None:  # type: ignore[no-untyped-def]
    key = os.urandom(32)
    rp = world.rp.load()
    encrypted_key = encrypt_key(key, rp.certificate)
    method = encrypted_key.find(f"{{{ns.XENC}}}EncryptionMethod")
    method.set("Algorithm", ns.ALG_RSA_1_5)
    for child in list(method):
        method.remove(child)
    encrypted_key.find(f".//{{{ns.XENC}}}CipherValue").text = base64.b64encode(
        rp.certificate.public_key().encrypt(key, padding.PKCS1v15())).decode()
    token = _hand_made(world, sts_keys, clock, _key_info(encrypted_key), key)
    refused(post(world, service_request(token, PAYLOAD)[0]), recorder, "FailedCheck", DecryptionFailed.default_reason)


def test_a_proof_key_too_short(world, recorder, sts_keys, clock) -> None:  # type: ignore[no-untyped-def]
    key = os.urandom(8)
    token = _hand_made(world, sts_keys, clock, _key_info(encrypt_key(key, world.rp.load().certificate)), key)
    refused(post(world, service_request(token, PAYLOAD)[0]), recorder, "FailedCheck", DecryptionFailed.default_reason)


def test_a_plaintext_proof_key_in_the_confirmation(world, recorder, sts_keys, clock) -> None:  # type: ignore[no-untyped-def]
    key = os.urandom(32)
    key_info = etree.Element(f"{{{ns.DS}}}KeyInfo", nsmap={"ds": ns.DS})
    etree.SubElement(key_info, f"{{{ns.WST13}}}BinarySecret").text = base64.b64encode(key).decode()
    token = _hand_made(world, sts_keys, clock, key_info, key)
    refused(post(world, service_request(token, PAYLOAD)[0]), recorder, "InvalidSecurityToken",
            "The holder-of-key token's proof key is not an encrypted key.")


def test_a_service_without_decryption_keys_cannot_admit_holder_of_key(make_world, recorder) -> None:  # type: ignore[no-untyped-def]
    world = make_world(decryption_keys=())
    refused(post(world, service_request(symmetric(world), PAYLOAD)[0]), recorder, "InvalidSecurityToken",
            "This service cannot read holder-of-key proof keys.")


def _addressed(token: IssuedToken, sign_it: bool) -> bytes:
    """The client's signed request with a wsa:To header added, re-signed over it when ``sign_it``."""
    from wstrust_wsgi import wssecurity
    root = signed_tree(token)
    to = etree.SubElement(root.find(f"{{{ns.SOAP11}}}Header"), f"{{{ns.WSA10}}}To", nsmap={"wsa": ns.WSA10})
    to.text = SERVICE_URL
    if sign_it:
        old = proof_signature(root)
        security = old.getparent()
        security.remove(old)
        wssecurity.sign_message(root, security, xmldsig.HmacKey(token.proof_key), method="hmac-sha256",  # type: ignore[arg-type]
                                token_type=ns.SAML20_TOKEN_PROFILE_TYPE, value_type=ns.SAML20_KEYID_VALUE_TYPE,
                                token_id=token.assertion_id)
    return serialized(root)


def test_addressing_headers_must_be_covered_when_present(world, recorder) -> None:  # type: ignore[no-untyped-def]
    token = symmetric(world)
    refused(post(world, _addressed(token, sign_it=False)), recorder, "FailedCheck", NOT_COVERED)
    assert post(world, _addressed(symmetric(world), sign_it=True)).status_int == 200
    assert recorder.calls[0]["assertion"].confirmation == "holder-of-key"


def test_a_replayed_proof_signature_re_encoded_is_still_a_replay(make_world, recorder) -> None:  # type: ignore[no-untyped-def]
    world = make_world(replay_cache=MemoryReplayCache())
    root = signed_tree(symmetric(world))
    assert post(world, serialized(root)).status_int == 200
    recorder.calls.clear()
    value = proof_signature(root).find(f"{{{ns.DS}}}SignatureValue")
    value.text = "\n".join(value.text[i:i + 8] for i in range(0, len(value.text), 8))  # same bytes, other text
    refused(post(world, serialized(root)), recorder, "FailedCheck", "The message has already been received.")


def test_a_proof_by_a_key_derived_from_the_token_is_not_accepted(world, recorder) -> None:  # type: ignore[no-untyped-def]
    """Derived keys (WS-SecureConversation ``DerivedKeyToken``, as WCF sends them) are not supported: a
    signature whose KeyInfo names a DerivedKeyToken built on the token is not a proof of that token, so it
    is refused as no proof at all, never verified with a key of the attacker's choosing (length, offset)."""
    from wstrust_wsgi.wstrust.proof import p_sha1

    wsc = "http://docs.oasis-open.org/ws-sx/ws-secureconversation/200512"
    token = symmetric(world)
    root = signed_tree(token)
    old = proof_signature(root)
    security = old.getparent()
    derived = etree.SubElement(security, f"{{{wsc}}}DerivedKeyToken", nsmap={"wsc": wsc})
    derived.set(f"{{{ns.WSU}}}Id", "dk-1")
    derived.append(copy.deepcopy(old.find(f"{{{ns.DS}}}KeyInfo/{{{ns.WSSE}}}SecurityTokenReference")))
    etree.SubElement(derived, f"{{{wsc}}}Length").text = "32"
    etree.SubElement(derived, f"{{{wsc}}}Nonce").text = base64.b64encode(b"n" * 16).decode()
    key = p_sha1(token.proof_key, b"WS-SecureConversationWS-SecureConversation" + b"n" * 16, 32)  # type: ignore[arg-type]
    covered = [(element.get(f"{{{ns.WSU}}}Id"), element) for element in
               (root.find(f"{{{ns.SOAP11}}}Body"), root.find(f".//{{{ns.WSU}}}Timestamp"))]
    signature = xmldsig.Signer(xmldsig.HmacKey(key), "hmac-sha256").detached(covered)
    key_info = etree.SubElement(signature, f"{{{ns.DS}}}KeyInfo")
    reference = etree.SubElement(etree.SubElement(key_info, WSSE("SecurityTokenReference")), WSSE("Reference"))
    reference.set("URI", "#dk-1")
    security.replace(old, signature)
    refused(post(world, serialized(root)), recorder, "InvalidSecurity", NO_PROOF)
