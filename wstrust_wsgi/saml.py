"""SAML 2.0 and 1.1 bearer assertions: build, sign, verify, and read what was signed.

The two SAML versions differ in data (namespace, ID attribute, where the
signature goes, how a subject and an audience are written), held in one frozen
:class:`SamlVersion` value each.

Verification follows one rule: **parse once, verify, then read only what was
signed**. :func:`verify_assertion` copies the assertion out of the message,
checks the signature's shape (one Reference, to the assertion's own unique ID;
enveloped + exclusive c14n transforms only; allowed algorithms only), verifies
it against each configured certificate in turn (a certificate or key carried
in ``KeyInfo`` is never used) with :func:`_verify_signature`, which does what
signxml's ``XMLVerifier`` does for that shape on the one parsed copy (signxml
stays the reference, :func:`_verify_signature_signxml`, and the tests hold the
two to the same verdict), and reads every claim from the element returned as
signed (the verified copy, whose canonical bytes were digested). Nothing is read from the message
again. A :class:`VerificationCache` lets a reused token skip the signature
work only: its time window and audience are checked on every request.
Subject, issuer and audience are the exact signed text: no whitespace is
trimmed, so `` admin`` is not ``admin`` and an audience is matched as written.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
import time
import uuid
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import NamedTuple, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
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

from . import _xml, ns
from ._time import format_datetime, parse_datetime
from .errors import FailedCheck, InvalidSecurityToken, MalformedMessage, UnsupportedAlgorithm
from .keys import SigningKey

log = logging.getLogger("wstrust_wsgi.saml")


@dataclass(frozen=True)
class SamlVersion:
    """One SAML version's wire facts."""

    name: str
    namespace: str
    id_attribute: str
    #: TokenType URIs a WS-Trust client may use to ask for this version; the first is what we answer.
    token_types: tuple[str, ...]
    key_identifier_value_type: str
    #: wsse11:TokenType on a SecurityTokenReference to this kind of token.
    profile_token_type: str

    @property
    def token_type(self) -> str:
        return self.token_types[0]


SAML2 = SamlVersion(
    "2.0", ns.SAML2, "ID", (ns.SAML2, ns.SAML20_TOKEN_PROFILE_TYPE),
    ns.SAML20_KEYID_VALUE_TYPE, ns.SAML20_TOKEN_PROFILE_TYPE,
)
SAML11 = SamlVersion(
    "1.1", ns.SAML1, "AssertionID", (ns.SAML1, ns.SAML11_TOKEN_PROFILE_TYPE),
    ns.SAML11_KEYID_VALUE_TYPE, ns.SAML11_TOKEN_PROFILE_TYPE,
)
_BY_NS = {SAML2.namespace: SAML2, SAML11.namespace: SAML11}  # kept for importers


def version_for_token_type(token_type: str) -> SamlVersion | None:
    """The SAML version a WS-Trust TokenType URI names, or None."""
    for version in (SAML2, SAML11):
        if token_type in version.token_types:
            return version
    return None


_BY_TAG = {_xml.qname(version.namespace, "Assertion"): version for version in (SAML2, SAML11)}


def version_of(element: etree._Element) -> SamlVersion | None:
    """The SAML version of an ``Assertion`` element, or None if it is not one."""
    tag = element.tag
    return _BY_TAG.get(tag) if isinstance(tag, str) else None


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class AssertionContent:
    """What an issued assertion says; the builder turns it into SAML 2.0 or 1.1."""

    issuer: str
    subject: str
    audience: str
    issue_instant: datetime
    not_before: datetime
    not_on_or_after: datetime
    #: Claim URI -> values. Roles travel here too, under :data:`ns.CLAIM_ROLE`.
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    assertion_id: str = field(default_factory=lambda: "_" + uuid.uuid4().hex)
    name_format: str = ns.SAML_NAMEID_UNSPECIFIED


def _sub(parent: etree._Element, namespace: str, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _xml.qname(namespace, local), attrs)
    if text is not None:
        element.text = text
    return element


def _placeholder(parent: etree._Element) -> None:
    # signxml puts an enveloped signature where this placeholder stands.
    etree.SubElement(parent, _xml.qname(ns.DS, "Signature"), {"Id": "placeholder"}, nsmap={"ds": ns.DS})


def _saml2_attributes(statement: etree._Element, attributes: Mapping[str, Sequence[str]]) -> None:
    """One saml2:Attribute (URI name format) per claim with values."""
    for name, values in attributes.items():
        if values:
            attribute = _sub(statement, ns.SAML2, "Attribute", Name=name, NameFormat=ns.SAML2_ATTRNAME_URI)
            for value in values:
                _sub(attribute, ns.SAML2, "AttributeValue", value)


def _saml11_attributes(statement: etree._Element, attributes: Mapping[str, Sequence[str]]) -> None:
    """One saml:Attribute per claim with values, the claim URI split at its last '/' (as AD FS does)."""
    for name, values in attributes.items():
        if values:
            namespace, _, short = name.rpartition("/")
            attribute = _sub(statement, ns.SAML1, "Attribute", AttributeName=short,
                             AttributeNamespace=namespace or name)
            for value in values:
                _sub(attribute, ns.SAML1, "AttributeValue", value)


def build_saml2(content: AssertionContent) -> etree._Element:
    """A SAML 2.0 assertion with a signature placeholder after Issuer (saml-schema-assertion-2.0)."""
    s = ns.SAML2
    issued = format_datetime(content.issue_instant)
    expires = format_datetime(content.not_on_or_after)
    root = etree.Element(
        _xml.qname(s, "Assertion"),
        {"ID": content.assertion_id, "IssueInstant": issued, "Version": "2.0"},
        nsmap={"saml2": s},
    )
    _sub(root, s, "Issuer", content.issuer)
    _placeholder(root)
    subject = _sub(root, s, "Subject")
    _sub(subject, s, "NameID", content.subject, Format=content.name_format)
    confirmation = _sub(subject, s, "SubjectConfirmation", Method=ns.SAML2_BEARER)
    _sub(confirmation, s, "SubjectConfirmationData", NotOnOrAfter=expires)
    conditions = _sub(root, s, "Conditions", NotBefore=format_datetime(content.not_before), NotOnOrAfter=expires)
    _sub(_sub(conditions, s, "AudienceRestriction"), s, "Audience", content.audience)
    authn = _sub(root, s, "AuthnStatement", AuthnInstant=issued)
    _sub(_sub(authn, s, "AuthnContext"), s, "AuthnContextClassRef", ns.SAML2_AC_PASSWORD)
    if any(content.attributes.values()):
        _saml2_attributes(_sub(root, s, "AttributeStatement"), content.attributes)
    return root


def _saml1_subject(parent: etree._Element, content: AssertionContent) -> None:
    s = ns.SAML1
    subject = _sub(parent, s, "Subject")
    _sub(subject, s, "NameIdentifier", content.subject, Format=content.name_format)
    _sub(_sub(subject, s, "SubjectConfirmation"), s, "ConfirmationMethod", ns.SAML1_BEARER)


