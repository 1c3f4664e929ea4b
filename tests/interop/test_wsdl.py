"""``GET <endpoint>?wsdl``: the WSDL 1.1 + WS-SecurityPolicy document, read by a real zeep client.

zeep loads the document from a real gunicorn STS, builds the RST through the
inline schema's ``xs:any`` content and calls ``Issue`` on each of the four
ports with its own ``UsernameToken``; it must get a signed token back.
"""

from __future__ import annotations

import pytest
import zeep
from lxml import etree
from webob import Request
from zeep.wsse.username import UsernameToken

from test_shapes import TRUST_NS, assert_our_signed_assertion, cut_assertion, http_get, http_post, q
from _support import ISSUER, SERVICE_URL
from wstrust_wsgi import ConfigurationError, RelyingParty, TokenService, ns
from wstrust_wsgi.sts import wsdl

WSDL = "http://schemas.xmlsoap.org/wsdl/"
SP12 = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
SP11 = "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy"
PORTS = [("1.3", "1.1"), ("1.3", "1.2"), ("2005", "1.1"), ("2005", "1.2")]
BEARER = {"1.3": f"{ns.WST13}/Bearer", "2005": ns.WST2005_NO_PROOF_KEY}


def rst_content(trust: str, applies_to: str, token_type: str | None = None) -> list[etree._Element]:
    """The RST's children as lxml elements, for the schema's xs:any (zeep's ``_value_1``)."""
    t = TRUST_NS[trust]
    children = []
    if token_type is not None:
        token = etree.Element(q(t, "TokenType"), nsmap={"wst": t})
        token.text = token_type
        children.append(token)
    request_type = etree.Element(q(t, "RequestType"), nsmap={"wst": t})
    request_type.text = f"{t}/Issue"
    applies = etree.Element(q(ns.WSP12, "AppliesTo"), nsmap={"wsp": ns.WSP12, "wsa": ns.WSA10})
    address = etree.SubElement(etree.SubElement(applies, q(ns.WSA10, "EndpointReference")), q(ns.WSA10, "Address"))
    address.text = applies_to
    key_type = etree.Element(q(t, "KeyType"), nsmap={"wst": t})
    key_type.text = BEARER[trust]
    return [*children, request_type, applies, key_type]


def zeep_issue(sts_url: str, service_url: str, trust: str, soap: str, wsse, **issue_kwargs) -> bytes:  # type: ignore[no-untyped-def]
    """Load ``?wsdl`` with zeep, bind the port for (trust, soap), call Issue; the raw response body."""
    client = zeep.Client(f"{sts_url}?wsdl", wsse=wsse)
    service = client.bind(wsdl.SERVICE_NAME, wsdl.port_name(trust, soap))
    with client.settings(raw_response=True):
        response = service.Issue(_value_1=rst_content(trust, service_url, **issue_kwargs))
    assert response.status_code == 200, response.content[:2000]
    media = "text/xml" if soap == "1.1" else "application/soap+xml"
    assert response.headers["Content-Type"].startswith(media)
    return response.content


def _document(sts_url: str) -> etree._Element:
    status, headers, body = http_get(f"{sts_url}?wsdl")
    assert status == 200
    return etree.fromstring(body)


@pytest.mark.parametrize("query", ["wsdl", "WSDL"])
def test_get_wsdl_answers_the_document_as_text_xml_with_the_endpoint_address(demo_servers, query):  # noqa: F811
    sts_url, _, _ = demo_servers
    status, headers, body = http_get(f"{sts_url}?{query}")
    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    root = etree.fromstring(body)
    assert root.tag == q(WSDL, "definitions")
    addresses = [a.get("location") for a in root.iter(q(wsdl.WSDL_SOAP11, "address"), q(wsdl.WSDL_SOAP12, "address"))]
    assert addresses == [sts_url] * 4


@pytest.mark.parametrize("query", ["", "?xsd=xsd0", "?wsdl=wsdl0", "?singleWsdl"])
def test_other_gets_are_still_405(demo_servers, query):  # noqa: F811
    sts_url, _, _ = demo_servers
    status, headers, _ = http_get(f"{sts_url}{query}")
    assert status == 405
    assert headers["allow"] == "POST"


