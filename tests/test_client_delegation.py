"""StsClient's ``on_behalf_of=`` and ``act_as=``, and the ``client`` command's delegation options.

Round trips against the in-process STS with a delegation policy, in both
WS-Trust versions and both SOAP versions; the refusal without one; the
arguments checked before anything is sent; and the command against the demo
STS under real gunicorn, given a delegation rule by its environment.
"""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from _support import EMAIL, ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.deployment import running_demos
from wstrust_wsgi import (MemoryUserStore, RelyingParty, StsClient, TokenService, UrllibTransport, User,
                          WSGITransport, ns)
from wstrust_wsgi.cli import main as cli_main
from wstrust_wsgi.errors import ConfigurationError, RemoteFault
from wstrust_wsgi.stores.delegation import DelegationRule
from wstrust_wsgi.sts import DelegationPolicy

USERS = [User("service", "service", roles=["admin"]),
         User("bob", "bob", roles=["admin"], claims={EMAIL: ["bob@example.org"]})]


def delegating_sts(keys: KeyFiles, clock: FixedClock) -> TokenService:
    """``service`` may use OnBehalfOf for bob, and ActAs for anyone, towards the service."""
    rules = [DelegationRule("service", "bob", SERVICE_URL, "OnBehalfOf"), DelegationRule("service", kind="ActAs")]
    return TokenService(issuer=ISSUER, signing_key=keys.load(), users=MemoryUserStore(USERS), clock=clock,
                        relying_parties=[RelyingParty(SERVICE_URL), RelyingParty(ISSUER)],
                        delegation=DelegationPolicy(rules))


def read(token) -> tuple[str | None, list[str]]:  # type: ignore[no-untyped-def]
    """The assertion's subject and its actor attribute's values."""
    assertion = etree.fromstring(token.assertion)
    actors = [value.text for attribute in assertion.iter(f"{{{ns.SAML2}}}Attribute")
              if attribute.get("Name") == ns.CLAIM_ACTOR for value in attribute.iter(f"{{{ns.SAML2}}}AttributeValue")]
    return assertion.findtext(f".//{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID"), actors


@pytest.mark.parametrize("trust, soap", [("1.3", "1.2"), ("1.3", "1.1"), ("2005", "1.2"), ("2005", "1.1")])
def test_on_behalf_of_and_act_as_round_trip(sts_keys, clock, trust, soap):  # type: ignore[no-untyped-def]
    app = delegating_sts(sts_keys, clock)
    service = StsClient(STS_URL, username="service", password="service", trust_version=trust, soap_version=soap,
                        transport=WSGITransport(app), clock=clock)
    bob = StsClient(STS_URL, username="bob", password="bob", transport=WSGITransport(app), clock=clock)
    assert read(service.request_token(SERVICE_URL, on_behalf_of=("bob", "bob"))) == ("bob", [])
    hashed = StsClient(STS_URL, username="service", password="service", trust_version=trust, soap_version=soap,
                       digest=True, transport=WSGITransport(app), clock=clock)
    body = hashed.build_request(SERVICE_URL, on_behalf_of=("bob", "bob"))
    assert body.count(ns.WSSE_PASSWORD_DIGEST.encode()) == 2 and b">bob</wsse:Password>" not in body
    assert read(hashed.request_token(SERVICE_URL, on_behalf_of=("bob", "bob"))) == ("bob", [])  # PasswordDigest
    assert read(service.request_token(SERVICE_URL, on_behalf_of=bob.request_token(ISSUER))) == ("bob", [])
    bobs = bob.request_token(SERVICE_URL).assertion  # bytes, for the target itself
    assert read(service.request_token(SERVICE_URL, act_as=b'<?xml version="1.0"?>\n' + bobs)) == ("service", ["bob"])
    with pytest.raises(RemoteFault) as refused:  # the rule names bob only
        service.request_token(SERVICE_URL, on_behalf_of=("service", "service"))
    assert refused.value.local_code == "RequestFailed" and "may not use OnBehalfOf" in refused.value.reason
    with pytest.raises(RemoteFault) as wrong:
        service.request_token(SERVICE_URL, on_behalf_of=("bob", "guess"))
    assert wrong.value.local_code == "FailedAuthentication"


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_the_elements_are_where_the_sts_reads_them(make_client, trust):  # type: ignore[no-untyped-def]
    client = make_client(trust_version=trust)
    t = client.dialect.namespace
    on_behalf_of = etree.fromstring(client.build_request(SERVICE_URL, on_behalf_of=("bob", "bob")))
    [holder] = on_behalf_of.iter(f"{{{t}}}OnBehalfOf")
    assert holder.getparent().tag == f"{{{t}}}RequestSecurityToken"
    assert holder.findtext(f"{{{ns.WSSE}}}UsernameToken/{{{ns.WSSE}}}Username") == "bob"
    token = client.request_token(SERVICE_URL)
    act_as = client.build_request(SERVICE_URL, act_as=token)
    assert token.assertion in act_as  # spliced byte for byte
    [holder] = etree.fromstring(act_as).iter(f"{{{ns.WST14}}}ActAs")  # 1.4's element, in a 1.3 or 2005 RST
    assert holder[0].tag == f"{{{ns.SAML2}}}Assertion"


