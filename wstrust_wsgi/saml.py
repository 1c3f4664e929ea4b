"""SAML 2.0 and 1.1 bearer assertions: build, sign, verify, and read what was signed.

The two SAML versions differ in data (namespace, ID attribute, where the
signature goes, how a subject and an audience are written), held in one frozen
:class:`SamlVersion` value each.

Verification follows one rule: **parse once, verify, then read only what was
signed**. :func:`verify_assertion` copies the assertion out of the message,
checks the signature's shape (one Reference, to the assertion's own unique ID;
enveloped + exclusive c14n transforms only; allowed algorithms only), verifies
it with signxml against each configured certificate in turn (a certificate or
key carried in ``KeyInfo`` is never used), and reads every claim from the
element signxml returns as signed. Nothing is read from the message again.
Subject, issuer and audience are the exact signed text: no whitespace is
trimmed, so `` admin`` is not ``admin`` and an audience is matched as written.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509
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
_BY_NS = {SAML2.namespace: SAML2, SAML11.namespace: SAML11}


def version_for_token_type(token_type: str) -> SamlVersion | None:
    """The SAML version a WS-Trust TokenType URI names, or None."""
    for version in (SAML2, SAML11):
        if token_type in version.token_types:
            return version
    return None


def version_of(element: etree._Element) -> SamlVersion | None:
    """The SAML version of an ``Assertion`` element, or None if it is not one."""
    if not isinstance(element.tag, str) or _xml.local_name(element) != "Assertion":
        return None
    return _BY_NS.get(_xml.namespace(element))


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
        statement = _sub(root, s, "AttributeStatement")
        for name, values in content.attributes.items():
            if not values:
                continue
            attribute = _sub(statement, s, "Attribute", Name=name, NameFormat=ns.SAML2_ATTRNAME_URI)
            for value in values:
                _sub(attribute, s, "AttributeValue", value)
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
        for name, values in content.attributes.items():
            if not values:
                continue
            namespace, _, short = name.rpartition("/")
            attribute = _sub(statement, s, "Attribute", AttributeName=short, AttributeNamespace=namespace or name)
            for value in values:
                _sub(attribute, s, "AttributeValue", value)
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

    The key object is loaded once. signxml signers keep state between calls
    (``id_attribute``), so there is one signer per SAML version, each behind a
    lock so that threaded workers never share one mid-call.
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
        """The serialized signed assertion (bytes that declare every namespace they use)."""
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
    #: The element signxml returned as signed (canonical form, signature removed).
    element: etree._Element = field(repr=False, compare=False)

    @property
    def roles(self) -> tuple[str, ...]:
        return self.attributes.get(ns.CLAIM_ROLE, ())


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

    def signature_methods(self) -> dict[str, SignatureMethod]:
        allowed = dict(_SIGNATURE_METHODS)
        if self.allow_sha1:
            allowed[ns.ALG_RSA_SHA1] = SignatureMethod.RSA_SHA1
        return allowed

    def digests(self) -> dict[str, DigestAlgorithm]:
        allowed = dict(_DIGESTS)
        if self.allow_sha1:
            allowed[ns.ALG_SHA1] = DigestAlgorithm.SHA1
        return allowed


def _check_signature_shape(root: etree._Element, version: SamlVersion, policy: ValidationPolicy) -> str:
    """Refuse any signature that is not one enveloped signature over this very assertion; return its ID."""
    assertion_id = root.get(version.id_attribute, "")
    if not assertion_id:
        raise InvalidSecurityToken(f"assertion has no {version.id_attribute}")
    signatures = list(root.iter(_xml.qname(ns.DS, "Signature")))
    if not signatures:
        raise FailedCheck("assertion is not signed", reason="The security token is not signed.")
    if len(signatures) > 1 or signatures[0].getparent() is not root:
        raise FailedCheck("assertion must carry exactly one signature, as its own child")
    signature = signatures[0]
    holders = [
        el for el in root.iter()
        if isinstance(el.tag, str)
        and assertion_id in (el.get("ID"), el.get("AssertionID"), el.get("Id"), el.get(_xml.qname(ns.WSU, "Id")))
    ]
    if holders != [root]:
        raise FailedCheck(f"ID {assertion_id!r} is not unique to the assertion ({len(holders)} holders)")
    signed_info = _xml.child(signature, ns.DS, "SignedInfo")
    if signed_info is None:
        raise FailedCheck("Signature has no SignedInfo")
    c14n = _xml.child(signed_info, ns.DS, "CanonicalizationMethod")
    if c14n is None or c14n.get("Algorithm") != ns.ALG_EXC_C14N:
        raise UnsupportedAlgorithm(f"canonicalization {c14n.get('Algorithm') if c14n is not None else None!r}")
    method = _xml.child(signed_info, ns.DS, "SignatureMethod")
    method_uri = method.get("Algorithm") if method is not None else None
    if method_uri not in policy.signature_methods():
        raise UnsupportedAlgorithm(f"signature method {method_uri!r} not allowed")
    references = _xml.children(signed_info, ns.DS, "Reference")
    if len(references) != 1:
        raise FailedCheck(f"signature has {len(references)} references, expected exactly 1")
    reference = references[0]
    if reference.get("URI") != "#" + assertion_id:
        raise FailedCheck(f"reference URI {reference.get('URI')!r} does not point at assertion {assertion_id!r}")
    transforms = _xml.child(reference, ns.DS, "Transforms")
    uris = [t.get("Algorithm") for t in _xml.children(transforms, ns.DS, "Transform")] if transforms is not None else []
    if uris != [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N]:
        raise UnsupportedAlgorithm(f"transforms {uris!r}: only enveloped-signature and exclusive c14n are allowed")
    digest = _xml.child(reference, ns.DS, "DigestMethod")
    digest_uri = digest.get("Algorithm") if digest is not None else None
    if digest_uri not in policy.digests():
        raise UnsupportedAlgorithm(f"digest method {digest_uri!r} not allowed")
    return assertion_id


def _verify_signature(
    root: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime
) -> etree._Element:
    """signxml verification against each trusted certificate; the signed element, or FailedCheck."""
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


def _attributes_saml2(signed: etree._Element) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for statement in _xml.children(signed, ns.SAML2, "AttributeStatement"):
        for attribute in _xml.children(statement, ns.SAML2, "Attribute"):
            values = found.setdefault(attribute.get("Name", ""), [])
            values.extend(_xml.text(v) for v in _xml.children(attribute, ns.SAML2, "AttributeValue"))
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


def _read_saml2(signed: etree._Element) -> tuple[str, str, list[list[str]], bool, etree._Element | None]:
    s = ns.SAML2
    issuer = _xml.text(_xml.child(signed, s, "Issuer"), strip=False)
    subject_el = _xml.child(signed, s, "Subject")
    if subject_el is None:
        raise InvalidSecurityToken("assertion has no Subject")
    subject = _xml.text(_xml.child(subject_el, s, "NameID"), strip=False)
    bearer = False
    for confirmation in _xml.children(subject_el, s, "SubjectConfirmation"):
        if confirmation.get("Method") == ns.SAML2_BEARER:
            bearer = True
    conditions = _xml.child(signed, s, "Conditions")
    restrictions = []
    if conditions is not None:
        for restriction in _xml.children(conditions, s, "AudienceRestriction"):
            restrictions.append([_xml.text(a, strip=False) for a in _xml.children(restriction, s, "Audience")])
    return issuer, subject, restrictions, bearer, conditions


def _read_saml11(signed: etree._Element) -> tuple[str, str, list[list[str]], bool, etree._Element | None]:
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
    return issuer, subjects.pop(), restrictions, bearer, conditions


def verify_assertion(
    assertion: etree._Element, policy: ValidationPolicy, *, now: datetime
) -> VerifiedAssertion:
    """Verify ``assertion`` (an element of a parsed message) and return what it signed.

    Raises a :class:`~wstrust_wsgi.errors.SecurityFault` subclass naming the
    first rule that failed. The returned object holds only signed data.
    """
    version = version_of(assertion)
    if version is None:
        raise InvalidSecurityToken(f"{assertion.tag} is not a SAML 1.1 or 2.0 assertion")
    raw = etree.tostring(assertion)
    try:
        root = _xml.parse(raw)  # a standalone copy: nothing outside the assertion can be referenced
    except MalformedMessage as exc:
        raise InvalidSecurityToken(f"assertion copy did not parse: {exc}") from None
    try:
        assertion_id = _check_signature_shape(root, version, policy)
    except MalformedMessage as exc:  # e.g. two SignedInfo: a signature we will not read
        raise FailedCheck(f"malformed signature: {exc.detail}") from None
    signed = _verify_signature(root, version, policy, now)
    if signed.tag != root.tag or signed.get(version.id_attribute) != assertion_id:
        raise FailedCheck("signed element is not the assertion")
    try:
        return _read_claims(signed, version, policy, now, assertion_id, raw)
    except MalformedMessage as exc:  # e.g. two Conditions: ambiguous, so refused
        raise InvalidSecurityToken(f"malformed assertion: {exc.detail}") from None


def _read_claims(
    signed: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime,
    assertion_id: str, raw: bytes,
) -> VerifiedAssertion:
    reader = _read_saml2 if version is SAML2 else _read_saml11
    issuer, subject, restrictions, bearer, conditions = reader(signed)
    if issuer not in policy.issuers:
        raise InvalidSecurityToken(f"issuer {issuer!r} is not trusted", reason="The security token's issuer is not trusted.")
    if not subject:
        raise InvalidSecurityToken("assertion has an empty subject")
    if not bearer:
        raise InvalidSecurityToken("subject confirmation is not bearer")
    if conditions is None:
        raise InvalidSecurityToken("assertion has no Conditions")
    if not restrictions or any(not r for r in restrictions):
        raise InvalidSecurityToken("assertion has no audience restriction")
    for restriction in restrictions:
        if not policy.audiences.intersection(restriction):
            raise InvalidSecurityToken(
                f"audiences {restriction!r} do not include {sorted(policy.audiences)!r}",
                reason="The security token was not issued for this service.",
            )
    not_before = _time_attr(conditions, "NotBefore")
    not_on_or_after = _time_attr(conditions, "NotOnOrAfter")
    if not_on_or_after is None:
        raise InvalidSecurityToken("Conditions has no NotOnOrAfter")
    skew = policy.clock_skew
    expired_reason = "The security token has expired or is not yet valid."
    if not_before is not None and now + skew < not_before:
        raise InvalidSecurityToken(f"not valid before {not_before.isoformat()} (now {now.isoformat()})", reason=expired_reason)
    if now - skew >= not_on_or_after:
        raise InvalidSecurityToken(f"expired at {not_on_or_after.isoformat()} (now {now.isoformat()})", reason=expired_reason)
    if version is SAML2:
        subject_el = _xml.child(signed, ns.SAML2, "Subject")
        for confirmation in _xml.children(subject_el, ns.SAML2, "SubjectConfirmation"):  # type: ignore[arg-type]
            data_el = _xml.child(confirmation, ns.SAML2, "SubjectConfirmationData")
            limit = _time_attr(data_el, "NotOnOrAfter")
            if limit is not None and now - skew >= limit:
                raise InvalidSecurityToken(f"subject confirmation expired at {limit.isoformat()}", reason=expired_reason)
    issue_instant = _time_attr(signed, "IssueInstant")
    if issue_instant is not None and issue_instant > now + skew:
        raise InvalidSecurityToken(f"IssueInstant {issue_instant.isoformat()} is in the future", reason=expired_reason)
    attributes = _attributes_saml2(signed) if version is SAML2 else _attributes_saml11(signed)
    return VerifiedAssertion(
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
