"""The ``wstrust-wsgi`` command, run for real: as ``python -m wstrust_wsgi`` and as the console script.

The ``client`` tests talk to the demo STS served by gunicorn on a loopback port;
the demo service is deliberately not started, so its port is closed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from _support.net import stop, wait_listening
from _support import ROOT, xmlsec1_verify

BIN = Path(sys.executable).parent
PYTHON_M = [sys.executable, "-m", "wstrust_wsgi"]
CONSOLE_SCRIPT = [str(BIN / "wstrust-wsgi")]
GUNICORN = BIN / "gunicorn"

both_entry_points = pytest.mark.parametrize(
    "command", [PYTHON_M, CONSOLE_SCRIPT], ids=["python-m", "console-script"]
)


def free_port(*, avoid: int | None = None) -> int:
    """A loopback port nothing listens on (bound, then released)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port != avoid:
            return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTRUST_")}
    env.update(extra)
    return env


def run(command: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )


def assert_one_plain_line(result: subprocess.CompletedProcess[str]) -> str:
    """stderr is one sentence on one line; no traceback anywhere."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- a real demo STS


@dataclass(frozen=True)
class DemoSts:
    url: str
    service_url: str
    log: Path


@pytest.fixture(scope="module")
def demo_sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSts]:
    sts_port = free_port()
    service_port = free_port(avoid=sts_port)
    service_url = f"http://127.0.0.1:{service_port}/services/echo"
    log = tmp_path_factory.mktemp("gunicorn") / "demo_sts.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(GUNICORN), "--bind", f"127.0.0.1:{sts_port}", "--workers", "1",
             "--no-control-socket", "demo_sts.app:app"],
            cwd=ROOT, env=clean_env(WSTRUST_DEMO_SERVICE_URL=service_url),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(sts_port, process, log)
        yield DemoSts(f"http://127.0.0.1:{sts_port}/services/sts", service_url, log)
    finally:
        stop(process)


def printed_assertion(stdout: str) -> bytes:
    start = stdout.index("<Assertion ")  # SAML 2.0 in the default namespace, as AD FS writes it
    end = stdout.index("</Assertion>", start) + len("</Assertion>")
    return stdout[start:end].encode("utf-8")


# ----------------------------------------------------------------------------- client


@both_entry_points
def test_client_with_nothing_listening_prints_one_sentence_and_no_traceback(command, tmp_path):
    port = free_port()
    result = run(command, "client", "--sts", f"http://127.0.0.1:{port}/services/sts",
                 "--password", "admin", cwd=tmp_path)
    assert result.returncode != 0
    line = assert_one_plain_line(result)
    assert f"could not connect to http://127.0.0.1:{port}" in line
    assert "is the service running?" in line
    assert result.stdout == ""


@both_entry_points
def test_client_prints_the_token_then_says_the_service_is_not_running(command, demo_sts, tmp_path):
    result = run(command, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url,
                 "--password", "admin", cwd=tmp_path)
    assert "<Assertion " in result.stdout, demo_sts.log.read_text()
    assert "Issued token (urn:oasis:names:tc:SAML:2.0:assertion)" in result.stdout
    assert result.returncode == 2
    line = assert_one_plain_line(result)
    assert line.startswith(f"could not connect to {demo_sts.service_url}: is the service running?")


def test_token_printed_by_the_client_verifies_with_xmlsec1_against_the_demo_sts_cert(demo_sts, tmp_path):
    result = run(PYTHON_M, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url,
                 "--password", "admin", "--no-call", "--token-type", "1.1", "--trust", "2005",
                 "--soap", "1.1", "--digest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "<saml:Assertion" in result.stdout
    start = result.stdout.index("<saml:Assertion")
    end = result.stdout.index("</saml:Assertion>") + len("</saml:Assertion>")
    checked = xmlsec1_verify(result.stdout[start:end].encode(), ROOT / "certs" / "sts.crt", tmp_path)
    assert checked.returncode == 0 and "\nOK\n" in checked.stderr, checked.stdout + checked.stderr


def test_saml2_token_printed_by_the_client_verifies_with_xmlsec1(demo_sts, tmp_path):
    result = run(CONSOLE_SCRIPT, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url,
                 "--password", "admin", "--no-call", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    checked = xmlsec1_verify(printed_assertion(result.stdout), ROOT / "certs" / "sts.crt", tmp_path)
    assert checked.returncode == 0 and "\nOK\n" in checked.stderr, checked.stdout + checked.stderr


@pytest.mark.parametrize("soap", ["1.2", "1.1"])
def test_client_as_alice_says_the_sts_refused_with_request_failed(demo_sts, tmp_path, soap):
    result = run(PYTHON_M, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url,
                 "--username", "alice", "--password", "alice", "--soap", soap, cwd=tmp_path)
    assert result.returncode == 1
    line = assert_one_plain_line(result)
    assert line.startswith(f"The STS at {demo_sts.url} refused the request")
    assert "RequestFailed" in line
    assert "<saml" not in result.stdout


def test_client_with_a_wrong_password_says_failed_authentication(demo_sts, tmp_path):
    result = run(CONSOLE_SCRIPT, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url,
                 "--password", "not-admin", "--trust", "2005", "--digest", cwd=tmp_path)
    assert result.returncode == 1
    line = assert_one_plain_line(result)
    assert "refused the request" in line
    assert "FailedAuthentication" in line
    assert "not-admin" not in result.stdout + result.stderr


def test_client_pointed_at_a_path_that_is_not_the_sts_reports_http_404_in_one_line(demo_sts, tmp_path):
    wrong = demo_sts.url.replace("/services/sts", "/nothing/here")
    result = run(PYTHON_M, "client", "--sts", wrong, "--service", demo_sts.service_url,
                 "--password", "admin", cwd=tmp_path)
    assert result.returncode == 2
    line = assert_one_plain_line(result)
    assert "404" in line
    assert wrong in line


def test_client_given_a_url_without_a_scheme_fails_in_one_line_without_traceback(tmp_path):
    result = run(PYTHON_M, "client", "--sts", "127.0.0.1-sts", "--password", "admin", cwd=tmp_path)
    assert result.returncode != 0
    line = assert_one_plain_line(result)
    assert "127.0.0.1-sts" in line


# ----------------------------------------------------------------------------- client: a newcomer's mistakes


ECHO_BODY = '<echo:Echo xmlns:echo="urn:wstrust-wsgi:demo:echo"><echo:Message>hi</echo:Message></echo:Echo>'


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("<echo:Echo xmlns:echo='urn:x'>unclosed", "not one well-formed XML element"),
        ("just text", "not one well-formed XML element"),
        (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{ECHO_BODY}</s:Body></s:Envelope>',
         "holds a whole SOAP envelope; give only the element that goes in its Body"),
    ],
    ids=["missing", "unclosed", "text", "envelope"],
)
@pytest.mark.parametrize("sts", ["demo", "closed port"])
def test_client_refuses_a_bad_payload_file_in_one_sentence_before_any_token_is_requested(
        demo_sts, tmp_path, content, said, sts):
    payload = tmp_path / "payload.xml"
    if content is not None:
        payload.write_text(content)
    url = demo_sts.url if sts == "demo" else f"http://127.0.0.1:{free_port()}/services/sts"
    result = run(PYTHON_M, "client", "--sts", url, "--service", demo_sts.service_url, "--password", "admin",
                 "--payload", str(payload), cwd=tmp_path)
    assert result.returncode == 2
    line = assert_one_plain_line(result)
    assert line.startswith(f"wstrust-wsgi client: --payload {payload}: ") and said in line, line
    assert result.stdout == ""  # no token was requested, so none was printed


def test_client_with_a_good_payload_file_still_sends_it(demo_sts, tmp_path):
    payload = tmp_path / "payload.xml"
    payload.write_text(ECHO_BODY)
    result = run(PYTHON_M, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url, "--password", "admin",
                 "--payload", str(payload), cwd=tmp_path)
    assert "<Assertion xmlns=\"urn:oasis:names:tc:SAML:2.0:assertion\"" in result.stdout  # the token, then the (closed) service
    assert "could not connect to" in assert_one_plain_line(result)


@both_entry_points
def test_client_with_a_missing_cafile_names_it_in_one_sentence(command, tmp_path):
    missing = tmp_path / "tls-ca.pem"
    result = run(command, "client", "--sts", f"http://127.0.0.1:{free_port()}/services/sts", "--password", "admin",
                 "--cafile", str(missing), cwd=tmp_path)
    assert result.returncode == 2
    line = assert_one_plain_line(result)
    assert line == f"wstrust-wsgi client: cafile {missing}: cannot be read (No such file or directory)"
    assert result.stdout == ""


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo echo service (behind RelyingPartyMiddleware) under gunicorn; yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "demo_service.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(GUNICORN), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
             "demo_service.app:app"],
            cwd=ROOT, env=clean_env(WSTRUST_DEMO_SERVICE_URL=f"http://127.0.0.1:{port}/services/echo"),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_listening(port, process, log)
        yield f"http://127.0.0.1:{port}/services/echo"
    finally:
        stop(process)


@pytest.mark.parametrize("soap", ["1.2", "1.1"])
def test_client_whose_sts_is_a_protected_service_is_told_it_is_not_an_sts(demo_service, tmp_path, soap):
    result = run(PYTHON_M, "client", "--sts", demo_service, "--service", demo_service, "--password", "admin",
                 "--soap", soap, cwd=tmp_path)
    assert result.returncode == 1
    line = assert_one_plain_line(result)
    assert line.startswith(f"The STS at {demo_service} refused the request: "), line
    assert f"{demo_service} answers like a service protected by SAML tokens, not like an STS" in line, line


def test_client_refused_by_a_real_sts_gets_no_such_hint(demo_sts, tmp_path):
    result = run(PYTHON_M, "client", "--sts", demo_sts.url, "--service", demo_sts.service_url,
                 "--password", "wrong", cwd=tmp_path)
    assert result.returncode == 1
    assert "not like an STS" not in assert_one_plain_line(result)


@both_entry_points
def test_version_is_on_the_command(command, tmp_path):
    from wstrust_wsgi import __version__

    result = run(command, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wstrust-wsgi {__version__}"


# ----------------------------------------------------------------------------- certs


@both_entry_points
def test_certs_writes_three_demo_only_rsa_2048_self_signed_pairs(command, tmp_path):
    out = tmp_path / "generated"
    result = run(command, "certs", "--dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DEMO ONLY" in result.stdout
    for stem in ("sts", "service", "client"):
        cert = x509.load_pem_x509_certificate((out / f"{stem}.crt").read_bytes())
        key = serialization.load_pem_private_key((out / f"{stem}.key").read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048
        assert isinstance(cert.public_key(), rsa.RSAPublicKey)
        assert cert.public_key().key_size == 2048
        assert cert.issuer == cert.subject
        cert.verify_directly_issued_by(cert)
        assert "DEMO ONLY" in cert.subject.rfc4514_string()
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()
        assert (out / f"{stem}.key").stat().st_mode & 0o077 == 0


def test_certs_writes_a_fresh_key_pair_for_each_party(tmp_path):
    out = tmp_path / "generated"
    assert run(PYTHON_M, "certs", "--dir", str(out), cwd=tmp_path).returncode == 0
    moduli = {
        x509.load_pem_x509_certificate((out / f"{stem}.crt").read_bytes()).public_key().public_numbers().n
        for stem in ("sts", "service", "client")
    }
    assert len(moduli) == 3


def test_certs_into_a_path_that_is_a_file_fails_in_one_line(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    result = run(PYTHON_M, "certs", "--dir", str(blocker), cwd=tmp_path)
    assert result.returncode == 2
    line = assert_one_plain_line(result)
    assert line.startswith("wstrust-wsgi certs:")


# ----------------------------------------------------------------------------- help


@both_entry_points
def test_top_level_help_lists_the_subcommands(command, tmp_path):
    result = run(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: wstrust-wsgi")
    assert "client" in result.stdout
    assert "certs" in result.stdout
    assert result.stderr == ""


@both_entry_points
def test_client_help_lists_its_options(command, tmp_path):
    result = run(command, "client", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: wstrust-wsgi client")
    for option in ("--sts", "--service", "--username", "--password", "--digest", "--soap", "--trust",
                   "--token-type", "--no-call"):
        assert option in result.stdout


def test_no_subcommand_is_a_usage_error_without_traceback(tmp_path):
    result = run(PYTHON_M, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: wstrust-wsgi" in result.stderr
    assert "Traceback" not in result.stderr


def _every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _every_parser(sub)


def test_help_shows_no_rest_markup(tmp_path):
    """Help is read in a terminal: reST's ``double backticks`` from the docstrings must not leak into it."""
    from wstrust_wsgi.cli import build_parser

    parsers = list(_every_parser(build_parser()))
    assert len(parsers) > 20  # the top level, client, certs, init and every action of user, role, sts, rp
    for parser in parsers:
        assert "``" not in parser.format_help(), parser.prog
    result = run(PYTHON_M, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "``" not in result.stdout
