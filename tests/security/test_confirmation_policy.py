"""The confirmation policy per audience: ``confirmation={audience: word, "*": word}``.

A service answering at two addresses may require holder-of-key at one and
accept bearer tokens at the other. The policy applied is the one of the
service's audience the token was admitted for; a token naming several of them
must satisfy each one's word ("any" gives way; bearer beside holder-of-key is
refused). Tokens come from the real STS in-process (one audience each) or are
signed by its key around two audiences; the middleware guards a recording app.
``wstrust-wsgi diagnose`` names the policy that applied.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import webtest
from lxml import etree

from _forge import RecordingApp, content, read_fault, sign_with
from _support import OTHER_URL, SERVICE_URL
from _support.hok import hok_world, rp_key_files
from wstrust_wsgi import IssuedToken, RelyingPartyMiddleware, ns, saml
from wstrust_wsgi.cli import main
from wstrust_wsgi.client import service_request
from wstrust_wsgi.errors import ConfigurationError
from wstrust_wsgi.testing import TokenFactory
from wstrust_wsgi.xmlenc import encrypt_key

PAYLOAD = b"<Transfer xmlns='urn:example'><Amount>10</Amount></Transfer>"
NEEDS_HOK = "This service requires a holder-of-key token."
BEARER_ONLY = "This service accepts bearer tokens only."
CONFLICT = "The security token names audiences of this service that require different confirmations."
ELSEWHERE = "https://elsewhere.example/soap"


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def make_world(sts_keys, keydir, users, clock, recorder):  # type: ignore[no-untyped-def]
    def make(confirmation):  # type: ignore[no-untyped-def]
        return hok_world(sts_keys, rp_key_files(keydir), users, clock, app=recorder, confirmation=confirmation)
    return make


def post(world, token) -> webtest.TestResponse:  # type: ignore[no-untyped-def]
    return webtest.TestApp(world.service).post("/soap", service_request(token, PAYLOAD)[0],
                                              content_type="text/xml; charset=utf-8", expect_errors=True)


def admitted_as(world, recorder: RecordingApp, token) -> str:  # type: ignore[no-untyped-def]
    """How the token was admitted (``"bearer"`` / ``"holder-of-key"``), or the refusal's client reason."""
    response = post(world, token)
    if response.status_int == 200:
        return recorder.calls.pop()["assertion"].confirmation
    assert recorder.calls == []
    fault = read_fault(response.body)
    assert fault.code == f"{{{ns.WSSE}}}InvalidSecurityToken", response.body
    return fault.reason


def two_audience_token(world, sts_keys, clock, audiences: tuple[str, ...], holder_of_key: bool) -> IssuedToken:  # type: ignore[no-untyped-def]
    """A SAML 2.0 token the trusted STS key signed for every one of ``audiences`` (one AudienceRestriction,
    so any one of them suffices), bearer or symmetric holder-of-key (a proof key for the rp certificate)."""
    key = os.urandom(32) if holder_of_key else None
    key_info = None
    if key is not None:
        key_info = etree.Element(f"{{{ns.DS}}}KeyInfo", nsmap={"ds": ns.DS})
        key_info.append(encrypt_key(key, world.rp.load().certificate))
    what = content(clock(), audience=audiences[0], proof_key_info=key_info)
    root = saml.build_saml2(what)
    root.remove(root.find(f"{{{ns.DS}}}Signature"))  # sign_with places its own
    restriction = root.find(f".//{{{ns.SAML2}}}AudienceRestriction")
    for audience in audiences[1:]:
        etree.SubElement(restriction, f"{{{ns.SAML2}}}Audience").text = audience
    assertion = sign_with(sts_keys.load(), saml.SAML2, what, root=root)
    return IssuedToken(assertion, saml.SAML2.token_type, what.assertion_id, what.not_before, what.not_on_or_after,
                       audiences[0], proof_key=key, key_type="symmetric" if key else "bearer")


# --------------------------------------------------------------------------- checked at construction


@pytest.mark.parametrize(("confirmation", "message"), [
    ({"https://svc.example/typo": "holder-of-key"},
     "confirmation: names the audience 'https://svc.example/typo', which is not one of this service's audiences"),
    ({SERVICE_URL + "/": "bearer"}, "audiences are compared exactly"),
    ({SERVICE_URL: "holder_of_key"}, f"confirmation[{SERVICE_URL!r}]: must be one of 'bearer', 'holder-of-key', "
                                     "'any', not 'holder_of_key'"),
    ({"*": "proof"}, "confirmation['*']: must be one of"),
    ({}, "or a non-empty mapping of this service's audiences"),
    ("hok", "confirmation: must be one of 'bearer', 'holder-of-key', 'any', not 'hok'"),
    (["bearer"], "confirmation: must be one of"),
])
def test_a_confirmation_mapping_is_checked_at_construction(sts_keys, confirmation, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError) as raised:
        RelyingPartyMiddleware(RecordingApp(), audience=[SERVICE_URL, OTHER_URL], issuer="https://sts.example",
                               trusted_certs=[sts_keys.cert], confirmation=confirmation)
    assert message in str(raised.value)


