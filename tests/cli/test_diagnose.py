"""``wstrust-wsgi diagnose``: the middleware's own checks, explained, on tokens from every source we have.

Each test feeds a token as a person finds it (a bare assertion, an RSTR, a
captured request) with the relying party's settings, and reads what diagnose
prints: the verdict and exit status, the failed check with its values and one
line of cause and fix. The tokens come from our STS (in-process), from the npm
``saml`` package, from real AD FS captures at their frozen time, and from the
testing kit's negative variants, one per check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from lxml import etree

from _forge import ADFS_AUDIENCE, ADFS_ISSUER, ADFS_SUBJECT, ADFS_VECTOR, sign_with, vector_assertion
from _support import ISSUER, SERVICE_URL, VECTORS, KeyFiles, vector
from wstrust_wsgi import WSGITransport, ns, saml
from wstrust_wsgi._checks import CHECKS
from wstrust_wsgi.cli import main
from wstrust_wsgi.keys import SigningKey
from wstrust_wsgi.testing import (DEFAULT_AUDIENCE, DEFAULT_ISSUER, InProcessSts, TokenFactory, soap_request,
                                  throwaway_key)

NODE_DIR = Path(__file__).resolve().parent.parent / "interop" / "node"
PRETTY_VECTOR = "msal-python_adfs_rstr_saml11_bearer.xml"
ADFS_AT = "2014-01-27T08:30:00Z"
NAMES = [check.name for check in CHECKS]


@pytest.fixture
def kit_cert(tmp_path: Path) -> Path:
    path = tmp_path / "trusted.pem"
    path.write_bytes(TokenFactory().certificate_pem)
    return path


def diagnose(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: bytes, *args: str) -> tuple[int, str]:
    """Run ``wstrust-wsgi diagnose FILE ARGS`` in-process; its exit status and standard output."""
    token = tmp_path / f"input-{len(list(tmp_path.glob('input-*')))}.xml"
    token.write_bytes(data)
    capsys.readouterr()
    code = main(["diagnose", str(token), *args])
    return code, capsys.readouterr().out


def as_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: bytes, *args: str) -> tuple[int, dict[str, Any]]:
    code, out = diagnose(capsys, tmp_path, data, *args, "--json")
    return code, json.loads(out)


def kit_settings(cert: Path) -> list[str]:
    return ["--audience", DEFAULT_AUDIENCE, "--issuer", DEFAULT_ISSUER, "--trusted-cert", str(cert)]


def failed_check(report: dict[str, Any]) -> str:
    """The one failed check, asserting that every check before it passed or was skipped, none after it ran."""
    verdicts = [(c["check"], c["verdict"]) for c in report["checks"]]
    failed = [name for name, verdict in verdicts if verdict == "fail"]
    assert len(failed) == 1, verdicts
    index = NAMES.index(failed[0])
    assert all(v in ("pass", "skipped") for _, v in verdicts[:index]), verdicts
    assert all(v == "not run" for _, v in verdicts[index + 1:]), verdicts
    return failed[0]


# --------------------------------------------------------------------------- admitted, from every source


def test_a_kit_token_is_admitted_with_every_check_passed_and_its_summary(capsys, tmp_path, kit_cert):
    token = TokenFactory().mint("alice", roles=["admin"])
    code, out = diagnose(capsys, tmp_path, token.assertion, *kit_settings(kit_cert))
    assert code == 0
    assert "Verdict: ADMITTED (REMOTE_USER would be 'alice')" in out
    for label in ("SAML 2.0", token.assertion_id, DEFAULT_ISSUER, "alice", DEFAULT_AUDIENCE, "valid for another",
                  f"{ns.CLAIM_ROLE} = admin", "rsa-sha256", "trusted signer", "SHA-1", "SHA-256", "bearer",
                  "encrypted      no"):
        assert label in out, label
    assert "FAIL" not in out


def test_the_json_report_has_every_check_in_the_middlewares_order(capsys, tmp_path, kit_cert):
    code, report = as_json(capsys, tmp_path, TokenFactory().mint().assertion, *kit_settings(kit_cert))
    assert code == 0
    assert set(report) == {"admitted", "input", "at", "clock_skew_seconds", "token", "checks", "fault", "subject",
                           "notes"}
    assert report["admitted"] is True and report["fault"] is None and report["input"] == "assertion"
    assert [c["check"] for c in report["checks"]] == NAMES
    assert {c["verdict"] for c in report["checks"]} == {"pass", "skipped"}
    assert all(set(c) == {"check", "title", "verdict", "expected", "actual", "detail"} for c in report["checks"])
    assert set(report["token"]) >= {"version", "id", "issuer", "subject", "audiences", "not_before",
                                    "not_on_or_after", "validity", "attributes", "signature", "certificate",
                                    "confirmation", "encrypted"}
    assert set(report["token"]["certificate"]) >= {"subject", "sha1", "sha256"}


class _Recording:
    """A transport that keeps the STS's raw answers, so the test has the RSTR exactly as sent."""

    def __init__(self, app: Any) -> None:
        self.inner = WSGITransport(app)
        self.answers: list[bytes] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        answer = self.inner(url, body, headers)
        self.answers.append(answer[2])
        return answer


