"""The whole round trip: client -> STS -> middleware -> echo service.

In-process over WSGITransport for every combination of SOAP version, WS-Trust
version, token type and password type; and for real, with both demos under
gunicorn on loopback and the ``wstrust-wsgi client`` command.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import sys

import pytest

from _support.net import free_port
from _support import EMAIL, ISSUER, ROOT, SERVICE_URL, xmlsec1_verify
from demo_sts import roundtrip
from wstrust_wsgi import WSGITransport, call_service
from wstrust_wsgi.cli import ECHO_NS, echo_payload as _echo_payload

MATRIX = list(itertools.product(["1.1", "1.2"], ["1.3", "2005"], ["2.0", "1.1"], [False, True]))


@pytest.mark.parametrize(("soap", "trust", "token_type", "digest"), MATRIX)
def test_in_process_round_trip(make_client, service_app, soap, trust, token_type, digest):
    client = make_client(soap_version=soap, trust_version=trust, digest=digest)
    token = client.request_token(SERVICE_URL, token_type=token_type)
    assert token.applies_to == SERVICE_URL
    assert token.token_type == ("urn:oasis:names:tc:SAML:2.0:assertion" if token_type == "2.0"
                                else "urn:oasis:names:tc:SAML:1.0:assertion")
    reply = call_service(SERVICE_URL, token, _echo_payload("hi there"), soap_version=soap,
                         transport=WSGITransport(service_app))
    assert reply.findtext(f"{{{ECHO_NS}}}Message") == "hi there"
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"
    attributes = {a.get("Name"): a.text for a in reply.iterfind(f"{{{ECHO_NS}}}Attribute")}
    assert attributes[EMAIL] == "admin@example.org"
    assert attributes["http://schemas.microsoft.com/ws/2008/06/identity/claims/role"] == "admin"


def test_token_issuer_and_lifetime(make_client, clock):
    token = make_client().request_token(SERVICE_URL)
    assert token.created == clock.now
    assert (token.expires - token.created).total_seconds() == 300
    assert ISSUER.encode() in token.assertion


# ----------------------------------------------------------------- real gunicorn processes

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wstrust_wsgi", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("soap", "trust", "token_type"), [("1.2", "1.3", "2.0"), ("1.1", "2005", "1.1")])
def test_real_round_trip_under_gunicorn(demo_servers, soap, trust, token_type, tmp_path, rogue_keys):
    sts_url, service_url, logs = demo_servers
    result = run_cli("client", "--sts", sts_url, "--service", service_url, "--username", "admin",
                     "--password", "admin", "--soap", soap, "--trust", trust, "--token-type", token_type,
                     "--message", "over real HTTP")
    assert result.returncode == 0, result.stderr
    assert "<echo:Message>over real HTTP</echo:Message>" in result.stdout
    assert "<echo:Caller>admin</echo:Caller>" in result.stdout
    printed = re.search(r"(<(?:saml:)?Assertion .*?</(?:saml:)?Assertion>)", result.stdout, re.S)
    assert printed is not None
    assertion = printed.group(1).encode()
    # the independent verifier accepts the token with the STS cert, and only with it
    verified = xmlsec1_verify(assertion, ROOT / "certs" / "sts.crt", tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert xmlsec1_verify(assertion, rogue_keys.cert, tmp_path).returncode != 0
    log_text = "".join(p.read_text() for p in logs.glob("*.log"))
    assert "issued: SAML" in log_text and "admitted: 'admin'" in log_text


def test_real_refusal_for_user_without_role(demo_servers):
    sts_url, service_url, _ = demo_servers
    result = run_cli("client", "--sts", sts_url, "--service", service_url,
                     "--username", "alice", "--password", "alice")
    assert result.returncode == 1
    assert "refused" in result.stderr and "RequestFailed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Assertion" not in result.stdout


def test_demo_command_runs_the_whole_round_trip():
    """What `./run.sh demo` runs, on free ports so it cannot clash with anything."""
    env = dict(os.environ, WSTRUST_DEMO_STS_PORT=str(free_port()), WSTRUST_DEMO_SERVICE_PORT=str(free_port()))
    result = subprocess.run([sys.executable, "-m", "demo_sts.roundtrip"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<echo:Caller>admin</echo:Caller>" in result.stdout
    assert "Round trip complete" in result.stdout
    assert "=== admin renews the token ===\nRenewed token id _" in result.stdout
    assert "NotAuthorized" in result.stdout  # the STS log line for alice
    # issue 16: admin's RST and RSTR, after the token and before the service call, the password masked
    out = result.stdout
    heading = out.index("Request and response messages to and from the STS")
    assert out.index("Issued token") < heading < out.index("<echo:Caller>admin</echo:Caller>")
    messages = out[heading:out.index("<echo:Caller>")]
    assert "<wst:RequestSecurityToken " in messages and "<wst:RequestSecurityTokenResponse" in messages
    assert '#PasswordText">**masked**</wsse:Password>' in messages
    assert "admin</wsse:Password>" not in out


def test_client_shows_and_saves_the_messages_over_real_http(demo_servers, tmp_path):
    """Issue 16: --show-messages prints the four messages in order, secrets masked; --save-messages keeps
    the exact bytes (the token in them still verifies) and a masked copy beside each."""
    sts_url, service_url, _ = demo_servers
    folder = tmp_path / "messages"
    result = run_cli("client", "--sts", sts_url, "--service", service_url, "--username", "admin",
                     "--password", "admin", "--digest", "--soap", "1.1", "--show-messages",
                     "--save-messages", str(folder))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    order = [out.index(f">>> POST {sts_url}"), out.index(f"<<< HTTP 200 from {sts_url}"), out.index("Issued token"),
             out.index(f">>> POST {service_url}"), out.index(f"<<< HTTP 200 from {service_url}"),
             out.index("Reply from")]
    assert order == sorted(order)
    assert 'SOAPAction: "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue"' in out
    assert "\n      <wsse:UsernameToken>" in out  # indented for reading
    exact = (folder / "01-request.xml").read_bytes()
    digest = re.search(rb"#PasswordDigest\">([^<]+)<", exact).group(1).decode()
    nonce = re.search(rb"Base64Binary\">([^<]+)<", exact).group(1).decode()
    assert digest not in out and nonce not in out and out.count("**masked**") == 2
    masked = (folder / "01-request.masked.xml").read_bytes()
    assert digest.encode() not in masked and nonce.encode() not in masked
    assert sorted(p.name for p in folder.glob("0*.xml")) == sorted(
        f"{n:02d}-{kind}{suffix}.xml" for n, kind in enumerate(["request", "response"] * 2, start=1)
        for suffix in ("", ".masked"))
    printed = re.search(r"(<(?:saml2?:)?Assertion .*?</(?:saml2?:)?Assertion>)", out.split("Issued token")[1], re.S)
    assert printed is not None and printed.group(1).encode() in (folder / "02-response.xml").read_bytes()
    assert printed.group(1).encode() in (folder / "03-request.xml").read_bytes()  # spliced unchanged
    raw = run_cli("client", "--sts", sts_url, "--service", service_url, "--username", "admin",
                  "--password", "admin", "--no-call", "--show-messages", "--raw")
    assert raw.returncode == 0 and "<s:Envelope" in raw.stdout and "\n  <s:Header>" not in raw.stdout
