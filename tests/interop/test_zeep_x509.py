"""zeep's X.509 ``BinarySignature`` (``zeep.wsse.signature``, signed by python-xmlsec) authenticates an RST.

zeep puts the client certificate in a ``wsse:BinarySecurityToken`` and signs
the Body and the Security header's Timestamp with its key (exclusive c14n;
its KeyInfo is a SecurityTokenReference to the token). It adds no Timestamp of
its own, so the RST here carries ours, as a zeep user adds one (zeep's
UsernameToken's ``timestamp_token``). The envelope is our client's RST with its
own signature taken off, signed by zeep's plugin, and posted to the STS
in-process. RSA-SHA256 is asked (zeep's default, RSA-SHA1, is refused by the
STS's algorithm policy, as for every signature). A missing zeep or xmlsec fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from lxml import etree
from zeep.wsse.signature import BinarySignature

from _support import ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from wstrust_wsgi import (MemoryUserStore, RelyingParty, SigningKey, StsClient, TokenService, User, WSGITransport,
                          _xml, ns)
from wstrust_wsgi._issued import parse_response, raise_for_fault
from wstrust_wsgi.client import _post
from wstrust_wsgi.errors import RemoteFault

PAIR = SigningKey.generate("zeep client")


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    key, cert = tmp_path / "client.key", tmp_path / "client.crt"
    key.write_bytes(PAIR.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    cert.write_bytes(PAIR.certificate_pem)
    return str(key), str(cert)


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
