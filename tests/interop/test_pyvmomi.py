"""pyVmomi's STS client (``pyVim.sso.SsoAuthenticator``, the one vSphere scripts use) against our STS under gunicorn.

Facts read from pyVmomi's ``pyVim/sso.py`` (9.x): it speaks SOAP 1.1 and
WS-Trust 1.3 only, over HTTPS only (plain HTTP solely to a ``localhost:1080``
sidecar), pinning the server certificate (``sts_cert`` or ``thumbprint``);
every RST is Issue with TokenType SAML 2.0, a requested Lifetime,
``Renewing Allow= OK=`` (both ``renewable``), vCenter's ``Delegatable``, a
KeyType and a SignatureAlgorithm, and no ``wsp:AppliesTo`` (vCenter's STS
issues for its SSO domain). The bearer request authenticates with a
UsernameToken (a Password without ``Type``: PasswordText); the holder-of-key
request, also its ActAs, with a ``BinarySecurityToken`` and an X.509 signature
(RSA-SHA256) over the Body and Timestamp, KeyType PublicKey and an *empty*
``<UseKey Sig="id"/>`` (no ``#``) naming that signature: the key to bind is the
certificate that signed. ``add_saml_context`` signs a SOAP 1.1 request with a
holder-of-key token: the assertion in ``wsse:Security``, a Timestamp, and an
RSA-SHA512 signature over the Body and Timestamp whose KeyInfo is a
``#SAMLID`` KeyIdentifier. It has no Validate, Renew or Cancel. Of the answer
it checks only HTTP 200, then cuts out the first ``saml2:Assertion``
(re-serialized by lxml, which exclusive c14n tolerates).

What works here, each under gunicorn over TLS:

* the bearer token (our STS given a default relying party for requests without
  AppliesTo, ``WSTRUST_DEMO_DEFAULT_RP``), its requested lifetime and its
  renewal flags (renewed by our client, since pyVmomi has no Renew);
* with pyVmomi's certificate registered to a user (``solution``, as vCenter's
  solution users; ``_support.hok_x509``), its holder-of-key request gets a
  token whose holder-of-key confirmation carries that certificate, and a SOAP
  request pyVmomi signs with the token (``add_saml_context``) is admitted by
  our middleware (holder-of-key only); the same request signed by another key
  is refused;
* its ActAs request with a delegatable bearer token of ``admin``, where a
  delegation rule lets ``solution`` use ActAs: a holder-of-key token for
  ``solution`` naming ``admin`` as actor;
* the holder-of-key and ActAs requests of an unregistered certificate (the
  demo STS registers none) are refused with a clear fault.

Not covered: ``get_token_by_token`` (a holder-of-key token authenticating an
Issue request: our STS authenticates by UsernameToken or X.509 certificate
only, so it is refused), and pyVmomi's use of the token against vCenter's own
``LoginByToken`` (not a WS-Security service of ours). A missing pyVmomi fails.
"""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from pyVim import sso  # a missing pyVmomi fails here, never skips

from _support.deployment import free_port, make_tls_pair
from _support.hok_x509 import SOLUTION_USER
from _support.net import wait_listening
from _support.deployment import Gunicorn
from demo_sts import roundtrip
from wstrust_wsgi import StsClient, UrllibTransport, _xml, ns
from wstrust_wsgi.cli import ECHO_NS, echo_payload
from wstrust_wsgi.errors import RemoteFault
from wstrust_wsgi.keys import load_certificates
from wstrust_wsgi.saml import policy, verify_assertion

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sts(tmp_path_factory) -> Iterator[tuple[str, str, Path]]:  # type: ignore[no-untyped-def]
    """(https URL, the default relying party, the TLS certificate): the demo STS under gunicorn with TLS."""
    directory = tmp_path_factory.mktemp("pyvmomi-sts")
    tls_key, tls_cert = make_tls_pair(directory)
    port = free_port()
    env = roundtrip.demo_env(port, free_port())
    url = env["WSTRUST_DEMO_ISSUER"] = f"https://127.0.0.1:{port}/services/sts"
    env["WSTRUST_DEMO_DEFAULT_RP"] = env["WSTRUST_DEMO_SERVICE_URL"]
    log = directory / "gunicorn.log"
    process = roundtrip.start_gunicorn("demo_sts.app:app", port, env, log,
                                       ("--certfile", str(tls_cert), "--keyfile", str(tls_key)))
    try:
        assert roundtrip.wait_ready(process, port), log.read_text()
        yield url, env["WSTRUST_DEMO_SERVICE_URL"], tls_cert
    finally:
        roundtrip.stop(process)


