"""Requested claims (wst:Claims): the identity dialect and WSO2's, released only as asked, allowed and held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree

from _support import EMAIL, ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from wstrust_wsgi import MemoryUserStore, RelyingParty, StsClient, TokenService, User, WSGITransport, ns
from wstrust_wsgi.client import parse_response
from wstrust_wsgi.errors import RemoteFault

GIVEN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
PHONE = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/mobilephone"
LIMITED = "http://127.0.0.1:8082/services/limited"
USERS = [User("admin", "admin", roles=["admin"], claims={EMAIL: ["admin@example.org"], GIVEN: ["Ada"]})]


@pytest.fixture
def ask(sts_keys: KeyFiles, clock: FixedClock) -> Callable[..., dict[str, list[str]]]:
    app = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=MemoryUserStore(USERS), clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL), RelyingParty(LIMITED, claims=frozenset([GIVEN]))])

    def request(claims: Any = None, *, trust: str = "1.3", audience: str = SERVICE_URL,
                edit: Callable[[etree._Element], None] | None = None, **kwargs: Any) -> dict[str, list[str]]:
        client = StsClient(STS_URL, username="admin", password="admin", trust_version=trust,
                           transport=WSGITransport(app), clock=clock)
        if edit is None:
            token = client.request_token(audience, claims=claims, **kwargs)
        else:  # the RST as another client writes it
            envelope = etree.fromstring(client.build_request(audience, claims=claims, **kwargs))
            edit(envelope)
            status, _, body = WSGITransport(app)(STS_URL, etree.tostring(envelope), {
                "Content-Type": f'application/soap+xml; charset=utf-8; action="{client.dialect.issue_action}"'})
            token = parse_response(body, status=status)
        found: dict[str, list[str]] = {}
        for attribute in etree.fromstring(token.assertion).iter(f"{{{ns.SAML2}}}Attribute"):
            found[attribute.get("Name")] = [v.text for v in attribute.iter(f"{{{ns.SAML2}}}AttributeValue")]
        return found

    return request


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(RemoteFault) as caught:
        call()
    assert caught.value.local_code == "InvalidRequest", caught.value
    return caught.value.reason


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_only_the_claims_asked_for_are_released(ask, trust):  # type: ignore[no-untyped-def]
    assert set(ask(trust=trust)) == {EMAIL, GIVEN, ns.CLAIM_ROLE}  # nothing asked: the party's usual claims
    assert ask([EMAIL], trust=trust) == {EMAIL: ["admin@example.org"]}
    assert ask([EMAIL, (PHONE, True), ns.CLAIM_ROLE], trust=trust) == {EMAIL: ["admin@example.org"],
                                                                       ns.CLAIM_ROLE: ["admin"]}
    assert refused(lambda: ask([PHONE], trust=trust)) == f"The required claim {PHONE} cannot be supplied for this user."


def test_a_claim_the_relying_party_does_not_allow_is_refused_or_dropped(ask):  # type: ignore[no-untyped-def]
    assert refused(lambda: ask([EMAIL], audience=LIMITED)) == (
        f"The required claim {EMAIL} is not released to this relying party.")
    assert ask([(EMAIL, True), GIVEN], audience=LIMITED) == {GIVEN: ["Ada"]}


def test_wso2_dialect_maps_to_our_claims_and_its_optional_defaults_to_true(ask):  # type: ignore[no-untyped-def]
    def no_optional(envelope: etree._Element) -> None:
        for claim in envelope.iter(f"{{{ns.CLAIMS_IDENTITY}}}ClaimType"):
            del claim.attrib["Optional"]

    wso2 = ["http://wso2.org/claims/emailaddress", "http://wso2.org/claims/mobile", "http://wso2.org/claims/role"]
    assert ask(wso2, claims_dialect=ns.CLAIMS_WSO2, edit=no_optional) == {EMAIL: ["admin@example.org"],
                                                                           ns.CLAIM_ROLE: ["admin"]}


def test_dialect_qualified_and_claims_in_secondary_parameters_are_read(ask):  # type: ignore[no-untyped-def]
    def qualified(envelope: etree._Element) -> None:
        claims = next(envelope.iter(f"{{{ns.WST13}}}Claims"))
        claims.set(f"{{{ns.WST13}}}Dialect", claims.attrib.pop("Dialect"))

    def secondary(envelope: etree._Element) -> None:
        claims = next(envelope.iter(f"{{{ns.WST13}}}Claims"))
        rst = claims.getparent()
        rst.remove(claims)
        etree.SubElement(rst, f"{{{ns.WST13}}}SecondaryParameters").append(claims)

    assert ask([GIVEN], edit=qualified) == {GIVEN: ["Ada"]}
    assert ask([GIVEN], edit=secondary) == {GIVEN: ["Ada"]}


def test_an_unknown_dialect_is_refused_with_required_claims_and_ignored_without(ask):  # type: ignore[no-untyped-def]
    authz = "http://schemas.xmlsoap.org/ws/2006/12/authorization/authclaims"
    reason = refused(lambda: ask(["urn:example:claim"], claims_dialect=authz))
    assert reason == f"The claims dialect {authz} is not supported."
    assert set(ask([("urn:example:claim", True)], claims_dialect=authz)) == {EMAIL, GIVEN, ns.CLAIM_ROLE}


def test_a_bad_optional_or_no_dialect_is_refused(ask):  # type: ignore[no-untyped-def]
    def bad_optional(envelope: etree._Element) -> None:
        next(envelope.iter(f"{{{ns.CLAIMS_IDENTITY}}}ClaimType")).set("Optional", "maybe")

    def no_dialect(envelope: etree._Element) -> None:
        del next(envelope.iter(f"{{{ns.WST13}}}Claims")).attrib["Dialect"]

    assert refused(lambda: ask([EMAIL], edit=bad_optional)) == "A ClaimType's Optional must be true or false."
    assert refused(lambda: ask([EMAIL], edit=no_dialect)) == "wst:Claims must name its Dialect."
