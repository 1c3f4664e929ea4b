"""Writing the STS's federation metadata: ``md:EntityDescriptor`` with a security token service role.

What goes in (saml-metadata-2.0-os section 2.3.2, ws-federation-1.2-spec-os
section 3.1.2), in the schema's order:

* ``ds:Signature`` first (the metadata schema puts it before every other
  child), enveloped over the EntityDescriptor by its ``ID``;
* one ``md:RoleDescriptor xsi:type="fed:SecurityTokenServiceType"`` holding
  one ``md:KeyDescriptor use="signing"`` per published signing key, and
  nothing else as a key: some readers (IdentityModel's
  ``WsFederationMetadataSerializer``) add every KeyDescriptor of this role to
  the signing keys whatever its ``use``, so an encryption key here would be
  trusted to sign tokens;
* ``fed:TokenTypesOffered``, ``fed:ClaimTypesOffered``,
  ``fed:SecurityTokenServiceEndpoint`` (the WS-Trust address, with a
  ``wsx:MetadataReference`` to the MEX address inside its ``wsa:Metadata``,
  as AD FS writes it).

The document is deterministic: its ID is derived from its content and RSA
PKCS#1 v1.5 signatures are deterministic, so every worker and host serving
the same keys and settings serves the same bytes (one ETag everywhere).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from .. import _xml, ns
from ..keys import SigningKey
from ..xmldsig import Signer, certificate_base64

#: The protocols the role says it speaks: WS-Trust 1.3 and February 2005, and WS-Federation 1.2.
PROTOCOLS = (ns.WST13, ns.WST2005, ns.FED)
#: Token types the STS issues (SAML 2.0 and 1.1, by assertion namespace and by token profile URI).
TOKEN_TYPES = (ns.SAML20_TOKEN_PROFILE_TYPE, ns.SAML2, ns.SAML11_TOKEN_PROFILE_TYPE, ns.SAML1)


@dataclass(frozen=True)
class StsDescription:
    """What the metadata says about one STS."""

    #: The issuer name: the document's entityID, and what relying parties compare tokens' Issuer with.
    issuer: str
    #: Every published signing certificate (previous, primary, next), each one KeyDescriptor.
    signing_certificates: Sequence[x509.Certificate]
    #: The WS-Trust endpoint's public address.
    endpoint: str
    #: The WS-MetadataExchange address (``<endpoint>/mex``), or None to leave the reference out.
    mex: str | None = None
    #: Claim type URIs the STS can release.
    claim_types: Sequence[str] = ()
    #: Token type URIs offered.
    token_types: Sequence[str] = TOKEN_TYPES
    #: A human-readable name for the service.
    display_name: str = "wstrust-wsgi STS"


def build_metadata(description: StsDescription, signing_key: SigningKey, *, algorithm: str = "rsa-sha256") -> bytes:
    """The signed metadata document (UTF-8, with an XML declaration).

    ``signing_key`` signs it and should be the primary key, whose certificate
    is among ``signing_certificates``; the signature carries that certificate
    in KeyInfo (readers still verify only with the certificates they pinned).
    """
    if not description.signing_certificates:
        raise ValueError("signing_certificates: publish at least one signing certificate")
    q = _xml.qname
    root = etree.Element(q(ns.MD, "EntityDescriptor"), entityID=description.issuer, nsmap={"md": ns.MD})
    role = etree.SubElement(root, q(ns.MD, "RoleDescriptor"), nsmap={
        "xsi": ns.XSI, "fed": ns.FED, "auth": ns.FED_AUTH, "wsa": ns.WSA10, "wsx": ns.WSX, "ds": ns.DS})
    role.set(q(ns.XSI, "type"), "fed:SecurityTokenServiceType")
    role.set("protocolSupportEnumeration", " ".join(PROTOCOLS))
    role.set("ServiceDisplayName", description.display_name)
    for certificate in description.signing_certificates:
        key = etree.SubElement(role, q(ns.MD, "KeyDescriptor"), use="signing")
        data = etree.SubElement(etree.SubElement(key, q(ns.DS, "KeyInfo")), q(ns.DS, "X509Data"))
        etree.SubElement(data, q(ns.DS, "X509Certificate")).text = certificate_base64(certificate).replace("\n", "")
    offered = etree.SubElement(role, q(ns.FED, "TokenTypesOffered"))
    for uri in description.token_types:
        etree.SubElement(offered, q(ns.FED, "TokenType"), Uri=uri)
    if description.claim_types:
        claims = etree.SubElement(role, q(ns.FED, "ClaimTypesOffered"))
        for uri in description.claim_types:
            etree.SubElement(claims, q(ns.FED_AUTH, "ClaimType"), Uri=uri, Optional="true")
    endpoint = etree.SubElement(etree.SubElement(role, q(ns.FED, "SecurityTokenServiceEndpoint")),
                                q(ns.WSA10, "EndpointReference"))
    etree.SubElement(endpoint, q(ns.WSA10, "Address")).text = description.endpoint
    if description.mex is not None:
        section = etree.SubElement(
            etree.SubElement(etree.SubElement(endpoint, q(ns.WSA10, "Metadata")), q(ns.WSX, "Metadata")),
            q(ns.WSX, "MetadataSection"), Dialect=ns.WSX)
        reference = etree.SubElement(section, q(ns.WSX, "MetadataReference"))
        etree.SubElement(reference, q(ns.WSA10, "Address")).text = description.mex
    # The ID names the content, so equal content has equal bytes on every host (one ETag).
    document_id = "_" + hashlib.sha256(etree.tostring(root, method="c14n", exclusive=True)).hexdigest()[:40]
    root.set("ID", document_id)
    signer = Signer(signing_key.private_key, algorithm, certificate=signing_key.certificate)
    signer.sign_enveloped(root, document_id, index=0)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
