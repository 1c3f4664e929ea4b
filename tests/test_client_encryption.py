"""The client and an encrypted token: opaque, named for whom, passed on byte for byte.

The STS encrypts the token for a relying party with an encryption certificate;
:class:`StsClient` cannot read it and says so (``encrypted``, ``encrypted_for``),
takes its ID from the RSTR's reference, and :func:`call_service` puts its exact
bytes into ``wsse:Security``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from _support import ISSUER, OTHER_URL, SERVICE_URL, STS_URL, FixedClock, KeyFiles, demo_users
from wstrust_wsgi import RelyingParty, SigningKey, StsClient, TokenService, WSGITransport, call_service, ns, saml, xmlenc
from wstrust_wsgi.client import service_request
from wstrust_wsgi.cli import echo_payload

REPLY = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ok xmlns="urn:test"/>'
         b"</s:Body></s:Envelope>")


@pytest.fixture(scope="module")
def rp_key() -> SigningKey:
    return SigningKey.generate("test relying party")


def client(sts_keys: KeyFiles, clock: FixedClock, party: RelyingParty, **kwargs: Any) -> StsClient:
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=demo_users(), relying_parties=[party],
                       clock=clock)
    return StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts), clock=clock, **kwargs)


@pytest.mark.parametrize("token_type, trust", [("2.0", "1.3"), ("1.1", "2005")])
def test_an_encrypted_token_is_opaque_to_the_client_and_says_for_whom(sts_keys, clock, rp_key, token_type, trust):
    party = RelyingParty(SERVICE_URL, token_type=token_type, certificate_pem=rp_key.certificate_pem)
    token = client(sts_keys, clock, party, trust_version=trust).request_token(SERVICE_URL)
    assert token.encrypted is True
    certificate = rp_key.certificate
    assert token.encrypted_for == (f"the certificate of issuer {certificate.issuer.rfc4514_string()}, "
                                   f"serial {certificate.serial_number}")
    assert b"admin@example.org" not in token.assertion  # the claims are not the client's to read
    root = etree.fromstring(token.assertion)
    assert root.tag == (f"{{{ns.SAML2}}}EncryptedAssertion" if token_type == "2.0" else f"{{{ns.XENC}}}EncryptedData")
    inside = xmlenc.decrypt(xmlenc.encrypted_data_of(root), [rp_key], scope=root).element
    assert token.assertion_id == inside.get("ID" if token_type == "2.0" else "AssertionID")
    assert token.token_type == (saml.SAML2 if token_type == "2.0" else saml.SAML11).token_type and token.expires


def test_a_thumbprint_named_certificate_is_shown_as_its_thumbprint(sts_keys, clock, rp_key):
    party = RelyingParty(OTHER_URL, certificate_pem=rp_key.certificate_pem, key_reference="thumbprint")
    token = client(sts_keys, clock, party).request_token(OTHER_URL)
    der = rp_key.certificate.public_bytes(serialization.Encoding.DER)
    assert token.encrypted_for == "SHA-1 thumbprint " + hashlib.sha1(der).digest().hex(":").upper()


def test_a_plain_token_says_it_is_not_encrypted(make_client):
    token = make_client().request_token(SERVICE_URL)
    assert token.encrypted is False and token.encrypted_for is None


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_call_service_passes_the_encrypted_bytes_on_unchanged(sts_keys, clock, rp_key, soap):
    party = RelyingParty(SERVICE_URL, certificate_pem=rp_key.certificate_pem)
    token = client(sts_keys, clock, party).request_token(SERVICE_URL)
    sent: list[bytes] = []

    def transport(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        sent.append(body)
        return 200, "text/xml" if soap == "1.1" else "application/soap+xml", REPLY.replace(
            b"http://schemas.xmlsoap.org/soap/envelope/", ns.SOAP11.encode() if soap == "1.1" else ns.SOAP12.encode())

    call_service(SERVICE_URL, token, echo_payload("x"), soap_version=soap, transport=transport)
    [body] = sent
    assert body.count(token.assertion) == 1
    assert body == service_request(token, echo_payload("x"), soap_version=soap)[0]
    security = etree.fromstring(body).find(f".//{{{ns.WSSE}}}Security")
    assert [child.tag for child in security] == [f"{{{ns.SAML2}}}EncryptedAssertion"]
