"""How an assertion's subject is confirmed: bearer, or holder-of-key with the key named in ``ds:KeyInfo``.

SAML 2.0 core 2.4.1.1: the subject is confirmed when *any one*
SubjectConfirmation is satisfied, so an assertion offering bearer beside
holder-of-key may be used as a bearer token (the rule the middleware applies
under its ``confirmation="any"`` policy; a ``"holder-of-key"`` policy ignores
the bearer one). A holder-of-key confirmation without a ``ds:KeyInfo`` names
no key and can never be satisfied, so it is not offered. SAML 2.0 puts the
KeyInfo in SubjectConfirmationData (KeyInfoConfirmationDataType, profiles
3.1); SAML 1.1 in SubjectConfirmation after its ConfirmationMethod (core
1.1 section 2.4.2.3), once per statement's Subject.
"""

from __future__ import annotations

from lxml import etree

from .. import _xml, ns
from .versions import SAML2, SamlVersion

BEARER, HOLDER_OF_KEY = "bearer", "holder-of-key"
_KEY_INFO = _xml.qname(ns.DS, "KeyInfo")


def confirmations(signed: etree._Element, version: SamlVersion) -> tuple[frozenset[str], tuple[etree._Element, ...]]:
    """The confirmations a signed assertion offers (:data:`BEARER`, :data:`HOLDER_OF_KEY`) and the
    ``ds:KeyInfo`` elements of its holder-of-key ones, in document order."""
    offered: set[str] = set()
    key_infos: list[etree._Element] = []
    if version is SAML2:
        for subject in signed.iterchildren(_xml.qname(ns.SAML2, "Subject")):
            for confirmation in subject.iterchildren(_xml.qname(ns.SAML2, "SubjectConfirmation")):
                method = confirmation.get("Method")
                if method == ns.SAML2_BEARER:
                    offered.add(BEARER)
                elif method == ns.SAML2_HOLDER_OF_KEY:
                    for data in confirmation.iterchildren(_xml.qname(ns.SAML2, "SubjectConfirmationData")):
                        key_infos.extend(data.iterchildren(_KEY_INFO))
    else:
        for statement in signed:
            subject = _xml.child(statement, ns.SAML1, "Subject") if isinstance(statement.tag, str) else None
            for confirmation in _xml.children(subject, ns.SAML1, "SubjectConfirmation") if subject is not None else []:
                methods = [_xml.text(m) for m in _xml.children(confirmation, ns.SAML1, "ConfirmationMethod")]
                if ns.SAML1_BEARER in methods:
                    offered.add(BEARER)
                if ns.SAML1_HOLDER_OF_KEY in methods:
                    key_infos.extend(confirmation.iterchildren(_KEY_INFO))
    if key_infos:
        offered.add(HOLDER_OF_KEY)
    return frozenset(offered), tuple(key_infos)
