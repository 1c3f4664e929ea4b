"""OnBehalfOf and ActAs: no delegation policy allows them, so they are refused, never silently ignored."""

from __future__ import annotations

from datetime import timedelta

import pytest
import webtest
from lxml import etree

from _support import EMAIL, ISSUER, OTHER_URL, SERVICE_URL, STS_URL, FixedClock, KeyFiles, vector
from wstrust_wsgi import (MemoryTokenStore, MemoryUserStore, RelyingParty, StsClient, TokenService, User,
                          WSGITransport, ns)
from wstrust_wsgi.cli import main as cli_main
from wstrust_wsgi.client import parse_response
from wstrust_wsgi.errors import RemoteFault
from wstrust_wsgi.saml import SAML2, AssertionContent, AssertionSigner
from wstrust_wsgi.stores.delegation import DelegationRule
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.sql.delegation import RegistryDelegationRules
from wstrust_wsgi.sts import DelegationPolicy

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


# ---------------------------------------------------------------------- with a delegation policy

REPRESENTED = [User("service", "service", roles=["admin"]),
               User("bob", "bob", roles=["admin", "staff"], claims={EMAIL: ["bob@example.org"]}),
               User("carol", "carol", roles=["admin"])]


def delegating_sts(keys: KeyFiles, clock: FixedClock, *rules, store=None, **options) -> TokenService:  # type: ignore[no-untyped-def]
    given = rules[0] if len(rules) == 1 and not isinstance(rules[0], DelegationRule) else rules
    return TokenService(issuer=ISSUER, signing_key=keys.load(), users=MemoryUserStore(REPRESENTED), clock=clock,
                        relying_parties=[RelyingParty(SERVICE_URL), RelyingParty(OTHER_URL), RelyingParty(ISSUER)],
                        delegation=DelegationPolicy(given, **options), issued_tokens=store)


def delegated(app: TokenService, clock: FixedClock, kind_ns: str, kind: str, token: etree._Element | bytes,
              *, trust: str = "1.3", audience: str = SERVICE_URL) -> etree._Element:
    """The assertion ``service`` gets for ``token`` in ``kind``; a RemoteFault when refused."""
    client = StsClient(STS_URL, username="service", password="service", trust_version=trust,
                       transport=WSGITransport(app), clock=clock)
    envelope = etree.fromstring(client.build_request(audience))
    rst = next(envelope.iter(f"{{{client.dialect.namespace}}}RequestSecurityToken"))
    holder_el = etree.SubElement(rst, f"{{{kind_ns}}}{kind}")
    holder_el.append(etree.Comment("token"))
    data = etree.tostring(envelope).replace(b"<!--token-->", token if isinstance(token, bytes)
                                             else etree.tostring(token))
    status, _, body = WSGITransport(app)(STS_URL, data, {
        "Content-Type": f'application/soap+xml; charset=utf-8; action="{client.dialect.issue_action}"'})
    return etree.fromstring(parse_response(body, status=status).assertion)


def user_token(name: str, password: str | None) -> etree._Element:
    token = etree.Element(f"{{{ns.WSSE}}}UsernameToken", nsmap={"wsse": ns.WSSE})
    etree.SubElement(token, f"{{{ns.WSSE}}}Username").text = name
    if password is not None:
        etree.SubElement(token, f"{{{ns.WSSE}}}Password").text = password
    return token


def subject_of(assertion: etree._Element) -> str | None:
    return assertion.findtext(f".//{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID")


def attributes_of(assertion: etree._Element) -> dict[str, list[str]]:
    return {a.get("Name"): [v.text for v in a.iter(f"{{{ns.SAML2}}}AttributeValue")]
            for a in assertion.iter(f"{{{ns.SAML2}}}Attribute")}


def fault(call) -> RemoteFault:  # type: ignore[no-untyped-def]
    with pytest.raises(RemoteFault) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_on_behalf_of_a_username_token_issues_to_the_represented_user(sts_keys, clock, trust):  # type: ignore[no-untyped-def]
    app = delegating_sts(sts_keys, clock, DelegationRule("service", "bob", SERVICE_URL, "OnBehalfOf"))
    t = ns.WST13 if trust == "1.3" else ns.WST2005
    assertion = delegated(app, clock, t, "OnBehalfOf", user_token("bob", "bob"), trust=trust)
    assert subject_of(assertion) == "bob"
    assert attributes_of(assertion)[EMAIL] == ["bob@example.org"] and ns.CLAIM_ACTOR not in attributes_of(assertion)
    wrong = fault(lambda: delegated(app, clock, t, "OnBehalfOf", user_token("bob", "guess"), trust=trust))
    assert wrong.local_code == "FailedAuthentication"
    bare = fault(lambda: delegated(app, clock, t, "OnBehalfOf", user_token("bob", None), trust=trust))
    assert bare.local_code == "FailedAuthentication"  # a UsernameToken without a password, as PicketLink's
    for other in (lambda: delegated(app, clock, t, "OnBehalfOf", user_token("carol", "carol"), trust=trust),
                  lambda: delegated(app, clock, t, "OnBehalfOf", user_token("bob", "bob"), trust=trust,
                                    audience=OTHER_URL),
                  lambda: delegated(app, clock, ns.WST14, "ActAs", user_token("bob", "bob"), trust=trust)):
        refused = fault(other)  # another subject, another relying party, another kind: no rule allows it
        assert refused.local_code == "RequestFailed" and "may not use" in refused.reason


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_act_as_keeps_the_requester_and_records_the_actor(sts_keys, clock, trust):  # type: ignore[no-untyped-def]
    app = delegating_sts(sts_keys, clock, DelegationRule("service", kind="ActAs"))
    assertion = delegated(app, clock, ns.WST14, "ActAs", user_token("bob", "bob"), trust=trust)
    assert subject_of(assertion) == "service" and attributes_of(assertion)[ns.CLAIM_ACTOR] == ["bob"]
    [condition] = assertion.iter(f"{{{ns.SAML2}}}Condition")
    assert condition.get(f"{{{ns.XSI}}}type") == "del:DelegationRestrictionType"
    assert condition.findtext(f"{{{ns.SAML2_DELEGATION}}}Delegate/{{{ns.SAML2}}}NameID") == "bob"


