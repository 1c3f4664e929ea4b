"""OnBehalfOf and ActAs: no delegation policy allows them, so they are refused, never silently ignored."""

from __future__ import annotations

import pytest
import webtest
from lxml import etree

from _support import SERVICE_URL, vector
from wstrust_wsgi import TokenService, ns

MEDIA = "application/soap+xml; charset=utf-8"


def ask(app: TokenService, make_client, trust: str, extra: etree._Element | None) -> webtest.TestResponse:  # type: ignore[no-untyped-def]
    client = make_client(trust_version=trust)
    envelope = etree.fromstring(client.build_request(SERVICE_URL))
    rst = next(envelope.iter(f"{{{client.dialect.namespace}}}RequestSecurityToken"))
    if extra is not None:
        rst.append(extra)
    return webtest.TestApp(app).post("/services/sts", params=etree.tostring(envelope), expect_errors=True,
                                     content_type=f'{MEDIA}; action="{client.dialect.issue_action}"')


def holder(namespace: str, local: str) -> etree._Element:
    """``local`` in ``namespace`` holding a UsernameToken with a password, as a delegating client sends it."""
    element = etree.Element(f"{{{namespace}}}{local}")
    token = etree.SubElement(element, f"{{{ns.WSSE}}}UsernameToken")
    etree.SubElement(token, f"{{{ns.WSSE}}}Username").text = "alice"
    etree.SubElement(token, f"{{{ns.WSSE}}}Password").text = "alice"
    return element


@pytest.mark.parametrize("trust, namespace, local", [
    ("1.3", ns.WST13, "OnBehalfOf"), ("2005", ns.WST2005, "OnBehalfOf"),
    ("1.3", ns.WST14, "ActAs"), ("2005", ns.WST14, "ActAs"), ("1.3", ns.WST13, "ActAs"),
])
def test_delegation_is_refused_without_a_policy(sts_app, make_client, trust, namespace, local):  # type: ignore[no-untyped-def]
    assert ask(sts_app, make_client, trust, None).status_int == 200
    refused = ask(sts_app, make_client, trust, holder(namespace, local))
    assert refused.status_int == 400 and b"InvalidRequest" in refused.body
    assert f"{local} is not allowed: no delegation policy permits it.".encode() in refused.body
    assert b"Assertion" not in refused.body


def test_picketlinks_onbehalfof_request_is_refused(sts_app, make_client):  # type: ignore[no-untyped-def]
    picketlink = etree.fromstring(vector("breadth/picketlink_rst-onbehalfof-usernametoken.xml").read_bytes())
    [on_behalf_of] = picketlink.iter(f"{{{ns.WST13}}}OnBehalfOf")
    refused = ask(sts_app, make_client, "1.3", on_behalf_of)
    assert refused.status_int == 400 and b"OnBehalfOf is not allowed" in refused.body
