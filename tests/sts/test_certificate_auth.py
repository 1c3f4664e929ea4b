"""X.509-authenticated requests (AD FS ``certificatemixed``): a BinarySecurityToken and a signature by its key.

Each request is built by :class:`StsClient` with ``client_cert=`` (round
trips) or built so and then altered with lxml (attacks); every refusal is a
fault and no token, with its precise reason in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from lxml import etree

from _support import ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from wstrust_wsgi import (MemoryUserStore, RelyingParty, SigningKey, StsClient, TokenService, User, WSGITransport,
                          ns)
from wstrust_wsgi import _xml
from wstrust_wsgi._issued import raise_for_fault
from wstrust_wsgi.client import _post
from wstrust_wsgi.errors import ConfigurationError, RemoteFault

_BASE = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
ALICE_CERT = SigningKey.generate("alice", valid_from=_BASE - dt.timedelta(days=1), days=30)
OTHER_KEY = SigningKey.generate("alice", valid_from=_BASE - dt.timedelta(days=1), days=30)  # same name, unregistered
EXPIRED = SigningKey.generate("bob", valid_from=_BASE - dt.timedelta(days=40), days=30)
WSSE = f"{{{ns.WSSE}}}"
WSU_ID = f"{{{ns.WSU}}}Id"


@pytest.fixture
def sts(sts_keys: KeyFiles, clock: FixedClock) -> TokenService:
    users = MemoryUserStore([User("alice", "alice", roles=["everyone"], certificates=[ALICE_CERT.certificate_pem]),
                             User("bob", "bob", certificates=[EXPIRED.certificate_pem])])
    return TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
                        relying_parties=[RelyingParty(SERVICE_URL)], allowed_roles="everyone")


def client(sts: TokenService, key: SigningKey = ALICE_CERT, **kwargs: Any) -> StsClient:
    return StsClient(STS_URL, client_cert=key, transport=WSGITransport(sts), clock=sts._clock, **kwargs)


def send(sts: TokenService, body: bytes) -> RemoteFault:
    """Post ``body`` as the client would and return the fault it gets (failing if a token comes back)."""
    with pytest.raises(RemoteFault) as refused:
        post(sts, body)
    return refused.value


def post(sts: TokenService, body: bytes) -> None:
    """Send ``body`` as the client sends an RST; RemoteFault if the STS answers with a fault."""
    caller = client(sts)
    status, data = _post(caller.transport, STS_URL, caller.soap, caller.dialect.action("Issue"), body)
    raise_for_fault(_xml.parse(data), status)


@pytest.mark.parametrize(("trust", "soap"), [("1.3", "1.2"), ("2005", "1.1"), ("1.3", "1.1"), ("2005", "1.2")])
def test_a_registered_certificate_gets_a_token_for_its_user(sts: TokenService, trust: str, soap: str) -> None:
    token = client(sts, trust_version=trust, soap_version=soap).request_token(SERVICE_URL)
    name_id = etree.fromstring(token.assertion).find(".//{urn:oasis:names:tc:SAML:2.0:assertion}NameID")
    assert name_id is not None and name_id.text == "alice"


def test_the_request_carries_a_binary_security_token_and_no_password(sts: TokenService) -> None:
    root = etree.fromstring(client(sts).build_request(SERVICE_URL))
    assert root.find(f".//{WSSE}UsernameToken") is None
    bst = root.find(f".//{WSSE}BinarySecurityToken")
    assert bst is not None and bst.get("ValueType") == ns.WSSE_X509V3
    reference = root.find(f".//{WSSE}SecurityTokenReference/{WSSE}Reference")
    assert reference is not None and reference.get("URI") == "#" + bst.get(WSU_ID)


def test_username_and_certificate_together_are_refused_by_the_client() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        StsClient(STS_URL, username="alice", password="alice", client_cert=ALICE_CERT)


def test_a_second_signature_is_refused_by_the_client_before_sending(sts: TokenService) -> None:
    with pytest.raises(ConfigurationError, match="one signature per request"):
        client(sts).request_token(SERVICE_URL, key_type="public", client_key=OTHER_KEY)


def test_an_unknown_certificate_is_refused_whatever_its_subject(sts: TokenService,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "wstrust_wsgi"), pytest.raises(RemoteFault) as refused:
        client(sts, OTHER_KEY).request_token(SERVICE_URL)
    assert refused.value.code.endswith("FailedAuthentication")
    assert "registered to no user" in caplog.text


def test_an_expired_registered_certificate_is_refused(sts: TokenService, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "wstrust_wsgi"), pytest.raises(RemoteFault) as refused:
        client(sts, EXPIRED).request_token(SERVICE_URL)
    assert refused.value.code.endswith("FailedAuthentication")
    assert "not now" in caplog.text


@pytest.mark.parametrize("kind", ["Timestamp", "Body"])
def test_a_signature_not_covering_the_timestamp_or_body_is_refused(sts: TokenService, kind: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "wstrust_wsgi"):
        fault = send(sts, _signed_without(sts, kind))
    assert fault.code.endswith("FailedCheck") and "does not cover" in fault.reason
    assert f"does not cover the message's {kind}" in caplog.text


def _signed_without(sts: TokenService, kind: str) -> bytes:
    """A request signed properly by Alice's key, but over everything except ``kind``."""
    from wstrust_wsgi.xmldsig import Signer
    root = etree.fromstring(client(sts).build_request(SERVICE_URL))
    security = root.find(f".//{WSSE}Security")
    signature = security.find(f"{{{ns.DS}}}Signature")
    key_info = signature.find(f"{{{ns.DS}}}KeyInfo")
    stamp = security.find(f"{{{ns.WSU}}}Timestamp")
    body = root[-1]
    kept = [(e.get(WSU_ID), e) for e in (stamp, body) if etree.QName(e).localname != kind]
    fresh = Signer(ALICE_CERT.private_key, "rsa-sha256").detached(kept)
    fresh.append(key_info)
    security.replace(signature, fresh)
    return etree.tostring(root)