def build_saml11(content: AssertionContent) -> etree._Element:
    """A SAML 1.1 assertion with a signature placeholder last (oasis-sstc-saml-schema-assertion-1.1)."""
    s = ns.SAML1
    issued = format_datetime(content.issue_instant)
    root = etree.Element(
        _xml.qname(s, "Assertion"),
        {
            "MajorVersion": "1",
            "MinorVersion": "1",
            "AssertionID": content.assertion_id,
            "Issuer": content.issuer,
            "IssueInstant": issued,
        },
        nsmap={"saml": s},
    )
    conditions = _sub(
        root, s, "Conditions",
        NotBefore=format_datetime(content.not_before), NotOnOrAfter=format_datetime(content.not_on_or_after),
    )
    _sub(_sub(conditions, s, "AudienceRestrictionCondition"), s, "Audience", content.audience)
    if any(content.attributes.values()):
        statement = _sub(root, s, "AttributeStatement")
        _saml1_subject(statement, content)
        _saml11_attributes(statement, content.attributes)
    authn = _sub(root, s, "AuthenticationStatement", AuthenticationMethod=ns.SAML1_AM_PASSWORD,
                 AuthenticationInstant=issued)
    _saml1_subject(authn, content)
    _placeholder(root)
    return root


_BUILDERS = {SAML2.name: build_saml2, SAML11.name: build_saml11}


class _SHA1Signer(XMLSigner):
    """signxml refuses SHA-1 unless this check is overridden (its documented opt-out)."""

    def check_deprecated_methods(self) -> None:
        return None


class AssertionSigner:
    """Builds and signs assertions with one key: enveloped XML-DSig, RSA-SHA256, SHA-256, exclusive c14n.

    The key object is loaded once. Signing goes through :func:`_sign_enveloped`
    (no shared state: thread-safe). The signxml signers kept for
    :meth:`sign_with_signxml` hold state between calls (``id_attribute``), so
    there is one per SAML version, each behind a lock.
    """

    _ALGORITHMS = {
        "rsa-sha256": (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA256),
        "rsa-sha384": (SignatureMethod.RSA_SHA384, DigestAlgorithm.SHA384),
        "rsa-sha512": (SignatureMethod.RSA_SHA512, DigestAlgorithm.SHA512),
        "rsa-sha1": (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1),
    }

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._cert_pem = [key.certificate_pem.decode("ascii")]
        # KeyInfo/X509Data/X509Certificate: the base64 body of the PEM, line breaks kept (as signxml writes it)
        self._cert_b64 = "".join(key.certificate_pem.decode("ascii").splitlines(keepends=True)[1:-1])
        self._templates = {name: _signature_template(algorithms, self._cert_b64)
                           for name, algorithms in _SIGNING.items()}
        self._signed_info = {name: _SignedInfoBytes(algorithms, self._templates[name], self._cert_b64)
                             for name, algorithms in _SIGNING.items()}
        self._signers = {
            (version.name, algorithm): (self._new_signer(algorithm), threading.Lock())
            for version in (SAML2, SAML11) for algorithm in self._ALGORITHMS
        }

    @classmethod
    def _new_signer(cls, algorithm: str) -> XMLSigner:
        signature_method, digest = cls._ALGORITHMS[algorithm]
        if algorithm == "rsa-sha1":
            # signxml refuses SHA-1 unless asked through its documented opt-out class
            signer: XMLSigner = _SHA1Signer(
                method=methods.enveloped, signature_algorithm=signature_method, digest_algorithm=digest,
                c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
            )
            return signer
        return XMLSigner(
            method=methods.enveloped,
            signature_algorithm=signature_method,
            digest_algorithm=digest,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )

    def sign(self, version: SamlVersion, content: AssertionContent, *, algorithm: str = "rsa-sha256") -> bytes:
        """The serialized signed assertion (bytes that declare every namespace they use).

        Signs with :func:`_sign_enveloped` (lxml for the XML, exclusive c14n by
        libxml2, the RSA operation by cryptography): the same signature signxml
        makes, without signxml's re-parsing and per-call key handling. signxml
        stays the reference: :meth:`sign_with_signxml`, and the tests check both
        against each other and every issued token with ``xmlsec1``.
        """
        skeleton = _SKELETONS[version.name]
        unsigned = skeleton.build(content)
        template = self._signed_info[algorithm]
        if template.exact and _PLAIN_ID.match(content.assertion_id):
            return template.sign(unsigned, skeleton, self._key.private_key, content.assertion_id)
        index = skeleton.signature_index if version is SAML2 else -1
        return _sign_enveloped(unsigned, index, self._key.private_key, self._templates[algorithm],
                               content.assertion_id, _SIGNING[algorithm])

    def sign_with_signxml(self, version: SamlVersion, content: AssertionContent, *,
                          algorithm: str = "rsa-sha256") -> bytes:
        """The same assertion signed by signxml (the reference implementation, kept for tests and the bench)."""
        unsigned = _BUILDERS[version.name](content)
        signer, lock = self._signers[(version.name, algorithm)]
        with lock:
            signed = signer.sign(
                unsigned,
                key=self._key.private_key,
                cert=self._cert_pem,
                reference_uri=content.assertion_id,
                id_attribute=version.id_attribute,
            )
        return etree.tostring(signed)


@dataclass(frozen=True)
class _Algorithms:
    """One signature algorithm's URIs and hash (XML-DSig 1.1 section 6, RFC 6931)."""

    signature_uri: str
    digest_uri: str
    hash: Callable[[], hashes.HashAlgorithm]


_SIGNING = {
    "rsa-sha256": _Algorithms(SignatureMethod.RSA_SHA256.value, DigestAlgorithm.SHA256.value, hashes.SHA256),
    "rsa-sha384": _Algorithms(SignatureMethod.RSA_SHA384.value, DigestAlgorithm.SHA384.value, hashes.SHA384),
    "rsa-sha512": _Algorithms(SignatureMethod.RSA_SHA512.value, DigestAlgorithm.SHA512.value, hashes.SHA512),
    "rsa-sha1": _Algorithms(SignatureMethod.RSA_SHA1.value, DigestAlgorithm.SHA1.value, hashes.SHA1),
}
_HASHLIB: dict[Callable[[], hashes.HashAlgorithm], Callable[[bytes], "hashlib._Hash"]] = {
    hashes.SHA256: hashlib.sha256, hashes.SHA384: hashlib.sha384, hashes.SHA512: hashlib.sha512, hashes.SHA1: hashlib.sha1,
}


def _ds(parent: etree._Element, local: str, algorithm: str | None = None) -> etree._Element:
    attrs = {"Algorithm": algorithm} if algorithm is not None else {}
    return etree.SubElement(parent, _xml.qname(ns.DS, local), attrs)


