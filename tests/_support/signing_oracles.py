"""Reference signers and verifiers the production paths are held to (test oracles, never shipped).

* :func:`sign_with_signxml`: signxml's ``XMLSigner``, the reference implementation of XML-DSig.
* :func:`sign_with_tree`: the signature built as an lxml tree and canonicalized by libxml2,
  the way the specification describes it (XML-DSig core 3.1), without the byte template.
* :func:`signed_info_tree`: the SignedInfo that tree signer writes, for comparing with the template.
* :func:`verify_with_signxml`: signxml's ``XMLVerifier`` with the policy's certificates.

PKCS#1 v1.5 is deterministic, so a signature made by any of these over the same
assertion is the same canonical document as the production signer's.
"""

from __future__ import annotations

from base64 import b64encode
from datetime import datetime

from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
    methods,
)
from signxml.exceptions import SignXMLException

from wstrust_wsgi import _xml, ns, saml, xmldsig
from wstrust_wsgi.errors import FailedCheck
from wstrust_wsgi.keys import SigningKey


class Sha1TolerantSigner(XMLSigner):
    """signxml refuses SHA-1 unless this check is overridden (its documented opt-out)."""

    def check_deprecated_methods(self) -> None:
        return None


def _builder(version: saml.SamlVersion):  # type: ignore[no-untyped-def]
    return saml.build_saml2 if version is saml.SAML2 else saml.build_saml11


def sign_with_signxml(key: SigningKey, version: saml.SamlVersion, content: saml.AssertionContent, *,
                      algorithm: str = "rsa-sha256") -> bytes:
    """The assertion the production signer makes, signed by signxml instead."""
    method, digest = xmldsig.for_setting(algorithm)
    signer = Sha1TolerantSigner(
        method=methods.enveloped, signature_algorithm=SignatureMethod(method.uri),
        digest_algorithm=DigestAlgorithm(digest.uri),
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(
        _builder(version)(content), key=key.private_key, cert=[key.certificate_pem.decode("ascii")],
        reference_uri=content.assertion_id, id_attribute=version.id_attribute,
    )
    return etree.tostring(signed)


def _ds(parent: etree._Element, local: str, algorithm: str | None = None) -> etree._Element:
    attrs = {"Algorithm": algorithm} if algorithm is not None else {}
    return etree.SubElement(parent, _xml.qname(ns.DS, local), attrs)


def signature_tree(algorithm: str, cert_b64: str, reference_uri: str) -> etree._Element:
    """``ds:Signature`` with an empty DigestValue and SignatureValue (XML-DSig core 4)."""
    method, digest = xmldsig.for_setting(algorithm)
    signature = etree.Element(_xml.qname(ns.DS, "Signature"), nsmap={"ds": ns.DS})
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", ns.ALG_EXC_C14N)
    _ds(signed_info, "SignatureMethod", method.uri)
    reference = _ds(signed_info, "Reference")
    reference.set("URI", reference_uri)
    transforms = _ds(reference, "Transforms")
    _ds(transforms, "Transform", ns.ALG_ENVELOPED)
    _ds(transforms, "Transform", ns.ALG_EXC_C14N)
    _ds(reference, "DigestMethod", digest.uri)
    _ds(reference, "DigestValue")
    _ds(signature, "SignatureValue")
    _ds(_ds(_ds(signature, "KeyInfo"), "X509Data"), "X509Certificate").text = cert_b64
    return signature


def signed_info_tree(algorithm: str, reference_uri: str, digest_b64: str) -> bytes:
    """The canonical SignedInfo of :func:`signature_tree`, by libxml2."""
    signature = signature_tree(algorithm, "", reference_uri)
    signature[0][2][2].text = digest_b64
    return etree.tostring(signature[0], method="c14n", exclusive=True, with_comments=False)


def sign_with_tree(key: SigningKey, version: saml.SamlVersion, content: saml.AssertionContent, *,
                   algorithm: str = "rsa-sha256") -> bytes:
    """Enveloped signature built as a tree: digest the assertion, fill in SignedInfo, canonicalize it
    where it stands, sign, insert the Signature (after Issuer in 2.0, last in 1.1)."""
    method, digest = xmldsig.for_setting(algorithm)
    root = _builder(version)(content)
    placeholder = root.find(_xml.qname(ns.DS, "Signature"))
    index = root.index(placeholder)
    root.remove(placeholder)
    value = digest.digest(etree.tostring(root, method="c14n", exclusive=True, with_comments=False))
    signature = signature_tree(algorithm, xmldsig.certificate_base64(key.certificate), "#" + content.assertion_id)
    signature[0][2][2].text = b64encode(value).decode("ascii")
    if version is saml.SAML2:
        root.insert(index, signature)
    else:
        root.append(signature)
    signed_info = etree.tostring(signature[0], method="c14n", exclusive=True, with_comments=False)
    signature[1].text = b64encode(method.sign(key.private_key, signed_info)).decode("ascii")
    return etree.tostring(root)


def verify_with_signxml(root: etree._Element, version: saml.SamlVersion, policy: saml.ValidationPolicy,
                        now: datetime) -> etree._Element:
    """signxml verification against each trusted certificate; the signed element, or FailedCheck."""
    config = SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=frozenset(SignatureMethod(uri) for uri in policy.algorithms.signature_methods),
        digest_algorithms=frozenset(DigestAlgorithm(uri) for uri in policy.algorithms.digest_methods),
        verification_time=now,
    )
    failures = []
    for cert in policy.trusted_certs:
        try:
            result = XMLVerifier().verify(
                root, x509_cert=cert, id_attribute=version.id_attribute,
                expect_config=config,
            )
        except (SignXMLException, etree.LxmlError, TypeError, ValueError) as exc:
            # signxml raises more than its own exceptions on malformed signatures
            failures.append(f"{cert.subject.rfc4514_string()}: {type(exc).__name__}: {exc}")
            continue
        signed = result.signed_xml  # type: ignore[union-attr]
        if signed is None:
            failures.append("signed data is not XML")
            continue
        return signed
    raise FailedCheck("signature did not verify with any trusted certificate: " + "; ".join(failures))
