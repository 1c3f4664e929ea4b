"""Issue 11 end to end, in-process: our STS encrypts, the client passes the token on, the middleware decrypts.

For the merged tree only (needs the STS side, branch i11-sts, and the
middleware side). The STS encrypts for a relying party's certificate; the
client cannot read the token and splices its bytes into wsse:Security; the
middleware opens it with the matching key, verifies it as a plain token and
calls the app, whose VerifiedAssertion says it arrived encrypted.
"""

from __future__ import annotations

import pytest

from _support import ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles, demo_users
from demo_service.app import echo
from wstrust_wsgi import (
    LegacyCbcKey, RelyingParty, RelyingPartyMiddleware, SigningKey, StsClient, TokenService, WSGITransport,
    call_service,
)
from wstrust_wsgi.cli import ECHO_NS, echo_payload
from wstrust_wsgi.errors import RemoteFault


@pytest.fixture(scope="module")
def rp_key() -> SigningKey:
    return SigningKey.generate("test relying party")


def token_for(sts_keys: KeyFiles, clock: FixedClock, party: RelyingParty, **kwargs):  # type: ignore[no-untyped-def]
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=demo_users(), relying_parties=[party],
                       clock=clock)
    return StsClient(STS_URL, username="admin", password="admin", transport=WSGITransport(sts), clock=clock,
                     **kwargs).request_token(party.address)


def seen(app):  # type: ignore[no-untyped-def]
    """``app`` wrapped to keep the VerifiedAssertion each request carried."""
    kept = []

    def wrapper(environ, start_response):  # type: ignore[no-untyped-def]
        kept.append(environ["wstrust_wsgi.assertion"])
        return app(environ, start_response)

    return wrapper, kept


@pytest.mark.parametrize("token_type, soap", [("2.0", "1.2"), ("1.1", "1.1")])
def test_sts_client_and_middleware_round_trip_an_encrypted_token(sts_keys, clock, rp_key, token_type, soap):
    token = token_for(sts_keys, clock, RelyingParty(SERVICE_URL, token_type=token_type,
                                                    certificate_pem=rp_key.certificate_pem), soap_version=soap)
    assert token.encrypted
    app, kept = seen(echo)
    service = RelyingPartyMiddleware(app, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                     clock=clock, decryption_keys=[rp_key], require_encryption=True)
    reply = call_service(SERVICE_URL, token, echo_payload("sealed"), soap_version=soap,
                         transport=WSGITransport(service))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    [verified] = kept
    assert verified.encrypted and verified.assertion_id == token.assertion_id


def test_a_cbc_token_needs_the_relying_partys_opt_in(sts_keys, clock, rp_key):
    token = token_for(sts_keys, clock, RelyingParty(SERVICE_URL, certificate_pem=rp_key.certificate_pem,
                                                    encryption="aes256-cbc"))
    default = RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                     clock=clock, decryption_keys=[rp_key])
    with pytest.raises(RemoteFault):
        call_service(SERVICE_URL, token, echo_payload("x"), transport=WSGITransport(default))
    opted_in = RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                      clock=clock, decryption_keys=[LegacyCbcKey(rp_key, issuer=ISSUER)])
    reply = call_service(SERVICE_URL, token, echo_payload("x"), transport=WSGITransport(opted_in))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
