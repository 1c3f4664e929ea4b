"""testing/: the kit users test their protected services with, exercised against the real middleware.

Every token here comes from the kit's public API, and every verdict from the
real :class:`RelyingPartyMiddleware` behind the kit's own ``SoapTestApp``: a
good token of each SAML version is admitted with what it says, and each
negative variant is refused for exactly its one reason (the middleware's log
line names it). The kit is also checked for what it promises around that: one
key per process, the exact bytes a client sends, the in-process STS round trip,
readable failures, and a clear sentence when WebTest is missing.
"""

from __future__ import annotations

import ast
import importlib
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

import wstrust_wsgi
from wstrust_wsgi import (
    ConfigurationError,
    RelyingParty,
    RelyingPartyMiddleware,
    RemoteFault,
    WSGITransport,
    call_service,
    get_assertion,
    ns,
)
from wstrust_wsgi.exchange import RecordingTransport
from wstrust_wsgi.testing import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    InProcessSts,
    SettableClock,
    SoapTestApp,
    TokenFactory,
    read_answer,
    soap_request,
    throwaway_key,
)

PACKAGE = Path(__file__).resolve().parents[2] / "wstrust_wsgi"
TEST_NS = "urn:wstrust-wsgi:testing:whoami"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
VERSIONS = pytest.mark.parametrize("version", ["2.0", "1.1"], ids=["saml2.0", "saml1.1"])


def whoami(environ, start_response):  # type: ignore[no-untyped-def]
    """The service under test: answers the caller, roles and attributes the middleware verified (request's SOAP)."""
    assertion = get_assertion(environ)
    answer = etree.Element(f"{{{TEST_NS}}}WhoAmI", nsmap={"t": TEST_NS})
    etree.SubElement(answer, f"{{{TEST_NS}}}Subject").text = environ["REMOTE_USER"]
    etree.SubElement(answer, f"{{{TEST_NS}}}Version").text = assertion.version
    for role in assertion.roles:
        etree.SubElement(answer, f"{{{TEST_NS}}}Role").text = role
    for value in assertion.attributes.get(EMAIL, ()):
        etree.SubElement(answer, f"{{{TEST_NS}}}Email").text = value
    soap12 = environ["CONTENT_TYPE"].startswith("application/soap+xml")
    env_ns = ns.SOAP12 if soap12 else ns.SOAP11
    envelope = etree.Element(f"{{{env_ns}}}Envelope")
    etree.SubElement(envelope, f"{{{env_ns}}}Body").append(answer)
    start_response("200 OK", [("Content-Type", "application/soap+xml" if soap12 else "text/xml")])
    return [etree.tostring(envelope)]


def protect(tokens: TokenFactory | InProcessSts, **options) -> SoapTestApp:  # type: ignore[no-untyped-def]
    """``whoami`` behind the middleware, configured the way the kit says to."""
    options.setdefault("audience", DEFAULT_AUDIENCE)
    options.setdefault("issuer", DEFAULT_ISSUER)
    return SoapTestApp(RelyingPartyMiddleware(whoami, trusted_certs=tokens.trusted_certs, **options))