def test_a_saml_token_is_accepted_only_signed_for_us_or_the_target(sts_keys, sts2_keys, rogue_keys, clock):  # type: ignore[no-untyped-def]
    store = MemoryTokenStore()
    app = delegating_sts(sts_keys, clock, DelegationRule("service", "bob"), store=store,
                         trusted_issuers={"urn:example:other-sts": sts2_keys.cert})
    bob = StsClient(STS_URL, username="bob", password="bob", transport=WSGITransport(app), clock=clock)
    for audience in (ISSUER, SERVICE_URL):  # a token for this STS, or for the target itself
        token = bob.request_token(audience)
        assertion = delegated(app, clock, ns.WST13, "OnBehalfOf", token.assertion)
        assert subject_of(assertion) == "bob" and "staff" in attributes_of(assertion)[ns.CLAIM_ROLE]
    elsewhere = bob.request_token(OTHER_URL)
    assert fault(lambda: delegated(app, clock, ns.WST13, "OnBehalfOf", elsewhere.assertion)).local_code == (
        "InvalidSecurityToken")  # a delegated token for another audience
    forged = AssertionSigner(rogue_keys.load()).sign(SAML2, content(ISSUER, "bob", ISSUER, clock))
    assert fault(lambda: delegated(app, clock, ns.WST13, "OnBehalfOf", forged)).local_code == "FailedCheck"
    other = AssertionSigner(sts2_keys.load()).sign(SAML2, content("urn:example:other-sts", "bob", ISSUER, clock))
    assert subject_of(delegated(app, clock, ns.WST13, "OnBehalfOf", other)) == "bob"
    unknown = AssertionSigner(sts2_keys.load()).sign(SAML2, content("urn:example:unknown", "bob", ISSUER, clock))
    assert fault(lambda: delegated(app, clock, ns.WST13, "OnBehalfOf", unknown)).local_code == "FailedAuthentication"
    cancelled = bob.request_token(ISSUER)
    bob.cancel(cancelled)
    assert fault(lambda: delegated(app, clock, ns.WST13, "OnBehalfOf", cancelled.assertion)).local_code == (
        "InvalidSecurityToken")


def content(issuer: str, subject: str, audience: str, clock: FixedClock) -> AssertionContent:
    return AssertionContent(issuer=issuer, subject=subject, audience=audience, issue_instant=clock(),
                            not_before=clock(), not_on_or_after=clock() + timedelta(minutes=5))


def test_rules_in_the_registry_managed_by_the_cli(sts_keys, clock, tmp_path, capsys):  # type: ignore[no-untyped-def]
    url = f"sqlite://{tmp_path}/registry.db"
    with Registry.open(url) as registry:
        registry.init_schema(issuer=ISSUER)
    assert cli_main(["delegation", "list", "--registry", url]) == 0
    assert "No delegation rules" in capsys.readouterr().out
    assert cli_main(["delegation", "add", "service", "--for", "bob", "--kind", "OnBehalfOf", "--registry", url]) == 0
    assert "Added: 'service' may use OnBehalfOf for 'bob' towards any relying party." in capsys.readouterr().out
    assert cli_main(["delegation", "add", "service", "--for", "bob", "--kind", "OnBehalfOf", "--registry", url]) == 1
    assert cli_main(["delegation", "add", "*", "--registry", url]) == 2
    assert "no wildcard requester" in capsys.readouterr().err
    with Registry.open(url) as registry:
        app = delegating_sts(sts_keys, clock, RegistryDelegationRules(registry))
        assert subject_of(delegated(app, clock, ns.WST13, "OnBehalfOf", user_token("bob", "bob"))) == "bob"
        assert cli_main(["--json", "delegation", "list", "--registry", url]) == 0
        assert '"requester": "service"' in capsys.readouterr().out
        assert cli_main(["delegation", "remove", "service", "--for", "bob", "--kind", "OnBehalfOf",
                         "--registry", url]) == 0
        refused = fault(lambda: delegated(app, clock, ns.WST13, "OnBehalfOf", user_token("bob", "bob")))
        assert refused.local_code == "RequestFailed"  # the rule is gone at the next request
    assert cli_main(["delegation", "remove", "service", "--registry", url]) == 1
