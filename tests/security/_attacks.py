"""Attack plumbing shared by the tests in tests/security.

What ``tests/_forge.py`` already does (signing, SOAP requests with the token
spliced in unchanged, reading faults, the recording sentinel app) is imported
from there. This module adds what the attack classes need on top:

* :func:`guard`, :func:`post`: the real :class:`RelyingPartyMiddleware` around the
  recording sentinel, driven through WebTest;
* :func:`refused`, :func:`admitted`: the two outcomes a test may assert, each
  checking status, content type, SOAP version, fault code and whether the
  protected app ran;
* :func:`envelope`: a SOAP request with pieces spliced into the Security header,
  other header blocks, a Security header for another actor, or the Body;
* :func:`forge_signature`: an enveloped XML signature computed by hand, so a test
  can make a *cryptographically valid* signature with a forbidden algorithm,
  transform or key (HMAC over the public certificate, MD5, inclusive c14n ...),
  leaving the policy as the only thing that can refuse it.

Nothing here reimplements library code under test; it builds inputs and reads outputs.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
import webtest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from _forge import DS, ENV_NS, MEDIA, WSSE, Fault, RecordingApp, content, qn, read_fault, sign, soap_request
from _support import EMAIL, ISSUER, SERVICE_URL, FixedClock, xmlsec1_verify
from wstrust_wsgi import RelyingPartyMiddleware, ns, saml

PATH = "/services/echo"
STS_PATH = "/services/sts"
SOAP_VERSIONS = pytest.mark.parametrize("soap", ["1.1", "1.2"], ids=["soap1.1", "soap1.2"])
SAML_VERSIONS = pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["saml2.0", "saml1.1"])
ANOTHER_NODE = "http://example.org/another-intermediary"
ACTOR_ATTRIBUTE = {"1.1": "actor", "1.2": "role"}

# Algorithm URIs the library does not name (ns.py holds the ones it uses).
ALG_RSA_MD5 = "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"
ALG_MD5 = "http://www.w3.org/2001/04/xmldsig-more#md5"
ALG_RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ALG_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
ALG_HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
ALG_HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
ALG_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ALG_C14N_COMMENTS = ALG_C14N + "#WithComments"
ALG_EXC_C14N_COMMENTS = ns.ALG_EXC_C14N + "WithComments"
ALG_C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
ALG_XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
ALG_XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
ALG_XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
ALG_BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"

_SIGNATURE_HASHES = {
    ns.ALG_RSA_SHA256: hashes.SHA256, ns.ALG_RSA_SHA1: hashes.SHA1, ALG_RSA_MD5: hashes.MD5,
    ALG_RSA_SHA512: hashes.SHA512, ALG_HMAC_SHA256: hashes.SHA256, ALG_HMAC_SHA1: hashes.SHA1,
}
_HMAC = {ALG_HMAC_SHA256: hashlib.sha256, ALG_HMAC_SHA1: hashlib.sha1}
_DIGESTS = {ns.ALG_SHA256: hashlib.sha256, ns.ALG_SHA1: hashlib.sha1, ALG_MD5: hashlib.md5, ALG_SHA512: hashlib.sha512}
#: c14n URI -> (exclusive, with_comments), for computing digests by hand.
_C14N = {
    ns.ALG_EXC_C14N: (True, False), ALG_EXC_C14N_COMMENTS: (True, True),
    ALG_C14N: (False, False), ALG_C14N_COMMENTS: (False, True), ALG_C14N11: (False, False),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sts_key(sts_keys):  # type: ignore[no-untyped-def]
    return sts_keys.load()


@pytest.fixture(scope="module")
def rogue_key(rogue_keys):  # type: ignore[no-untyped-def]
    return rogue_keys.load()


@dataclass(frozen=True)
class Token:
    what: saml.AssertionContent
    signed: bytes


@pytest.fixture(scope="module")
def alice_tokens(sts_key, sts_keys, tmp_path_factory):  # type: ignore[no-untyped-def]
    """alice's genuine token per SAML version name, signed once per module and valid for five
    minutes from now; xmlsec1 verifies each once here (as conftest does for tokens signed in a test)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    workdir = tmp_path_factory.mktemp("presigned")
    tokens = {}
    for version in (saml.SAML2, saml.SAML11):
        what = low_privilege(now)
        signed = sign(sts_key, version, what)
        result = xmlsec1_verify(signed, sts_keys.cert, workdir)
        assert result.returncode == 0, result.stderr
        tokens[version.name] = Token(what, signed)
    return tokens


