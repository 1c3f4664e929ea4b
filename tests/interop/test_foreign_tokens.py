"""Tokens minted by others, admitted (or refused, precisely) by our RelyingPartyMiddleware.

Two independent signers:

* the npm ``saml`` package 4.0.0 (Auth0's node-saml, signing with its own
  xml-crypto 2.x), driven by ``node/mint_saml.js``: its ``Saml20.create`` and
  ``Saml11.create`` with our trusted test key, issuer, audience, lifetime,
  NameID and attributes. Its defaults are rsa-sha256, sha256, exclusive c14n
  with transforms [enveloped-signature, exc-c14n] (hard-coded in
  ``saml/lib/xml/sign.js``; it has no option for inclusive c14n), which our
  policy accepts as they are. Its ``signatureAlgorithm: "rsa-sha1"`` option is
  the one thing our policy refuses by design (``wsse:UnsupportedAlgorithm``),
  unless the middleware is built with ``allow_sha1=True``.
* ``xmlsec1`` in sign mode, filling the empty ``ds:Signature`` template of
  ``data/saml20_xmlsec1_template.xml`` (exc-c14n, rsa-sha256, enveloped,
  Reference URI=#ID, sha256).

Each token is spliced unchanged into a SOAP envelope's ``wsse:Security`` and
posted through WebTest to the middleware guarding a recording app, whose clock
is conftest's ``clock``; the tokens carry that same instant. One test also
posts a node-minted token to the demo echo service under real gunicorn.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import webtest
from lxml import etree

from _forge import ECHO_NS, RecordingApp, qn, read_fault, soap_request
from _support import EMAIL, ISSUER, OTHER_URL, SERVICE_URL, FixedClock, KeyFiles
from demo_sts import roundtrip
from wstrust_wsgi import RelyingPartyMiddleware, UrllibTransport, call_service, ns
from wstrust_wsgi.cli import echo_payload as _echo_payload

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
MINT_SAML = NODE_DIR / "mint_saml.js"
XMLSEC1_TEMPLATE = HERE / "data" / "saml20_xmlsec1_template.xml"
PATH = "/services/echo"
MEDIA = {"1.1": "text/xml", "1.2": "application/soap+xml"}
ENV_NS = {"1.1": ns.SOAP11, "1.2": ns.SOAP12}
SAML_VERSIONS = pytest.mark.parametrize("version", ["2.0", "1.1"], ids=["saml2.0", "saml1.1"])
SOAP_VERSIONS = pytest.mark.parametrize("soap", ["1.1", "1.2"], ids=["soap1.1", "soap1.2"])
ROLES = ["admin", "auditor"]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the interop tests need it")
    return path


def iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- the npm `saml` package


def mint_with_node_saml(
    tmp_path: Path, version: str, keys: KeyFiles, now: datetime, *,
    cert: Path | None = None, **overrides: Any,
) -> bytes:
    """A signed assertion from the npm ``saml`` package; ``cert`` (default: the key's own) goes into KeyInfo."""
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": SERVICE_URL,
        "lifetimeInSeconds": 300,
        "nameIdentifier": "admin",
        "attributes": {EMAIL: "admin@example.org", ns.CLAIM_ROLE: ROLES},
    }
    options.update(overrides)
    spec = {
        "version": version,
        "keyFile": str(keys.key),
        "certFile": str(cert or keys.cert),
        "now": iso(now),
        "options": options,
    }
    spec_path = tmp_path / f"mint-{len(list(tmp_path.glob('mint-*')))}.json"
    spec_path.write_text(json.dumps(spec))
    result = subprocess.run(
        [tool("node"), str(MINT_SAML), str(spec_path)], capture_output=True, timeout=30, cwd=NODE_DIR
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


def middleware(recorder: RecordingApp, keys: KeyFiles, clock: FixedClock, **options: Any) -> webtest.TestApp:
    return webtest.TestApp(RelyingPartyMiddleware(
        recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[keys.cert], clock=clock, **options
    ))


@pytest.fixture
def guarded(recorder, sts_keys, clock) -> webtest.TestApp:
    return middleware(recorder, sts_keys, clock)


def post(app: webtest.TestApp, token: bytes, soap: str = "1.1"):  # type: ignore[no-untyped-def]
    body = soap_request(token, version=soap)
    assert token in body  # spliced unchanged
    return app.post(PATH, body, headers={"Content-Type": f"{MEDIA[soap]}; charset=utf-8"}, expect_errors=True)


def fault_code(response, soap: str) -> str:  # type: ignore[no-untyped-def]
    """The wsse fault code's local name (SOAP 1.1 faultcode, SOAP 1.2 Subcode)."""
    assert b"Traceback" not in response.body
    fault = read_fault(response.body)
    assert fault.envelope_ns == ENV_NS[soap]
    code = fault.code if soap == "1.1" else fault.subcode
    assert code is not None and code.startswith(f"{{{ns.WSSE}}}"), code
    return code.split("}")[1]


def signature_algorithms(token: bytes) -> tuple[str, str, list[str], str]:
    root = etree.fromstring(token)
    signed_info = root.find(f"{{{ns.DS}}}Signature/{{{ns.DS}}}SignedInfo")
    return (
        signed_info.find(f"{{{ns.DS}}}CanonicalizationMethod").get("Algorithm"),
        signed_info.find(f"{{{ns.DS}}}SignatureMethod").get("Algorithm"),
        [t.get("Algorithm") for t in signed_info.iter(f"{{{ns.DS}}}Transform")],
        signed_info.find(f"{{{ns.DS}}}Reference/{{{ns.DS}}}DigestMethod").get("Algorithm"),
    )


@SAML_VERSIONS
def test_node_saml_defaults_are_the_algorithms_our_policy_accepts(tmp_path, sts_keys, clock, version):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now)
    assert signature_algorithms(token) == (
        ns.ALG_EXC_C14N, ns.ALG_RSA_SHA256, [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N], ns.ALG_SHA256
    )


