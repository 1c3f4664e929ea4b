"""STS settings: read from a store at run time, PasswordText only over a protected transport."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest
from lxml import etree
from webtest import TestApp

from _support import ISSUER, SERVICE_URL
from wstrust_wsgi import ConfigurationError, RelyingParty, StsSettings, TokenService, WSGITransport, StsClient
from wstrust_wsgi import ns


class MutableSettings:
    """A settings store a test can change, as the CLI changes the registry."""

    def __init__(self, settings: StsSettings) -> None:
        self.current = settings
        self.reads = 0

    def get_settings(self) -> StsSettings:
        self.reads += 1
        return self.current


def post_rst(app, client: StsClient, *, remote_addr: str | None, scheme: str = "http"):
    body = client.build_request(SERVICE_URL)
    environ = {"wsgi.url_scheme": scheme}
    if remote_addr is not None:
        environ["REMOTE_ADDR"] = remote_addr
    return TestApp(app, extra_environ=environ).post(
        "/services/sts", body, content_type="application/soap+xml; charset=utf-8", expect_errors=True)


@pytest.fixture
def store() -> MutableSettings:
    return MutableSettings(StsSettings(issuer=ISSUER))


@pytest.fixture
def sts(sts_keys, users, clock, store) -> TokenService:
    return TokenService(signing_key=sts_keys.load(), users=users, relying_parties=[RelyingParty(SERVICE_URL)],
                        clock=clock, settings=store, settings_ttl=0)


def assertion_of(response) -> etree._Element:
    return etree.fromstring(response.body).find(f".//{{{ns.SAML2}}}Assertion")


@pytest.mark.parametrize("peer", ["10.1.2.3", "192.0.2.7", "2001:db8::1"])
def test_password_text_over_plain_http_from_a_remote_peer_is_refused(sts, make_client, peer):
    response = post_rst(sts, make_client(), remote_addr=peer)
    assert response.status_int == 400
    assert b"FailedAuthentication" in response.body and b"HTTPS" in response.body
    assert assertion_of(response) is None


@pytest.mark.parametrize(("peer", "scheme"), [("127.0.0.1", "http"), ("::1", "http"), ("10.1.2.3", "https"),
                                              (None, "http")])
def test_password_text_is_accepted_over_https_from_loopback_or_in_process(sts, make_client, peer, scheme):
    response = post_rst(sts, make_client(), remote_addr=peer, scheme=scheme)
    assert response.status_int == 200, response.body
    assert assertion_of(response) is not None


def test_password_digest_over_plain_http_from_a_remote_peer_is_accepted(sts, make_client):
    response = post_rst(sts, make_client(digest=True), remote_addr="10.1.2.3")
    assert response.status_int == 200


def test_allow_plaintext_http_opens_plain_http_and_warns_at_start(sts_keys, users, clock, make_client, caplog):
    caplog.set_level(logging.WARNING, logger="wstrust_wsgi.sts")
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users,
                       relying_parties=[RelyingParty(SERVICE_URL)], clock=clock, allow_plaintext_http=True)
    assert "ALLOWED" in caplog.text
    assert post_rst(sts, make_client(), remote_addr="10.1.2.3").status_int == 200


def test_changed_settings_reach_a_running_sts(sts, store, make_client):
    client = make_client(transport=WSGITransport(sts))
    first = client.request_token(SERVICE_URL)
    assert first.expires - first.created == timedelta(minutes=5)
    store.current = dataclasses.replace(store.current, default_lifetime=timedelta(minutes=2),
                                        issuer="urn:renamed", signature_algorithm="rsa-sha512")
    second = client.request_token(SERVICE_URL)
    assert second.expires - second.created == timedelta(minutes=2)
    assert b"<Issuer>urn:renamed</Issuer>" in second.assertion
    assert b"rsa-sha512" in second.assertion
    store.current = dataclasses.replace(store.current, allowed_roles=frozenset({"auditor"}))
    with pytest.raises(Exception) as refused:
        client.request_token(SERVICE_URL)
    assert getattr(refused.value, "local_code", "") == "RequestFailed"


def test_settings_are_cached_for_the_ttl(sts_keys, users, clock, store, make_client):
    sts = TokenService(signing_key=sts_keys.load(), users=users, relying_parties=[RelyingParty(SERVICE_URL)],
                       clock=clock, settings=store, settings_ttl=3600)
    client = make_client(transport=WSGITransport(sts))
    reads = store.reads
    for _ in range(3):
        client.request_token(SERVICE_URL)
    assert store.reads == reads


def test_bad_settings_in_the_store_fail_at_construction(sts_keys, users, clock):
    bad = MutableSettings(StsSettings(issuer=ISSUER, signature_algorithm="rsa-md5"))
    with pytest.raises(ConfigurationError, match="signature_algorithm"):
        TokenService(signing_key=sts_keys.load(), users=users, relying_parties=[], settings=bad)
    with pytest.raises(ConfigurationError, match="issuer"):
        TokenService(signing_key=sts_keys.load(), users=users, relying_parties=[])


def test_relying_party_without_a_lifetime_uses_the_default(sts_keys, users, clock, make_client):
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL)], default_lifetime=timedelta(seconds=90))
    token = make_client(transport=WSGITransport(sts)).request_token(SERVICE_URL)
    assert token.expires - token.created == timedelta(seconds=90)
