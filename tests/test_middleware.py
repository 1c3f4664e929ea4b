"""middleware.py: RelyingPartyMiddleware admits only requests carrying one valid SAML bearer token.

Requests go through WebTest to the real middleware. Refused requests must come
back as a SOAP fault in the request's SOAP version (HTTP 500 for SOAP 1.1, 400
for a SOAP 1.2 Sender fault) with the precise code, and must never reach the
wrapped app, which is a recording sentinel.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest
import webtest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from _forge import (
    ADFS_AUDIENCE,
    ADFS_ISSUER,
    ADFS_SUBJECT,
    ADFS_UPN,
    ADFS_VECTOR,
    DS,
    ECHO_NS,
    ENV_NS,
    MEDIA,
    SOAP11,
    SOAP12,
    WSSE,
    RecordingApp,
    content,
    qn,
    read_fault,
    sign,
    soap_request,
    vector_assertion,
    vector_assertion_bytes,
)
from _support import EMAIL, ISSUER, OTHER_URL, SERVICE_URL, FixedClock, vector
from _support.faults import assert_version_mismatch
from wstrust_wsgi import (
    ConfigurationError,
    RelyingPartyMiddleware,
    VerifiedAssertion,
    WSGITransport,
    call_service,
    ns,
    saml,
)
from wstrust_wsgi.cli import echo_payload as _echo_payload
from wstrust_wsgi.errors import FailedCheck, SecurityWarning
from wstrust_wsgi.testing import TokenFactory
from demo_service.app import echo

PATH = "/services/echo"
SOAP_VERSIONS = pytest.mark.parametrize("soap", ["1.1", "1.2"], ids=["soap1.1", "soap1.2"])
#: The fault code of a malformed request: soap:Client (SOAP 1.1) or env:Sender (SOAP 1.2).
SOAP_CLIENT = {"1.1": "Client", "1.2": "Sender"}


@pytest.fixture
def recorder():
    return RecordingApp()


@pytest.fixture
def guarded(recorder, sts_keys, clock):
    """The recording sentinel behind a middleware configured exactly like the service_app fixture."""
    middleware = RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert], clock=clock
    )
    return webtest.TestApp(middleware)


@pytest.fixture
def service(service_app):
    return webtest.TestApp(service_app)


def post(app, body: bytes, soap: str = "1.1", *, content_type: str | None = None, **kwargs):
    headers = {"Content-Type": content_type or f"{MEDIA[soap]}; charset=utf-8"}
    return app.post(PATH, body, headers=headers, expect_errors=True, **kwargs)


def assert_fault(response, soap: str, code: str, *, family: str = "wsse"):
    """A Sender/Client fault in the request's SOAP version with ``code`` (wsse:code, or a bare SOAP fault)."""
    assert b"Traceback" not in response.body
    assert response.content_type == MEDIA[soap]
    fault = read_fault(response.body)
    assert fault.envelope_ns == ENV_NS[soap]
    if soap == "1.1":
        assert response.status_int == 500
        expected = qn(WSSE, code) if family == "wsse" else qn(SOAP11, code)
        assert (fault.code, fault.subcode) == (expected, None)
    else:
        assert response.status_int == 400
        assert fault.code == qn(SOAP12, "Sender")
        assert fault.subcode == (qn(WSSE, code) if family == "wsse" else None)
    return fault


def token_for(make_client, audience: str = SERVICE_URL, token_type: str | None = None) -> bytes:
    return make_client().request_token(audience, token_type=token_type).assertion


def timestamp(created: datetime, expires: datetime) -> bytes:
    """A wsu:Timestamp for the Security header."""
    stamp = etree.Element(qn(ns.WSU, "Timestamp"), nsmap={"wsu": ns.WSU})
    etree.SubElement(stamp, qn(ns.WSU, "Created")).text = saml.format_datetime(created)
    etree.SubElement(stamp, qn(ns.WSU, "Expires")).text = saml.format_datetime(expires)
    return etree.tostring(stamp)


# --------------------------------------------------------------------------- admitted


@SOAP_VERSIONS
@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_valid_token_reaches_echo_service(service, make_client, soap, token_type):
    body = soap_request(token_for(make_client, token_type=token_type), version=soap, message="ping")
    response = post(service, body, soap)
    assert response.status_int == 200
    reply = etree.fromstring(response.body).find(f"{qn(ENV_NS[soap], 'Body')}/{qn(ECHO_NS, 'EchoResponse')}")
    assert reply.findtext(qn(ECHO_NS, "Caller")) == "admin"
    assert reply.findtext(qn(ECHO_NS, "Message")) == "ping"


