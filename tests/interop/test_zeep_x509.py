"""zeep's X.509 ``BinarySignature`` (``zeep.wsse.signature``, signed by python-xmlsec) authenticates an RST.

zeep puts the client certificate in a ``wsse:BinarySecurityToken`` and signs
the Body and the Security header's Timestamp with its key (exclusive c14n;
its KeyInfo is a SecurityTokenReference to the token). It adds no Timestamp of
its own, so a zeep user adds one (as zeep's UsernameToken does with
``timestamp_token``). RSA-SHA256 is asked (zeep's default, RSA-SHA1, is refused
by the STS's algorithm policy, as for every signature). A missing zeep or
xmlsec fails.

Over HTTP, zeep is the whole client: it reads ``?wsdl`` of a real gunicorn STS
(started from a deployment file, the user's certificate registered in the
registry as ``wstrust-wsgi user cert add`` does), builds the RST through the
port's schema, signs it, sends it with its own transport and reads the answer
(or raises the fault) through the WSDL, with ``service.Issue``. Two things a
zeep user configures, and why:

* zeep adds WS-Addressing headers (Action, MessageID, To) because our WSDL
  names each operation's ``wsam:Action``, as WS-Trust defines them (the
  WSDL is right: zeep's UsernameToken clients rely on it, see
  ``test_wsdl.py``). Its BinarySignature signs only the Body and the
  Timestamp, and the STS refuses a certificate-signed request whose
  ``wsa:To`` is not signed (it would let a signed request be re-addressed to
  another endpoint that trusts the same certificate), as the last test here
  shows. So the client uses a zeep plugin that leaves ``wsa:To`` out (it is
  optional in WS-Addressing 1.0; the STS is the HTTP endpoint anyway).
  Sending the envelope with ``Transport.post_xml`` would not help: zeep's
  ``create_message`` adds the same headers.
* zeep checks every answer's WS-Security signature with the same certificate
  as it signs with; the STS answers over the transport (TLS in production),
  unsigned, as AD FS ``certificatemixed`` does, so that check is turned off.

Before that, in-process: our client's RST (its own signature taken off)
signed by zeep's plugin and posted to the STS through WSGI.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import xmlsec
import zeep
from cryptography.hazmat.primitives import serialization
from lxml import etree
from zeep.plugins import Plugin
from zeep.wsse.signature import BinarySignature
from zeep.wsse.utils import WSU, get_security_header, get_timestamp

from _support import ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.deployment import SERVICE, Gunicorn, free_port, init_registry, sqlite_url, write_config
from _support.deployment import ISSUER as DEPLOYED_ISSUER
from test_wsdl import rst_content
from wstrust_wsgi import (MemoryUserStore, RelyingParty, SigningKey, StsClient, TokenService, User, WSGITransport,
                          _xml, ns)
from wstrust_wsgi._issued import parse_response, raise_for_fault
from wstrust_wsgi.client import _post
from wstrust_wsgi.errors import RemoteFault
from wstrust_wsgi.saml import policy, verify_assertion
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.sql.certificates import RegistryUserCertificates
from wstrust_wsgi.sts import wsdl

PAIR = SigningKey.generate("zeep client")


def write_pair(pair: SigningKey, directory: Path, stem: str) -> tuple[str, str]:
    """The pair as the PEM key and certificate files zeep's signature plugins read."""
    key, cert = directory / f"{stem}.key", directory / f"{stem}.crt"
    key.write_bytes(pair.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    cert.write_bytes(pair.certificate_pem)
    return str(key), str(cert)


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    return write_pair(PAIR, tmp_path, "client")


def zeep_signed(client: StsClient, files: tuple[str, str], **methods: object) -> bytes:
    """Our RST (Timestamp kept, our BinarySecurityToken and Signature removed) signed by zeep's BinarySignature."""
    envelope = etree.fromstring(client.build_request(SERVICE_URL))
    security = envelope.find(f".//{{{ns.WSSE}}}Security")
    for element in [*security.iterchildren(f"{{{ns.WSSE}}}BinarySecurityToken"), *security.iterchildren(
            f"{{{ns.DS}}}Signature")]:
        security.remove(element)
    signed, _ = BinarySignature(*files, **methods).apply(envelope, {})
    assert signed.find(f".//{{{ns.WSSE}}}BinarySecurityToken") is not None
    return etree.tostring(signed)


def post(client: StsClient, body: bytes) -> bytes:
    status, data = _post(client.transport, STS_URL, client.soap, client.dialect.action("Issue"), body)
    raise_for_fault(_xml.parse(data), status)
    return data


@pytest.mark.parametrize(("trust", "soap"), [("1.3", "1.1"), ("2005", "1.2")])
def test_zeep_binary_signature_gets_the_registered_users_token(sts_keys: KeyFiles, clock: FixedClock,
                                                               files: tuple[str, str], trust: str, soap: str) -> None:
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), clock=clock,
                       users=MemoryUserStore([User("zed", "pw", roles=["admin"], certificates=[PAIR.certificate_pem])]),
                       relying_parties=[RelyingParty(SERVICE_URL)])
    client = StsClient(STS_URL, client_cert=PAIR, transport=WSGITransport(sts), clock=clock, trust_version=trust,
                       soap_version=soap)
    body = zeep_signed(client, files, signature_method=xmlsec.Transform.RSA_SHA256,
                       digest_method=xmlsec.Transform.SHA256)
    token = parse_response(post(client, body))
    name_id = etree.fromstring(token.assertion).find(f".//{{{ns.SAML2}}}NameID")
    assert name_id is not None and name_id.text == "zed"
    with pytest.raises(RemoteFault, match="not accepted"):  # zeep's signature replayed
        post(client, body)


