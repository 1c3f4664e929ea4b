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
import os
import subprocess
import sys
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
from wstrust_wsgi.xmldsig.keyvalue import key_value_element, read_key_value

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


# The forms of wst:UseKey (sts/proof.py's docstring): each issued, carried in the confirmation, proven to the service

FORMS = pytest.mark.parametrize("use_key", ["certificate", "reference", "key-value"])
DS = f"{{{ns.DS}}}"
WSSE = f"{{{ns.WSSE}}}"


def _confirmation_key_info(assertion: bytes) -> etree._Element:
    """The holder-of-key ds:KeyInfo (SAML 1.1 repeats it per statement: every copy the same)."""
    root = etree.fromstring(assertion)
    found = [k for k in root.iter(f"{DS}KeyInfo") if k.getparent().tag != f"{DS}Signature"]
    assert found and len({etree.tostring(k, method="c14n") for k in found}) == 1
    return found[0]


@VERSIONS
@FORMS
@pytest.mark.parametrize(("soap", "trust"), [("1.2", "1.3"), ("1.1", "2005")])
def test_each_use_key_form_round_trips(world, client_key, address, use_key, soap,
                                       trust) -> None:  # type: ignore[no-untyped-def]
    key = client_key.load()
    token = world.client(soap_version=soap, trust_version=trust).request_token(
        address, key_type="public", client_key=key, use_key=use_key)
    carried = [etree.QName(c).localname for c in _confirmation_key_info(token.assertion)]
    assert carried == (["KeyValue"] if use_key == "key-value" else ["X509Data"])
    if use_key == "key-value":
        assert read_key_value(_confirmation_key_info(token.assertion)[0]).public_numbers() == \
            key.private_key.public_key().public_numbers()
    reply = call_service(address, token, echo_payload(use_key), soap_version=soap,
                         transport=WSGITransport(world.service))
    assert (reply.findtext(f"{{{ECHO_NS}}}Message"), reply.findtext(f"{{{ECHO_NS}}}Caller")) == (use_key, "admin")


def test_the_request_shapes_of_each_form(world, client_key) -> None:  # type: ignore[no-untyped-def]
    def use_key(form: str) -> tuple[etree._Element, etree._Element]:
        root = etree.fromstring(world.client().build_request(SERVICE_URL, key_type="public",
                                                             client_key=client_key.load(), use_key=form))
        return root, root.find(f".//{{{ns.WST13}}}UseKey/{DS}KeyInfo")

    _, key_info = use_key("key-value")
    assert [etree.QName(c).localname for c in key_info] == ["KeyValue"]
    root, key_info = use_key("reference")
    [bst] = root.iter(f"{WSSE}BinarySecurityToken")
    assert key_info.find(f"{WSSE}SecurityTokenReference/{WSSE}Reference").get("URI") == "#" + bst.get(
        f"{{{ns.WSU}}}Id") and root.find(f".//{WSSE}UsernameToken") is not None


def _form_rst(world, client_key: SigningKey, use_key: str) -> etree._Element:  # type: ignore[no-untyped-def]
    return etree.fromstring(world.client().build_request(SERVICE_URL, key_type="public", client_key=client_key,
                                                         use_key=use_key))


def _swap_key(root: etree._Element, use_key: str, other: SigningKey) -> None:
    """Name ``other``'s key where the request named the client's (the signature stays the client's)."""
    if use_key == "certificate":
        root.find(f".//{{{ns.WST13}}}UseKey//{DS}X509Certificate").text = certificate_base64(other.certificate)
    elif use_key == "reference":
        root.find(f".//{WSSE}BinarySecurityToken").text = certificate_base64(other.certificate)
    else:
        key_info = root.find(f".//{{{ns.WST13}}}UseKey/{DS}KeyInfo")
        key_info[:] = [key_value_element(other.private_key.public_key())]


@FORMS
def test_a_use_key_naming_a_key_that_did_not_sign_is_refused(world, client_key, sts_keys,
                                                              use_key) -> None:  # type: ignore[no-untyped-def]
    root = _form_rst(world, client_key.load(), use_key)
    _swap_key(root, use_key, sts_keys.load())
    text = _post_rst(world, root)
    assert "InvalidRequest" in text and "signed with the wst:UseKey key" in text


def _small_key_value() -> etree._Element:
    from cryptography.hazmat.primitives.asymmetric import rsa
    return key_value_element(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())