@SAML_VERSIONS
@SOAP_VERSIONS
def test_node_saml_token_is_admitted_with_subject_and_attributes(
    guarded, recorder, tmp_path, sts_keys, clock, version, soap
):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now)
    response = post(guarded, token, soap)
    assert response.status_int == 200, response.body
    [call] = recorder.calls
    assert call["REMOTE_USER"] == "admin"
    assertion = call["assertion"]
    assert assertion.version == version
    assert (assertion.subject, assertion.issuer, assertion.audiences) == ("admin", ISSUER, (SERVICE_URL,))
    assert assertion.attributes[EMAIL] == ("admin@example.org",)
    assert assertion.roles == tuple(ROLES)
    assert assertion.not_before == clock.now
    assert assertion.not_on_or_after == clock.now + timedelta(seconds=300)
    assert assertion.assertion_id == etree.fromstring(token).get("ID" if version == "2.0" else "AssertionID")


@SAML_VERSIONS
def test_node_saml_token_for_another_audience_is_an_invalid_token(guarded, recorder, tmp_path, sts_keys, clock, version):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now, audiences=OTHER_URL)
    assert fault_code(post(guarded, token), "1.1") == "InvalidSecurityToken"
    assert recorder.calls == []


@pytest.mark.parametrize(("options", "outcome"), [
    ({"recipient": SERVICE_URL}, None),
    ({"recipient": OTHER_URL}, "InvalidSecurityToken"),
    ({"recipient": SERVICE_URL, "inResponseTo": "_authn-request-1"}, "InvalidSecurityToken"),
], ids=["recipient-is-us", "recipient-is-another-service", "in-response-to"])
def test_node_saml_bearer_confirmation_data_is_checked(guarded, recorder, tmp_path, sts_keys, clock, options, outcome):
    """SAML 2.0 profiles 4.1.4.2-4.1.4.3, on the SubjectConfirmationData node-saml writes."""
    token = mint_with_node_saml(tmp_path, "2.0", sts_keys, clock.now, **options)
    assert b"Recipient=" in token
    response = post(guarded, token)
    if outcome is None:
        assert response.status_int == 200 and len(recorder.calls) == 1
    else:
        assert fault_code(response, "1.1") == outcome
        assert recorder.calls == []


@SAML_VERSIONS
def test_node_saml_token_expires_on_our_clock(guarded, recorder, tmp_path, sts_keys, clock, version):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now)
    clock.advance(minutes=10, seconds=1)  # 300 s of life + 5 min of skew, and a second
    assert fault_code(post(guarded, token), "1.1") == "InvalidSecurityToken"
    assert recorder.calls == []


@SAML_VERSIONS
def test_node_saml_token_signed_by_a_rogue_key_fails_check(guarded, recorder, tmp_path, rogue_keys, clock, version):
    token = mint_with_node_saml(tmp_path, version, rogue_keys, clock.now)
    assert fault_code(post(guarded, token), "1.1") == "FailedCheck"
    assert recorder.calls == []


@SAML_VERSIONS
def test_node_saml_rogue_key_with_the_trusted_cert_in_key_info_fails_check(
    guarded, recorder, tmp_path, rogue_keys, sts_keys, clock, version
):
    """KeyInfo claiming the trusted certificate buys nothing: the key must be the trusted one."""
    token = mint_with_node_saml(tmp_path, version, rogue_keys, clock.now, cert=sts_keys.cert)
    assert fault_code(post(guarded, token), "1.1") == "FailedCheck"
    assert recorder.calls == []