def test_zeep_with_an_unregistered_certificate_gets_no_token(sts_keys: KeyFiles, clock: FixedClock,
                                                             files: tuple[str, str]) -> None:
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), clock=clock,
                       users=MemoryUserStore([User("zed", "pw", roles=["admin"])]),
                       relying_parties=[RelyingParty(SERVICE_URL)])
    client = StsClient(STS_URL, client_cert=PAIR, transport=WSGITransport(sts), clock=clock)
    body = zeep_signed(client, files, signature_method=xmlsec.Transform.RSA_SHA256,
                       digest_method=xmlsec.Transform.SHA256)
    with pytest.raises(RemoteFault) as refused:
        post(client, body)
    assert refused.value.code.endswith("FailedAuthentication")


# ---------------------------------------------------------------------- zeep as the client, over HTTP


class TimestampedBinarySignature(BinarySignature):
    """zeep's BinarySignature over a fresh ``wsu:Timestamp`` (5 minutes), the answer not checked for a signature."""

    def apply(self, envelope: etree._Element, headers: dict[str, str]) -> tuple[etree._Element, dict[str, str]]:
        now = datetime.now(timezone.utc)
        get_security_header(envelope).append(WSU.Timestamp(
            WSU.Created(get_timestamp(now, zulu_timestamp=True)),
            WSU.Expires(get_timestamp(now + timedelta(minutes=5), zulu_timestamp=True))))
        return super().apply(envelope, headers)  # type: ignore[no-any-return]

    def verify(self, envelope: etree._Element) -> etree._Element:
        return envelope  # the RSTR is protected by the transport, not signed: nothing to check here


class WithoutAddressingTo(Plugin):  # type: ignore[misc]
    """Leave out the ``wsa:To`` zeep adds from the WSDL's wsam:Action: BinarySignature cannot sign it."""

    def egress(self, envelope: etree._Element, http_headers: dict[str, str], operation: Any,
               binding_options: Any) -> tuple[etree._Element, dict[str, str]]:
        for to in envelope.iter(f"{{{ns.WSA10}}}To"):
            to.getparent().remove(to)
        return envelope, http_headers


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, sts_keys: KeyFiles) -> Iterator[tuple[str, Gunicorn]]:
    """A gunicorn STS from a deployment file, PAIR's certificate registered to admin; (its URL, the server)."""
    directory = tmp_path_factory.mktemp("zeep-sts")
    registry = sqlite_url(directory / "registry.db")
    init_registry(registry)
    with Registry.open(registry) as opened:
        RegistryUserCertificates(opened).add("admin", PAIR.certificate_pem)
    config = write_config(directory, {"keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
                                      "registry": {"url": registry}})
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=directory,
                      log=directory / "gunicorn.log")
    try:
        server.wait_started()
        yield f"http://127.0.0.1:{port}/services/sts", server
    finally:
        server.stop()