def test_post_to_the_wsdl_url_is_still_the_token_service(demo_servers):  # noqa: F811
    sts_url, _, _ = demo_servers
    status, _, body = http_post(f"{sts_url}?wsdl", b"<not-soap/>", {"Content-Type": "text/xml"})
    assert status == 500 and b"Fault" in body


def test_the_address_follows_the_url_the_client_used(sts_app):
    """In-process, through TokenService.respond: scheme, host, port and mount path come from the request."""
    response = Request.blank("https://sts.example.org:8443/services/sts?WSDL").get_response(sts_app)
    assert response.status_int == 200
    assert response.content_type == "text/xml"
    document = etree.fromstring(response.body)
    locations = {a.get("location") for a in document.iter(q(wsdl.WSDL_SOAP11, "address"),
                                                           q(wsdl.WSDL_SOAP12, "address"))}
    assert locations == {"https://sts.example.org:8443/services/sts"}


def _locations(response) -> set[str]:  # type: ignore[no-untyped-def]
    document = etree.fromstring(response.body)
    return {a.get("location") for a in document.iter(q(wsdl.WSDL_SOAP11, "address"), q(wsdl.WSDL_SOAP12, "address"))}


def test_a_public_url_is_advertised_instead_of_the_url_the_request_came_in_on(sts_keys, users):
    """Behind a proxy the STS sees the proxy's inner URL (plain HTTP, an internal host and port)."""
    public = "https://sts.example.org/services/sts"
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users,
                       relying_parties=[RelyingParty(SERVICE_URL)], public_url=public)
    for inner in ("http://127.0.0.1:8000/services/sts?wsdl", "http://10.0.0.7/services/sts?WSDL"):
        response = Request.blank(inner).get_response(sts)
        assert response.status_int == 200 and _locations(response) == {public}


@pytest.mark.parametrize("bad", ["sts.example.org/services/sts", "urn:example:sts", "ftp://sts.example.org/sts",
                                 "https://sts.example.org/sts?wsdl", "https://u@sts.example.org/sts",
                                 "https://sts.example.org/sts#x", "https:///sts", " https://sts.example.org/sts"])
def test_a_public_url_that_clients_could_not_use_is_refused_at_construction(sts_keys, users, bad):
    with pytest.raises(ConfigurationError, match="public_url"):
        TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=users, relying_parties=[], public_url=bad)


def test_ports_bindings_and_actions_cover_both_trust_and_soap_versions(demo_servers):  # noqa: F811
    root = _document(demo_servers[0])
    service = root.find(q(WSDL, "service"))
    assert service.get("name") == "SecurityTokenService"
    ports = {p.get("name"): p for p in service.iter(q(WSDL, "port"))}
    assert sorted(ports) == sorted(wsdl.port_name(t, s) for t, s in PORTS)
    bindings = {b.get("name"): b for b in root.iter(q(WSDL, "binding"))}
    for trust, soap in PORTS:
        binding = bindings[ports[wsdl.port_name(trust, soap)].get("binding").split(":", 1)[1]]
        binding_ns = wsdl.WSDL_SOAP11 if soap == "1.1" else wsdl.WSDL_SOAP12
        assert binding.find(q(binding_ns, "binding")).get("transport") == "http://schemas.xmlsoap.org/soap/http"
        operation = binding.find(q(WSDL, "operation"))
        assert operation.get("name") == "Issue"
        assert operation.find(q(binding_ns, "operation")).get("soapAction") == f"{TRUST_NS[trust]}/RST/Issue"
    messages = {m.get("name"): m.find(q(WSDL, "part")).get("element") for m in root.iter(q(WSDL, "message"))}
    assert messages == {  # the demo STS keeps an issued-token store: Validate, Renew and Cancel beside Issue
        name: element for operation in ("Issue", "Validate", "Renew", "Cancel") for name, element in {
            f"WSTrust13{operation}Request": "wst:RequestSecurityToken",
            f"WSTrust13{operation}Response": "wst:RequestSecurityTokenResponseCollection",
            f"WSTrustFeb2005{operation}Request": "t:RequestSecurityToken",
            f"WSTrustFeb2005{operation}Response": "t:RequestSecurityTokenResponse",
        }.items()
    }
    assert root.nsmap["wst"] == ns.WST13 and root.nsmap["t"] == ns.WST2005