def _signature_template(algorithms: _Algorithms, cert_b64: str) -> etree._Element:
    """``ds:Signature`` with everything but the Reference URI, DigestValue and SignatureValue (XML-DSig core 4)."""
    signature = etree.Element(_xml.qname(ns.DS, "Signature"), nsmap={"ds": ns.DS})
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", ns.ALG_EXC_C14N)
    _ds(signed_info, "SignatureMethod", algorithms.signature_uri)
    reference = _ds(signed_info, "Reference")
    reference.set("URI", "")
    transforms = _ds(reference, "Transforms")
    _ds(transforms, "Transform", ns.ALG_ENVELOPED)
    _ds(transforms, "Transform", ns.ALG_EXC_C14N)
    _ds(reference, "DigestMethod", algorithms.digest_uri)
    _ds(reference, "DigestValue")
    _ds(signature, "SignatureValue")
    _ds(_ds(_ds(signature, "KeyInfo"), "X509Data"), "X509Certificate").text = cert_b64
    return signature


class _Skeleton:
    """One SAML version's assertion as the builder makes it, built once and copied per token.

    Copying a built tree (one C call) and setting its dozen values is several
    times cheaper than building it element by element; the result is the same
    tree (``tests/test_fast_paths.py`` compares both for many contents).
    """

    _BLANK = AssertionContent(issuer="", subject="", audience="", issue_instant=datetime(2000, 1, 1, tzinfo=timezone.utc),
                              not_before=datetime(2000, 1, 1, tzinfo=timezone.utc), not_on_or_after=datetime(2000, 1, 1, tzinfo=timezone.utc),
                              assertion_id="_")

    def __init__(self, version: SamlVersion) -> None:
        self.version = version
        root = _BUILDERS[version.name](self._BLANK)
        placeholder = root.find(_xml.qname(ns.DS, "Signature"))
        assert placeholder is not None
        self.signature_index = root.index(placeholder)
        root.remove(placeholder)
        self.root = root
        self.issuer_end = f"</{root.prefix}:Issuer>".encode()
        self.root_end = f"</{root.prefix}:Assertion>".encode()
        order = list(root.iter())
        s = version.namespace

        def at(path: str) -> int:
            found = root.find(path, namespaces={"s": s})
            assert found is not None, path
            return order.index(found)

        if version is SAML2:
            self.where = {name: at(path) for name, path in {
                "issuer": "s:Issuer", "name_id": "s:Subject/s:NameID",
                "confirmation": "s:Subject/s:SubjectConfirmation/s:SubjectConfirmationData",
                "conditions": "s:Conditions", "audience": "s:Conditions/s:AudienceRestriction/s:Audience",
                "authn": "s:AuthnStatement",
            }.items()}
        else:
            self.where = {name: at(path) for name, path in {
                "conditions": "s:Conditions", "audience": "s:Conditions/s:AudienceRestrictionCondition/s:Audience",
                "authn": "s:AuthenticationStatement",
                "name_id": "s:AuthenticationStatement/s:Subject/s:NameIdentifier",
            }.items()}

    def build(self, content: AssertionContent) -> etree._Element:
        """The unsigned assertion for ``content``, without a signature placeholder."""
        root = copy.deepcopy(self.root)
        nodes = list(root.iter())
        w = self.where
        issued = format_datetime(content.issue_instant)
        expires = format_datetime(content.not_on_or_after)
        conditions = nodes[w["conditions"]]
        conditions.set("NotBefore", format_datetime(content.not_before))
        conditions.set("NotOnOrAfter", expires)
        nodes[w["audience"]].text = content.audience
        name_id = nodes[w["name_id"]]
        name_id.text = content.subject
        name_id.set("Format", content.name_format)
        if self.version is SAML2:
            root.set("ID", content.assertion_id)
            root.set("IssueInstant", issued)
            nodes[w["issuer"]].text = content.issuer
            nodes[w["confirmation"]].set("NotOnOrAfter", expires)
            nodes[w["authn"]].set("AuthnInstant", issued)
            if any(content.attributes.values()):
                _saml2_attributes(_sub(root, ns.SAML2, "AttributeStatement"), content.attributes)
        else:
            root.set("AssertionID", content.assertion_id)
            root.set("Issuer", content.issuer)
            root.set("IssueInstant", issued)
            nodes[w["authn"]].set("AuthenticationInstant", issued)
            if any(content.attributes.values()):
                statement = etree.Element(_xml.qname(ns.SAML1, "AttributeStatement"))
                root.insert(root.index(nodes[w["authn"]]), statement)
                _saml1_subject(statement, content)
                _saml11_attributes(statement, content.attributes)
        return root


def _sign_enveloped(
    root: etree._Element, signature_index: int, key: rsa.RSAPrivateKey, template: etree._Element,
    assertion_id: str, algorithms: _Algorithms,
) -> bytes:
    """Enveloped XML-DSig over ``root`` (one Reference to ``#assertion_id``, exclusive c14n), serialized.

    XML-DSig core section 3.1: digest the referenced element after its
    transforms (enveloped-signature: the element without its Signature, i.e.
    before the Signature is inserted; then exclusive c14n), fill in
    SignedInfo, canonicalize it where it stands, sign that with the key
    (PKCS#1 v1.5), and insert the Signature at ``signature_index`` (after
    Issuer in 2.0, last in 1.1).
    """
    digest = _HASHLIB[algorithms.hash](
        etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    ).digest()
    signature = copy.deepcopy(template)
    signed_info, value = signature[0], signature[1]
    reference = signed_info[2]
    reference.set("URI", "#" + assertion_id)
    reference[2].text = b64encode(digest).decode("ascii")
    if signature_index < 0:
        root.append(signature)
    else:
        root.insert(signature_index, signature)
    signed_info_c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    value.text = b64encode(key.sign(signed_info_c14n, padding.PKCS1v15(), algorithms.hash())).decode("ascii")
    return etree.tostring(root)


#: Assertion IDs whose c14n attribute form is the ID itself (no character to escape); others take the lxml path.
_PLAIN_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


