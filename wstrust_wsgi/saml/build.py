"""Building SAML 2.0 and 1.1 bearer assertions from one :class:`AssertionContent`.

:func:`build_saml2` and :func:`build_saml11` write an assertion element by
element, with a signature placeholder where the schema puts ds:Signature.
Each is serialized as AD FS serializes it, because clients in the field find
the token by a text match on those bytes (the npm ``wstrust-client`` cuts from
``<Assertion `` to ``</Assertion>``): SAML 2.0 declares its namespace as the
default one on the assertion itself (``<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ...>``),
SAML 1.1 keeps its ``saml:`` prefix. Either way the assertion declares every
namespace it uses, so its bytes mean the same wherever they are put.
:class:`_Skeleton` is the production path: each version's assertion built
once by those builders, copied per token and filled in (several times cheaper,
``bench/README.md``; ``tests/test_fast_paths.py`` holds both to the same tree).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lxml import etree

from .. import _xml, ns
from .._time import format_datetime
from .versions import SAML2, SAML11, SamlVersion


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
    #: ActAs: who acts as the subject, one ``del:Delegate`` each in a SAML 2.0 DelegationRestriction condition.
    actors: tuple[str, ...] = ()
    #: A ``ds:KeyInfo`` naming the proof key: the subject is then confirmed holder-of-key, not bearer.
    proof_key_info: etree._Element | None = field(default=None, repr=False, compare=False)


def holder_of_key(root: etree._Element, key_info: etree._Element) -> None:
    """Turn every bearer SubjectConfirmation of an unsigned assertion into holder-of-key of ``key_info``.

    SAML 2.0 (core 2.4.1.3, profiles 3.1): Method ``cm:holder-of-key`` and a
    SubjectConfirmationData of ``xsi:type`` KeyInfoConfirmationDataType
    holding the KeyInfo. The type's prefix is the assertion's default
    namespace, which exclusive c14n keeps (the root uses it). SAML 1.1 (core
    2.4.2.3): ConfirmationMethod ``cm:holder-of-key`` and ds:KeyInfo after it.
    """
    if root.tag == _xml.qname(ns.SAML2, "Assertion"):
        for confirmation in root.iter(_xml.qname(ns.SAML2, "SubjectConfirmation")):
            confirmation.set("Method", ns.SAML2_HOLDER_OF_KEY)
            for data in confirmation.iterchildren(_xml.qname(ns.SAML2, "SubjectConfirmationData")):
                data.set(_xml.qname(ns.XSI, "type"), "KeyInfoConfirmationDataType")
                data.append(copy.deepcopy(key_info))
        return
    for method in root.iter(_xml.qname(ns.SAML1, "ConfirmationMethod")):
        method.text = ns.SAML1_HOLDER_OF_KEY
        method.addnext(copy.deepcopy(key_info))


def _sub(parent: etree._Element, namespace: str, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _xml.qname(namespace, local), attrs)
    if text is not None:
        element.text = text
    return element


def _placeholder(parent: etree._Element) -> None:
    # ds:Signature goes where this placeholder stands (the skeleton and the reference signers read its place).
    etree.SubElement(parent, _xml.qname(ns.DS, "Signature"), {"Id": "placeholder"}, nsmap={"ds": ns.DS})


def _saml2_attributes(statement: etree._Element, attributes: Mapping[str, Sequence[str]]) -> None:
    """One SAML 2.0 Attribute (URI name format) per claim with values."""
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


def _delegation_restriction(conditions: etree._Element, content: AssertionContent) -> None:
    """SAML 2.0 Condition of type ``del:DelegationRestrictionType``, one ``del:Delegate`` per actor (sstc-saml-delegation)."""
    if not content.actors:
        return
    condition = etree.SubElement(conditions, _xml.qname(ns.SAML2, "Condition"),
                                 nsmap={"del": ns.SAML2_DELEGATION, "xsi": ns.XSI})
    condition.set(_xml.qname(ns.XSI, "type"), "del:DelegationRestrictionType")
    for actor in content.actors:
        delegate = etree.SubElement(condition, _xml.qname(ns.SAML2_DELEGATION, "Delegate"),
                                    DelegationInstant=format_datetime(content.issue_instant))
        _sub(delegate, ns.SAML2, "NameID", actor)


def build_saml2(content: AssertionContent) -> etree._Element:
    """A SAML 2.0 assertion with a signature placeholder after Issuer (saml-schema-assertion-2.0)."""
    s = ns.SAML2
    issued = format_datetime(content.issue_instant)
    expires = format_datetime(content.not_on_or_after)
    root = etree.Element(
        _xml.qname(s, "Assertion"),
        {"ID": content.assertion_id, "IssueInstant": issued, "Version": "2.0"},
        nsmap={None: s},  # AD FS's serialization: <Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion">
    )
    _sub(root, s, "Issuer", content.issuer)
    _placeholder(root)
    subject = _sub(root, s, "Subject")
    _sub(subject, s, "NameID", content.subject, Format=content.name_format)
    confirmation = _sub(subject, s, "SubjectConfirmation", Method=ns.SAML2_BEARER)
    _sub(confirmation, s, "SubjectConfirmationData", NotOnOrAfter=expires)
    conditions = _sub(root, s, "Conditions", NotBefore=format_datetime(content.not_before), NotOnOrAfter=expires)
    _sub(_sub(conditions, s, "AudienceRestriction"), s, "Audience", content.audience)
    _delegation_restriction(conditions, content)
    authn = _sub(root, s, "AuthnStatement", AuthnInstant=issued)
    _sub(_sub(authn, s, "AuthnContext"), s, "AuthnContextClassRef", ns.SAML2_AC_PASSWORD)
    if any(content.attributes.values()):
        _saml2_attributes(_sub(root, s, "AttributeStatement"), content.attributes)
    if content.proof_key_info is not None:
        holder_of_key(root, content.proof_key_info)
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
    if content.proof_key_info is not None:
        holder_of_key(root, content.proof_key_info)
    return root


_BUILDERS = {SAML2.name: build_saml2, SAML11.name: build_saml11}


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
        prefix = f"{root.prefix}:" if root.prefix else ""  # SAML 2.0: the default namespace, no prefix
        self.issuer_end = f"</{prefix}Issuer>".encode()
        self.root_end = f"</{prefix}Assertion>".encode()
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
            _delegation_restriction(conditions, content)
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
        if content.proof_key_info is not None:
            holder_of_key(root, content.proof_key_info)
        return root


_SKELETONS = {version.name: _Skeleton(version) for version in (SAML2, SAML11)}
