"""The STS's registry of bindings: a binding registered for a RequestType is called; others stay InvalidRequest."""

from __future__ import annotations

import pytest
import webtest
from lxml import etree

from wstrust_wsgi import TokenService, ns, soap
from wstrust_wsgi.errors import ConfigurationError
from wstrust_wsgi.sts import IssueBinding, TrustCall, binding_uris

MEDIA = "application/soap+xml; charset=utf-8"


class EchoTypeBinding:
    """A toy binding: answers with the RequestType it was called for, and records its calls."""

    def __init__(self, name: str) -> None:
        self.request_types, self.actions = binding_uris(name)
        self.calls: list[TrustCall] = []

    def answer(self, call: TrustCall) -> bytes:
        self.calls.append(call)
        body = etree.Element("{urn:toy}Answered")
        body.text = call.rst.findtext(f"{{{call.dialect.namespace}}}RequestType")
        return soap.envelope(call.envelope.version, body)


def rst_of_type(make_client, trust: str, request_type: str) -> bytes:  # type: ignore[no-untyped-def]
    root = etree.fromstring(make_client(trust_version=trust).build_request("http://127.0.0.1:8081/services/echo"))
    trust_ns = ns.WST13 if trust == "1.3" else ns.WST2005
    root.find(f".//{{{trust_ns}}}RequestType").text = request_type
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def post(app: TokenService, body: bytes, action: str):  # type: ignore[no-untyped-def]
    return webtest.TestApp(app).post("/services/sts", params=body, expect_errors=True,
                                     content_type=f'{MEDIA}; action="{action}"')


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_a_registered_binding_is_called_for_its_request_type(sts_app, make_client, trust):  # type: ignore[no-untyped-def]
    toy = EchoTypeBinding("Validate")
    sts_app.register_binding(toy)
    trust_ns = ns.WST13 if trust == "1.3" else ns.WST2005
    response = post(sts_app, rst_of_type(make_client, trust, f"{trust_ns}/Validate"), f"{trust_ns}/RST/Validate")
    assert response.status_int == 200
    assert etree.fromstring(response.body).findtext(f".//{{urn:toy}}Answered") == f"{trust_ns}/Validate"
    [call] = toy.calls
    assert call.principal.name == "admin" and call.dialect.namespace == trust_ns


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_an_unregistered_request_type_is_still_invalid_request(sts_app, make_client, trust):  # type: ignore[no-untyped-def]
    toy = EchoTypeBinding("Validate")
    sts_app.register_binding(toy)
    trust_ns = ns.WST13 if trust == "1.3" else ns.WST2005
    for request_type in (f"{trust_ns}/Renew", "urn:example:not-a-request-type"):
        response = post(sts_app, rst_of_type(make_client, trust, request_type), f"{trust_ns}/RST/Issue")
        assert response.status_int == 400
        subcode = etree.fromstring(response.body).findtext(f".//{{{ns.SOAP12}}}Subcode/{{{ns.SOAP12}}}Value")
        assert subcode is not None and subcode.endswith(":InvalidRequest")
    assert toy.calls == []


def test_the_action_must_go_with_the_request_type(sts_app, make_client):  # type: ignore[no-untyped-def]
    toy = EchoTypeBinding("Validate")
    sts_app.register_binding(toy)
    response = post(sts_app, rst_of_type(make_client, "1.3", f"{ns.WST13}/Validate"), f"{ns.WST13}/RST/Issue")
    assert response.status_int == 400 and b"InvalidRequest" in response.body
    assert toy.calls == []


def test_an_unregistered_bindings_action_is_refused_before_authentication(sts_app, make_client):  # type: ignore[no-untyped-def]
    response = post(sts_app, rst_of_type(make_client, "1.3", f"{ns.WST13}/Issue"), f"{ns.WST13}/RST/Validate")
    assert response.status_int == 400 and b"InvalidRequest" in response.body
    assert b"Only the WS-Trust Issue binding is supported." in response.body


def test_a_request_type_is_registered_once(sts_app):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match="already registered"):
        sts_app.register_binding(EchoTypeBinding("Issue"))
    assert IssueBinding.request_types == (f"{ns.WST13}/Issue", f"{ns.WST2005}/Issue")