class _SignedInfoBytes:
    """SignedInfo in its exclusive-c14n form, from bytes fixed per algorithm (XML-DSig core 3.1.2).

    Only the Reference URI (an ID of :data:`_PLAIN_ID` characters, nothing to
    escape) and the DigestValue (base64) vary. At construction the rendering
    is compared with lxml's canonicalization of the same SignedInfo built as a
    tree (:func:`_signature_template`); if they ever differ (another libxml2),
    ``exact`` is False and signing takes the tree path.
    """

    def __init__(self, algorithms: _Algorithms, template: etree._Element, cert_b64: str) -> None:
        ds, exc, env = ns.DS.encode(), ns.ALG_EXC_C14N.encode(), ns.ALG_ENVELOPED.encode()
        self.algorithms = algorithms
        self.head = (
            b'<ds:SignedInfo xmlns:ds="' + ds + b'"><ds:CanonicalizationMethod Algorithm="' + exc
            + b'"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="' + algorithms.signature_uri.encode()
            + b'"></ds:SignatureMethod><ds:Reference URI="#'
        )
        self.middle = (
            b'"><ds:Transforms><ds:Transform Algorithm="' + env + b'"></ds:Transform><ds:Transform Algorithm="'
            + exc + b'"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="'
            + algorithms.digest_uri.encode() + b'"></ds:DigestMethod><ds:DigestValue>'
        )
        self.tail = b"</ds:DigestValue></ds:Reference></ds:SignedInfo>"
        self.open = b'<ds:Signature xmlns:ds="' + ds + b'">'
        self.key_info = (
            b"</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>" + cert_b64.encode("ascii")
            + b"</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
        )
        probe = copy.deepcopy(template)
        reference = probe[0][2]
        reference.set("URI", "#_probe.ID-1")
        reference[2].text = "ZGlnZXN0"
        self.exact = etree.tostring(probe[0], method="c14n", exclusive=True) == self.render("_probe.ID-1", b"ZGlnZXN0")

    def render(self, assertion_id: str, digest_b64: bytes) -> bytes:
        return self.head + assertion_id.encode("ascii") + self.middle + digest_b64 + self.tail

    def sign(self, root: etree._Element, skeleton: _Skeleton, key: rsa.RSAPrivateKey, assertion_id: str) -> bytes:
        """The signed assertion: its canonical form with the Signature spliced where the placeholder stood.

        The canonical bytes (exclusive c14n, no comments) are what is digested
        (the enveloped-signature transform removes exactly the Signature
        inserted here), and they are also a complete serialization declaring
        every namespace they use; in them an end tag can only be markup (``<``
        in text and attributes is escaped), so the first ``</p:Issuer>`` is the
        assertion's Issuer (its first child) and the document ends with the
        assertion's end tag.
        """
        canonical = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
        algorithms = self.algorithms
        digest = _HASHLIB[algorithms.hash](canonical).digest()
        signed_info = self.render(assertion_id, b64encode(digest))
        value = b64encode(key.sign(signed_info, _PKCS1V15, algorithms.hash()))
        signature = self.open + signed_info + b"<ds:SignatureValue>" + value + self.key_info
        if skeleton.version is SAML2:
            at = canonical.index(skeleton.issuer_end) + len(skeleton.issuer_end)
        else:
            at = len(canonical) - len(skeleton.root_end)
            assert canonical.endswith(skeleton.root_end)
        return canonical[:at] + signature + canonical[at:]


_SKELETONS = {version.name: _Skeleton(version) for version in (SAML2, SAML11)}


# --------------------------------------------------------------------------- verifying

_SIGNATURE_METHODS = {
    ns.ALG_RSA_SHA256: SignatureMethod.RSA_SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": SignatureMethod.RSA_SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": SignatureMethod.RSA_SHA512,
}
_DIGESTS = {
    ns.ALG_SHA256: DigestAlgorithm.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": DigestAlgorithm.SHA384,
    "http://www.w3.org/2001/04/xmlenc#sha512": DigestAlgorithm.SHA512,
}
# read-only views, built once: the policy answers with one of these on every request
_SIGNATURE_METHODS_VIEW = MappingProxyType(dict(_SIGNATURE_METHODS))
_SIGNATURE_METHODS_SHA1 = MappingProxyType({**_SIGNATURE_METHODS, ns.ALG_RSA_SHA1: SignatureMethod.RSA_SHA1})
_DIGESTS_VIEW = MappingProxyType(dict(_DIGESTS))
_DIGESTS_SHA1 = MappingProxyType({**_DIGESTS, ns.ALG_SHA1: DigestAlgorithm.SHA1})


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a verified assertion says, read only from the signed element.

    Stored by :class:`~wstrust_wsgi.RelyingPartyMiddleware` in
    ``environ["wstrust_wsgi.assertion"]``.
    """

    version: str
    assertion_id: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    not_before: datetime | None
    not_on_or_after: datetime
    issue_instant: datetime | None
    attributes: Mapping[str, tuple[str, ...]]
    #: The assertion as it stood in the message (serialized from the parsed request).
    raw: bytes
    #: The signed element: the verified copy of the assertion, its Signature removed
    #: (``etree.tostring(element, method="c14n", exclusive=True)`` gives the digested bytes).
    element: etree._Element = field(repr=False, compare=False)

    @property
    def roles(self) -> tuple[str, ...]:
        return self.attributes.get(ns.CLAIM_ROLE, ())


class _Trusted(NamedTuple):
    cert: x509.Certificate
    key: rsa.RSAPublicKey | None
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, cert: x509.Certificate) -> _Trusted:
        key = cert.public_key()
        return cls(cert, key if isinstance(key, rsa.RSAPublicKey) else None,
                   cert.not_valid_before_utc, cert.not_valid_after_utc)


@dataclass(frozen=True)
class ValidationPolicy:
    """How an assertion must look to be accepted.

    ``issuers`` and ``audiences`` are compared as exact strings: an audience
    differing in case, scheme or a trailing slash is a different audience.
    """

    trusted_certs: tuple[x509.Certificate, ...]
    issuers: frozenset[str]
    audiences: frozenset[str]
    clock_skew: timedelta = timedelta(minutes=5)
    allow_sha1: bool = False
    #: Each certificate with its RSA key (None if not RSA) and validity, read once here:
    #: the validity properties decode ASN.1 times on every access.
    trusted: tuple[_Trusted, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted", tuple(_Trusted.of(cert) for cert in self.trusted_certs))

    def signature_methods(self) -> Mapping[str, SignatureMethod]:
        return _SIGNATURE_METHODS_SHA1 if self.allow_sha1 else _SIGNATURE_METHODS_VIEW

    def digests(self) -> Mapping[str, DigestAlgorithm]:
        return _DIGESTS_SHA1 if self.allow_sha1 else _DIGESTS_VIEW


#: Every attribute whose value is $id; those named ID, AssertionID or Id (in any namespace, so
#: wsu:Id and signxml's any-namespace lookup too) must all sit on the assertion itself.
_ID_VALUES = etree.XPath("//@*[. = $id]")
_ID_NAMES = frozenset(["ID", "AssertionID", "Id"])
_DS = {local: _xml.qname(ns.DS, local) for local in (
    "Signature", "SignedInfo", "CanonicalizationMethod", "SignatureMethod", "Reference", "Transforms", "Transform",
    "DigestMethod")}
_DS_SIGNATURE = _DS["Signature"]


class _Parts(NamedTuple):
    """The Signature's elements as the shape check found them (by name, each the only one)."""

    signature: etree._Element
    signed_info: etree._Element
    c14n_method: etree._Element
    method: etree._Element
    reference: etree._Element
    steps: list[etree._Element]
    digest_method: etree._Element


def _check_signature_shape(root: etree._Element, version: SamlVersion, policy: ValidationPolicy) -> str:
    """Refuse any signature that is not one enveloped signature over this very assertion; return its ID."""
    return _signature_shape(root, version, policy)[0]


