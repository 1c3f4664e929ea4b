"""WS-MetadataExchange at ``<sts>/mex``: msal's own MEX reader finds our endpoint, and msal gets a token there.

msal reads MEX with ``msal.mex.Mex`` and requests the token with
``msal.wstrust_request.send_request`` / ``msal.wstrust_response``; here both
talk to the STS in-process through a small adapter with the ``get``/``post``
of the ``requests`` session msal is given in production. The STS is reached
over https (``wsgi.url_scheme``), as msal requires of a MEX endpoint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from lxml import etree
from msal import mex as msal_mex
from msal import wstrust_request, wstrust_response
from webtest import TestApp

from _support import ISSUER, SERVICE_URL, FixedClock, KeyFiles, demo_users, echo_service, vector
from wstrust_wsgi import RelyingParty, TokenService, ns
from wstrust_wsgi._wsgi import mount
from wstrust_wsgi.testing import soap_request

PUBLIC = "https://sts.test/services/sts"


class _Answer:
    def __init__(self, status: int, text: str) -> None:
        self.status_code, self.text = status, text

    def raise_for_status(self) -> None:
        assert self.status_code < 400, self.text


class InProcessHttp:
    """The ``get``/``post`` msal calls on its http client, answered by a WSGI app over https."""

    def __init__(self, app: Any) -> None:
        self._app = TestApp(app, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "sts.test"})

    def get(self, url: str, **kwargs: Any) -> _Answer:
        answer = self._app.get(urlsplit(url).path, expect_errors=True)
        return _Answer(answer.status_int, answer.text)

    def post(self, url: str, data: str, headers: dict[str, str], **kwargs: Any) -> _Answer:
        answer = self._app.post(urlsplit(url).path, data.encode("utf-8"), headers=headers, expect_errors=True)
        return _Answer(answer.status_int, answer.text)


@pytest.fixture
def deployed(sts_keys: KeyFiles, clock: FixedClock) -> Any:
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=demo_users(),
                       relying_parties=RelyingParty(SERVICE_URL), clock=clock, public_url=PUBLIC)
    return mount("/services/sts", sts, subpaths=("/mex",))


def test_msal_reads_our_mex_and_gets_a_token_from_the_endpoint_it_picked(
        deployed: Any, sts_keys: KeyFiles, clock: FixedClock) -> None:
    http = InProcessHttp(deployed)
    endpoint = msal_mex.send_request(PUBLIC + "/mex", http)
    assert endpoint == {"address": PUBLIC, "action": msal_mex.Mex.ACTION_13}
    result = wstrust_request.send_request("admin", "admin", SERVICE_URL, endpoint["address"], endpoint["action"], http)
    assert result["type"] == wstrust_response.SAML_TOKEN_TYPE_V2
    body, headers = soap_request(result["token"], b'<e:echo xmlns:e="urn:demo:echo">hi</e:echo>')
    admitted = TestApp(echo_service(sts_keys, clock)).post("/", body, headers=headers)
    assert admitted.status_int == 200


def test_both_trust_versions_are_offered_over_soap12_only(deployed: Any) -> None:
    document = InProcessHttp(deployed).get(PUBLIC + "/mex").text
    reader = msal_mex.Mex(document)
    endpoints = reader._get_endpoints(reader._get_bindings(), reader._get_username_password_policy_ids())
    assert sorted(e["action"] for e in endpoints) == sorted([msal_mex.Mex.ACTION_13, msal_mex.Mex.ACTION_2005])
    root = etree.fromstring(document.encode())
    assert root.find(f"{{{ns.WSDL}}}binding/{{{ns.WSDL_SOAP11}}}binding") is None


def test_the_adfs_mex_vector_reads_the_same_way() -> None:
    """The shape we copy: msal finds AD FS's usernamemixed endpoint in its real MEX document."""
    found = msal_mex.Mex(vector("breadth/msal-python_adfs-mex-wsdl.xml").read_text()).get_wstrust_username_password_endpoint()
    assert found["address"].endswith("/adfs/services/trust/13/usernamemixed") and found["action"] == msal_mex.Mex.ACTION_13


def _transfer_get(action: str = ns.WS_TRANSFER_GET, body: str = "") -> bytes:
    return (f'<s:Envelope xmlns:s="{ns.SOAP12}" xmlns:a="{ns.WSA10}"><s:Header><a:Action>{action}</a:Action>'
            f'<a:MessageID>urn:uuid:1234</a:MessageID><a:To>{PUBLIC}/mex</a:To></s:Header>'
            f'<s:Body>{body}</s:Body></s:Envelope>').encode()


def test_ws_transfer_get_answers_the_wsdl_in_a_metadata_section(deployed: Any) -> None:
    app = TestApp(deployed, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "sts.test"})
    answer = app.post("/services/sts/mex", _transfer_get(), headers={"Content-Type": "application/soap+xml"})
    root = etree.fromstring(answer.body)
    section = root.find(f".//{{{ns.WSX}}}Metadata/{{{ns.WSX}}}MetadataSection")
    assert section is not None and section.get("Dialect") == ns.WSX_DIALECT_WSDL
    assert section[0].tag == f"{{{ns.WSDL}}}definitions"
    assert root.findtext(f".//{{{ns.WSA10}}}RelatesTo") == "urn:uuid:1234"
    assert root.findtext(f".//{{{ns.WSA10}}}Action") == ns.WS_TRANSFER_GET_RESPONSE
    bare = app.get("/services/sts/mex").body
    assert etree.tostring(section[0], method="c14n", exclusive=True) == etree.tostring(
        etree.fromstring(bare), method="c14n", exclusive=True)


@pytest.mark.parametrize(("action", "body", "reason"), [
    ("urn:other", "", b"answers WS-Transfer Get"),
    (ns.WS_TRANSFER_GET, "<x/>", b"empty Body"),
])
def test_other_posts_to_mex_are_faults(deployed: Any, action: str, body: str, reason: bytes) -> None:
    app = TestApp(deployed, extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "sts.test"})
    answer = app.post("/services/sts/mex", _transfer_get(action, body),
                      headers={"Content-Type": "application/soap+xml"}, expect_errors=True)
    assert answer.status_int in (400, 500) and reason in answer.body and b"Traceback" not in answer.body