def test_call_service_through_wsgi_transport_gets_the_caller_back(service_app, make_client):
    token = make_client().request_token(SERVICE_URL)
    reply = call_service(SERVICE_URL, token, _echo_payload("hello"), soap_version="1.2",
                         transport=WSGITransport(service_app))
    assert reply.findtext(qn(ECHO_NS, "Caller")) == "admin"
    assert reply.findtext(qn(ECHO_NS, "Message")) == "hello"


@SOAP_VERSIONS
def test_admitted_request_carries_remote_user_assertion_and_whole_body(guarded, recorder, make_client, soap):
    body = soap_request(token_for(make_client), version=soap)
    response = post(guarded, body, soap)
    assert response.status_int == 200 and response.body == b"app was called"
    [call] = recorder.calls
    assert call["REMOTE_USER"] == "admin"
    assertion = call["assertion"]
    assert isinstance(assertion, VerifiedAssertion)
    assert (assertion.subject, assertion.issuer, assertion.audiences) == ("admin", ISSUER, (SERVICE_URL,))
    assert assertion.attributes[EMAIL] == ("admin@example.org",)
    assert call["body"] == body


def test_rollover_middleware_admits_tokens_from_both_trusted_keys(recorder, sts_keys, sts2_keys, clock):
    app = webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert, sts2_keys.cert], clock=clock
    ))
    for keys in (sts_keys, sts2_keys):
        response = post(app, soap_request(sign(keys.load(), saml.SAML2, content(clock.now))))
        assert response.status_int == 200
    assert [c["REMOTE_USER"] for c in recorder.calls] == ["admin", "admin"]


def test_comment_in_nameid_does_not_truncate_remote_user(guarded, recorder, sts_keys, clock):
    data = sign(sts_keys.load(), saml.SAML2, content(clock.now, subject="admin@evil"))
    forged = data.replace(b">admin@evil<", b">adm<!---->in@evil<")
    assert forged != data
    assert post(guarded, soap_request(forged)).status_int == 200
    assert recorder.calls[0]["REMOTE_USER"] == "admin@evil"


def test_valid_timestamp_next_to_the_token_is_accepted(guarded, recorder, make_client, clock):
    stamp = timestamp(clock.now, clock.now + timedelta(minutes=5))
    response = post(guarded, soap_request(token_for(make_client), extra_security=stamp))
    assert response.status_int == 200 and len(recorder.calls) == 1


def test_get_passes_through_when_allowed(recorder, sts_keys, clock):
    app = webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert], clock=clock, allow_get=True
    ))
    assert app.get(PATH + "?wsdl").status_int == 200
    assert recorder.calls[0]["method"] == "GET" and recorder.calls[0]["REMOTE_USER"] is None


# --------------------------------------------------------------------------- refused tokens


@SOAP_VERSIONS
def test_token_for_another_service_is_an_invalid_token(guarded, recorder, make_client, soap):
    token = token_for(make_client, OTHER_URL)
    assert OTHER_URL.encode() in token
    fault = assert_fault(post(guarded, soap_request(token, version=soap), soap), soap, "InvalidSecurityToken")
    assert fault.reason == "The security token was not issued for this service."
    assert recorder.calls == []


@SOAP_VERSIONS
@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_expired_token_is_an_invalid_token(guarded, recorder, make_client, clock, soap, token_type):
    token = token_for(make_client, token_type=token_type)
    clock.advance(minutes=10, seconds=1)  # 5 minutes of life + 5 minutes of skew, and a second
    assert_fault(post(guarded, soap_request(token, version=soap), soap), soap, "InvalidSecurityToken")
    assert recorder.calls == []


def test_token_is_still_admitted_just_inside_the_skew(guarded, recorder, make_client, clock):
    token = token_for(make_client)
    clock.advance(minutes=9, seconds=59)
    assert post(guarded, soap_request(token)).status_int == 200
    assert len(recorder.calls) == 1


@SOAP_VERSIONS
def test_token_not_yet_valid_is_an_invalid_token(guarded, recorder, make_client, clock, soap):
    token = token_for(make_client)
    clock.advance(minutes=-5, seconds=-1)
    assert_fault(post(guarded, soap_request(token, version=soap), soap), soap, "InvalidSecurityToken")
    assert recorder.calls == []