def texts(result, local: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [el.text for el in result.body.iter(f"{{{TEST_NS}}}{local}")]


# ----------------------------------------------------------------------------- good tokens


@VERSIONS
def test_a_minted_token_is_admitted_with_what_it_says(version):
    tokens = TokenFactory(version=version)
    token = tokens.mint("bob", roles=["admin", "auditor"], attributes={EMAIL: "bob@example.org"})
    result = protect(tokens).post_soap("/", "<Ping/>", token=token)
    assert texts(result, "Subject") == ["bob"]
    assert texts(result, "Version") == [version]
    assert texts(result, "Role") == ["admin", "auditor"]
    assert texts(result, "Email") == ["bob@example.org"]
    assert token.applies_to == DEFAULT_AUDIENCE
    assert token.expires - token.created == timedelta(minutes=5)


@pytest.mark.parametrize("soap_version", ["1.1", "1.2"])
def test_both_soap_versions_reach_the_service(soap_version):
    tokens = TokenFactory()
    result = protect(tokens).post_soap("/", b"<Ping/>", token=tokens.mint(), soap_version=soap_version)
    assert texts(result, "Subject") == ["alice"]
    assert result.response.status_int == 200


def test_audience_issuer_and_lifetime_are_the_factorys_defaults_and_each_tokens_choice():
    tokens = TokenFactory(audience="https://svc.example/soap", issuer="https://sts.example/sts",
                          lifetime=timedelta(minutes=1))
    service = protect(tokens, audience="https://svc.example/soap", issuer="https://sts.example/sts")
    assert texts(service.post_soap("/", "<Ping/>", token=tokens.mint()), "Subject") == ["alice"]
    other = protect(tokens, audience="urn:other", issuer="urn:other-sts")
    token = tokens.mint("carol", audience="urn:other", issuer="urn:other-sts", lifetime=timedelta(hours=2))
    assert texts(other.post_soap("/", "<Ping/>", token=token), "Subject") == ["carol"]
    assert token.expires - token.created == timedelta(hours=2)


def test_signature_algorithm_is_a_choice():
    tokens = TokenFactory()
    token = tokens.mint(algorithm="rsa-sha512")
    assert ns.ALG_RSA_SHA512.encode() in token.assertion
    protect(tokens).post_soap("/", "<Ping/>", token=token)


# ----------------------------------------------------------------------------- tokens to refuse

#: Each negative variant, and what the middleware's log line must name: the one check it fails.
NEGATIVES = {
    "expired": "expired at",
    "not_yet_valid": "not valid before",
    "wrong_audience": "do not include",
    "wrong_issuer": "is not trusted",
    "tampered": "digest mismatch",
    "unsigned": "is not signed",
    "untrusted": "did not verify with any trusted certificate",
}


@VERSIONS
@pytest.mark.parametrize("variant", sorted(NEGATIVES))
def test_each_negative_variant_is_refused_for_its_own_reason(variant, version):
    tokens = TokenFactory(version=version)
    token = getattr(tokens, variant)("bob")
    refused = protect(tokens).post_soap("/", "<Ping/>", token=token, expect_fault=True)
    assert refused.fault.local_code in ("InvalidSecurityToken", "FailedCheck", "InvalidSecurity")
    assert len(refused.server_log) == 1
    assert NEGATIVES[variant] in refused.server_log[0].lower(), refused.server_log


def test_a_negative_variant_differs_from_a_good_token_in_its_one_respect_only():
    tokens = TokenFactory()
    assert b"mallory" in tokens.tampered("bob").assertion
    assert b"bob" not in tokens.tampered("bob").assertion
    assert b"<ds:Signature" not in tokens.unsigned().assertion
    wrong = tokens.wrong_audience("bob", roles=["admin"])
    assert wrong.applies_to != DEFAULT_AUDIENCE and ns.CLAIM_ROLE.encode() in wrong.assertion
    assert tokens.expired().expires < datetime.now(timezone.utc) - timedelta(minutes=59)
    assert tokens.not_yet_valid().created > datetime.now(timezone.utc) + timedelta(minutes=59)


def test_tokens_not_yet_ready_are_refused_with_a_sentence():
    tokens = TokenFactory()
    with pytest.raises(ConfigurationError, match="holder-of-key"):
        tokens.mint(confirmation="holder-of-key")
    with pytest.raises(ConfigurationError, match="version"):
        TokenFactory(version="3.0")


@pytest.mark.parametrize("version", ["2.0", "1.1"])
def test_encrypt_for_encrypts_the_signed_token_for_that_certificate_only(version):
    from wstrust_wsgi import xmlenc
    from wstrust_wsgi.errors import DecryptionFailed
    from wstrust_wsgi.keys import SigningKey
    from wstrust_wsgi.saml import policy, verify_assertion

    service, other = SigningKey.generate("kit test service"), SigningKey.generate("kit test other")
    tokens = TokenFactory(version=version)
    token = tokens.mint("alice", encrypt_for=service.certificate)
    root = etree.fromstring(token.assertion)
    wrapper = {"2.0": f"{{{ns.SAML2}}}EncryptedAssertion", "1.1": f"{{{ns.XENC}}}EncryptedData"}[version]
    assert root.tag == wrapper and b"alice" not in token.assertion
    decrypted = xmlenc.Decrypter([service]).decrypt(xmlenc.encrypted_data_of(root), scope=root)
    verified = verify_assertion(decrypted.element, policy(trusted_certs=tokens.trusted_certs, issuers=[tokens.issuer],
                                                          audiences=[tokens.audience]),
                                now=datetime.now(timezone.utc))
    assert verified.subject == "alice" and verified.assertion_id == token.assertion_id
    with pytest.raises(DecryptionFailed):
        xmlenc.Decrypter([other]).decrypt(xmlenc.encrypted_data_of(root), scope=root)


# ----------------------------------------------------------------------------- the key


def test_the_throwaway_key_is_made_once_per_process():
    assert throwaway_key() is throwaway_key()
    assert TokenFactory().trusted_certs == TokenFactory(audience="urn:x").trusted_certs
    assert throwaway_key("untrusted").certificate != throwaway_key().certificate
    assert b"BEGIN CERTIFICATE" in TokenFactory().certificate_pem


def test_a_clock_moved_years_away_still_has_a_valid_signer():
    clock = SettableClock(datetime(2003, 5, 1, tzinfo=timezone.utc))
    tokens = TokenFactory(clock=clock)
    service = protect(tokens, clock=clock)
    assert texts(service.post_soap("/", "<Ping/>", token=tokens.mint()), "Subject") == ["alice"]


# ----------------------------------------------------------------------------- the clock


def test_the_settable_clock_moves_the_factory_and_the_service_together():
    clock = SettableClock()
    tokens = TokenFactory(clock=clock)
    service = protect(tokens, clock=clock)
    token = tokens.mint()
    service.post_soap("/", "<Ping/>", token=token)
    clock.advance(minutes=9)  # five minutes of lifetime and five of skew: still admitted
    service.post_soap("/", "<Ping/>", token=token)
    clock.advance(timedelta(minutes=2))
    refused = service.post_soap("/", "<Ping/>", token=token, expect_fault="InvalidSecurityToken")
    assert "expired at" in refused.server_log[0]
    clock.set(token.created)
    service.post_soap("/", "<Ping/>", token=token)


def test_the_settable_clock_refuses_a_naive_time():
    with pytest.raises(ConfigurationError, match="time zone"):
        SettableClock(datetime(2026, 1, 1))


# ----------------------------------------------------------------------------- the request


@pytest.mark.parametrize("soap_version", ["1.1", "1.2"])
def test_soap_request_is_what_call_service_sends(soap_version):
    tokens = TokenFactory()
    token = tokens.mint()
    sent = []
    transport = RecordingTransport(WSGITransport(protect(tokens).app), sent.append)
    call_service("http://svc/", token, b"<Ping/>", soap_version=soap_version, action="urn:ping",
                 transport=transport)
    body, headers = soap_request(token, b"<Ping/>", soap_version=soap_version, action="urn:ping")
    assert body == sent[0].request
    assert headers.items() <= dict(sent[0].request_headers).items()
    assert token.assertion in body  # spliced in unchanged


def test_soap_request_headers_follow_the_soap_version():
    _, headers11 = soap_request(None, "<Ping/>", action="urn:ping")
    assert headers11 == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:ping"'}
    request12 = soap_request(None, "<Ping/>", soap_version="1.2", action="urn:ping")
    assert request12.content_type == 'application/soap+xml; charset=utf-8; action="urn:ping"'
    assert b"Security" not in request12.body
    with pytest.raises(ConfigurationError, match="soap_version"):
        soap_request(None, "<Ping/>", soap_version="1.3")


# ----------------------------------------------------------------------------- failures read well


def test_a_refusal_where_a_result_was_expected_fails_with_the_fault_and_the_servers_reason():
    tokens = TokenFactory()
    with pytest.raises(AssertionError) as failure:
        protect(tokens).post_soap("/soap", "<Ping/>", token=tokens.wrong_audience())
    message = str(failure.value)
    assert message.startswith("POST /soap: expected a result, the service answered a SOAP fault")
    assert "InvalidSecurityToken" in message and "The security token was not issued for this service." in message
    assert "server log: wstrust_wsgi.middleware: refused: InvalidSecurityToken: audiences" in message


def test_a_result_where_a_fault_was_expected_fails_with_the_body():
    tokens = TokenFactory()
    with pytest.raises(AssertionError, match=r"expected the fault FailedCheck, the service answered a result"):
        protect(tokens).post_soap("/", "<Ping/>", token=tokens.mint(), expect_fault="FailedCheck")
    with pytest.raises(AssertionError, match=r"(?s)expected the fault FailedCheck, .*InvalidSecurityToken"):
        protect(tokens).post_soap("/", "<Ping/>", token=tokens.expired(), expect_fault="FailedCheck")


def test_an_answer_that_is_not_soap_fails_with_its_text():
    tokens = TokenFactory()
    service = SoapTestApp(RelyingPartyMiddleware(whoami, audience=DEFAULT_AUDIENCE, issuer=DEFAULT_ISSUER,
                                                 trusted_certs=tokens.trusted_certs))
    with pytest.raises(AssertionError, match=r"not SOAP\n  answer:     HTTP 415 text/plain"):
        service.post_soap("/", "<Ping/>", token=tokens.mint(), headers={"Content-Type": "text/plain"})


def test_read_answer_tells_a_result_a_fault_and_something_else_apart():
    assert read_answer(502, "text/html", b"<html>bad gateway</html>").problem.startswith("HTTP 502 text/html")
    assert read_answer(500, "text/plain", b"").problem == "HTTP 500 text/plain: (empty body)"


# ----------------------------------------------------------------------------- the in-process STS


def test_the_in_process_sts_issues_what_the_service_admits():
    sts = InProcessSts(users={"alice": {"password": "pw", "roles": ["admin"], "claims": {EMAIL: ["a@x.org"]}}})
    token = sts.client("alice").request_token(DEFAULT_AUDIENCE)
    result = protect(sts).post_soap("/", "<Ping/>", token=token)
    assert texts(result, "Subject") == ["alice"]
    assert texts(result, "Role") == ["admin"]
    assert texts(result, "Email") == ["a@x.org"]


def test_the_in_process_sts_takes_relying_parties_as_addresses_or_values():
    sts = InProcessSts(users={"bob": "pw"}, relying_parties=["urn:svc:a", RelyingParty("urn:svc:b", token_type="1.1")])
    assert texts(protect(sts, audience="urn:svc:b").post_soap("/", "<Ping/>", token=sts.token("urn:svc:b")),
                 "Version") == ["1.1"]
    assert texts(protect(sts, audience="urn:svc:a").post_soap("/", "<Ping/>", token=sts.token()),
                 "Version") == ["2.0"]


def test_the_in_process_sts_refuses_as_the_real_one_does():
    sts = InProcessSts(users={"bob": "pw"}, allowed_roles=["admin"])
    with pytest.raises(RemoteFault) as refused:
        sts.client("bob").request_token(DEFAULT_AUDIENCE)
    assert refused.value.local_code == "RequestFailed"  # good password, no allowed role
    with pytest.raises(RemoteFault) as refused:
        sts.client("bob", password="wrong").request_token(DEFAULT_AUDIENCE)
    assert refused.value.local_code == "FailedAuthentication"
    with pytest.raises(ConfigurationError, match="no user 'carol'"):
        sts.client("carol")
    with pytest.raises(ConfigurationError, match="users\\['dave'\\]"):
        InProcessSts(users={"dave": {"roles": ["admin"]}})


def test_the_factory_and_the_in_process_sts_share_one_trusted_certificate():
    assert InProcessSts().trusted_certs == TokenFactory().trusted_certs


# ----------------------------------------------------------------------------- packaging


def test_without_webtest_the_kit_works_and_soap_test_app_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "webtest", None)  # what an import sees when WebTest is not installed
    monkeypatch.delitem(sys.modules, "wstrust_wsgi.testing.testapp")
    monkeypatch.delitem(sys.modules, "wstrust_wsgi.testing")
    monkeypatch.delattr(wstrust_wsgi, "testing")
    kit = importlib.import_module("wstrust_wsgi.testing")
    assert kit.TokenFactory().mint().assertion
    with pytest.raises(ImportError, match=r"needs WebTest, which is a test extra: pip install 'wstrust-wsgi\[test\]'"):
        kit.SoapTestApp  # noqa: B018 - the attribute access is the import