def authenticator(sts: tuple[str, str, Path]) -> tuple[sso.SsoAuthenticator, ssl.SSLContext]:
    url, _, tls_cert = sts
    return sso.SsoAuthenticator(url, sts_cert=str(tls_cert)), ssl.create_default_context(cafile=str(tls_cert))


def verified(assertion: str, audience: str):  # type: ignore[no-untyped-def]
    """The assertion pyVmomi handed back, verified as the middleware verifies one (the demo STS's certificate)."""
    accepted = policy(trusted_certs=load_certificates(ROOT / "certs" / "sts.crt"),
                      issuers=[_xml.parse(assertion.encode()).findtext(f"{{{ns.SAML2}}}Issuer")], audiences=[audience])
    return verify_assertion(_xml.parse(assertion.encode()), accepted, now=datetime.now(timezone.utc))


def test_bearer_token_with_a_username_and_password(sts):  # type: ignore[no-untyped-def]
    client, context = authenticator(sts)
    assertion = client.get_bearer_saml_assertion("admin", "admin", token_duration=120, ssl_context=context)
    token = verified(assertion, sts[1])  # for the default relying party: pyVmomi names none
    assert token.subject == "admin" and token.audiences == (sts[1],) and token.version == "2.0"
    assert token.not_on_or_after - token.issue_instant <= timedelta(seconds=120)  # its Lifetime, shorter than ours
    with pytest.raises(sso.SoapException) as refused:  # our SOAP 1.1 fault (HTTP 500) is what it parses
        client.get_bearer_saml_assertion("admin", "wrong", ssl_context=context)
    assert (refused.value._fault_code, refused.value._fault_string) == ("wst:FailedAuthentication",
                                                                         "Authentication failed.")


def test_renewable_tokens_are_renewed_by_our_client(sts):  # type: ignore[no-untyped-def]
    """pyVmomi asks ``Renewing Allow=renewable``; it has no Renew of its own, so ours renews what it got."""
    client, context = authenticator(sts)
    ours = StsClient(sts[0], username="admin", password="admin", soap_version="1.1",
                     transport=UrllibTransport(cafile=sts[2]))
    renewable = client.get_bearer_saml_assertion("admin", "admin", renewable=True, ssl_context=context)
    renewed = ours.renew(renewable.encode())
    again = verified(renewed.assertion.decode(), sts[1])
    assert again.subject == "admin" and again.assertion_id != verified(renewable, sts[1]).assertion_id
    fixed = client.get_bearer_saml_assertion("admin", "admin", renewable=False, ssl_context=context)
    with pytest.raises(RemoteFault) as refused:
        ours.renew(fixed.encode())
    assert "renew" in refused.value.reason.lower()


@pytest.mark.parametrize("act_as", [False, True])
def test_hok_and_act_as_with_unregistered_certificates_are_refused(sts, act_as):  # type: ignore[no-untyped-def]
    client, context = authenticator(sts)
    bearer = client.get_bearer_saml_assertion("admin", "admin", delegatable=True, ssl_context=context)
    with pytest.raises(sso.SoapException) as refused:
        client.get_hok_saml_assertion(str(ROOT / "certs" / "client.crt"), str(ROOT / "certs" / "client.key"),
                                      act_as_token=bearer if act_as else None, ssl_context=context)
    assert (refused.value._fault_code, refused.value._fault_string) == (
        "wst:FailedAuthentication", "The X.509 certificate or signature was not accepted.")


# A registered certificate: pyVmomi's holder-of-key token, its ActAs, and its signed requests to our middleware

CERT, KEY = ROOT / "certs" / "client.crt", ROOT / "certs" / "client.key"