@SOAP_VERSIONS
@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_tampered_attribute_fails_check(guarded, recorder, make_client, soap, token_type):
    token = token_for(make_client, token_type=token_type)
    forged = token.replace(b">admin@example.org<", b">alice@example.org<")
    assert forged != token
    assert_fault(post(guarded, soap_request(forged, version=soap), soap), soap, "FailedCheck")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_tampered_subject_fails_check(guarded, recorder, make_client, soap):
    token = token_for(make_client)
    forged = token.replace(b">admin</NameID>", b">root</NameID>")
    assert forged != token
    assert_fault(post(guarded, soap_request(forged, version=soap), soap), soap, "FailedCheck")
    assert recorder.calls == []


@SOAP_VERSIONS
@pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["saml2.0", "saml1.1"])
def test_rogue_signed_token_with_its_cert_in_key_info_fails_check(
    guarded, recorder, rogue_keys, clock, soap, version
):
    rogue = rogue_keys.load()
    token = sign(rogue, version, content(clock.now))
    embedded = etree.fromstring(token).findtext(f".//{qn(DS, 'X509Certificate')}")
    assert "".join(embedded.split()).encode() == b"".join(rogue.certificate_pem.splitlines()[1:-1])
    fault = assert_fault(post(guarded, soap_request(token, version=soap), soap), soap, "FailedCheck")
    assert fault.reason == FailedCheck.default_reason  # not which certificates are trusted
    assert recorder.calls == []


@SOAP_VERSIONS
def test_unsigned_token_fails_check(guarded, recorder, clock, soap):
    token = TokenFactory(issuer=ISSUER, audience=SERVICE_URL, clock=clock).unsigned("admin").assertion
    assert_fault(post(guarded, soap_request(token, version=soap), soap), soap, "FailedCheck")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_two_assertions_are_invalid_security(guarded, recorder, make_client, soap):
    token = token_for(make_client)
    other = token_for(make_client)
    body = soap_request(token, other, version=soap)
    assert_fault(post(guarded, body, soap), soap, "InvalidSecurity")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_valid_token_next_to_a_rogue_one_is_invalid_security(guarded, recorder, make_client, rogue_keys, clock, soap):
    rogue = sign(rogue_keys.load(), saml.SAML2, content(clock.now, subject="root"))
    body = soap_request(token_for(make_client), rogue, version=soap)
    assert_fault(post(guarded, body, soap), soap, "InvalidSecurity")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_security_header_without_assertion_is_invalid_security(guarded, recorder, soap):
    assert_fault(post(guarded, soap_request(version=soap), soap), soap, "InvalidSecurity")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_missing_security_header_is_invalid_security(guarded, recorder, soap):
    body = soap_request(version=soap, security_headers=0)
    assert_fault(post(guarded, body, soap), soap, "InvalidSecurity")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_two_security_headers_are_invalid_security(guarded, recorder, make_client, soap):
    token = token_for(make_client)
    body = soap_request(token, version=soap, security_headers=2)
    assert body.count(token) == 2
    assert_fault(post(guarded, body, soap), soap, "InvalidSecurity")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_expired_timestamp_is_message_expired(guarded, recorder, make_client, clock, soap):
    stamp = timestamp(clock.now - timedelta(minutes=20), clock.now - timedelta(minutes=15))
    body = soap_request(token_for(make_client), version=soap, extra_security=stamp)
    assert_fault(post(guarded, body, soap), soap, "MessageExpired")
    assert recorder.calls == []


# --------------------------------------------------------------------------- refused messages

_DTD = b'<?xml version="1.0"?>\n<!DOCTYPE s:Envelope [<!ENTITY who "admin">]>\n'


@SOAP_VERSIONS
def test_internal_entity_in_request_is_refused_before_the_token_is_read(guarded, recorder, make_client, soap):
    body = soap_request(token_for(make_client), version=soap, message="&who;")
    body = _DTD + body.split(b"?>", 1)[1].replace(b"&amp;who;", b"&who;")
    assert b"&who;" in body
    fault = assert_fault(post(guarded, body, soap), soap, SOAP_CLIENT[soap], family="soap")
    assert fault.reason == "DTDs are not allowed."
    assert recorder.calls == []