# --------------------------------------------------------------------------- one audience per token


@pytest.mark.parametrize("confirmation", [{SERVICE_URL: "holder-of-key", OTHER_URL: "bearer"},
                                          {SERVICE_URL: "holder-of-key", "*": "bearer"}],
                         ids=["both-named", "star-for-the-other"])
def test_each_audience_has_its_own_policy(make_world, recorder, confirmation) -> None:  # type: ignore[no-untyped-def]
    world = make_world(confirmation)
    client = world.client()
    assert admitted_as(world, recorder, client.request_token(SERVICE_URL, key_type="symmetric")) == "holder-of-key"
    assert admitted_as(world, recorder, client.request_token(SERVICE_URL)) == NEEDS_HOK
    assert admitted_as(world, recorder, client.request_token(OTHER_URL)) == "bearer"  # SAML 1.1 there
    assert admitted_as(world, recorder, client.request_token(OTHER_URL, key_type="symmetric")) == BEARER_ONLY


def test_an_audience_not_named_without_a_star_is_held_to_any(make_world, recorder) -> None:  # type: ignore[no-untyped-def]
    world = make_world({SERVICE_URL: "bearer"})
    client = world.client()
    assert admitted_as(world, recorder, client.request_token(OTHER_URL)) == "bearer"
    assert admitted_as(world, recorder, client.request_token(OTHER_URL, key_type="symmetric")) == "holder-of-key"
    assert admitted_as(world, recorder, client.request_token(SERVICE_URL, key_type="symmetric")) == BEARER_ONLY


# --------------------------------------------------------------------------- several audiences in one token


def test_a_token_for_two_audiences_meets_both_words(make_world, recorder, sts_keys, clock) -> None:  # type: ignore[no-untyped-def]
    world = make_world({SERVICE_URL: "holder-of-key", OTHER_URL: "any"})  # "any" gives way: holder-of-key
    both = (OTHER_URL, SERVICE_URL)
    assert admitted_as(world, recorder, two_audience_token(world, sts_keys, clock, both, False)) == NEEDS_HOK
    assert admitted_as(world, recorder, two_audience_token(world, sts_keys, clock, both, True)) == "holder-of-key"
    assert admitted_as(world, recorder, two_audience_token(world, sts_keys, clock, (OTHER_URL,), False)) == "bearer"


@pytest.mark.parametrize("holder_of_key", [False, True], ids=["bearer-token", "holder-of-key-token"])
def test_a_token_for_two_audiences_whose_words_conflict_is_refused(make_world, recorder, sts_keys, clock,  # type: ignore[no-untyped-def]
                                                                   holder_of_key) -> None:
    world = make_world({SERVICE_URL: "holder-of-key", "*": "bearer"})
    token = two_audience_token(world, sts_keys, clock, (SERVICE_URL, OTHER_URL), holder_of_key)
    assert admitted_as(world, recorder, token) == CONFLICT


def test_another_services_audience_in_the_token_picks_no_policy(make_world, recorder, sts_keys, clock) -> None:  # type: ignore[no-untyped-def]
    """An audience that is not the middleware's does not take the ``"*"`` word: only ours count."""
    world = make_world({SERVICE_URL: "holder-of-key", "*": "bearer"})
    token = two_audience_token(world, sts_keys, clock, (ELSEWHERE, SERVICE_URL), True)
    assert admitted_as(world, recorder, token) == "holder-of-key"


# --------------------------------------------------------------------------- explain() and diagnose


def test_explain_names_the_policy_that_applied(make_world, recorder, sts_keys, clock) -> None:  # type: ignore[no-untyped-def]
    world = make_world({SERVICE_URL: "holder-of-key", "*": "bearer"})
    client = world.client()

    def proof_step(token):  # type: ignore[no-untyped-def]
        trace, _ = world.service.explain(service_request(token, PAYLOAD)[0], "text/xml")
        [step] = [s for s in trace.steps if s.check == "proof"]
        return step

    passed = proof_step(client.request_token(OTHER_URL))
    assert passed.verdict == "pass" and passed.expected.startswith("confirmation policy 'bearer' (configured: ")
    assert f"{SERVICE_URL} holder-of-key, others bearer" in passed.expected
    proven = proof_step(client.request_token(SERVICE_URL, key_type="symmetric"))
    assert proven.expected.startswith("confirmation policy 'holder-of-key'") and proven.actual == \
        "proven with its symmetric key (confirmation policy 'holder-of-key')"
    refused = proof_step(client.request_token(SERVICE_URL))
    assert (refused.verdict, refused.actual) == ("fail", "['bearer']")
    assert refused.expected == "confirmation policy 'holder-of-key'"
    conflict = proof_step(two_audience_token(world, sts_keys, clock, (SERVICE_URL, OTHER_URL), False))
    assert conflict.verdict == "fail" and conflict.expected == "audiences whose confirmation policies agree"
    assert recorder.calls == []