def test_nothing_in_the_library_imports_the_testing_kit():
    importers = []
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if "testing" in module.split(".") or any("testing" in n.split(".") for n in names):
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers == []


def test_holder_of_key_tokens_are_minted_and_soap_request_proves_them(tmp_path):
    import webtest
    from wstrust_wsgi import RelyingPartyMiddleware, SigningKey, generate_demo_key_pair
    from wstrust_wsgi.testing import soap_request
    generate_demo_key_pair("test service", tmp_path, "rp")
    tokens = TokenFactory()
    seen = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        seen.append(environ["wstrust_wsgi.assertion"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    service = webtest.TestApp(RelyingPartyMiddleware(
        app, audience=tokens.audience, issuer=tokens.issuer, trusted_certs=tokens.trusted_certs,
        decryption_keys=[(tmp_path / "rp.key", tmp_path / "rp.crt")], confirmation="holder-of-key"))
    certificate = SigningKey.from_files(tmp_path / "rp.key", tmp_path / "rp.crt").certificate
    for version in ("2.0", "1.1"):
        token = tokens.mint(confirmation="holder-of-key", proof_key_for=certificate, version=version)
        assert token.key_type == "symmetric" and len(token.proof_key) == 32
        body, headers = soap_request(token, b"<Ping xmlns='urn:example'/>")
        assert service.post("/", body, headers=headers).status_int == 200
        bare, headers = soap_request(token.assertion, b"<Ping xmlns='urn:example'/>")  # no proof
        assert service.post("/", bare, headers=headers, expect_errors=True).status_int == 500
    assert [(v.confirmation, v.proof_key) for v in seen] == [("holder-of-key", "symmetric")] * 2