@SOAP_VERSIONS
def test_utf16_dtd_is_refused(guarded, recorder, soap):
    text = soap_request(version=soap).decode("utf-8").split("?>", 1)[1]
    body = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]>' + text).encode("utf-16")
    assert b"DOCTYPE" not in body  # a byte-level scan for ASCII DOCTYPE alone would miss it
    assert_fault(post(guarded, body, soap), soap, SOAP_CLIENT[soap], family="soap")
    assert recorder.calls == []



@SOAP_VERSIONS
def test_body_larger_than_max_body_is_refused(recorder, sts_keys, make_client, clock, soap):
    app = webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert], clock=clock, max_body=8192
    ))
    body = soap_request(token_for(make_client), version=soap, message="x" * 10_000)
    assert len(body) > 8192
    fault = assert_fault(post(app, body, soap), soap, SOAP_CLIENT[soap], family="soap")
    assert fault.reason == "The request body is too large."
    assert recorder.calls == []
    small = soap_request(token_for(make_client), version=soap)
    assert len(small) <= 8192 and post(app, small, soap).status_int == 200


def test_body_larger_than_max_body_without_content_length_is_refused(recorder, sts_keys, make_client, clock):
    middleware = RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert], clock=clock, max_body=8192
    )
    body = soap_request(token_for(make_client), message="x" * 10_000)
    request = webtest.TestRequest.blank(PATH, method="POST", body=body, content_type="text/xml")
    del request.environ["CONTENT_LENGTH"]  # as a chunked request arrives from gunicorn
    request.environ["wsgi.input_terminated"] = True
    response = request.get_response(middleware)
    assert response.status_int == 500
    fault = read_fault(response.body)
    assert (fault.code, fault.reason) == (qn(SOAP11, "Client"), "The request body is too large.")
    assert recorder.calls == []


def test_chunked_request_within_max_body_reaches_the_app_with_its_body(guarded, recorder, make_client):
    body = soap_request(token_for(make_client))
    request = webtest.TestRequest.blank(PATH, method="POST", body=body, content_type="text/xml")
    del request.environ["CONTENT_LENGTH"]
    request.environ["wsgi.input_terminated"] = True
    assert request.get_response(guarded.app).status_int == 200
    assert recorder.calls[0]["body"] == body


@SOAP_VERSIONS
def test_deeply_nested_body_is_refused(guarded, recorder, make_client, soap):
    nested = b"<x>" * 100 + b"</x>" * 100
    body = soap_request(token_for(make_client), version=soap, message="@@")
    body = body.replace(b">@@<", b">" + nested + b"<")
    fault = assert_fault(post(guarded, body, soap), soap, SOAP_CLIENT[soap], family="soap")
    assert fault.reason == "The request is nested too deeply."
    assert recorder.calls == []


@SOAP_VERSIONS
@pytest.mark.parametrize("body", [b"this is not XML", b"", b"<s:Envelope", b"{\"json\": true}"],
                         ids=["text", "empty", "truncated", "json"])
def test_body_that_is_not_xml_is_refused(guarded, recorder, soap, body):
    assert_fault(post(guarded, body, soap), soap, SOAP_CLIENT[soap], family="soap")
    assert recorder.calls == []


@SOAP_VERSIONS
def test_xml_that_is_not_an_envelope_is_refused(guarded, recorder, make_client, soap):
    body = b"<Envelope><Header/><Body/></Envelope>"
    assert_fault(post(guarded, body, soap), soap, SOAP_CLIENT[soap], family="soap")
    assert recorder.calls == []


def test_soap12_envelope_sent_as_text_xml_is_a_version_mismatch(guarded, recorder, make_client):
    body = soap_request(token_for(make_client), version="1.2")
    response = post(guarded, body, content_type="text/xml; charset=utf-8")
    assert response.status_int == 500
    assert response.content_type == "text/xml"
    fault = read_fault(response.body)
    assert (fault.envelope_ns, fault.code) == (SOAP11, qn(SOAP11, "VersionMismatch"))
    assert b"Traceback" not in response.body
    assert_version_mismatch(response.status_int, response.headers["Content-Type"], response.body)
    assert recorder.calls == []