@pytest.fixture(scope="module")
def issue(sts_key):  # type: ignore[no-untyped-def]
    """``issue(version, **content overrides) -> Token``: alice's token with some fields changed, signed
    by the STS key with the library's own signer. The same arguments give the same token for the
    whole module (times start when the module does), so each distinct token is signed, and checked
    by conftest's xmlsec1 fixture, once."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    made: dict[tuple[str, str], Token] = {}

    def make(version: saml.SamlVersion, **overrides: Any) -> Token:
        key = (version.name, repr(sorted(overrides.items())))
        if key not in made:
            what = low_privilege(now, **overrides)
            made[key] = Token(what, sign(sts_key, version, what))
        return made[key]

    return make


#: SAML and SOAP versions in pairs, for attack classes where the two are independent: both
#: versions of each are covered without multiplying the cases.
VERSION_PAIRS = pytest.mark.parametrize(
    ("version", "soap"), [(saml.SAML2, "1.2"), (saml.SAML11, "1.1")], ids=["saml2.0-soap1.2", "saml1.1-soap1.1"]
)


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def guarded(recorder, sts_keys, clock):  # type: ignore[no-untyped-def]
    """The recording sentinel behind a middleware configured like the service_app fixture."""
    return guard(recorder, sts_keys.cert, clock)


def guard(app: Any, cert: Any, clock: FixedClock, **options: Any) -> webtest.TestApp:
    """``app`` behind a RelyingPartyMiddleware for the echo service, trusting only ``cert`` (or a list)."""
    certs = cert if isinstance(cert, list) else [cert]
    return webtest.TestApp(RelyingPartyMiddleware(
        app, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=certs, clock=clock, **options
    ))


# --------------------------------------------------------------------------- requests and outcomes


def post(app: webtest.TestApp, body: bytes, soap: str = "1.1", *, content_type: str | None = None,
         path: str = PATH, headers: dict[str, str] | None = None) -> webtest.TestResponse:
    all_headers = {"Content-Type": content_type or f"{MEDIA[soap]}; charset=utf-8", **(headers or {})}
    return app.post(path, body, headers=all_headers, expect_errors=True)


#: SOAP-level fault codes that are not the sender's fault (HTTP 500 in SOAP 1.2 too).
_NOT_SENDER = {"VersionMismatch", "MustUnderstand"}


def refused(response: webtest.TestResponse, soap: str, code: str, *, recorder: RecordingApp | None = None,
            trust_ns: str = ns.WST13, sender: bool | None = None) -> Fault:
    """Assert a SOAP fault answer in the request's SOAP version and return it.

    ``code`` is ``wsse:Local``, ``wst:Local`` or ``soap:Local`` (``soap:Client`` means
    SOAP 1.1 Client / SOAP 1.2 Sender). For wsse/wst codes SOAP 1.2 carries them as the
    Subcode under Sender (Receiver when ``sender`` is False). When ``recorder`` is given,
    the protected app must not have been called.
    """
    family, local = code.split(":")
    if sender is None:
        sender = local not in _NOT_SENDER
    assert b"Traceback" not in response.body, response.body[:500]
    assert response.content_type == MEDIA[soap], (response.status, response.body[:300])
    fault = read_fault(response.body)
    assert fault.envelope_ns == ENV_NS[soap]
    spaces = {"wsse": WSSE, "wst": trust_ns}
    if soap == "1.1":
        assert response.status_int == 500
        expected = qn(spaces[family], local) if family in spaces else qn(ENV_NS[soap], local)
        assert (fault.code, fault.subcode) == (expected, None), fault
    else:
        if family in spaces:
            top = "Sender" if sender else "Receiver"
            assert (fault.code, fault.subcode) == (qn(ENV_NS[soap], top), qn(spaces[family], local)), fault
        else:
            top = "Sender" if local == "Client" else local
            assert (fault.code, fault.subcode) == (qn(ENV_NS[soap], top), None), fault
        assert response.status_int == (400 if top == "Sender" else 500)
    if recorder is not None:
        assert recorder.calls == [], "the protected app was called for a refused request"
    return fault


def admitted(response: webtest.TestResponse, recorder: RecordingApp, subject: str) -> saml.VerifiedAssertion:
    """Assert the protected app ran exactly once, as ``subject``; return what it was handed."""
    assert response.status_int == 200, (response.status, response.body[:400])
    assert response.body == b"app was called"
    [call] = recorder.calls
    assert call["REMOTE_USER"] == subject, f"admitted as {call['REMOTE_USER']!r}, expected {subject!r}"
    assert call["assertion"].subject == subject
    return call["assertion"]


# --------------------------------------------------------------------------- envelopes


def _with_children(start: etree._Element, pieces: Iterable[bytes]) -> bytes:
    """``start`` serialized with ``pieces`` (self-contained element bytes) spliced in unchanged."""
    start.append(etree.Comment("pieces"))
    return etree.tostring(start).replace(b"<!--pieces-->", b"".join(pieces))


def security_block(pieces: Sequence[bytes], soap: str, *, actor: str | None = None,
                   must_understand: str | None = None) -> bytes:
    """A standalone wsse:Security header block holding ``pieces``."""
    block = etree.Element(qn(WSSE, "Security"), nsmap={"wsse": WSSE, "s": ENV_NS[soap]})
    if actor is not None:
        block.set(qn(ENV_NS[soap], ACTOR_ATTRIBUTE[soap]), actor)
    if must_understand is not None:
        block.set(qn(ENV_NS[soap], "mustUnderstand"), must_understand)
    return _with_children(block, pieces)


def wrapper(pieces: Sequence[bytes], tag: str = "{urn:example:attacker}Wrapper") -> bytes:
    return _with_children(etree.Element(tag), pieces)


def envelope(security: Sequence[bytes] = (), *, soap: str = "1.1", headers: Sequence[bytes] = (),
             body: Sequence[bytes] = (), message: str = "hi there", security_headers: int = 1) -> bytes:
    """An echo request: ``security`` in the wsse:Security header (as _forge.soap_request puts it),
    ``headers`` as further header blocks after it, ``body`` after the echo:Echo operation."""
    data = soap_request(*security, version=soap, message=message, security_headers=security_headers)
    if headers:
        if security_headers:
            cut = data.rindex(b"</wsse:Security>") + len(b"</wsse:Security>")
        else:
            cut = data.index(b"<s:Header/>")
            data = data[:cut] + b"<s:Header></s:Header>" + data[cut + len(b"<s:Header/>"):]
            cut += len(b"<s:Header>")
        data = data[:cut] + b"".join(headers) + data[cut:]
    if body:
        cut = data.rindex(b"</s:Body>")
        data = data[:cut] + b"".join(body) + data[cut:]
    return data


# --------------------------------------------------------------------------- assertions


def low_privilege(now: datetime, **overrides: Any) -> saml.AssertionContent:
    """A token the STS really issues to alice (no admin role): what an attacker holds."""
    values: dict[str, Any] = {
        "subject": "alice",
        "attributes": {EMAIL: ["alice@example.org"], ns.CLAIM_ROLE: ["everyone"]},
    }
    values.update(overrides)
    return content(now, **values)


def subject_elements(root: etree._Element, version: saml.SamlVersion) -> list[etree._Element]:
    local = "NameID" if version is saml.SAML2 else "NameIdentifier"
    return list(root.iter(qn(version.namespace, local)))


def signature_of(root: etree._Element) -> etree._Element:
    return root.find(qn(DS, "Signature"))


def signed_info_of(root: etree._Element) -> etree._Element:
    return root.find(f"{qn(DS, 'Signature')}/{qn(DS, 'SignedInfo')}")


def reference_of(root: etree._Element) -> etree._Element:
    return signed_info_of(root).find(qn(DS, "Reference"))


def make_evil(original: etree._Element, version: saml.SamlVersion, *, keep_signature: bool,
              new_id: str | None) -> etree._Element:
    """A copy of ``original`` claiming admin with the admin role; signature kept or dropped; ID changed or not."""
    evil = copy.deepcopy(original)
    for name in subject_elements(evil, version):
        name.text = "admin"
    for value in evil.iter(qn(version.namespace, "AttributeValue")):
        if value.text == "everyone":
            value.text = "admin"
        elif value.text == "alice@example.org":
            value.text = "admin@example.org"
    if not keep_signature:
        evil.remove(signature_of(evil))
    if new_id is not None:
        evil.set(version.id_attribute, new_id)
    return evil


def without_signature(original: etree._Element) -> etree._Element:
    stripped = copy.deepcopy(original)
    stripped.remove(signature_of(stripped))
    return stripped


def tostring(element: etree._Element) -> bytes:
    return etree.tostring(element)


# --------------------------------------------------------------------------- signatures by hand


def _c14n(element: etree._Element, uri: str) -> bytes:
    exclusive, comments = _C14N.get(uri, (True, False))
    return etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=comments)


def key_info_x509(cert: x509.Certificate) -> etree._Element:
    info = etree.Element(qn(DS, "KeyInfo"), nsmap={"ds": DS})
    data = etree.SubElement(info, qn(DS, "X509Data"))
    der = cert.public_bytes(serialization.Encoding.DER)
    etree.SubElement(data, qn(DS, "X509Certificate")).text = base64.b64encode(der).decode()
    return info


def key_info_rsa(public: rsa.RSAPublicKey) -> etree._Element:
    """A bare ds:KeyValue/RSAKeyValue, no certificate."""
    numbers = public.public_numbers()

    def b64(number: int) -> str:
        return base64.b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).decode()

    info = etree.Element(qn(DS, "KeyInfo"), nsmap={"ds": DS})
    value = etree.SubElement(etree.SubElement(info, qn(DS, "KeyValue")), qn(DS, "RSAKeyValue"))
    etree.SubElement(value, qn(DS, "Modulus")).text = b64(numbers.n)
    etree.SubElement(value, qn(DS, "Exponent")).text = b64(numbers.e)
    return info


def forge_signature(
    root: etree._Element,
    *,
    private_key: rsa.RSAPrivateKey | None = None,
    hmac_key: bytes | None = None,
    signature_method: str = ns.ALG_RSA_SHA256,
    digest_method: str = ns.ALG_SHA256,
    c14n_method: str = ns.ALG_EXC_C14N,
    transforms: Sequence[str] = (ns.ALG_ENVELOPED, ns.ALG_EXC_C14N),
    target: etree._Element | None = None,
    target_id: str | None = None,
    key_info: etree._Element | None = None,
    position: int | None = None,
) -> etree._Element:
    """Sign ``root`` (in place) with an enveloped signature computed by hand; return the Signature.

    The digest is computed as the transforms say (enveloped: the signature left out;
    the last c14n transform, exclusive by default); transforms the helper cannot run
    (XSLT, XPath ...) are written but not applied. The signature goes at ``position``
    among root's children (SAML 2.0: after Issuer; SAML 1.1: last, when None), or
    replaces a placeholder ``ds:Signature`` left there by the library's builders.
    """
    target = root if target is None else target
    version = saml.version_of(root)
    reference_id = target_id if target_id is not None else target.get(version.id_attribute if version else "ID")
    placeholder = root.find(qn(DS, "Signature"))
    signature = etree.Element(qn(DS, "Signature"), nsmap={"ds": DS})
    if placeholder is not None:
        placeholder.addprevious(signature)
        root.remove(placeholder)
    elif position is not None:
        root.insert(position, signature)
    elif version is saml.SAML2:
        root.find(qn(ns.SAML2, "Issuer")).addnext(signature)
    else:
        root.append(signature)
    signed_info = etree.SubElement(signature, qn(DS, "SignedInfo"))
    etree.SubElement(signed_info, qn(DS, "CanonicalizationMethod"), Algorithm=c14n_method)
    etree.SubElement(signed_info, qn(DS, "SignatureMethod"), Algorithm=signature_method)
    reference = etree.SubElement(signed_info, qn(DS, "Reference"), URI="#" + reference_id)
    transforms_el = etree.SubElement(reference, qn(DS, "Transforms"))
    for uri in transforms:
        transform = etree.SubElement(transforms_el, qn(DS, "Transform"), Algorithm=uri)
        if uri == ALG_XPATH:
            etree.SubElement(transform, qn(DS, "XPath")).text = "not(ancestor-or-self::ds:Signature)"
        elif uri == ALG_XPATH_FILTER2:
            f2 = "http://www.w3.org/2002/06/xmldsig-filter2"
            etree.SubElement(transform, qn(f2, "XPath"), Filter="subtract", nsmap={"dsig-xpath": f2}).text = "//x"
        elif uri == ALG_XSLT:
            xsl = "http://www.w3.org/1999/XSL/Transform"
            sheet = etree.SubElement(transform, qn(xsl, "stylesheet"), version="1.0", nsmap={"xsl": xsl})
            etree.SubElement(etree.SubElement(sheet, qn(xsl, "template"), match="/"), qn(xsl, "copy-of"), select=".")
    etree.SubElement(reference, qn(DS, "DigestMethod"), Algorithm=digest_method)
    digest_value = etree.SubElement(reference, qn(DS, "DigestValue"))
    signature_value = etree.SubElement(signature, qn(DS, "SignatureValue"))
    if key_info is not None:
        signature.append(key_info)

    subject = copy.deepcopy(target)
    if ns.ALG_ENVELOPED in transforms:
        for sig in subject.iter(qn(DS, "Signature")):
            sig.getparent().remove(sig)
            break
    c14n_transforms = [t for t in transforms if t in _C14N]
    data = _c14n(subject, c14n_transforms[-1] if c14n_transforms else ALG_C14N)
    digest_value.text = base64.b64encode(_DIGESTS.get(digest_method, hashlib.sha256)(data).digest()).decode()

    signed = _c14n(signed_info, c14n_method)
    if signature_method in _HMAC:
        assert hmac_key is not None
        value = hmac.new(hmac_key, signed, _HMAC[signature_method]).digest()
    else:
        assert private_key is not None
        value = private_key.sign(signed, padding.PKCS1v15(), _SIGNATURE_HASHES.get(signature_method, hashes.SHA256)())
    signature_value.text = base64.b64encode(value).decode()
    return signature


def build(version: saml.SamlVersion, what: saml.AssertionContent) -> etree._Element:
    """The library's own unsigned assertion (with its signature placeholder) for ``what``."""
    return (saml.build_saml2 if version is saml.SAML2 else saml.build_saml11)(what)