@pytest.mark.parametrize(("change", "reason"), [
    ("reference-to-nothing", "must name exactly one X.509 BinarySecurityToken of the Security header"),
    ("reference-held-twice", "must name exactly one X.509 BinarySecurityToken of the Security header"),
    ("reference-to-the-timestamp", "must name exactly one X.509 BinarySecurityToken of the Security header"),
    ("key-value-1024-bits", "must be an RSA key of at least 2048 bits"),
    ("key-value-and-certificate", "wst:UseKey must name one RSA key"),
    ("key-value-not-rsa", "wst:UseKey must name one RSA key"),
])
def test_use_key_refusals_say_why(world, client_key, change, reason) -> None:  # type: ignore[no-untyped-def]
    key = client_key.load()
    root = _form_rst(world, key, "key-value" if change.startswith("key-value") else "reference")
    security = root.find(f".//{WSSE}Security")
    key_info = root.find(f".//{{{ns.WST13}}}UseKey/{DS}KeyInfo")
    reference = key_info.find(f"{WSSE}SecurityTokenReference/{WSSE}Reference")
    if change == "reference-to-nothing":  # and no token left in the header at all
        security.remove(security.find(f"{WSSE}BinarySecurityToken"))
        reference.set("URI", "#nothing")
    elif change == "reference-held-twice":  # a second token holding the same wsu:Id
        bst = security.find(f"{WSSE}BinarySecurityToken")
        twin = etree.fromstring(etree.tostring(bst))
        twin.text = certificate_base64(world.rp.load().certificate)
        bst.addnext(twin)
    elif change == "reference-to-the-timestamp":
        stamp = security.find(f"{{{ns.WSU}}}Timestamp")
        security.remove(security.find(f"{WSSE}BinarySecurityToken"))
        reference.set("URI", "#" + stamp.get(f"{{{ns.WSU}}}Id"))
    elif change == "key-value-1024-bits":
        key_info[:] = [_small_key_value()]
    elif change == "key-value-and-certificate":
        x509_data = etree.SubElement(key_info, f"{DS}X509Data")
        etree.SubElement(x509_data, f"{DS}X509Certificate").text = certificate_base64(key.certificate)
    else:
        key_info[0][0].tag = f"{DS}DSAKeyValue"
    text = _post_rst(world, root)
    assert "InvalidRequest" in text and reason in text, text


def test_the_picketlink_key_value_directly_in_use_key_is_read(world, client_key) -> None:  # type: ignore[no-untyped-def]
    """PicketLink puts ds:KeyValue straight in UseKey (no ds:KeyInfo); the key is then the bound one."""
    root = _form_rst(world, client_key.load(), "key-value")
    use_key = root.find(f".//{{{ns.WST13}}}UseKey")
    # Moving the KeyValue out of KeyInfo changes the signed Body: re-sign, as a PicketLink-shaped client would
    key_info = use_key.find(f"{DS}KeyInfo")
    use_key.replace(key_info, key_info[0])
    _resign(root, client_key.load())
    token = parse_response(webtest.TestApp(world.sts).post("/sts", etree.tostring(root),
                                                          content_type="application/soap+xml").body)
    assert [etree.QName(c).localname for c in _confirmation_key_info(token.assertion)] == ["KeyValue"]


def _resign(root: etree._Element, key: SigningKey) -> None:
    """Replace the request's proof signature by a fresh one over its Body and Timestamp, keeping its Id."""
    from wstrust_wsgi import wssecurity
    security = root.find(f".//{WSSE}Security")
    old = security.find(f"{DS}Signature")
    security.remove(old)
    wssecurity.sign_message(root, security, key.private_key, method="rsa-sha256", certificate=key.certificate,
                            signature_id=old.get("Id"))


# A certificate-authenticated requester (AD FS certificatemixed, pyVmomi): the certificate that signs is the key bound

@pytest.fixture
def x509_world(sts_keys, keydir, client_key, clock):  # type: ignore[no-untyped-def]
    from wstrust_wsgi import MemoryUserStore, User
    users = MemoryUserStore([User("admin", "admin", roles=["admin"],
                                  certificates=[client_key.load().certificate_pem])])
    return hok_world(sts_keys, rp_key_files(keydir), users, clock)


def _x509_client(world, client_key: KeyFiles):  # type: ignore[no-untyped-def]
    from wstrust_wsgi import StsClient
    from _support import STS_URL
    return StsClient(STS_URL, client_cert=client_key.load(), transport=WSGITransport(world.sts),
                     clock=world.sts._clock)


@FORMS
def test_a_certificate_authenticated_client_binds_its_own_certificate(x509_world, client_key,
                                                                      use_key) -> None:  # type: ignore[no-untyped-def]
    client = _x509_client(x509_world, client_key)
    root = etree.fromstring(client.build_request(SERVICE_URL, key_type="public", use_key=use_key))
    assert len(list(root.iter(f"{DS}Signature"))) == 1  # one signature: it authenticates and proves
    token = client.request_token(SERVICE_URL, key_type="public", use_key=use_key)
    reply = call_service(SERVICE_URL, token, echo_payload("x509"), transport=WSGITransport(x509_world.service))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