def test_soap11_envelope_sent_as_soap12_is_a_soap11_version_mismatch_with_upgrade(guarded, recorder, make_client):
    """SOAP 1.2 part 1 appendix A, also on the cut-token path's way in: a SOAP 1.1 fault, text/xml."""
    body = soap_request(token_for(make_client), version="1.1")
    response = post(guarded, body, content_type="application/soap+xml; charset=utf-8")
    assert_version_mismatch(response.status_int, response.headers["Content-Type"], response.body)
    assert recorder.calls == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_are_refused_with_405(guarded, recorder, method):
    response = guarded.request(PATH, method=method, expect_errors=True)
    assert response.status_int == 405
    assert response.headers["Allow"] == "POST"
    assert recorder.calls == []


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml", None])
def test_non_soap_content_type_is_refused_with_415(guarded, recorder, make_client, content_type):
    body = soap_request(token_for(make_client))
    headers = {"Content-Type": content_type} if content_type else {}
    response = guarded.post(PATH, body, headers=headers, expect_errors=True)
    assert response.status_int == 415
    assert b"Traceback" not in response.body
    assert recorder.calls == []


# --------------------------------------------------------------------------- real vectors


def test_cxf_unsigned_saml2_request_fails_check(recorder, sts_keys):
    """Apache CXF's request carries an unsigned SAML 2.0 bearer assertion from issuer www.example.com."""
    app = webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience="http://www.sdj.pl", issuer="www.example.com", trusted_certs=[sts_keys.cert],
    ))
    body = vector("cxf_rp_request_soap11_unsigned_saml2_bearer_no_audience.xml").read_bytes()
    fault = assert_fault(post(app, body, "1.1", content_type="text/xml"), "1.1", "FailedCheck")
    assert fault.reason == "The security token is not signed."
    assert recorder.calls == []


def _adfs_app(recorder, *, allow_sha1):
    _, cert = vector_assertion(ADFS_VECTOR)
    return webtest.TestApp(RelyingPartyMiddleware(
        recorder,
        audience=ADFS_AUDIENCE,
        issuer=ADFS_ISSUER,
        trusted_certs=[cert.public_bytes(Encoding.PEM)],
        allow_sha1=allow_sha1,
        clock=FixedClock(datetime(2014, 1, 27, 8, 30, tzinfo=timezone.utc)),
    ))


@SOAP_VERSIONS
def test_real_adfs_token_is_admitted_when_sha1_is_allowed(recorder, soap):
    body = soap_request(vector_assertion_bytes(ADFS_VECTOR), version=soap)
    response = post(_adfs_app(recorder, allow_sha1=True), body, soap)
    assert response.status_int == 200
    [call] = recorder.calls
    assert call["REMOTE_USER"] == ADFS_SUBJECT
    assert call["assertion"].attributes[ADFS_UPN] == ("frizzo@naturalcauses.com",)


@SOAP_VERSIONS
def test_real_adfs_token_is_refused_when_sha1_is_not_allowed(recorder, soap):
    body = soap_request(vector_assertion_bytes(ADFS_VECTOR), version=soap)
    assert_fault(post(_adfs_app(recorder, allow_sha1=False), body, soap), soap, "UnsupportedAlgorithm")
    assert recorder.calls == []


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "overrides",
    [
        {"audience": ""},
        {"audience": []},
        {"audience": [SERVICE_URL, ""]},
        {"issuer": ""},
        {"issuer": ()},
        {"trusted_certs": []},
        {"clock_skew": timedelta(seconds=-1)},
    ],
    ids=["empty-audience", "no-audience", "blank-audience", "empty-issuer", "no-issuer", "no-trusted-certs",
         "negative-skew"],
)
def test_bad_configuration_is_refused_at_construction(recorder, sts_keys, overrides):
    settings = {"audience": SERVICE_URL, "issuer": ISSUER, "trusted_certs": [sts_keys.cert]}
    settings.update(overrides)
    with pytest.raises(ConfigurationError):
        RelyingPartyMiddleware(recorder, **settings)


def test_configuration_error_is_also_a_value_error(recorder):
    with pytest.raises(ValueError):
        RelyingPartyMiddleware(recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[])


# ------------------------------------------------------------------ SecurityWarning


def test_allow_sha1_warns_at_construction(sts_keys):  # type: ignore[no-untyped-def]
    with pytest.warns(SecurityWarning, match="allow_sha1"):
        RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                               allow_sha1=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SecurityWarning)
        RelyingPartyMiddleware(echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert])
