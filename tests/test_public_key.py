"""PublicKey holder-of-key end to end: the client's own RSA key, proven to the STS, then to the service.

The RST carries ``wst:UseKey`` (the client's certificate) and a signature made
with that key over its Body and Timestamp (``UseKey/@Sig`` names it); the
assertion's confirmation carries the certificate; each service request is
signed with the key (RSA-SHA256), which the independent ``xmlsec1
--pubkey-cert-pem`` verifies. Refusals: an RST without the proof, proven by
another key, or whose UseKey was swapped after signing; a service request
signed by another key.
"""

from __future__ import annotations

import base64
import dataclasses
import subprocess
from pathlib import Path

import pytest
import webtest
from lxml import etree

from _forge import RecordingApp, read_fault
from _support import OTHER_URL, SERVICE_URL, XMLSEC1, KeyFiles
from _support.hok import hok_world, rp_key_files
from wstrust_wsgi import RemoteFault, SigningKey, WSGITransport, call_service, ns
from wstrust_wsgi.cli import ECHO_NS, echo_payload
from wstrust_wsgi.client import parse_response, service_request
from wstrust_wsgi.xmldsig import certificate_base64

VERSIONS = pytest.mark.parametrize("address", [SERVICE_URL, OTHER_URL], ids=["saml2.0", "saml1.1"])


@pytest.fixture
def world(sts_keys, keydir, users, clock):  # type: ignore[no-untyped-def]
    return hok_world(sts_keys, rp_key_files(keydir), users, clock)


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    from wstrust_wsgi import generate_demo_key_pair
    directory = tmp_path_factory.mktemp("client")
    generate_demo_key_pair("test client", directory, "client")
    return KeyFiles(directory / "client.key", directory / "client.crt")


@VERSIONS
@pytest.mark.parametrize(("soap", "trust"), [("1.1", "2005"), ("1.2", "1.3")])
def test_public_key_round_trip(world, client_key, address, soap, trust) -> None:  # type: ignore[no-untyped-def]
    client = world.client(soap_version=soap, trust_version=trust)
    token = client.request_token(address, key_type="public", client_key=client_key.load())
    assert token.key_type == "public" and token.proof_key is None and "private_key" not in repr(token)
    assertion = etree.fromstring(token.assertion)
    [carried] = {c.text for c in assertion.iter(f"{{{ns.DS}}}X509Certificate")
                 if c.getparent().getparent().getparent().tag != f"{{{ns.DS}}}Signature"}
    assert base64.b64decode(carried) == base64.b64decode(certificate_base64(client_key.load().certificate))
    reply = call_service(address, token, echo_payload("mine"), soap_version=soap,
                         transport=WSGITransport(world.service))
    assert (reply.findtext(f"{{{ECHO_NS}}}Message"), reply.findtext(f"{{{ECHO_NS}}}Caller")) == ("mine", "admin")


def test_xmlsec1_verifies_the_rsa_proof_signature_with_the_client_certificate(world, client_key,
                                                                               tmp_path) -> None:  # type: ignore[no-untyped-def]
    if XMLSEC1 is None:
        pytest.fail("xmlsec1 is not installed (Debian package xmlsec1); .ci/run installs it")
    token = world.client().request_token(SERVICE_URL, key_type="public", client_key=client_key.load())
    body, _ = service_request(token, b"<Ping xmlns='urn:example'/>")
    [signature] = [s for s in etree.fromstring(body).iter(f"{{{ns.DS}}}Signature") if s.get("Id")]
    (tmp_path / "m.xml").write_bytes(body)

    def verify(cert: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([XMLSEC1, "--verify", "--pubkey-cert-pem", str(cert),
                               "--id-attr:Id", f"{ns.WSU}:Timestamp", "--id-attr:Id", f"{ns.SOAP11}:Body",
                               "--id-attr:Id", f"{ns.DS}:Signature", "--node-id", signature.get("Id"),
                               str(tmp_path / "m.xml")], capture_output=True, text=True, timeout=30)

    good = verify(client_key.cert)
    assert good.returncode == 0 and good.stderr.startswith("OK\nSignedInfo References (ok/all): 2/2"), good.stderr
    assert verify(world.rp.cert).returncode != 0


def test_a_service_request_signed_by_another_key_is_refused(world, client_key, sts_keys) -> None:  # type: ignore[no-untyped-def]
    token = world.client().request_token(SERVICE_URL, key_type="public", client_key=client_key.load())
    stolen = dataclasses.replace(token, private_key=sts_keys.load().private_key)  # someone else's RSA key
    recorder = RecordingApp()
    world.service.app = recorder
    response = webtest.TestApp(world.service).post("/soap", service_request(stolen, b"<P xmlns='urn:x'/>")[0],
                                                   content_type="text/xml", expect_errors=True)
    assert read_fault(response.body).code == f"{{{ns.WSSE}}}FailedCheck" and recorder.calls == []


def _rst(world, client_key: SigningKey) -> etree._Element:  # type: ignore[no-untyped-def]
    return etree.fromstring(world.client().build_request(SERVICE_URL, key_type="public", client_key=client_key))


def _post_rst(world, root: etree._Element) -> str:  # type: ignore[no-untyped-def]
    response = webtest.TestApp(world.sts).post("/sts", etree.tostring(root), expect_errors=True,
                                               content_type="application/soap+xml; charset=utf-8")
    assert response.status_int == 400, response.body
    return "".join(etree.fromstring(response.body).itertext())


@pytest.mark.parametrize("attack", ["no-signature", "signed-by-another-key", "use-key-swapped-after-signing"])
def test_the_sts_issues_only_when_the_use_key_key_signed_the_request(world, client_key, sts_keys,
                                                                     attack) -> None:  # type: ignore[no-untyped-def]
    if attack == "signed-by-another-key":  # UseKey names the client's certificate; another key signed
        root = _rst(world, SigningKey(sts_keys.load().private_key, client_key.load().certificate))
    else:
        root = _rst(world, client_key.load())
        if attack == "no-signature":
            signature = root.find(f".//{{{ns.DS}}}Signature")
            signature.getparent().remove(signature)
        else:
            root.find(f".//{{{ns.WST13}}}UseKey//{{{ns.DS}}}X509Certificate").text = certificate_base64(
                sts_keys.load().certificate)
    text = _post_rst(world, root)
    assert "InvalidRequest" in text and "signed with the wst:UseKey key" in text


def test_public_key_without_use_key_is_refused_by_the_sts(world) -> None:  # type: ignore[no-untyped-def]
    body = world.client().build_request(SERVICE_URL).replace(b"/ws-trust/200512/Bearer", b"/ws-trust/200512/PublicKey")
    with pytest.raises(RemoteFault, match="must name its key in wst:UseKey"):
        parse_response(webtest.TestApp(world.sts).post("/sts", body, expect_errors=True,
                                                       content_type="application/soap+xml").body)