def _signature_shape(root: etree._Element, version: SamlVersion, policy: ValidationPolicy) -> tuple[str, _Parts]:
    """:func:`_check_signature_shape`, also handing on the elements it found."""
    assertion_id = root.get(version.id_attribute, "")
    if not assertion_id:
        raise InvalidSecurityToken(f"assertion has no {version.id_attribute}")
    signatures = list(root.iter(_DS_SIGNATURE))
    if not signatures:
        raise FailedCheck("assertion is not signed", reason="The security token is not signed.")
    if len(signatures) > 1 or signatures[0].getparent() is not root:
        raise FailedCheck("assertion must carry exactly one signature, as its own child")
    signature = signatures[0]
    # every element with an ID, AssertionID or Id attribute (any namespace) equal to the assertion's ID
    holders = [value.getparent() for value in cast(list[etree._ElementUnicodeResult], _ID_VALUES(root, id=assertion_id))
               if etree.QName(value.attrname).localname in _ID_NAMES]
    if any(holder is not root for holder in holders):
        raise FailedCheck(f"ID {assertion_id!r} is not unique to the assertion ({len(holders)} holders)")
    signed_info = _xml.only(signature, _DS["SignedInfo"])
    if signed_info is None:
        raise FailedCheck("Signature has no SignedInfo")
    c14n = _xml.only(signed_info, _DS["CanonicalizationMethod"])
    if c14n is None or c14n.get("Algorithm") != ns.ALG_EXC_C14N:
        raise UnsupportedAlgorithm(f"canonicalization {c14n.get('Algorithm') if c14n is not None else None!r}")
    method = _xml.only(signed_info, _DS["SignatureMethod"])
    method_uri = method.get("Algorithm") if method is not None else None
    if method_uri not in policy.signature_methods():
        raise UnsupportedAlgorithm(f"signature method {method_uri!r} not allowed")
    references = list(signed_info.iterchildren(_DS["Reference"]))
    if len(references) != 1:
        raise FailedCheck(f"signature has {len(references)} references, expected exactly 1")
    reference = references[0]
    if reference.get("URI") != "#" + assertion_id:
        raise FailedCheck(f"reference URI {reference.get('URI')!r} does not point at assertion {assertion_id!r}")
    transforms = _xml.only(reference, _DS["Transforms"])
    steps = list(transforms.iterchildren(_DS["Transform"])) if transforms is not None else []
    uris = [t.get("Algorithm") for t in steps]
    if uris != [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N]:
        raise UnsupportedAlgorithm(f"transforms {uris!r}: only enveloped-signature and exclusive c14n are allowed")
    digest = _xml.only(reference, _DS["DigestMethod"])
    digest_uri = digest.get("Algorithm") if digest is not None else None
    if digest_uri not in policy.digests():
        raise UnsupportedAlgorithm(f"digest method {digest_uri!r} not allowed")
    assert method is not None and digest is not None  # both passed the allowed-algorithm checks
    return assertion_id, _Parts(signature, signed_info, c14n, method, reference, steps, digest)


_EXC_C14N_NS = {"ec": ns.ALG_EXC_C14N}
_DS_NS = {"ds": ns.DS, "dsig11": "http://www.w3.org/2009/xmldsig11#"}
_HASH_BY_SIGNATURE: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    SignatureMethod.RSA_SHA256.value: hashes.SHA256, SignatureMethod.RSA_SHA384.value: hashes.SHA384,
    SignatureMethod.RSA_SHA512.value: hashes.SHA512, SignatureMethod.RSA_SHA1.value: hashes.SHA1,
}
_HASH_BY_DIGEST = {
    DigestAlgorithm.SHA256.value: hashlib.sha256, DigestAlgorithm.SHA384.value: hashlib.sha384,
    DigestAlgorithm.SHA512.value: hashlib.sha512, DigestAlgorithm.SHA1.value: hashlib.sha1,
}
_PKCS1V15 = padding.PKCS1v15()


def _name(cert: x509.Certificate) -> str:
    """A certificate's subject, for failure messages only (formatting it costs more than a digest)."""
    return cert.subject.rfc4514_string()
_signature_schemas: list[etree.XMLSchema] = []
_DS_TRANSFORMS = _xml.qname(ns.DS, "Transforms")
_DS_SIGNATURE_VALUE = _xml.qname(ns.DS, "SignatureValue")
_DS_DIGEST_VALUE = _xml.qname(ns.DS, "DigestValue")
_DS_KEYINFO = _xml.qname(ns.DS, "KeyInfo")
_DS_KEYVALUE = _xml.qname(ns.DS, "KeyValue")
_DSIG11_DER_KEY = _xml.qname(_DS_NS["dsig11"], "DEREncodedKeyValue")


def _elements(parent: etree._Element) -> list[etree._Element]:
    """Element children only (processing instructions may sit between them)."""
    return list(parent.iterchildren(etree.Element))


class _Refused(Exception):
    """A signature refused by :func:`_verify_signature` (becomes FailedCheck)."""


def _schemas() -> list[etree.XMLSchema]:
    # signxml's own copy of the XML-DSig schema, so that both paths validate alike
    if not _signature_schemas:
        _signature_schemas.extend(XMLVerifier.schemas())
    return _signature_schemas


def _find(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, namespaces=_DS_NS)
    if found is None:
        raise _Refused(f"no {path} in {element.tag}")
    return found


def _inclusive_prefixes(node: etree._Element) -> list[str] | None:
    if len(node) == 0:  # no child, so no ec:InclusiveNamespaces (the usual case)
        return None
    inclusive = node.find("./ec:InclusiveNamespaces[@PrefixList]", namespaces=_EXC_C14N_NS)
    return None if inclusive is None else inclusive.get("PrefixList", "").split(" ")


def _remove_enveloped(signature: etree._Element) -> None:
    """The enveloped-signature transform (XML-DSig core 6.6.4): drop the Signature, keep the text after it."""
    parent = signature.getparent()
    assert parent is not None
    tail = signature.tail
    previous = signature.getprevious()
    signature.tail = None
    if tail is not None:
        if previous is None:
            parent.text = (parent.text or "") + tail
        else:
            previous.tail = (previous.tail or "") + tail
    parent.remove(signature)


def _key_value_matches(signature: etree._Element, public_key: rsa.RSAPublicKey) -> bool:
    """A KeyValue or DEREncodedKeyValue next to the trusted certificate must name the same key (as signxml)."""
    key_info = next(signature.iterchildren(_DS_KEYINFO), None)
    if key_info is None:
        return True
    # the first of each, as signxml's find() takes it (path lookups cost ~10 us each here)
    key_value = der = None
    for child in key_info:
        if child.tag == _DS_KEYVALUE and key_value is None:
            key_value = child
        elif child.tag == _DSIG11_DER_KEY and der is None:
            der = child
    if key_value is None and der is None:  # the usual case: no key named, nothing to compare
        return True
    numbers = public_key.public_numbers()
    if key_value is not None:
        rsa_value = _find(key_value, "ds:RSAKeyValue")
        modulus = int.from_bytes(b64decode(_find(rsa_value, "ds:Modulus").text), "big")  # type: ignore[arg-type]
        exponent = int.from_bytes(b64decode(_find(rsa_value, "ds:Exponent").text), "big")  # type: ignore[arg-type]
        if (modulus, exponent) != (numbers.n, numbers.e):
            return False
    if der is not None:
        carried = serialization.load_der_public_key(b64decode(der.text))  # type: ignore[arg-type]
        if not isinstance(carried, rsa.RSAPublicKey):
            return False
        if (carried.public_numbers().n, carried.public_numbers().e) != (numbers.n, numbers.e):
            return False
    return True


