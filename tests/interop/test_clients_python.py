"""Real Python clients against a real gunicorn STS: msal's own WS-Trust modules and zeep.

msal (``msal.wstrust_request.send_request`` / ``msal.wstrust_response``) sends
the AD FS ``usernamemixed`` shape: SOAP 1.2, WS-Addressing with
mustUnderstand, a Timestamp, PasswordText without a ``Type``, no TokenType; it
reads the answer with regular expressions. zeep sends WS-Security
UsernameToken PasswordText or PasswordDigest through the STS's ``?wsdl``. Each
token is checked with xmlsec1 against the demo STS certificate, and the msal
one is also presented to the demo echo service (the relying party).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests
import zeep
from msal import wstrust_request, wstrust_response
from msal.mex import Mex
from zeep.wsse.username import UsernameToken

from test_shapes import TRUST_NS, assert_our_signed_assertion, cut_assertion, q, rstr_element
from test_wsdl import rst_content, zeep_issue
from wstrust_wsgi import call_service, ns
from wstrust_wsgi.sts import wsdl
from wstrust_wsgi.cli import ECHO_NS, echo_payload as _echo_payload

MSAL_ACTIONS = {"1.3": Mex.ACTION_13, "2005": Mex.ACTION_2005}


class RecordingSession(requests.Session):
    """A real requests session that keeps the last response, so the test sees what msal parsed."""

    last: requests.Response | None = None

    def post(self, url, **kwargs):  # type: ignore[no-untyped-def, override]
        self.last = super().post(url, **kwargs)
        return self.last


def msal_key_type(trust: str) -> str:
    return f"{ns.WST13}/Bearer" if trust == "1.3" else ns.WST2005_NO_PROOF_KEY


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_msal_send_request_gets_our_signed_token(demo_servers, trust, tmp_path):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    session = RecordingSession()
    result = wstrust_request.send_request(
        "admin", "admin", service_url, sts_url, MSAL_ACTIONS[trust], session, timeout=20,
    )
    assert result["type"] == wstrust_response.SAML_TOKEN_TYPE_V2
    assert session.last is not None and session.last.status_code == 200
    raw = session.last.content
    # msal hands on exactly the assertion bytes the STS sent: ours, signed, verbatim
    assert result["token"] == cut_assertion(raw)
    assert_our_signed_assertion(result["token"], sts_url, tmp_path)
    rstr = rstr_element(raw, "1.2", trust)
    assert rstr.findtext(q(TRUST_NS[trust], "KeyType")) == msal_key_type(trust)
    # and the relying party admits it
    reply = call_service(service_url, result["token"], _echo_payload("from msal"), soap_version="1.1")
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_msal_parse_response_reads_the_raw_rstr(demo_servers, trust):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    session = RecordingSession()
    wstrust_request.send_request("admin", "admin", service_url, sts_url, MSAL_ACTIONS[trust], session, timeout=20)
    assert session.last is not None
    # msal 1.x: parse_response(body) -> {"token": bytes, "type": str}; the token type is read, not passed
    parsed = wstrust_response.parse_response(session.last.text)
    assert parsed["type"] == wstrust_response.SAML_TOKEN_TYPE_V2
    assert parsed["token"].startswith(b"<Assertion ") and parsed["token"].endswith(b"</Assertion>")


@pytest.mark.parametrize(("username", "password", "code"), [
    ("admin", "wrong", "FailedAuthentication"),
    ("alice", "alice", "RequestFailed"),  # good password, no admin role
])
def test_msal_reads_the_sts_refusal_as_a_fault(demo_servers, username, password, code):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    session = RecordingSession()
    with pytest.raises(RuntimeError, match="WsTrust server returned error in RSTR") as raised:
        wstrust_request.send_request(username, password, service_url, sts_url, Mex.ACTION_13, session, timeout=20)
    assert session.last is not None and session.last.status_code >= 400
    error = wstrust_response.parse_error(session.last.text)
    assert error is not None and error["code"] == f"wst:{code}" and error["reason"]
    assert "Assertion" not in str(raised.value)


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
@pytest.mark.parametrize("digest", [False, True], ids=["PasswordText", "PasswordDigest"])
def test_zeep_username_token_gets_a_token(demo_servers, soap, digest, tmp_path):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    answer = zeep_issue(sts_url, service_url, "1.3", soap, UsernameToken("admin", "admin", use_digest=digest))
    assert_our_signed_assertion(cut_assertion(answer), sts_url, tmp_path)


@pytest.mark.parametrize("zulu", [False, True], ids=["offset-created", "zulu-created"])
def test_zeep_digest_with_either_created_format_gets_a_token(demo_servers, zulu, tmp_path):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    token = UsernameToken("admin", "admin", use_digest=True, zulu_timestamp=zulu,
                          created=datetime.now(timezone.utc).replace(microsecond=0))
    answer = zeep_issue(sts_url, service_url, "2005", "1.2", token, token_type=ns.SAML1)
    assertion = assert_our_signed_assertion(cut_assertion(answer), sts_url, tmp_path)
    assert assertion.tag == q(ns.SAML1, "Assertion")


def test_zeep_digest_with_a_wrong_password_gets_no_token(demo_servers):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    client = zeep.Client(f"{sts_url}?wsdl", wsse=UsernameToken("admin", "wrong", use_digest=True))
    service = client.bind(wsdl.SERVICE_NAME, wsdl.port_name("1.3", "1.1"))
    with pytest.raises(zeep.exceptions.Fault) as raised:
        service.Issue(_value_1=rst_content("1.3", service_url))
    assert raised.value.code is not None and "FailedAuthentication" in raised.value.code