@SAML_VERSIONS
def test_node_saml_trusted_key_with_a_rogue_cert_in_key_info_is_admitted(
    guarded, recorder, tmp_path, rogue_keys, sts_keys, clock, version
):
    """The converse: KeyInfo is never consulted, only the configured certificate."""
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now, cert=rogue_keys.cert)
    assert post(guarded, token).status_int == 200
    assert recorder.calls[0]["REMOTE_USER"] == "admin"


@SAML_VERSIONS
@SOAP_VERSIONS
def test_node_saml_rsa_sha1_option_is_refused_by_design(guarded, recorder, tmp_path, sts_keys, clock, version, soap):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now,
                                signatureAlgorithm="rsa-sha1", digestAlgorithm="sha1")
    assert signature_algorithms(token)[1] == ns.ALG_RSA_SHA1
    response = post(guarded, token, soap)
    assert fault_code(response, soap) == "UnsupportedAlgorithm"
    assert response.status_int == (500 if soap == "1.1" else 400)
    assert recorder.calls == []


@SAML_VERSIONS
def test_node_saml_rsa_sha1_token_is_admitted_when_sha1_is_allowed(recorder, tmp_path, sts_keys, clock, version):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now,
                                signatureAlgorithm="rsa-sha1", digestAlgorithm="sha1")
    app = middleware(recorder, sts_keys, clock, allow_sha1=True)
    assert post(app, token).status_int == 200
    assert recorder.calls[0]["REMOTE_USER"] == "admin"


@SAML_VERSIONS
def test_node_saml_sha256_signature_with_sha1_digest_is_still_refused(guarded, recorder, tmp_path, sts_keys, clock, version):
    token = mint_with_node_saml(tmp_path, version, sts_keys, clock.now, digestAlgorithm="sha1")
    assert signature_algorithms(token)[1:] == (ns.ALG_RSA_SHA256, [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N], ns.ALG_SHA1)
    assert fault_code(post(guarded, token), "1.1") == "UnsupportedAlgorithm"
    assert recorder.calls == []