@pytest.mark.parametrize("token_type", ["2.0", "1.1"])
def test_an_rstr_from_our_sts_is_admitted(capsys, tmp_path, kit_cert, token_type):
    sts = InProcessSts()
    recording = _Recording(sts.app)
    sts.client(transport=recording).request_token(DEFAULT_AUDIENCE, token_type=token_type)
    code, report = as_json(capsys, tmp_path, recording.answers[0], *kit_settings(kit_cert))
    assert code == 0, report["checks"]
    assert report["input"] == "rstr" and report["token"]["version"] == token_type


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_a_captured_request_is_verified_as_it_stands(capsys, tmp_path, kit_cert, soap):
    request = soap_request(TokenFactory().mint(), b"<Ping xmlns='urn:example'/>", soap_version=soap)
    code, report = as_json(capsys, tmp_path, request.body, *kit_settings(kit_cert))
    assert code == 0
    assert report["input"] == "request"
    assert report["checks"][0]["actual"] == soap


def test_a_token_from_the_npm_saml_package_is_admitted(capsys, tmp_path, sts_keys: KeyFiles):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: this test needs it")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    spec = {"version": "2.0", "keyFile": str(sts_keys.key), "certFile": str(sts_keys.cert),
            "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "options": {"issuer": ISSUER, "audiences": SERVICE_URL, "lifetimeInSeconds": 300,
                        "nameIdentifier": "admin"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    minted = subprocess.run([node, str(NODE_DIR / "mint_saml.js"), str(tmp_path / "spec.json")],
                            capture_output=True, timeout=60, cwd=NODE_DIR)
    assert minted.returncode == 0, minted.stderr.decode()
    code, report = as_json(capsys, tmp_path, minted.stdout, "--audience", SERVICE_URL, "--issuer", ISSUER,
                           "--trusted-cert", str(sts_keys.cert))
    assert code == 0, report["checks"]
    assert report["subject"] == "admin"


def _vector_cert(tmp_path: Path, name: str) -> Path:
    _, cert = vector_assertion(name)
    path = tmp_path / f"{name}.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


def adfs_settings(tmp_path: Path, name: str = ADFS_VECTOR) -> list[str]:
    return ["--audience", ADFS_AUDIENCE, "--issuer", ADFS_ISSUER, "--trusted-cert", str(_vector_cert(tmp_path, name))]


def test_the_real_adfs_saml11_token_is_admitted_at_its_frozen_time(capsys, tmp_path):
    code, report = as_json(capsys, tmp_path, vector(ADFS_VECTOR).read_bytes(), *adfs_settings(tmp_path),
                           "--allow-sha1", "--at", ADFS_AT)
    assert code == 0, report["checks"]
    assert report["subject"] == ADFS_SUBJECT
    assert report["token"]["version"] == "1.1"
    assert report["token"]["signature"].startswith("rsa-sha1")
    assert "ADFS Signing" in report["token"]["certificate"]["subject"]


def test_the_real_adfs_token_without_allow_sha1_fails_the_algorithm_check(capsys, tmp_path):
    code, report = as_json(capsys, tmp_path, vector(ADFS_VECTOR).read_bytes(), *adfs_settings(tmp_path),
                           "--at", ADFS_AT)
    assert code == 1
    assert failed_check(report) == "algorithms"
    [failed] = [c for c in report["checks"] if c["verdict"] == "fail"]
    assert failed["actual"] == ns.ALG_RSA_SHA1 and "allow_sha1" in failed["hint"]
    assert report["fault"]["code"] == "wsse:UnsupportedAlgorithm"


def test_the_pretty_printed_adfs_token_is_refused_with_the_digest_check_named(capsys, tmp_path):
    code, out = diagnose(capsys, tmp_path, vector(PRETTY_VECTOR).read_bytes(), *adfs_settings(tmp_path, PRETTY_VECTOR),
                         "--allow-sha1", "--at", "2013-11-15T03:10:00Z")
    assert code == 1
    assert "FAIL  digest" in out
    assert "pretty-printed" in out
    assert 'Verdict: REFUSED with wsse:FailedCheck: "The signature or decryption was invalid."' in out