def test_a_signature_by_another_key_than_the_tokens_is_refused(sts: TokenService) -> None:
    assert send(sts, _other_key_signed(sts)).code.endswith("FailedCheck")


def test_a_stale_timestamp_is_refused(sts: TokenService, clock: FixedClock) -> None:
    body = client(sts).build_request(SERVICE_URL)
    clock.advance(dt.timedelta(minutes=20))
    assert send(sts, body).code.endswith("MessageExpired")


def test_a_replayed_signature_is_refused(sts: TokenService) -> None:
    body = client(sts).build_request(SERVICE_URL)
    post(sts, body)
    fault = send(sts, body)
    assert fault.code.endswith("FailedAuthentication")
    assert fault.reason == "The X.509 certificate or signature was not accepted."


def test_a_username_token_beside_the_certificate_is_refused_as_ambiguous(sts: TokenService) -> None:
    from wstrust_wsgi import wssecurity
    root = etree.fromstring(client(sts).build_request(SERVICE_URL))
    root.find(f".//{WSSE}Security").append(wssecurity.build_username_token("alice", "alice", digest=False,
                                                                          now=sts._clock()))
    fault = send(sts, etree.tostring(root))
    assert fault.code.endswith("FailedAuthentication") and "not both" in fault.reason


def test_roles_apply_as_for_a_password(sts_keys: KeyFiles, clock: FixedClock) -> None:
    users = MemoryUserStore([User("alice", "alice", roles=["everyone"], certificates=[ALICE_CERT.certificate_pem])])
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL)], allowed_roles="admin")
    with pytest.raises(RemoteFault) as refused:
        client(sts).request_token(SERVICE_URL)
    assert refused.value.reason == "The user is not authorized to request a token."


def _other_key_signed(sts: TokenService) -> bytes:
    """Alice's registered certificate in the BinarySecurityToken, the signature by another key."""
    root = etree.fromstring(client(sts, OTHER_KEY).build_request(SERVICE_URL))
    root.find(f".//{WSSE}BinarySecurityToken").text = etree.fromstring(
        client(sts).build_request(SERVICE_URL)).find(f".//{WSSE}BinarySecurityToken").text
    return etree.tostring(root)


def test_bad_signatures_count_for_lockout_like_wrong_passwords(sts_keys: KeyFiles, clock: FixedClock) -> None:
    from wstrust_wsgi import LockoutPolicy
    users = MemoryUserStore([User("alice", "alice", roles=["admin"], certificates=[ALICE_CERT.certificate_pem])])
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL)], lockout=LockoutPolicy(max_failures=2))
    for _ in range(2):
        assert send(sts, _other_key_signed(sts)).code.endswith("FailedCheck")
    with pytest.raises(RemoteFault) as locked:  # now a good signature is refused too ...
        client(sts).request_token(SERVICE_URL)
    assert locked.value.code.endswith("FailedAuthentication")
    with pytest.raises(RemoteFault):  # ... and the password: the same user is locked
        StsClient(STS_URL, username="alice", password="alice", transport=WSGITransport(sts),
                  clock=clock).request_token(SERVICE_URL)


def test_an_unsigned_wsa_to_is_refused(sts: TokenService) -> None:
    root = etree.fromstring(client(sts).build_request(SERVICE_URL))
    header = root.find(f"{{{etree.QName(root).namespace}}}Header")
    etree.SubElement(header, f"{{{ns.WSA10}}}To").text = "https://elsewhere.example/sts"
    fault = send(sts, etree.tostring(root))
    assert fault.code.endswith("FailedCheck") and "does not cover" in fault.reason


@pytest.mark.parametrize(("trust", "soap"), [("1.3", "1.2"), ("2005", "1.1")])
def test_validate_and_cancel_are_signed_with_the_certificate_too(sts_keys: KeyFiles, clock: FixedClock, trust: str,
                                                                  soap: str) -> None:
    """The token spliced into the Validate and Cancel requests keeps its signature under the request's own."""
    from wstrust_wsgi import MemoryTokenStore
    users = MemoryUserStore([User("alice", "alice", roles=["admin"], certificates=[ALICE_CERT.certificate_pem])])
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL)], issued_tokens=MemoryTokenStore())
    alice = client(sts, trust_version=trust, soap_version=soap)
    token = alice.request_token(SERVICE_URL)
    assert alice.validate(token).valid
    alice.cancel(token)
    assert not alice.validate(token).valid


def test_a_timestamp_expiring_beyond_the_window_is_refused(sts: TokenService) -> None:
    """The replay cache keeps a signature until its Timestamp expires: a long one would pin the entry."""
    from wstrust_wsgi import wssecurity
    root = etree.fromstring(client(sts).build_request(SERVICE_URL))
    security = root.find(f".//{WSSE}Security")
    for child in list(security):
        security.remove(child)
    security.append(wssecurity.build_timestamp(sts._clock(), dt.timedelta(days=365)))
    wssecurity.sign_message(root, security, ALICE_CERT.private_key, method="rsa-sha256",
                            binary_token=ALICE_CERT.certificate)
    fault = send(sts, etree.tostring(root))
    assert fault.code.endswith("InvalidSecurity") and "too far" in fault.reason
