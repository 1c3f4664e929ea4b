"""SAML 1.1 and 2.0 as data: one frozen :class:`SamlVersion` value each, never parallel classes.

The two versions differ in namespace, ID attribute, where the signature goes,
how a subject and an audience are written, and the WS-Security SAML Token
Profile 1.1 identifiers that name them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .. import _xml, ns


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