def _verify_signature(
    root: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime
) -> etree._Element:
    """The signed element of ``root`` (see :func:`_verify_signature_and_cert`), or FailedCheck."""
    return _verify_signature_and_cert(root, version, policy, now)[0]


def _verify_signature_and_cert(
    root: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime,
    parts: _Parts | None = None,
) -> tuple[etree._Element, x509.Certificate]:
    """Verify the enveloped signature of ``root`` against each trusted certificate; the signed element.

    Runs after :func:`_check_signature_shape` (one Signature, root's own child;
    one Reference to root's ID; enveloped + exclusive c14n; allowed algorithms)
    and does what signxml's ``XMLVerifier.verify`` does for that shape, on the
    one parsed tree instead of re-parsing it about six times (XML-DSig core
    3.2): the Signature must be valid against the XML-DSig schema; SignedInfo is
    canonicalized in place and its signature checked with the certificate's RSA
    key (PKCS#1 v1.5); the certificate must be valid at ``now``; a KeyValue or
    DEREncodedKeyValue in KeyInfo must name that same key; the Reference must
    resolve to exactly one element (root); the digest is taken over root
    without its Signature, exclusively canonicalized. What is returned is root
    itself, its Signature removed: the very tree those digested bytes were
    written from (a standalone copy, comments dropped at parse, the
    Signature's tail kept), so everything read from it was signed. signxml
    parses the canonical bytes again because its references may select
    other nodes than a whole element; ours selects exactly root, and the
    differential test holds the two to the same canonical signed bytes.
    """
    try:
        signature = next(root.iterchildren(_DS_SIGNATURE), None)
        if signature is None:
            raise _Refused("no ds:Signature in the assertion")
        for schema in _schemas():
            schema.assertValid(signature)
        if parts is None:  # called on its own (the differential test): find the elements here
            # The schema fixed the order: SignedInfo, SignatureValue, KeyInfo?, Object*; and
            # CanonicalizationMethod, SignatureMethod, Reference+ in SignedInfo.
            children = _elements(signature)
            signed_info = children[0]
            info_parts = _elements(signed_info)
            c14n_method, method_el, references = info_parts[0], info_parts[1], info_parts[2:]
            if len(references) != 1:
                raise _Refused(f"{len(references)} references")
            reference = references[0]
            # Reference: Transforms?, DigestMethod, DigestValue
            reference_parts = _elements(reference)
            transforms = reference_parts[0] if reference_parts[0].tag == _DS_TRANSFORMS else None
            digest_method = reference_parts[-2]
            steps = _elements(transforms) if transforms is not None else []
        else:  # found by the shape check, each the only one of its name: the schema's positions
            signed_info, c14n_method, method_el = parts.signed_info, parts.c14n_method, parts.method
            reference, steps, digest_method = parts.reference, parts.steps, parts.digest_method
        signature_value = next(signature.iterchildren(_DS_SIGNATURE_VALUE))
        digest_value = next(reference.iterchildren(_DS_DIGEST_VALUE))
        if c14n_method.get("Algorithm") != ns.ALG_EXC_C14N:
            raise _Refused("canonicalization")
        method = method_el.get("Algorithm")
        if method not in policy.signature_methods():
            raise _Refused(f"signature method {method!r}")
        hash_class = _HASH_BY_SIGNATURE[method]  # type: ignore[index]
        raw_signature = b64decode(signature_value.text)  # type: ignore[arg-type]
        signed_info_c14n = etree.tostring(
            signed_info, method="c14n", exclusive=True, with_comments=False,
            inclusive_ns_prefixes=_inclusive_prefixes(c14n_method),
        )
        digest_uri = digest_method.get("Algorithm")
        if digest_uri not in policy.digests():
            raise _Refused(f"digest method {digest_uri!r}")
        expected_digest = b64decode(digest_value.text)  # type: ignore[arg-type]
        uri = reference.get("URI") or ""
        # _check_signature_shape made root the one holder of its ID: the reference resolves to root
        if uri != "#" + root.get(version.id_attribute, "\0"):
            raise _Refused(f"reference URI {uri!r}")
        if [t.get("Algorithm") for t in steps] != [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N]:
            raise _Refused(f"transforms {[t.get('Algorithm') for t in steps]!r}")
        _remove_enveloped(signature)
        payload_c14n = etree.tostring(
            root, method="c14n", exclusive=True, with_comments=False,
            inclusive_ns_prefixes=_inclusive_prefixes(steps[1]),
        )
        if _HASH_BY_DIGEST[digest_uri](payload_c14n).digest() != expected_digest:  # type: ignore[index]
            raise _Refused("digest mismatch")
    except (_Refused, SignXMLException, etree.LxmlError, TypeError, ValueError, IndexError) as exc:
        raise FailedCheck(f"signature refused: {type(exc).__name__}: {exc}") from None
    at = now.astimezone(timezone.utc) if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
    failures = []
    for cert, public_key, not_before, not_after in policy.trusted:
        if at < not_before:
            failures.append(f"{_name(cert)}: certificate is not yet valid at {at.isoformat()}")
            continue
        if at > not_after:
            failures.append(f"{_name(cert)}: certificate expired at {not_after.isoformat()}")
            continue
        if public_key is None:
            failures.append(f"{_name(cert)}: not an RSA key")
            continue
        try:
            public_key.verify(raw_signature, signed_info_c14n, _PKCS1V15, hash_class())
            if not _key_value_matches(signature, public_key):
                failures.append(f"{_name(cert)}: KeyInfo names another key")
                continue
        except (InvalidSignature, _Refused, etree.LxmlError, TypeError, ValueError) as exc:
            failures.append(f"{_name(cert)}: {type(exc).__name__}: {exc}")
            continue
        return root, cert
    raise FailedCheck("signature did not verify with any trusted certificate: " + "; ".join(failures))