# --------------------------------------------------------------------------- real gunicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_demo_service(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The demo echo service under gunicorn on a free port; (process, port).

    A port found free can be taken by another process before gunicorn binds it,
    and then a connection test reaches that other server. So the service counts as
    up only once *its* log says it listens on the port and its worker booted;
    otherwise it is stopped and started again on another port.
    """
    for _ in range(3):
        port = free_port()
        env["WSTRUST_DEMO_SERVICE_URL"] = f"http://127.0.0.1:{port}{PATH}"
        process = roundtrip.start_gunicorn("demo_service.app:app", port, env, log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            text = log.read_text(errors="replace")
            if f"Listening at: http://127.0.0.1:{port}" in text and "Booting worker" in text:
                return process, port
            time.sleep(0.1)
        roundtrip.stop(process)
    pytest.fail(f"the demo service did not start under gunicorn: {log.read_text(errors='replace')}")


def test_node_saml_token_reaches_the_demo_echo_service_under_gunicorn(tmp_path, sts_keys):
    """The demo service, trusting our test certificate, answers the caller and claims of a node-minted token."""
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(sts_keys.cert, certs / "sts.crt")
    env = roundtrip.demo_env(8080, 8081)
    env["WSTRUST_DEMO_CERTS"] = str(certs)
    env["WSTRUST_DEMO_ISSUER"] = ISSUER
    env["WSTRUST_DEMO_SERVICE_PATH"] = PATH
    env.pop("WSTRUST_DEMO_REPLAY_CACHE", None)
    log = tmp_path / "service.log"
    process, port = start_demo_service(env, log)
    service_url = env["WSTRUST_DEMO_SERVICE_URL"]
    try:
        # the real service uses the real clock
        now = datetime.now(timezone.utc).replace(microsecond=0)
        token = mint_with_node_saml(tmp_path, "2.0", sts_keys, now, audiences=service_url)
        reply = call_service(service_url, token, _echo_payload("from node"), soap_version="1.1",
                             transport=UrllibTransport(timeout=10))
    finally:
        roundtrip.stop(process)
    assert reply.findtext(qn(ECHO_NS, "Caller")) == "admin"
    assert reply.findtext(qn(ECHO_NS, "Message")) == "from node"
    attributes = [(a.get("Name"), a.text) for a in reply.iterfind(qn(ECHO_NS, "Attribute"))]
    assert (EMAIL, "admin@example.org") in attributes
    assert [v for n, v in attributes if n == ns.CLAIM_ROLE] == ROLES
    assert "admitted: 'admin'" in log.read_text()


# --------------------------------------------------------------------------- xmlsec1 in sign mode


def xmlsec1_template(clock: FixedClock, assertion_id: str, *, subject: str = "admin") -> etree._Element:
    """The data/ template with our issuer, audience, subject and the clock's instants set."""
    root = etree.parse(str(XMLSEC1_TEMPLATE), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    s, ds = ns.SAML2, ns.DS
    now, expires = iso(clock.now), iso(clock.now + timedelta(minutes=5))
    root.set("ID", assertion_id)
    root.set("IssueInstant", now)
    root.find(f"{{{s}}}Issuer").text = ISSUER
    root.find(f"{{{ds}}}Signature/{{{ds}}}SignedInfo/{{{ds}}}Reference").set("URI", "#" + assertion_id)
    root.find(f"{{{s}}}Subject/{{{s}}}NameID").text = subject
    root.find(f"{{{s}}}Subject/{{{s}}}SubjectConfirmation/{{{s}}}SubjectConfirmationData").set("NotOnOrAfter", expires)
    conditions = root.find(f"{{{s}}}Conditions")
    conditions.set("NotBefore", now)
    conditions.set("NotOnOrAfter", expires)
    conditions.find(f"{{{s}}}AudienceRestriction/{{{s}}}Audience").text = SERVICE_URL
    root.find(f"{{{s}}}AuthnStatement").set("AuthnInstant", now)
    email = next(a for a in root.iter(f"{{{s}}}Attribute") if a.get("Name") == EMAIL)
    email.find(f"{{{s}}}AttributeValue").text = f"{subject}@example.org"
    return root


def xmlsec1_sign(template: etree._Element, keys: KeyFiles, workdir: Path) -> bytes:
    """``xmlsec1 --sign --privkey-pem KEY,CERT --id-attr:ID ...:Assertion`` on the filled template."""
    source = workdir / f"{template.get('ID')}.template.xml"
    signed = workdir / f"{template.get('ID')}.signed.xml"
    source.write_bytes(etree.tostring(template, xml_declaration=True, encoding="utf-8"))
    result = subprocess.run(
        [tool("xmlsec1"), "--sign", "--privkey-pem", f"{keys.key},{keys.cert}",
         "--id-attr:ID", f"{ns.SAML2}:Assertion", "--output", str(signed), str(source)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # the assertion element alone, as a client would put it in wsse:Security
    return etree.tostring(etree.parse(str(signed)).getroot())


@SOAP_VERSIONS
def test_xmlsec1_signed_template_with_the_trusted_key_is_admitted(guarded, recorder, sts_keys, clock, tmp_path, soap):
    token = xmlsec1_sign(xmlsec1_template(clock, "_xmlsec1-trusted"), sts_keys, tmp_path)
    assert etree.fromstring(token).findtext(f".//{{{ns.DS}}}SignatureValue").strip()
    response = post(guarded, token, soap)
    assert response.status_int == 200, response.body
    [call] = recorder.calls
    assert call["REMOTE_USER"] == "admin"
    assertion = call["assertion"]
    assert (assertion.version, assertion.assertion_id) == ("2.0", "_xmlsec1-trusted")
    assert assertion.attributes[EMAIL] == ("admin@example.org",)
    assert assertion.roles == ("admin",)
    assert (assertion.not_before, assertion.not_on_or_after) == (clock.now, clock.now + timedelta(minutes=5))


@SOAP_VERSIONS
def test_xmlsec1_signed_template_with_a_rogue_key_fails_check(guarded, recorder, rogue_keys, clock, tmp_path, soap):
    token = xmlsec1_sign(xmlsec1_template(clock, "_xmlsec1-rogue", subject="root"), rogue_keys, tmp_path)
    assert fault_code(post(guarded, token, soap), soap) == "FailedCheck"
    assert recorder.calls == []


def test_xmlsec1_signed_template_is_checked_against_our_clock(guarded, recorder, sts_keys, clock, tmp_path):
    token = xmlsec1_sign(xmlsec1_template(clock, "_xmlsec1-clock"), sts_keys, tmp_path)
    clock.advance(minutes=-5, seconds=-1)  # before NotBefore by more than the skew
    assert fault_code(post(guarded, token), "1.1") == "InvalidSecurityToken"
    clock.advance(minutes=5, seconds=1)
    assert post(guarded, token).status_int == 200
    assert [c["REMOTE_USER"] for c in recorder.calls] == ["admin"]
