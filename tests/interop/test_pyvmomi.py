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
over the Body and Timestamp; token-by-token with a holder-of-key token and a
signature by its key. It has no Validate, Renew or Cancel. Of the answer it
checks only HTTP 200, then cuts out the first ``saml2:Assertion`` (re-serialized
by lxml, which exclusive c14n tolerates).

So here: the bearer token (our STS given a default relying party for requests
without AppliesTo, ``WSTRUST_DEMO_DEFAULT_RP``), its requested lifetime and its
renewal flags (renewed by our client, since pyVmomi has no Renew); the
X.509-signed requests (holder-of-key, ActAs) are refused with a clear fault, as
the demo STS registers pyVmomi's certificate to no user (an X.509-authenticated
request is admitted only for a registered certificate). A missing pyVmomi fails.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pyVim import sso  # a missing pyVmomi fails here, never skips

from _support.deployment import free_port, make_tls_pair
from demo_sts import roundtrip
from wstrust_wsgi import StsClient, UrllibTransport, _xml, ns
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