def zeep_service(sts_url: str, files: tuple[str, str], trust: str, soap: str, *, plugins: tuple[Plugin, ...] = (
        WithoutAddressingTo(),)) -> Any:
    """zeep's service proxy for the port (trust, soap) of ``sts_url?wsdl``, signing with the key and certificate."""
    client = zeep.Client(f"{sts_url}?wsdl", plugins=list(plugins), wsse=TimestampedBinarySignature(
        *files, signature_method=xmlsec.Transform.RSA_SHA256, digest_method=xmlsec.Transform.SHA256))
    return client.bind(wsdl.SERVICE_NAME, wsdl.port_name(trust, soap))


@pytest.mark.parametrize(("trust", "soap"), [("1.3", "1.1"), ("1.3", "1.2"), ("2005", "1.1"), ("2005", "1.2")])
def test_zeep_over_http_gets_the_registered_users_token(deployed: tuple[str, Gunicorn], sts_keys: KeyFiles,
                                                        tmp_path: Path, trust: str, soap: str) -> None:
    sts_url, server = deployed
    result = zeep_service(sts_url, write_pair(PAIR, tmp_path, "client"), trust, soap).Issue(
        _value_1=rst_content(trust, SERVICE))
    namespace = {"1.3": ns.WST13, "2005": ns.WST2005}[trust]
    [assertion] = [found for element in result["_value_1"]  # zeep's reading, through the port's schema
                   for found in element.iter(f"{{{ns.SAML2}}}Assertion")]
    assert any(element.tag.startswith(f"{{{namespace}}}") for element in result["_value_1"])
    verified = verify_assertion(etree.fromstring(etree.tostring(assertion)), policy(
        trusted_certs=[sts_keys.load().certificate], issuers=[DEPLOYED_ISSUER], audiences=[SERVICE]),
        now=datetime.now(timezone.utc))
    assert verified.subject == "admin" and "admin" in verified.roles
    assert f"issued: SAML 2.0 token {verified.assertion_id} to 'admin' for {SERVICE}" in server.text()


def wsse_code(fault: zeep.exceptions.Fault) -> str:
    """The WS-Security fault code zeep read: SOAP 1.1's faultcode, or SOAP 1.2's first Subcode (Code is Sender)."""
    if fault.subcodes:
        return str(fault.subcodes[0].localname)
    assert fault.code is not None
    return str(fault.code).rpartition(":")[2]


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_zeep_over_http_with_an_unregistered_certificate_gets_the_fault(deployed: tuple[str, Gunicorn],
                                                                        tmp_path: Path, soap: str) -> None:
    sts_url, server = deployed
    stranger = write_pair(SigningKey.generate("zeep stranger"), tmp_path, "stranger")
    with pytest.raises(zeep.exceptions.Fault) as refused:
        zeep_service(sts_url, stranger, "1.3", soap).Issue(_value_1=rst_content("1.3", SERVICE))
    assert wsse_code(refused.value) == "FailedAuthentication", (refused.value.code, refused.value.subcodes)
    assert refused.value.message == "The X.509 certificate or signature was not accepted."
    assert "is registered to no user" in server.text()


def test_zeep_over_http_with_an_unsigned_addressing_to_gets_the_fault(deployed: tuple[str, Gunicorn],
                                                                      tmp_path: Path) -> None:
    """Without the plugin zeep sends wsa:To outside its signature: refused, so the signed request stays put."""
    sts_url, server = deployed
    with pytest.raises(zeep.exceptions.Fault) as refused:
        zeep_service(sts_url, write_pair(PAIR, tmp_path, "client"), "1.3", "1.1", plugins=()).Issue(
            _value_1=rst_content("1.3", SERVICE))
    assert wsse_code(refused.value) == "FailedCheck", (refused.value.code, refused.value.subcodes)
    assert "the proof signature does not cover the message's To" in server.text()
