"""Test helpers shared by test_saml.py and test_middleware.py.

Forged and real assertions, SOAP requests carrying them (assertion bytes are
spliced in unchanged, as a real client does), and a reader for the SOAP faults
that come back. Nothing here replaces library code: it only builds inputs and
reads outputs.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, methods

from _support import EMAIL, ISSUER, SERVICE_URL, vector
from _support.signing_oracles import Sha1TolerantSigner
from wstrust_wsgi import _xml, get_assertion, ns, saml
from wstrust_wsgi.keys import SigningKey

SOAP11 = ns.SOAP11
SOAP12 = ns.SOAP12
WSSE = ns.WSSE
DS = ns.DS
ECHO_NS = "urn:wstrust-wsgi:demo:echo"
MEDIA = {"1.1": "text/xml", "1.2": "application/soap+xml"}
ENV_NS = {"1.1": SOAP11, "1.2": SOAP12}

#: The one signature-valid AD FS vector (SAML 1.1, rsa-sha1) and the facts README.md gives for it.
ADFS_VECTOR = "adal-node_adfs_rstrc_wstrust13_saml11_with_references.xml"
ADFS_ISSUER = "http://fs.naturalcauses.com/adfs/services/trust"
ADFS_AUDIENCE = "urn:federation:MicrosoftOnline"
ADFS_SUBJECT = "43YRzTrh+Ue8eTecnqLAxQ=="
ADFS_UPN = "http://schemas.xmlsoap.org/claims/UPN"

_MARKER = b"<!--token-->"


def qn(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def content(now: datetime, **overrides: Any) -> saml.AssertionContent:
    """What the demo STS would say about admin for the echo service, valid five minutes from ``now``."""
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "subject": "admin",
        "audience": SERVICE_URL,
        "issue_instant": now,
        "not_before": now,
        "not_on_or_after": now + timedelta(minutes=5),
        "attributes": {EMAIL: ["admin@example.org"], ns.CLAIM_ROLE: ["admin"]},
    }
    values.update(overrides)
    return saml.AssertionContent(**values)


def sign(key: SigningKey, version: saml.SamlVersion, what: saml.AssertionContent) -> bytes:
    return saml.AssertionSigner(key).sign(version, what)


def sign_with(
    key: SigningKey,
    version: saml.SamlVersion,
    what: saml.AssertionContent,
    *,
    signature: SignatureMethod = SignatureMethod.RSA_SHA256,
    digest: DigestAlgorithm = DigestAlgorithm.SHA256,
    root: etree._Element | None = None,
) -> bytes:
    """Sign like AssertionSigner but straight with signxml: any algorithms (SHA-1 included), and
    optionally an assertion ``root`` the test built or edited from ``what`` before signing."""
    builder = saml.build_saml2 if version is saml.SAML2 else saml.build_saml11
    signer = Sha1TolerantSigner(
        method=methods.enveloped,
        signature_algorithm=signature,
        digest_algorithm=digest,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        builder(what) if root is None else root,
        key=key.private_key,
        cert=[key.certificate_pem.decode("ascii")],
        reference_uri=what.assertion_id,
        id_attribute=version.id_attribute,
    )
    return etree.tostring(signed)


def cert_from_base64(text: str) -> x509.Certificate:
    """A certificate from the base64 of an X509Certificate element (configuration, in a test)."""
    body = "\n".join(textwrap.wrap("".join(text.split()), 64))
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def vector_assertion(name: str) -> tuple[etree._Element, x509.Certificate]:
    """The saml:Assertion element of a vector (parsed with the library's parser) and its embedded cert."""
    data = vector(name).read_bytes().removeprefix(b"\xef\xbb\xbf")
    root = _xml.parse(data)
    assertion = next(root.iter(qn(ns.SAML1, "Assertion")))
    cert_text = assertion.find(f".//{qn(DS, 'X509Certificate')}").text
    return assertion, cert_from_base64(cert_text)


def vector_assertion_bytes(name: str) -> bytes:
    """The saml:Assertion of a vector exactly as its bytes stand in the file."""
    data = vector(name).read_bytes()
    start = data.index(b"<saml:Assertion ")
    end_tag = b"</saml:Assertion>"
    end = data.index(end_tag, start) + len(end_tag)
    return data[start:end]


def soap_request(
    *assertions: bytes,
    version: str = "1.1",
    security_headers: int = 1,
    extra_security: bytes = b"",
    message: str = "hi there",
) -> bytes:
    """A SOAP echo request with ``assertions`` spliced unchanged into ``wsse:Security``.

    ``security_headers=0`` sends no Security header at all.
    """
    env = ENV_NS[version]
    root = etree.Element(qn(env, "Envelope"), nsmap={"s": env, "wsse": WSSE})
    header = etree.SubElement(root, qn(env, "Header"))
    for _ in range(security_headers):
        security = etree.SubElement(header, qn(WSSE, "Security"))
        security.append(etree.Comment("token"))
    body = etree.SubElement(root, qn(env, "Body"))
    echo = etree.SubElement(body, qn(ECHO_NS, "Echo"), nsmap={"echo": ECHO_NS})
    etree.SubElement(echo, qn(ECHO_NS, "Message")).text = message
    data = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data.replace(_MARKER, extra_security + b"".join(assertions))


@dataclass(frozen=True)
class Fault:
    """A SOAP fault as received: the envelope's namespace and the codes as ``{namespace}local``."""

    envelope_ns: str
    code: str
    subcode: str | None
    reason: str


def _resolve(element: etree._Element) -> str:
    prefix, _, local = (element.text or "").strip().rpartition(":")
    return qn(element.nsmap[prefix or None], local)


def read_fault(body: bytes) -> Fault:
    """Parse a fault response body; fails the test if it is not a SOAP fault."""
    root = etree.fromstring(body)
    env = etree.QName(root).namespace
    assert env in (SOAP11, SOAP12) and etree.QName(root).localname == "Envelope", body[:200]
    fault = root.find(f"{qn(env, 'Body')}/{qn(env, 'Fault')}")
    assert fault is not None, body[:200]
    if env == SOAP11:
        return Fault(env, _resolve(fault.find("faultcode")), None, fault.findtext("faultstring"))
    code = fault.find(qn(env, "Code"))
    subcode = code.find(f"{qn(env, 'Subcode')}/{qn(env, 'Value')}")
    return Fault(
        env,
        _resolve(code.find(qn(env, "Value"))),
        _resolve(subcode) if subcode is not None else None,
        fault.findtext(f"{qn(env, 'Reason')}/{qn(env, 'Text')}"),
    )


class RecordingApp:
    """A sentinel WSGI app: records what the middleware handed it, reads the whole body, answers 200."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.calls.append(
            {
                "REMOTE_USER": environ.get("REMOTE_USER"),
                "assertion": get_assertion(environ),
                "body": environ["wsgi.input"].read(length),
                "method": environ["REQUEST_METHOD"],
            }
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app was called"]
