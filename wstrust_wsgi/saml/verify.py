"""Verifying assertions: parse once, verify, then read only what was signed.

:func:`verify_assertion` copies the assertion out of the message and hands the
copy to :func:`wstrust_wsgi.xmldsig.verify_enveloped`, after the shape check
(one enveloped signature, its one Reference to the assertion's own unique ID;
exclusive c14n; allowed algorithms only) with the policy's keys (by default
each configured certificate in turn; a certificate or key carried in
``KeyInfo`` is never used). Every claim is read from the element the verifier
returns as signed (the verified copy, whose canonical bytes were digested).
Nothing is read from the message again. Subject, issuer and audience are the
exact signed text: no whitespace is trimmed, so `` admin`` is not ``admin``
and an audience is matched as written.
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timezone
from types import MappingProxyType

from lxml import etree

from .. import _xml, ns, xmldsig
from .._checks import Trace
from .._time import parse_datetime
from ..errors import FailedCheck, InvalidSecurityToken, MalformedMessage
from .cache import VerificationCache, _Entry
from .confirmation import BEARER, confirmations
from .rules import ValidationPolicy, VerifiedAssertion, Window, check_audiences
from .versions import SAML2, SamlVersion, version_of

#: Attribute names (any namespace) that may hold an ID: the assertion's ID must be on no other element
#: under any of them (so wsu:Id and signxml's any-namespace lookup are covered too).
_ID_NAMES = frozenset(["ID", "AssertionID", "Id"])
#: The validity of a key without a certificate (an HMAC secret), for the cache.
_FOREVER = (datetime.min.replace(tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc))


def _signature_shape(root: etree._Element, version: SamlVersion, policy: ValidationPolicy,
                     trace: Trace | None = None) -> tuple[str, xmldsig.Parts]:
    """Refuse any signature that is not one enveloped signature over this very assertion; its ID and parts."""
    return xmldsig.enveloped_shape(root, id_attribute=version.id_attribute, id_names=_ID_NAMES,
                                   algorithms=policy.algorithms, trace=trace)


def _check_signature_shape(root: etree._Element, version: SamlVersion, policy: ValidationPolicy) -> str:
    """:func:`_signature_shape`, the ID only."""
    return _signature_shape(root, version, policy)[0]


def _verify_signature_and_cert(
    root: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime,
    parts: xmldsig.Parts | None = None, trace: Trace | None = None,
) -> tuple[etree._Element, xmldsig.Verified]:
    """The signed assertion (root, its Signature removed) and what verified it, or FailedCheck."""
    assert policy.key_resolver is not None
    verified = xmldsig.verify_enveloped(
        root, id_attribute=version.id_attribute, id_names=_ID_NAMES, algorithms=policy.algorithms,
        keys=policy.key_resolver, now=now, parts=parts, trace=trace,
    )
    return verified.signed[0], verified


def _verify_signature(root: etree._Element, version: SamlVersion, policy: ValidationPolicy,
                      now: datetime) -> etree._Element:
    """The signed element of ``root`` (see :func:`_verify_signature_and_cert`), or FailedCheck."""
    return _verify_signature_and_cert(root, version, policy, now)[0]


def _time_attr(element: etree._Element | None, name: str) -> datetime | None:
    if element is None or element.get(name) is None:
        return None
    try:
        return parse_datetime(element.get(name, ""))
    except ValueError as exc:
        raise InvalidSecurityToken(f"{name}: {exc}", check="assertion-shape", expected=f"{name} an xs:dateTime",
                                   actual=element.get(name)) from None


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


_Read = tuple[str, str, list[list[str]], bool, "etree._Element | None", list[etree._Element], list[etree._Element]]


def _read_saml2(signed: etree._Element) -> _Read:
    """Issuer, subject, audience restrictions, bearer?, Conditions, SubjectConfirmationData elements
    (all of them, then those of bearer confirmations)."""
    issuer = _xml.text(_xml.only(signed, _S2["Issuer"]), strip=False)
    subject_el = _xml.only(signed, _S2["Subject"])
    if subject_el is None:
        raise InvalidSecurityToken("assertion has no Subject", check="assertion-shape", expected="one Subject",
                                   actual="none")
    subject = _xml.text(_xml.only(subject_el, _S2["NameID"]), strip=False)
    bearer = False
    confirmation_data, bearer_data = [], []
    for confirmation in subject_el.iterchildren(_S2["SubjectConfirmation"]):
        is_bearer = confirmation.get("Method") == ns.SAML2_BEARER
        bearer = bearer or is_bearer
        data = _xml.only(confirmation, _S2["SubjectConfirmationData"])
        if data is not None:
            confirmation_data.append(data)
            if is_bearer:
                bearer_data.append(data)
    conditions = _xml.only(signed, _S2["Conditions"])
    restrictions = []
    if conditions is not None:
        for restriction in conditions.iterchildren(_S2["AudienceRestriction"]):
            restrictions.append([_xml.text(a, strip=False) for a in restriction.iterchildren(_S2["Audience"])])
    return issuer, subject, restrictions, bearer, conditions, confirmation_data, bearer_data


def _check_bearer_data(data: etree._Element, policy: ValidationPolicy) -> None:
    """A bearer SubjectConfirmationData as SAML 2.0 profiles 4.1.4.2 says, and WIF checks it.

    It MUST NOT carry NotBefore. InResponseTo names the AuthnRequest it
    answers (profiles 4.1.4.3); a token from a WS-Trust STS answers none of
    ours, so it is refused. A Recipient names where the token may be presented
    (core 2.4.1.2): it must be this service, one of the policy's audiences,
    compared exactly as they are. Address depends on the request, so it is
    checked per request, when configured (:func:`check_client_address`).
    SAML 1.1 has none of these fields (its SubjectConfirmationData is free
    content, core 1.1 section 2.4.2.3).
    """
    if data.get("NotBefore") is not None:
        raise InvalidSecurityToken("bearer SubjectConfirmationData carries NotBefore (SAML 2.0 profiles 4.1.4.2)",
                                   check="bearer-data", expected="no NotBefore",
                                   actual=f"NotBefore {data.get('NotBefore')}")
    if data.get("InResponseTo") is not None:
        raise InvalidSecurityToken(f"bearer SubjectConfirmationData answers request {data.get('InResponseTo')!r}, "
                                   "which this service never sent (SAML 2.0 profiles 4.1.4.3)",
                                   check="bearer-data", expected="no InResponseTo",
                                   actual=f"InResponseTo {data.get('InResponseTo')}")
    recipient = data.get("Recipient")
    if recipient is not None and recipient not in policy.audiences:
        raise InvalidSecurityToken(f"bearer SubjectConfirmationData Recipient {recipient!r} is not one of "
                                   f"{sorted(policy.audiences)!r}",
                                   reason="The security token was not issued for this service.",
                                   check="bearer-data", expected=f"Recipient one of {sorted(policy.audiences)!r}",
                                   actual=f"Recipient {recipient!r}")


def _bearer_addresses(signed: etree._Element) -> list[str]:
    """The Address of each SAML 2.0 bearer SubjectConfirmationData of a signed assertion."""
    subject = signed.find(_S2["Subject"])
    if subject is None:
        return []
    return [data.get("Address", "") for confirmation in subject.iterchildren(_S2["SubjectConfirmation"])
            if confirmation.get("Method") == ns.SAML2_BEARER
            for data in confirmation.iterchildren(_S2["SubjectConfirmationData"])
            if data.get("Address") is not None]


def _same_address(written: str, client: str) -> bool:
    """Whether ``written`` names ``client``: equal IP addresses in any notation, otherwise equal strings."""
    try:
        one, other = ipaddress.ip_address(written), ipaddress.ip_address(client)
    except ValueError:
        return written == client
    if isinstance(one, ipaddress.IPv6Address) and one.ipv4_mapped is not None:
        one = one.ipv4_mapped
    if isinstance(other, ipaddress.IPv6Address) and other.ipv4_mapped is not None:
        other = other.ipv4_mapped
    return one == other


def check_client_address(verified: VerifiedAssertion, client: str | None) -> None:
    """Refuse the request unless every bearer SubjectConfirmationData ``Address`` of ``verified``
    (SAML 2.0 core 2.4.1.2: where the token may be presented from) names ``client``.

    Run on every request (a cached verification included), since the token
    is the same from any address; a token without an Address passes, and so
    does SAML 1.1, which has no such field.
    """
    if verified.version != SAML2.name:
        return
    for address in _bearer_addresses(verified.element):
        if client is None or not _same_address(address, client):
            raise InvalidSecurityToken(
                f"bearer SubjectConfirmationData Address {address!r} is not the client address {client!r}",
                reason="The security token may not be presented from this address.", check="client-address",
                expected=f"Address {address!r}", actual=f"client {client!r}")


def check_unique_id(document: etree._Element, assertion_id: str, assertion: etree._Element | None = None) -> None:
    """Refuse a message in which an element other than ``assertion`` holds ``assertion_id`` (FailedCheck).

    The signature was verified on a standalone copy of the assertion, where
    its Reference can only mean the assertion; the claims come from that copy.
    But in the message as a whole, a second element with the same ID (as
    ``ID``, ``AssertionID``, ``Id`` or ``wsu:Id``) makes the Reference
    ambiguous to anyone who resolves it there, so the message is refused, as
    WSS4J's secure validation refuses it. ``document`` is any element of the
    parsed message (the whole tree is searched); ``assertion`` is the token
    itself, None when the message holds a placeholder in its stead.
    """
    holders = [h for h in xmldsig.id_holders(document, assertion_id, _ID_NAMES) if h is not assertion]
    if holders:
        raise FailedCheck(f"ID {assertion_id!r} of the assertion is also held by {len(holders)} other element(s) "
                          f"of the message, first {holders[0].tag}",
                          reason="The security token's ID is not unique in the message.", check="unique-id",
                          expected=f"ID {assertion_id!r} held by the assertion only",
                          actual=f"also held by {len(holders)} other element(s), first {holders[0].tag}")


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
        raise InvalidSecurityToken(f"assertion names {len(subjects)} different subjects, expected exactly 1",
                                   check="assertion-shape", expected="1 subject", actual=f"{len(subjects)} subjects")
    conditions = _xml.child(signed, s, "Conditions")
    restrictions = []
    if conditions is not None:
        for restriction in _xml.children(conditions, s, "AudienceRestrictionCondition"):
            restrictions.append([_xml.text(a, strip=False) for a in _xml.children(restriction, s, "Audience")])
    return issuer, subjects.pop(), restrictions, bearer, conditions, [], []


def verify_assertion(
    assertion: etree._Element, policy: ValidationPolicy, *, now: datetime,
    cache: VerificationCache | None = None, trace: Trace | None = None,
) -> VerifiedAssertion:
    """Verify ``assertion`` (an element of a parsed message) and return what it signed.

    Raises a :class:`~wstrust_wsgi.errors.SecurityFault` subclass naming the
    first rule that failed (``fault.check``, see :mod:`wstrust_wsgi._checks`).
    The returned object holds only signed data. With a ``trace``, every check
    that passes is recorded there too, and the cache is not used (so that
    every check runs).

    With a :class:`VerificationCache`, an assertion whose exact bytes were
    verified before under this same ``policy`` skips the signature work only:
    the time window, the audience and the verifying certificate's validity are
    checked against ``now`` again, exactly as on the first request.
    """
    version = version_of(assertion)
    if version is None:
        raise InvalidSecurityToken(f"{assertion.tag} is not a SAML 1.1 or 2.0 assertion", check="one-token")
    raw = etree.tostring(assertion)
    key = b""
    if trace is not None:
        cache = None
    if cache is not None:
        key = hashlib.sha256(raw).digest()
        hit = cache.get(key, policy, now)
        if hit is not None:
            return hit
    try:
        # a standalone copy: nothing outside the assertion can be referenced (its root declares
        # every namespace in scope in the message, each element of which passed the caps)
        root = _xml.parse(raw, max_namespaces=_xml.MAX_IN_SCOPE)
    except MalformedMessage as exc:
        raise InvalidSecurityToken(f"assertion copy did not parse: {exc}", check="assertion-shape") from None
    return _verify_copy(root, version, raw, policy, now, cache, key, trace)


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
    cache: VerificationCache | None, key: bytes, trace: Trace | None = None,
) -> VerifiedAssertion:
    try:
        assertion_id, parts = _signature_shape(root, version, policy, trace)
    except MalformedMessage as exc:  # e.g. two SignedInfo: a signature we will not read
        raise FailedCheck(f"malformed signature: {exc.detail}", check="signature-shape") from None
    if trace is not None:
        _trace_shape(trace, assertion_id, parts)
    signed, by = _verify_signature_and_cert(root, version, policy, now, parts, trace)
    if signed.tag != root.tag or signed.get(version.id_attribute) != assertion_id:
        raise FailedCheck("signed element is not the assertion", check="signature-shape")
    try:
        verified, window, restrictions = _read_claims(signed, version, policy, now, assertion_id, raw, trace)
    except MalformedMessage as exc:  # e.g. two Conditions: ambiguous, so refused
        raise InvalidSecurityToken(f"malformed assertion: {exc.detail}", check="assertion-shape") from None
    if cache is not None:
        cert = by.certificate
        valid = (cert.not_valid_before_utc, cert.not_valid_after_utc) if cert is not None else _FOREVER
        cache.put(key, _Entry(verified, policy, *valid, window, restrictions), now)
    return verified


def _trace_shape(trace: Trace, assertion_id: str, parts: xmldsig.Parts) -> None:
    """Record the algorithm and shape checks :func:`_signature_shape` passed (they interleave there)."""
    trace.passed("algorithms", "allowed by the policy",
                 f"SignatureMethod {parts.method.get('Algorithm')}, DigestMethod "
                 f"{parts.digest_methods[0].get('Algorithm')}, c14n {parts.c14n_method.get('Algorithm')}")
    trace.passed("signature-shape", f"one enveloped signature, Reference URI '#{assertion_id}'",
                 f"Reference URI {parts.references[0].get('URI')!r}")


def _read_claims(
    signed: etree._Element, version: SamlVersion, policy: ValidationPolicy, now: datetime,
    assertion_id: str, raw: bytes, trace: Trace | None = None,
) -> tuple[VerifiedAssertion, Window, tuple[tuple[str, ...], ...]]:
    reader = _read_saml2 if version is SAML2 else _read_saml11
    issuer, subject, restrictions, bearer, conditions, confirmation_data, bearer_data = reader(signed)
    if trace is not None:
        trace.passed("assertion-shape", "no element where at most one is allowed is repeated", "as expected")
    if issuer not in policy.issuers:
        raise InvalidSecurityToken(f"issuer {issuer!r} is not trusted", reason="The security token's issuer is not trusted.",
                                   check="issuer", expected=f"one of {sorted(policy.issuers)!r}", actual=repr(issuer))
    if trace is not None:
        trace.passed("issuer", f"one of {sorted(policy.issuers)!r}", repr(issuer))
    if not subject:
        raise InvalidSecurityToken("assertion has an empty subject", check="subject", expected="a subject name",
                                   actual="empty")
    if trace is not None:
        trace.passed("subject", "a subject name", repr(subject))
    offered, _ = confirmations(signed, version)
    if not offered:
        raise InvalidSecurityToken("subject confirmation is neither bearer nor holder-of-key with a ds:KeyInfo",
                                   check="confirmation", expected="bearer, or holder-of-key with a ds:KeyInfo",
                                   actual="neither")
    if trace is not None:
        trace.passed("confirmation", "bearer, or holder-of-key with a ds:KeyInfo", ", ".join(sorted(offered)))
    if conditions is None:
        raise InvalidSecurityToken("assertion has no Conditions", check="conditions",
                                   expected="Conditions with NotOnOrAfter", actual="no Conditions")
    not_before = _time_attr(conditions, "NotBefore")
    not_on_or_after = _time_attr(conditions, "NotOnOrAfter")
    if not_on_or_after is None:
        raise InvalidSecurityToken("Conditions has no NotOnOrAfter", check="conditions",
                                   expected="Conditions with NotOnOrAfter", actual="no NotOnOrAfter")
    if trace is not None:
        trace.passed("conditions", "Conditions with NotOnOrAfter", f"NotOnOrAfter {not_on_or_after.isoformat()}")
    check_audiences(restrictions, policy, trace)
    for data_el in bearer_data:  # SAML 2.0 only
        _check_bearer_data(data_el, policy)
    if trace is not None and version is SAML2:
        trace.passed("bearer-data", "no NotBefore or InResponseTo; Recipient (if any) this service",
                     f"{len(bearer_data)} bearer SubjectConfirmationData, as expected")
    elif trace is not None:
        trace.skipped("bearer-data", "SAML 1.1 has no such fields")
    limits: list[datetime] = []
    for data_el in confirmation_data:  # SAML 2.0 only
        limit = _time_attr(data_el, "NotOnOrAfter")
        if limit is not None:
            limits.append(limit)
    issue_instant = _time_attr(signed, "IssueInstant")
    window = Window(not_before, not_on_or_after, tuple(limits), issue_instant)
    window.check(now, policy.clock_skew, trace)
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
        confirmations=offered,
        confirmation=BEARER if BEARER in offered else None,
    )
    return verified, window, tuple(tuple(r) for r in restrictions)


def unverified_claims(assertion: etree._Element) -> dict[str, object]:
    """What ``assertion`` says, read WITHOUT verifying it, by the same readers the verifier uses.

    For showing a token to a person only (``wstrust-wsgi diagnose`` prints it
    beside the checks, refused tokens included): nothing read here is signed
    or trusted, so never admit or authorize anything on its strength. Raises
    :class:`~wstrust_wsgi.errors.InvalidSecurityToken` for what the readers
    refuse (no Subject, several subjects, a duplicated element).
    """
    version = version_of(assertion)
    if version is None:
        raise InvalidSecurityToken(f"{assertion.tag} is not a SAML 1.1 or 2.0 assertion")
    try:
        reader = _read_saml2 if version is SAML2 else _read_saml11
        issuer, subject, restrictions, _, conditions, _, _ = reader(assertion)
        attributes = _attributes_saml2(assertion) if version is SAML2 else _attributes_saml11(assertion)
    except MalformedMessage as exc:
        raise InvalidSecurityToken(f"malformed assertion: {exc.detail}") from None
    if version is SAML2:
        methods = [c.get("Method", "") for c in assertion.iter(_S2["SubjectConfirmation"])]
    else:
        methods = [_xml.text(m) for m in assertion.iter(_xml.qname(ns.SAML1, "ConfirmationMethod"))]
    return {
        "version": version.name,
        "id": assertion.get(version.id_attribute, ""),
        "issuer": issuer,
        "subject": subject,
        "audiences": [a for r in restrictions for a in r],
        "not_before": _time_attr(conditions, "NotBefore"),
        "not_on_or_after": _time_attr(conditions, "NotOnOrAfter"),
        "issue_instant": _time_attr(assertion, "IssueInstant"),
        "attributes": attributes,
        "confirmation": methods,
    }
