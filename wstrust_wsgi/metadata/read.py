"""Reading an STS's federation metadata: which certificates sign its tokens.

Order of the checks, each a :class:`~wstrust_wsgi.errors.MetadataError` naming
what it refused:

1. parse with the hardened parser (:mod:`wstrust_wsgi._xml`): the root must be
   one ``md:EntityDescriptor`` (an ``md:EntitiesDescriptor`` aggregate is not
   an STS's own document);
2. when pinned certificates are given, verify the enveloped signature over the
   EntityDescriptor with those only (never with the certificate in KeyInfo)
   and read everything after this from the element the verifier returns;
3. the ``entityID`` must be the configured issuer, exactly;
4. collect the certificates of every ``md:KeyDescriptor`` whose ``use`` is
   ``signing`` or absent (saml-metadata-2.0-os 2.4.1.1: no ``use`` means both)
   in every ``fed:SecurityTokenServiceType`` role. Keys of other roles (AD FS's
   ``fed:ApplicationServiceType`` carries its token-decryption certificate) are
   never signing keys.

Without pinned certificates only the transport (TLS, or the file's
permissions) vouches for the document; the signature is then not checked at
all, since a key taken from the document cannot vouch for the document.
"""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree

from .. import _xml, ns
from ..errors import MalformedMessage, MetadataError, WsTrustError
from ..xmldsig import AlgorithmPolicy, trusted_certificates, verify_enveloped

#: Metadata documents are larger than messages (AD FS: 70 KB, 599 elements); refuse beyond this.
MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class StsMetadata:
    """What an accepted metadata document says. Trust ``signing_certificates`` only after :func:`read_metadata`."""

    entity_id: str
    #: The signing certificates of the STS role(s), in document order, duplicates removed.
    signing_certificates: tuple[x509.Certificate, ...] = field(repr=False)
    #: The WS-Trust endpoint address, if the role names one.
    endpoint: str | None = None
    #: The WS-MetadataExchange address, if the endpoint names one.
    mex: str | None = None
    #: The pinned certificate that verified the document (None: not checked, no pinned certificates given).
    signed_by: x509.Certificate | None = field(default=None, repr=False)


def read_metadata(data: bytes, *, issuer: str | Iterable[str], now: datetime,
                  signing_certs: Sequence[x509.Certificate] = (), allow_sha1: bool = False) -> StsMetadata:
    """Check ``data`` and return the STS's signing certificates, or raise :class:`MetadataError`.

    :param issuer: the entityID required (the issuer name tokens carry), or the names accepted.
    :param now: when the pinned certificate must be valid.
    :param signing_certs: the certificates one of which must have signed the
        document; empty: the signature is not checked (the transport vouches).
    """
    try:
        root = _xml.parse(data, max_bytes=MAX_BYTES)
    except WsTrustError as exc:
        raise MetadataError(f"metadata is not well-formed XML within the limits: {exc}") from None
    if root.tag != _xml.qname(ns.MD, "EntityDescriptor"):
        raise MetadataError(f"metadata root is {root.tag}, expected an md:EntityDescriptor")
    signed_by = None
    if signing_certs:
        try:
            verified = verify_enveloped(root, id_attribute="ID", algorithms=AlgorithmPolicy.default(
                allow_sha1=allow_sha1), keys=trusted_certificates(signing_certs), now=now)
        except WsTrustError as exc:
            raise MetadataError(f"metadata signature refused (pinned metadata_signing_certs): {exc}") from None
        root, signed_by = verified.signed[0], verified.certificate
    entity_id = root.get("entityID", "")
    accepted = {issuer} if isinstance(issuer, str) else set(issuer)
    if entity_id not in accepted:
        raise MetadataError(f"metadata entityID {entity_id!r} is not the configured issuer "
                            f"{' or '.join(repr(i) for i in sorted(accepted))}")
    try:
        certificates, endpoint, mex = _sts_roles(root)
    except MalformedMessage as exc:
        raise MetadataError(f"metadata of {entity_id!r} is malformed: {exc}") from None
    if not certificates:
        raise MetadataError(f"metadata of {entity_id!r} has no signing certificate in a "
                            "fed:SecurityTokenServiceType role")
    return StsMetadata(entity_id, tuple(certificates.values()), endpoint, mex, signed_by)


def _sts_roles(root: etree._Element) -> tuple[dict[bytes, x509.Certificate], str | None, str | None]:
    """The signing certificates (by SHA-256 fingerprint), endpoint and MEX address of the STS roles."""
    certificates: dict[bytes, x509.Certificate] = {}
    endpoint = mex = None
    for role in _xml.children(root, ns.MD, "RoleDescriptor"):
        if not _is_sts_role(role):
            continue
        for key in _xml.children(role, ns.MD, "KeyDescriptor"):
            if key.get("use", "signing") != "signing":
                continue
            for element in key.iterfind(f"{{{ns.DS}}}KeyInfo/{{{ns.DS}}}X509Data/{{{ns.DS}}}X509Certificate"):
                certificate = _certificate(element)
                certificates.setdefault(certificate.fingerprint(hashes.SHA256()), certificate)
        found = role.find(f"{{{ns.FED}}}SecurityTokenServiceEndpoint/{{{ns.WSA10}}}EndpointReference")
        if found is not None and endpoint is None:
            endpoint = _xml.text(_xml.child(found, ns.WSA10, "Address")) or None
            reference = found.find(f".//{{{ns.WSX}}}MetadataReference/{{{ns.WSA10}}}Address")
            mex = (_xml.text(reference) or None) if reference is not None else None
    return certificates, endpoint, mex


def _is_sts_role(role: etree._Element) -> bool:
    """Whether ``xsi:type`` names fed:SecurityTokenServiceType (by namespace, whatever the prefix)."""
    value = role.get(_xml.qname(ns.XSI, "type"), "")
    prefix, _, local = value.rpartition(":")
    return local == "SecurityTokenServiceType" and role.nsmap.get(prefix or None) == ns.FED


def _certificate(element: etree._Element) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(b64decode("".join(_xml.text(element).split()), validate=True))
    except ValueError as exc:
        raise MetadataError(f"metadata KeyDescriptor holds an unreadable certificate: {exc}") from None