def _verify_signature_signxml(
    root: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime
) -> etree._Element:
    """signxml verification against each trusted certificate; the signed element, or FailedCheck.

    The reference implementation :func:`_verify_signature` is checked against
    (``tests/test_verify_differential.py``); not used on the request path.
    """
    config = SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=frozenset(policy.signature_methods().values()),
        digest_algorithms=frozenset(policy.digests().values()),
        verification_time=now,
    )
    failures = []
    for cert in policy.trusted_certs:
        try:
            result = XMLVerifier().verify(
                root, x509_cert=cert, id_attribute=version.id_attribute, expect_config=config
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


def _time_attr(element: etree._Element | None, name: str) -> datetime | None:
    if element is None or element.get(name) is None:
        return None
    try:
        return parse_datetime(element.get(name, ""))
    except ValueError as exc:
        raise InvalidSecurityToken(f"{name}: {exc}") from None


_S2 = {local: _xml.qname(ns.SAML2, local) for local in (
    "Issuer", "Subject", "NameID", "SubjectConfirmation", "SubjectConfirmationData", "Conditions",
    "AudienceRestriction", "Audience", "AttributeStatement", "Attribute", "AttributeValue")}


def _attributes_saml2(signed: etree._Element) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for statement in signed.iterchildren(_S2["AttributeStatement"]):
        for attribute in statement.iterchildren(_S2["Attribute"]):
            values = found.setdefault(attribute.get("Name", ""), [])
            values.extend(_xml.text(v) for v in attribute.iterchildren(_S2["AttributeValue"]))
    return {k: tuple(v) for k, v in found.items()}


def _attributes_saml11(signed: etree._Element) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for statement in _xml.children(signed, ns.SAML1, "AttributeStatement"):
        for attribute in _xml.children(statement, ns.SAML1, "Attribute"):
            space, name = attribute.get("AttributeNamespace", ""), attribute.get("AttributeName", "")
            key = f"{space.rstrip('/')}/{name}" if space else name
            values = found.setdefault(key, [])
            values.extend(_xml.text(v) for v in _xml.children(attribute, ns.SAML1, "AttributeValue"))
    return {k: tuple(v) for k, v in found.items()}


_Read = tuple[str, str, list[list[str]], bool, "etree._Element | None", list[etree._Element]]


def _read_saml2(signed: etree._Element) -> _Read:
    """Issuer, subject, audience restrictions, bearer?, Conditions, SubjectConfirmationData elements."""
    issuer = _xml.text(_xml.only(signed, _S2["Issuer"]), strip=False)
    subject_el = _xml.only(signed, _S2["Subject"])
    if subject_el is None:
        raise InvalidSecurityToken("assertion has no Subject")
    subject = _xml.text(_xml.only(subject_el, _S2["NameID"]), strip=False)
    bearer = False
    confirmation_data = []
    for confirmation in subject_el.iterchildren(_S2["SubjectConfirmation"]):
        if confirmation.get("Method") == ns.SAML2_BEARER:
            bearer = True
        data = _xml.only(confirmation, _S2["SubjectConfirmationData"])
        if data is not None:
            confirmation_data.append(data)
    conditions = _xml.only(signed, _S2["Conditions"])
    restrictions = []
    if conditions is not None:
        for restriction in conditions.iterchildren(_S2["AudienceRestriction"]):
            restrictions.append([_xml.text(a, strip=False) for a in restriction.iterchildren(_S2["Audience"])])
    return issuer, subject, restrictions, bearer, conditions, confirmation_data


def _read_saml11(signed: etree._Element) -> _Read:
    s = ns.SAML1
    issuer = signed.get("Issuer", "")
    subjects = set()
    bearer = False
    for statement in signed:
        if not isinstance(statement.tag, str) or _xml.namespace(statement) != s:
            continue
        subject_el = _xml.child(statement, s, "Subject")
        if subject_el is None:
            continue
        subjects.add(_xml.text(_xml.child(subject_el, s, "NameIdentifier"), strip=False))
        confirmation = _xml.child(subject_el, s, "SubjectConfirmation")
        methods_ = [_xml.text(m) for m in _xml.children(confirmation, s, "ConfirmationMethod")] if confirmation is not None else []
        bearer = bearer or ns.SAML1_BEARER in methods_
    if len(subjects) != 1:
        raise InvalidSecurityToken(f"assertion names {len(subjects)} different subjects, expected exactly 1")
    conditions = _xml.child(signed, s, "Conditions")
    restrictions = []
    if conditions is not None:
        for restriction in _xml.children(conditions, s, "AudienceRestrictionCondition"):
            restrictions.append([_xml.text(a, strip=False) for a in _xml.children(restriction, s, "Audience")])
    return issuer, subjects.pop(), restrictions, bearer, conditions, []


def verify_assertion(
    assertion: etree._Element, policy: ValidationPolicy, *, now: datetime,
    cache: VerificationCache | None = None,
) -> VerifiedAssertion:
    """Verify ``assertion`` (an element of a parsed message) and return what it signed.

    Raises a :class:`~wstrust_wsgi.errors.SecurityFault` subclass naming the
    first rule that failed. The returned object holds only signed data.

    With a :class:`VerificationCache`, an assertion whose exact bytes were
    verified before under this same ``policy`` skips the signature work only:
    the time window, the audience and the verifying certificate's validity are
    checked against ``now`` again, exactly as on the first request.
    """
    version = version_of(assertion)
    if version is None:
        raise InvalidSecurityToken(f"{assertion.tag} is not a SAML 1.1 or 2.0 assertion")
    raw = etree.tostring(assertion)
    key = b""
    if cache is not None:
        key = hashlib.sha256(raw).digest()
        hit = cache.get(key, policy, now)
        if hit is not None:
            return hit
    try:
        root = _xml.parse(raw)  # a standalone copy: nothing outside the assertion can be referenced
    except MalformedMessage as exc:
        raise InvalidSecurityToken(f"assertion copy did not parse: {exc}") from None
    return _verify_copy(root, version, raw, policy, now, cache, key)


def verify_standalone(
    root: etree._Element, raw: bytes, policy: ValidationPolicy, *, now: datetime,
    cache: VerificationCache | None = None, key: bytes = b"",
) -> VerifiedAssertion:
    """:func:`verify_assertion` for an assertion already parsed alone (by ``_xml.parse``) from ``raw``.

    ``root`` must be the root of its own document, parsed from exactly
    ``raw``, and is consumed. ``key`` is its cache key (the SHA-256 of
    ``raw``) when ``cache`` is given.
    """
    version = version_of(root)
    if version is None or root.getparent() is not None:
        raise InvalidSecurityToken(f"{root.tag} is not a standalone SAML 1.1 or 2.0 assertion")
    if cache is not None:
        key = key or hashlib.sha256(raw).digest()
        hit = cache.get(key, policy, now)
        if hit is not None:
            return hit
    return _verify_copy(root, version, raw, policy, now, cache, key)


def _verify_copy(
    root: etree._Element, version: SamlVersion, raw: bytes, policy: ValidationPolicy, now: datetime,
    cache: VerificationCache | None, key: bytes,
) -> VerifiedAssertion:
    try:
        assertion_id, parts = _signature_shape(root, version, policy)
    except MalformedMessage as exc:  # e.g. two SignedInfo: a signature we will not read
        raise FailedCheck(f"malformed signature: {exc.detail}") from None
    signed, cert = _verify_signature_and_cert(root, version, policy, now, parts)
    if signed.tag != root.tag or signed.get(version.id_attribute) != assertion_id:
        raise FailedCheck("signed element is not the assertion")
    try:
        verified, window, restrictions = _read_claims(signed, version, policy, now, assertion_id, raw)
    except MalformedMessage as exc:  # e.g. two Conditions: ambiguous, so refused
        raise InvalidSecurityToken(f"malformed assertion: {exc.detail}") from None
    if cache is not None:
        cache.put(key, _Entry(verified, policy, cert.not_valid_before_utc, cert.not_valid_after_utc,
                              window, restrictions))
    return verified


@dataclass(frozen=True)
class _Entry:
    verified: VerifiedAssertion
    policy: ValidationPolicy
    cert_not_before: datetime
    cert_not_after: datetime
    window: _Window
    restrictions: tuple[tuple[str, ...], ...]


class VerificationCache:
    """Assertions that passed verification, by the SHA-256 of their exact bytes, for their lifetime.

    Clients reuse a bearer token for its lifetime, so a relying party sees the
    same assertion bytes many times. Only assertions that passed every check
    enter; a hit is trusted only under the very :class:`ValidationPolicy`
    object it was verified under, and only while the certificate that verified
    it is valid; the time window (NotBefore, NotOnOrAfter, SubjectConfirmationData
    NotOnOrAfter, IssueInstant, with skew) and the audience are checked against
    ``now`` on every hit, and replay detection (done by the caller) is
    untouched. At most ``max_entries`` entries: when full, entries past their
    NotOnOrAfter plus skew go first, then the oldest half. A hit returns the same :class:`VerifiedAssertion` object (and
    the same ``element``) as the first request: treat it as read-only.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries: must be at least 1")
        self.max_entries = max_entries
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, policy: ValidationPolicy, now: datetime) -> VerifiedAssertion | None:
        """The cached result for ``key`` re-checked at ``now`` (raises as a first verification would), or None."""
        entry = self._entries.get(key)
        if entry is None or entry.policy is not policy:
            return None
        at = now.astimezone(timezone.utc) if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
        if not entry.cert_not_before <= at <= entry.cert_not_after:
            return None  # verify again, and fail as a first verification would
        entry.window.check(now, policy.clock_skew)
        _check_audiences(entry.restrictions, policy)
        return entry.verified

    def put(self, key: bytes, entry: _Entry) -> None:
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                now = datetime.now(timezone.utc)
                live = {k: e for k, e in self._entries.items()
                        if e.window.not_on_or_after + e.policy.clock_skew > now}
                if len(live) >= self.max_entries:  # still full: forget the oldest half
                    live = dict(list(live.items())[len(live) // 2:])
                self._entries = live
            self._entries[key] = entry


_EXPIRED_REASON = "The security token has expired or is not yet valid."


@dataclass(frozen=True)
class _Window:
    """The signed times an assertion is valid between, checked against ``now`` on every request."""

    not_before: datetime | None
    not_on_or_after: datetime
    #: SAML 2.0 SubjectConfirmationData NotOnOrAfter values.
    confirmation_limits: tuple[datetime, ...]
    issue_instant: datetime | None

    def check(self, now: datetime, skew: timedelta) -> None:
        if self.not_before is not None and now + skew < self.not_before:
            raise InvalidSecurityToken(f"not valid before {self.not_before.isoformat()} (now {now.isoformat()})",
                                       reason=_EXPIRED_REASON)
        if now - skew >= self.not_on_or_after:
            raise InvalidSecurityToken(f"expired at {self.not_on_or_after.isoformat()} (now {now.isoformat()})",
                                       reason=_EXPIRED_REASON)
        for limit in self.confirmation_limits:
            if now - skew >= limit:
                raise InvalidSecurityToken(f"subject confirmation expired at {limit.isoformat()}",
                                           reason=_EXPIRED_REASON)
        if self.issue_instant is not None and self.issue_instant > now + skew:
            raise InvalidSecurityToken(f"IssueInstant {self.issue_instant.isoformat()} is in the future",
                                       reason=_EXPIRED_REASON)


def _check_audiences(restrictions: Sequence[Sequence[str]], policy: ValidationPolicy) -> None:
    if not restrictions or any(not r for r in restrictions):
        raise InvalidSecurityToken("assertion has no audience restriction")
    for restriction in restrictions:
        if not policy.audiences.intersection(restriction):
            raise InvalidSecurityToken(
                f"audiences {list(restriction)!r} do not include {sorted(policy.audiences)!r}",
                reason="The security token was not issued for this service.",
            )


def _read_claims(
    signed: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime,
    assertion_id: str, raw: bytes,
) -> tuple[VerifiedAssertion, _Window, tuple[tuple[str, ...], ...]]:
    reader = _read_saml2 if version is SAML2 else _read_saml11
    issuer, subject, restrictions, bearer, conditions, confirmation_data = reader(signed)
    if issuer not in policy.issuers:
        raise InvalidSecurityToken(f"issuer {issuer!r} is not trusted", reason="The security token's issuer is not trusted.")
    if not subject:
        raise InvalidSecurityToken("assertion has an empty subject")
    if not bearer:
        raise InvalidSecurityToken("subject confirmation is not bearer")
    if conditions is None:
        raise InvalidSecurityToken("assertion has no Conditions")
    _check_audiences(restrictions, policy)
    not_before = _time_attr(conditions, "NotBefore")
    not_on_or_after = _time_attr(conditions, "NotOnOrAfter")
    if not_on_or_after is None:
        raise InvalidSecurityToken("Conditions has no NotOnOrAfter")
    limits: list[datetime] = []
    for data_el in confirmation_data:  # SAML 2.0 only
        limit = _time_attr(data_el, "NotOnOrAfter")
        if limit is not None:
            limits.append(limit)
    issue_instant = _time_attr(signed, "IssueInstant")
    window = _Window(not_before, not_on_or_after, tuple(limits), issue_instant)
    window.check(now, policy.clock_skew)
    attributes = _attributes_saml2(signed) if version is SAML2 else _attributes_saml11(signed)
    verified = VerifiedAssertion(
        version=version.name,
        assertion_id=assertion_id,
        issuer=issuer,
        subject=subject,
        audiences=tuple(a for r in restrictions for a in r),
        not_before=not_before,
        not_on_or_after=not_on_or_after,
        issue_instant=issue_instant,
        attributes=MappingProxyType(attributes),
        raw=raw,
        element=signed,
    )
    return verified, window, tuple(tuple(r) for r in restrictions)


def policy(
    *,
    trusted_certs: Iterable[x509.Certificate],
    issuers: Iterable[str],
    audiences: Iterable[str],
    clock_skew: timedelta = timedelta(minutes=5),
    allow_sha1: bool = False,
) -> ValidationPolicy:
    """Build a :class:`ValidationPolicy` from iterables."""
    return ValidationPolicy(tuple(trusted_certs), frozenset(issuers), frozenset(audiences), clock_skew, allow_sha1)