@pytest.mark.parametrize(("trust", "sp", "trust_assertion"), [("1.3", SP12, "Trust13"), ("2005", SP11, "Trust10")])
def test_bindings_reference_a_username_token_over_transport_policy(demo_servers, trust, sp, trust_assertion):  # noqa: F811
    root = _document(demo_servers[0])
    policies = {p.get(q(ns.WSU, "Id")): p for p in root.findall(q(ns.WSP12, "Policy"))}
    label = "WSTrust13" if trust == "1.3" else "WSTrustFeb2005"
    for binding in root.iter(q(WSDL, "binding")):
        if binding.get("type") != f"tns:{label}":
            continue
        reference = binding.find(q(ns.WSP12, "PolicyReference"))
        policy = policies[reference.get("URI").removeprefix("#")]
        (alternative,) = policy.findall(f"{q(ns.WSP12, 'ExactlyOne')}/{q(ns.WSP12, 'All')}")
        p = q(ns.WSP12, "Policy")
        transport = alternative.find(q(sp, "TransportBinding"))
        assert transport.find(f"{p}/{q(sp, 'TransportToken')}/{p}/{q(sp, 'HttpsToken')}") is not None
        username = alternative.find(f"{q(sp, 'SignedSupportingTokens')}/{p}/{q(sp, 'UsernameToken')}")
        assert username.get(q(sp, "IncludeToken")) == f"{sp}/IncludeToken/AlwaysToRecipient"
        assert username.find(f"{p}/{q(sp, 'WssUsernameToken10')}") is not None
        assert alternative.find(q(sp, trust_assertion)) is not None


@pytest.mark.parametrize(("trust", "soap"), PORTS)
@pytest.mark.parametrize("digest", [False, True], ids=["PasswordText", "PasswordDigest"])
def test_zeep_loads_the_wsdl_and_gets_a_token_through_each_port(demo_servers, trust, soap, digest, tmp_path):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    answer = zeep_issue(sts_url, service_url, trust, soap, UsernameToken("admin", "admin", use_digest=digest))
    assert_our_signed_assertion(cut_assertion(answer), sts_url, tmp_path)
    # zeep followed the document: the answer is in the port's WS-Trust version
    collection = b"RequestSecurityTokenResponseCollection" in answer
    assert collection == (trust == "1.3")
    assert TRUST_NS[trust].encode() in answer
    # the wsam:Action in the WSDL makes zeep add wsa:Action/MessageID/To; the STS relates its answer
    header = etree.fromstring(answer)[0]
    assert header.findtext(q(ns.WSA10, "Action")) == {"1.3": f"{ns.WST13}/RSTRC/IssueFinal",
                                                       "2005": f"{ns.WST2005}/RSTR/Issue"}[trust]
    assert header.findtext(q(ns.WSA10, "RelatesTo")).startswith("urn:uuid:")


def test_zeep_parses_the_response_through_the_wsdl_schema(demo_servers):  # noqa: F811
    sts_url, service_url, _ = demo_servers
    client = zeep.Client(f"{sts_url}?wsdl", wsse=UsernameToken("admin", "admin"))
    service = client.bind(wsdl.SERVICE_NAME, wsdl.port_name("1.3", "1.2"))
    result = service.Issue(_value_1=rst_content("1.3", service_url, token_type=ns.SAML1))
    (rstr,) = result["_value_1"]
    assert rstr.tag == q(ns.WST13, "RequestSecurityTokenResponse")
    assert rstr.findtext(q(ns.WST13, "TokenType")) == ns.SAML1
    assertion = rstr.find(f"{q(ns.WST13, 'RequestedSecurityToken')}/{q(ns.SAML1, 'Assertion')}")
    assert assertion is not None and assertion.get("Issuer") == sts_url