def _x509_signed_without_use_key(world, client_key: KeyFiles, empty: bool) -> bytes:  # type: ignore[no-untyped-def]
    """An X.509-signed PublicKey RST with no key in UseKey (pyVmomi's shape: ``<UseKey Sig="id"/>``) or no UseKey."""
    from wstrust_wsgi import wssecurity
    key = client_key.load()
    root = etree.fromstring(_x509_client(world, client_key).build_request(SERVICE_URL, key_type="public"))
    use_key = root.find(f".//{{{ns.WST13}}}UseKey")
    security = root.find(f".//{WSSE}Security")
    signature = security.find(f"{DS}Signature")
    for old in (signature, security.find(f"{WSSE}BinarySecurityToken")):
        security.remove(old)
    if empty:
        use_key[:] = []
        use_key.set("Sig", signature.get("Id"))  # pyVmomi writes no '#'
    else:
        use_key.getparent().remove(use_key)
    wssecurity.sign_message(root, security, key.private_key, method="rsa-sha256", binary_token=key.certificate,
                            signature_id=signature.get("Id"))
    return etree.tostring(root)


@pytest.mark.parametrize("empty", [True, False], ids=["empty-use-key", "no-use-key"])
def test_an_x509_signed_request_naming_no_key_binds_the_signing_certificate(x509_world, client_key,
                                                                            empty) -> None:  # type: ignore[no-untyped-def]
    body = _x509_signed_without_use_key(x509_world, client_key, empty)
    answer = webtest.TestApp(x509_world.sts).post("/sts", body, content_type="application/soap+xml").body
    token = dataclasses.replace(parse_response(answer, key_type="public"), private_key=client_key.load().private_key)
    carried = _confirmation_key_info(token.assertion).findtext(f"{DS}X509Data/{DS}X509Certificate")
    assert base64.b64decode(carried) == base64.b64decode(certificate_base64(client_key.load().certificate))
    reply = call_service(SERVICE_URL, token, echo_payload("bound"), transport=WSGITransport(x509_world.service))
    assert reply.findtext(f"{{{ECHO_NS}}}Caller") == "admin"


def test_a_certificate_client_refuses_to_bind_another_key_before_sending(x509_world, client_key,
                                                                        sts_keys) -> None:  # type: ignore[no-untyped-def]
    from wstrust_wsgi.errors import ConfigurationError
    with pytest.raises(ConfigurationError, match="one signature per request"):
        _x509_client(x509_world, client_key).build_request(SERVICE_URL, key_type="public",
                                                           client_key=sts_keys.load())


@pytest.mark.parametrize("bits", [1024, 2048])
def test_the_middleware_reads_a_key_value_confirmation_of_2048_bits_or_more(world, clock, sts_keys,
                                                                            bits) -> None:  # type: ignore[no-untyped-def]
    """A token the trusted STS signed around a bare ds:KeyValue: its key proves the request, unless it is short."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from _forge import content, sign
    from wstrust_wsgi import IssuedToken, saml
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    key_info = etree.Element(f"{DS}KeyInfo", nsmap={"ds": ns.DS})
    key_info.append(key_value_element(private.public_key()))
    what = content(clock(), proof_key_info=key_info)
    token = IssuedToken(sign(sts_keys.load(), saml.SAML2, what), saml.SAML2.token_type, what.assertion_id,
                        what.not_before, what.not_on_or_after, SERVICE_URL, key_type="public", private_key=private)
    recorder = RecordingApp()
    world.service.app = recorder
    response = webtest.TestApp(world.service).post("/soap", service_request(token, b"<P xmlns='urn:x'/>")[0],
                                                   content_type="text/xml", expect_errors=True)
    if bits == 2048:
        assert response.status_int == 200 and len(recorder.calls) == 1
    else:
        fault = read_fault(response.body)
        assert fault.code == f"{{{ns.WSSE}}}InvalidSecurityToken" and recorder.calls == []
        assert fault.reason == "The holder-of-key token's key cannot be read."


def test_each_use_key_form_under_gunicorn(tmp_path, client_key) -> None:  # type: ignore[no-untyped-def]
    """Our client against the STS and the holder-of-key-only echo service, each a real gunicorn on loopback."""
    from _support import ROOT
    from _support.hok import hok_servers
    from wstrust_wsgi import StsClient, UrllibTransport
    with hok_servers(tmp_path) as servers:
        service_url = servers.service_url
        client = StsClient(servers.sts_url, username="admin", password="admin")
        for use_key in ("certificate", "reference", "key-value"):
            token = client.request_token(service_url, key_type="public", client_key=client_key.load(), use_key=use_key)
            reply = call_service(service_url, token, echo_payload(use_key), transport=UrllibTransport())
            assert reply.findtext(f"{{{ECHO_NS}}}Message") == use_key
        command = subprocess.run(
            [sys.executable, "-m", "wstrust_wsgi", "client", "--sts", servers.sts_url,
             "--service", service_url, "--password", "admin", "--key-type", "public", "--use-key", "reference",
             "--client-key", str(client_key.key), "--client-cert", str(client_key.cert), "--message", "by the CLI"],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert command.returncode == 0 and "by the CLI" in command.stdout, command.stderr
        log = (tmp_path / "sts.log").read_text()
        assert "holder-of-key of the requester's public key (UseKey KeyValue" in log
        assert "holder-of-key of the requester's public key (the BinarySecurityToken UseKey references" in log