# --------------------------------------------------------------------------- one token per check


KIT_VARIANTS = {
    "expiry": lambda kit: kit.expired(),
    "not-before": lambda kit: kit.not_yet_valid(),
    "audience": lambda kit: kit.wrong_audience(),
    "issuer": lambda kit: kit.wrong_issuer(),
    "digest": lambda kit: kit.tampered(),
    "signed": lambda kit: kit.unsigned(),
    "signing-key": lambda kit: kit.untrusted(),
    "algorithms": lambda kit: kit.mint(algorithm="rsa-sha1"),
}


@pytest.mark.parametrize("version", ["2.0", "1.1"])
@pytest.mark.parametrize("check", sorted(KIT_VARIANTS))
def test_each_negative_variant_fails_exactly_its_check(capsys, tmp_path, kit_cert, check, version):
    token = KIT_VARIANTS[check](TokenFactory(version=version))
    code, report = as_json(capsys, tmp_path, token.assertion, *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == check
    [failed] = [c for c in report["checks"] if c["verdict"] == "fail"]
    assert failed["expected"] and failed["actual"] and failed["hint"]


S2 = ns.SAML2


SENDER_VOUCHES = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"


def _set(root, path: str, attribute: str, value: str) -> None:
    for element in root.iter(f"{{{S2}}}{path}"):
        element.set(attribute, value)


def _remove(root, path: str, attribute: str) -> None:
    for element in root.iter(f"{{{S2}}}{path}"):
        del element.attrib[attribute]


def _set_text(root, path: str, text: str) -> None:
    for element in root.iter(f"{{{S2}}}{path}"):
        element.text = text


def _add_conditions(root) -> None:
    conditions = root.find(f"{{{S2}}}Conditions")
    conditions.addnext(etree.fromstring(etree.tostring(conditions)))


PAST = "2001-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"
#: Edits of a good SAML 2.0 assertion, made before it is signed with the kit's key, each breaking one check.
EDITS = {
    "confirmation": lambda r: _set(r, "SubjectConfirmation", "Method", SENDER_VOUCHES),
    "subject": lambda r: _set_text(r, "NameID", ""),
    "conditions": lambda r: _remove(r, "Conditions", "NotOnOrAfter"),
    "bearer-data": lambda r: _set(r, "SubjectConfirmationData", "Recipient", "https://elsewhere.test/"),
    "confirmation-expiry": lambda r: _set(r, "SubjectConfirmationData", "NotOnOrAfter", PAST),
    "issue-instant": lambda r: r.set("IssueInstant", FUTURE),
    "assertion-shape": _add_conditions,
}


@pytest.mark.parametrize("check", sorted(EDITS))
def test_each_edited_token_fails_exactly_its_check(capsys, tmp_path, kit_cert, check):
    kit = TokenFactory()
    what = kit.content("alice")
    root = saml.build_saml2(what)
    EDITS[check](root)
    token = sign_with(throwaway_key(), saml.SAML2, what, root=root)
    code, report = as_json(capsys, tmp_path, token, *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == check
    assert report["fault"]["code"] == "wsse:InvalidSecurityToken"


def test_the_client_address_is_checked_when_given(capsys, tmp_path, kit_cert):
    """A token bound to an Address: admitted from it, refused from elsewhere with the check named, and
    reported as skipped when diagnose is not told where the client calls from."""
    kit = TokenFactory()
    what = kit.content("alice")
    root = saml.build_saml2(what)
    _set(root, "SubjectConfirmationData", "Address", "192.0.2.7")
    token = sign_with(throwaway_key(), saml.SAML2, what, root=root)
    code, report = as_json(capsys, tmp_path, token, *kit_settings(kit_cert), "--client-address", "192.0.2.7")
    assert code == 0
    assert [c["verdict"] for c in report["checks"] if c["check"] == "client-address"] == ["pass"]
    code, report = as_json(capsys, tmp_path, token, *kit_settings(kit_cert), "--client-address", "198.51.100.1")
    assert code == 1 and failed_check(report) == "client-address"
    assert "192.0.2.7" in report["checks"][NAMES.index("client-address")]["expected"]
    code, report = as_json(capsys, tmp_path, token, *kit_settings(kit_cert))
    assert code == 0
    assert [c["verdict"] for c in report["checks"] if c["check"] == "client-address"] == ["skipped"]


def test_a_trailing_slash_in_the_audience_is_named_as_such(capsys, tmp_path, kit_cert):
    token = TokenFactory().mint(audience=DEFAULT_AUDIENCE + "/")
    code, out = diagnose(capsys, tmp_path, token.assertion, *kit_settings(kit_cert))
    assert code == 1
    assert "trailing slash" in out
    assert f"actual:   ['{DEFAULT_AUDIENCE}/']" in out


def test_an_untrusted_key_shows_both_thumbprints_and_the_rollover_hint(capsys, tmp_path, kit_cert):
    code, report = as_json(capsys, tmp_path, TokenFactory().untrusted().assertion, *kit_settings(kit_cert))
    assert code == 1
    [failed] = [c for c in report["checks"] if c["verdict"] == "fail"]
    cert = report["token"]["certificate"]
    assert "untrusted signer" in cert["subject"]
    assert cert["sha1"] in failed["hint"] and cert["sha256"] in failed["hint"] and "rolled" in failed["hint"]


def test_expired_says_how_long_ago_and_the_skew(capsys, tmp_path, kit_cert):
    kit = TokenFactory()
    at = datetime.now(timezone.utc)
    token = kit.mint(issued_at=at - timedelta(minutes=13), lifetime=timedelta(minutes=5))
    code, report = as_json(capsys, tmp_path, token.assertion, *kit_settings(kit_cert), "--clock-skew", "300",
                           "--at", at.isoformat())
    assert code == 1
    [failed] = [c for c in report["checks"] if c["verdict"] == "fail"]
    assert failed["check"] == "expiry"
    assert failed["hint"].startswith("expired 8 minutes ago with a 5 minutes clock skew")


def test_a_trusted_certificate_out_of_validity_fails_certificate_validity(capsys, tmp_path, kit_cert):
    at = datetime(2101, 1, 1, tzinfo=timezone.utc)  # the kit's certificate ends in 2100
    token = TokenFactory(clock=lambda: at).mint()
    code, report = as_json(capsys, tmp_path, token.assertion, *kit_settings(kit_cert), "--at", at.isoformat())
    assert code == 1
    assert failed_check(report) == "certificate-validity"


def test_two_tokens_in_one_request_fail_one_token(capsys, tmp_path, kit_cert):
    kit = TokenFactory()
    request = soap_request(kit.mint(), b"<Ping xmlns='urn:example'/>").body
    second = kit.mint().assertion
    request = request.replace(b"</wsse:Security>", second + b"</wsse:Security>")
    code, report = as_json(capsys, tmp_path, request, *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == "one-token"


def test_a_request_without_security_header_fails_security_header(capsys, tmp_path, kit_cert):
    request = soap_request(None, b"<Ping xmlns='urn:example'/>").body
    code, report = as_json(capsys, tmp_path, request, *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == "security-header"


def test_a_stale_timestamp_fails_timestamp(capsys, tmp_path, kit_cert):
    request = soap_request(TokenFactory().mint(), b"<Ping xmlns='urn:example'/>").body
    stamp = (b'<wsu:Timestamp xmlns:wsu="' + ns.WSU.encode() + b'"><wsu:Created>2001-01-01T00:00:00Z</wsu:Created>'
             b"<wsu:Expires>2001-01-01T00:05:00Z</wsu:Expires></wsu:Timestamp>")
    start = request.index(b">", request.index(b"Security")) + 1
    code, report = as_json(capsys, tmp_path, request[:start] + stamp + request[start:], *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == "timestamp"
    assert report["fault"]["code"] == "wsse:MessageExpired"


def test_a_second_holder_of_the_token_id_fails_unique_id(capsys, tmp_path, kit_cert):
    token = TokenFactory().mint()
    payload = f"<Ping xmlns='urn:example' ID='{token.assertion_id}'/>".encode()
    code, report = as_json(capsys, tmp_path, soap_request(token, payload).body, *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == "unique-id"


def test_an_unknown_mandatory_header_fails_must_understand(capsys, tmp_path, kit_cert):
    request = soap_request(TokenFactory().mint(), b"<Ping xmlns='urn:example'/>").body
    header = (b'<x:Secret xmlns:x="urn:example:x" soap:mustUnderstand="1" xmlns:soap="' + ns.SOAP11.encode()
              + b'"/>')
    start = request.index(b">", request.index(b"Header")) + 1
    code, report = as_json(capsys, tmp_path, request[:start] + header + request[start:], *kit_settings(kit_cert))
    assert code == 1
    assert failed_check(report) == "must-understand"


# --------------------------------------------------------------------------- encrypted tokens


def test_an_encrypted_token_is_decrypted_then_checked(capsys, tmp_path, kit_cert):
    service = SigningKey.generate("diagnose test service", days=2)
    key_file = tmp_path / "service.pem"
    key_file.write_bytes(_private_pem(service) + service.certificate_pem)
    token = TokenFactory().mint(encrypt_for=service.certificate)
    assert b"EncryptedData" in token.assertion
    code, report = as_json(capsys, tmp_path, token.assertion, *kit_settings(kit_cert),
                           "--decryption-key", str(key_file))
    assert code == 0, report["checks"]
    assert report["token"]["encrypted"] is True
    assert report["checks"][NAMES.index("decryption")]["verdict"] == "pass"

    other = SigningKey.generate("another service", days=2)
    wrong = tmp_path / "other.pem"
    wrong.write_bytes(_private_pem(other) + other.certificate_pem)
    code, report = as_json(capsys, tmp_path, token.assertion, *kit_settings(kit_cert), "--decryption-key", str(wrong))
    assert code == 1
    assert failed_check(report) == "decryption"


def _private_pem(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


# --------------------------------------------------------------------------- --app


APP_MODULE = textwrap.dedent("""
    from wstrust_wsgi import RelyingPartyMiddleware
    from wstrust_wsgi.testing import TokenFactory

    def service(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    tokens = TokenFactory()
    guarded = RelyingPartyMiddleware(service, audience=tokens.audience, issuer=tokens.issuer,
                                     trusted_certs=tokens.trusted_certs, clock_skew={skew})

    def logging_wrapper(app):
        def wrapped(environ, start_response):
            return app(environ, start_response)
        return wrapped

    class Outer:
        def __init__(self, app):
            self.wsgi_app = app
        def __call__(self, environ, start_response):
            return self.wsgi_app(environ, start_response)

    application = Outer(logging_wrapper(guarded))

    def make_app():
        return application
""")


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"diagnose_app_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE.format(skew=60))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.mark.parametrize("attribute", ["application", "make_app()"])
def test_app_reads_the_middleware_inside_the_wrappers(capsys, tmp_path, app_module, attribute):
    kit = TokenFactory()
    code, _ = diagnose(capsys, tmp_path, kit.mint().assertion, "--app", f"{app_module}:{attribute}")
    assert code == 0
    at = datetime.now(timezone.utc)
    late = kit.mint(issued_at=at - timedelta(minutes=7), lifetime=timedelta(minutes=5))
    code, report = as_json(capsys, tmp_path, late.assertion, "--app", f"{app_module}:{attribute}")
    assert code == 1  # refused under the app's 60 s skew, where the default 300 s would admit it
    assert report["clock_skew_seconds"] == 60
    assert failed_check(report) == "expiry"


# --------------------------------------------------------------------------- bad input: exit 2


@pytest.mark.parametrize("data, args, message", [
    (b"not xml", [], "not XML"),
    (b"<a/>", [], "not an assertion, an RSTR or a SOAP request"),
    (None, ["--issuer", "x"], "give --audience, --trusted-cert"),
    (None, ["--app", "nosuchmodule_for_diagnose:app"], "cannot import"),
    (None, ["--app", "json:dumps", "--audience", "x"], "either --app or"),
    (None, ["--app", "json:dumps"], "no RelyingPartyMiddleware"),
    (None, ["--at", "yesterday"], "--at"),
])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, kit_cert, data, args, message):
    token = tmp_path / "in.xml"
    token.write_bytes(data if data is not None else TokenFactory().mint().assertion)
    settings = [] if args and args[0] in ("--issuer", "--app") else kit_settings(kit_cert)
    code = main(["diagnose", str(token), *settings, *args])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1


def test_the_console_script_reads_standard_input(tmp_path, kit_cert):
    script = Path(sys.executable).parent / "wstrust-wsgi"
    result = subprocess.run([str(script), "diagnose", *kit_settings(kit_cert)],
                            input=TokenFactory().expired().assertion, capture_output=True, timeout=120)
    assert result.returncode == 1, result.stderr.decode()
    assert b"FAIL  expiry" in result.stdout


@pytest.mark.parametrize("name", sorted(p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*.xml")))
def test_every_vector_gets_a_verdict_or_one_line_never_a_traceback(capsys, tmp_path, kit_cert, name):
    token = VECTORS / name
    code = main(["diagnose", str(token), *kit_settings(kit_cert), "--json"])
    captured = capsys.readouterr()
    assert code in (1, 2)
    if code == 1:
        report = json.loads(captured.out)
        assert report["fault"]["code"] and failed_check(report)
    else:
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