@pytest.fixture(scope="module")
def x509_sts(tmp_path_factory) -> Iterator[tuple[str, str, Path]]:  # type: ignore[no-untyped-def]
    """(https STS URL, the echo service's URL, the TLS certificate): an STS where pyVmomi's certificate is
    registered to ``solution``, and the echo service (holder-of-key only) trusting it, each under gunicorn."""
    directory = tmp_path_factory.mktemp("pyvmomi-x509")
    tls_key, tls_cert = make_tls_pair(directory)
    sts_port, service_port = free_port(), free_port()
    issuer = f"https://127.0.0.1:{sts_port}/services/sts"
    service_url = f"http://127.0.0.1:{service_port}/services/echo"
    support = ("--pythonpath", str(ROOT / "tests"))
    certs = ROOT / "certs"
    servers = [Gunicorn(f'_support.hok_x509:gunicorn_sts("{certs}", "{issuer}", "{service_url}", "{CERT}")',
                        port=sts_port, cwd=directory, log=directory / "sts.log",
                        args=(*support, "--certfile", str(tls_cert), "--keyfile", str(tls_key))),
               Gunicorn(f'_support.hok_x509:gunicorn_service("{certs}", "{issuer}", "{service_url}")',
                        port=service_port, cwd=directory, log=directory / "service.log", args=support)]
    try:
        for server in servers:
            wait_listening(server.port, server.process, server.log)
        yield issuer, service_url, tls_cert
    finally:
        for server in servers:
            server.stop()


def _confirmation_certificate(assertion: str) -> bytes:
    root = _xml.parse(assertion.encode())
    [confirmation] = root.iter(f"{{{ns.SAML2}}}SubjectConfirmation")
    assert confirmation.get("Method") == ns.SAML2_HOLDER_OF_KEY
    return base64.b64decode(confirmation.findtext(f".//{{{ns.DS}}}X509Certificate") or "")


def _signed_by_pyvmomi(assertion: str, message: str, key: Path) -> bytes:
    """A SOAP 1.1 echo request with the token in wsse:Security, signed by pyVmomi's ``add_saml_context``."""
    payload = etree.tostring(echo_payload(message)).decode()
    request = (f'<soapenv:Envelope xmlns:soapenv="{ns.SOAP11}"><soapenv:Header>'
               f'<wsse:Security xmlns:wsse="{ns.WSSE}">{assertion}</wsse:Security></soapenv:Header>'
               f'<soapenv:Body>{payload}</soapenv:Body></soapenv:Envelope>')
    return sso.add_saml_context(request, assertion, str(key)).encode()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8",
                                                              "SOAPAction": '""'})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_hok_token_binds_the_registered_certificate_and_its_signed_requests_are_admitted(x509_sts):  # type: ignore[no-untyped-def]
    url, service_url, tls_cert = x509_sts
    client, context = authenticator((url, service_url, tls_cert))
    assertion = client.get_hok_saml_assertion(str(CERT), str(KEY), ssl_context=context)
    token = verified(assertion, service_url)
    assert token.subject == SOLUTION_USER
    assert _confirmation_certificate(assertion) == load_certificates(CERT)[0].public_bytes(Encoding.DER)
    status, reply = _post(service_url, _signed_by_pyvmomi(assertion, "from pyVmomi", KEY))
    answer = _xml.parse(reply)
    assert status == 200, reply
    assert (answer.findtext(f".//{{{ECHO_NS}}}Message"), answer.findtext(f".//{{{ECHO_NS}}}Caller")) == (
        "from pyVmomi", SOLUTION_USER)
    status, reply = _post(service_url, _signed_by_pyvmomi(assertion, "by another key", ROOT / "certs" / "service.key"))
    assert status == 500 and b"FailedCheck" in reply and b"by another key" not in reply


def test_act_as_with_a_delegation_rule(x509_sts):  # type: ignore[no-untyped-def]
    url, service_url, tls_cert = x509_sts
    client, context = authenticator((url, service_url, tls_cert))
    bearer = client.get_bearer_saml_assertion("admin", "admin", delegatable=True, ssl_context=context)
    assertion = client.get_hok_saml_assertion(str(CERT), str(KEY), act_as_token=bearer, ssl_context=context)
    token = verified(assertion, service_url)
    assert token.subject == SOLUTION_USER and token.attributes.get(ns.CLAIM_ACTOR) == ("admin",)
    assert _confirmation_certificate(assertion) == load_certificates(CERT)[0].public_bytes(Encoding.DER)