APP_MODULE = textwrap.dedent("""
    from wstrust_wsgi import RelyingPartyMiddleware
    from wstrust_wsgi.testing import TokenFactory

    def service(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    tokens = TokenFactory()
    application = RelyingPartyMiddleware(service, audience=[tokens.audience, "https://svc.example/legacy"],
                                         issuer=tokens.issuer, trusted_certs=tokens.trusted_certs,
                                         confirmation={{tokens.audience: "holder-of-key", "*": "{other}"}})
""")


@pytest.mark.parametrize("other", ["bearer", "any"])
def test_diagnose_reports_the_per_audience_policy(capsys, tmp_path: Path, monkeypatch, other) -> None:  # type: ignore[no-untyped-def]
    """The kit's tokens against a kit-built per-audience service: a bearer token for the holder-of-key audience
    fails the proof check, which names that policy; for the other audience it passes under the other word."""
    name = f"confirmation_app_{other}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE.format(other=other))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        tokens = TokenFactory()
        reports = []
        for audience in (tokens.audience, "https://svc.example/legacy"):
            (tmp_path / "token.xml").write_bytes(tokens.mint(audience=audience).assertion)
            capsys.readouterr()
            code = main(["diagnose", str(tmp_path / "token.xml"), "--app", f"{name}:application", "--json"])
            reports.append((code, {c["check"]: c for c in json.loads(capsys.readouterr().out)["checks"]}))
            main(["diagnose", str(tmp_path / "token.xml"), "--app", f"{name}:application"])
            reports.append(capsys.readouterr().out)
    finally:
        sys.modules.pop(name, None)
    (refused_code, refused), refused_text, (admitted_code, admitted), admitted_text = reports
    assert "confirmation policy 'holder-of-key'" in refused_text  # the text report says it too
    assert f"no proof needed (confirmation policy {other!r})" in admitted_text
    assert refused_code == 1 and refused["proof"]["verdict"] == "fail"
    assert refused["proof"]["expected"] == "confirmation policy 'holder-of-key'"
    assert admitted_code == 0 and admitted["proof"]["verdict"] == "pass"
    assert admitted["proof"]["expected"].startswith(f"confirmation policy {other!r} (configured: ")
    assert admitted["proof"]["actual"] == f"a bearer token: no proof needed (confirmation policy {other!r})"


def test_the_kit_builds_and_feeds_a_per_audience_service(tmp_path: Path) -> None:
    """What a user's own test does: the kit's tokens, one per address, against a per-audience middleware."""
    from wstrust_wsgi import SigningKey, generate_demo_key_pair
    from wstrust_wsgi.testing import SoapTestApp, soap_request
    generate_demo_key_pair("test service", tmp_path, "rp")
    tokens = TokenFactory()
    legacy = "https://svc.example/legacy"
    recorder = RecordingApp()
    service = SoapTestApp(RelyingPartyMiddleware(
        recorder, audience=[tokens.audience, legacy], issuer=tokens.issuer, trusted_certs=tokens.trusted_certs,
        decryption_keys=[(tmp_path / "rp.key", tmp_path / "rp.crt")],
        confirmation={tokens.audience: "holder-of-key", legacy: "bearer"}))
    certificate = SigningKey.from_files(tmp_path / "rp.key", tmp_path / "rp.crt").certificate

    def status(token) -> int:  # type: ignore[no-untyped-def]
        body, headers = soap_request(token, b"<Ping xmlns='urn:example'/>")
        return service.post("/", body, headers=headers, expect_errors=True).status_int

    assert status(tokens.mint(confirmation="holder-of-key", proof_key_for=certificate)) == 200
    assert status(tokens.mint()) == 500
    assert status(tokens.mint(audience=legacy)) == 200
    assert status(tokens.mint(audience=legacy, confirmation="holder-of-key", proof_key_for=certificate)) == 500
    assert [call["assertion"].confirmation for call in recorder.calls] == ["holder-of-key", "bearer"]