def test_without_a_policy_the_sts_refuses(make_client):  # type: ignore[no-untyped-def]
    client = make_client()
    token = client.request_token(SERVICE_URL)
    for keywords in ({"on_behalf_of": ("admin", "admin")}, {"act_as": token}):
        with pytest.raises(RemoteFault) as refused:
            client.request_token(SERVICE_URL, **keywords)
        assert refused.value.local_code == "InvalidRequest" and "is not allowed" in refused.value.reason


def test_both_at_once_is_refused_by_the_sts_too(sts_keys, clock):  # type: ignore[no-untyped-def]
    """The client refuses both (below); a request carrying both anyway is refused, neither one ignored."""
    app = delegating_sts(sts_keys, clock)
    service = StsClient(STS_URL, username="service", password="service", transport=WSGITransport(app), clock=clock)
    envelope = etree.fromstring(service.build_request(SERVICE_URL, on_behalf_of=("bob", "bob")))
    [on_behalf_of] = envelope.iter(f"{{{ns.WST13}}}OnBehalfOf")
    act_as = etree.SubElement(on_behalf_of.getparent(), f"{{{ns.WST14}}}ActAs")
    act_as.append(etree.fromstring(etree.tostring(on_behalf_of[0])))
    status, _, body = WSGITransport(app)(STS_URL, etree.tostring(envelope), {
        "Content-Type": f'application/soap+xml; charset=utf-8; action="{service.dialect.issue_action}"'})
    assert status == 400 and b"Give OnBehalfOf or ActAs, not both." in body and b"Assertion" not in body


def test_arguments_are_checked_before_sending(make_client):  # type: ignore[no-untyped-def]
    client = make_client()
    token = client.request_token(SERVICE_URL)
    cases = [({"on_behalf_of": token, "act_as": token}, "on_behalf_of, act_as: give one of them"),
             ({"act_as": b"<not-an-assertion/>"}, "act_as: must be"),
             ({"act_as": b"<unclosed"}, "act_as: must be"),
             ({"on_behalf_of": 42}, "on_behalf_of: must be"),
             ({"on_behalf_of": ("", "x")}, "on_behalf_of: must be"),
             ({"on_behalf_of": ("bob", None)}, "on_behalf_of: must be"),
             ({"act_as": dataclasses.replace(token, encrypted=True)}, "act_as: an encrypted token cannot be")]
    for keywords, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            client.request_token(SERVICE_URL, **keywords)


def test_the_client_command_against_the_demo_sts(tmp_path, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    with running_demos(tmp_path, WSTRUST_DEMO_DELEGATION="admin") as (sts_url, service_url, _):
        common = ["client", "--sts", sts_url, "--service", service_url, "--username", "admin", "--password", "admin"]
        saved = tmp_path / "admin.xml"
        saved.write_bytes(StsClient(sts_url, username="admin", password="admin",
                                    transport=UrllibTransport()).request_token(service_url).assertion)
        assert cli_main([*common, "--act-as-token", str(saved)]) == 0
        out = capsys.readouterr().out
        assert ns.CLAIM_ACTOR in out and "Reply from" in out
        assert cli_main([*common, "--on-behalf-of-token", str(saved), "--no-call"]) == 0
        assert "Issued token" in capsys.readouterr().out
        monkeypatch.setenv("WSTRUST_ON_BEHALF_OF_PASSWORD", "alice")  # never on the command line
        assert cli_main([*common, "--on-behalf-of-user", "alice", "--no-call"]) == 0
        assert ">alice</NameID>" in capsys.readouterr().out  # issued to the represented user
        monkeypatch.setenv("WSTRUST_ON_BEHALF_OF_PASSWORD", "s3cret-guess")
        assert cli_main([*common, "--on-behalf-of-user", "alice", "--no-call", "--show-messages"]) == 1
        shown = capsys.readouterr()
        assert "FailedAuthentication" in shown.err and "OnBehalfOf" in shown.out
        assert "s3cret-guess" not in shown.out + shown.err  # masked like the requester's password
        assert cli_main([*common, "--act-as-token", str(tmp_path / "missing.xml")]) == 2
        assert "--act-as-token" in capsys.readouterr().err
