"""SecurityTokenReference (OASIS WSS 1.1 SOAP Message Security section 8, token profiles' references).

A reference names a token without carrying it. Today the package writes one
kind, the KeyIdentifier reference the RSTR carries as
``RequestedAttachedReference`` / ``RequestedUnattachedReference`` (WS-Trust
1.3 section 4.4, SAML Token Profile 1.1 section 3.4.2)::

    <wsse:SecurityTokenReference wsse11:TokenType="...#SAMLV2.0">
      <wsse:KeyIdentifier ValueType="...#SAMLID">_a1</wsse:KeyIdentifier>
    </wsse:SecurityTokenReference>

Reading references (KeyInfo resolution for message signatures, holder-of-key
proof keys) and the other forms (wsse:Reference by URI, thumbprints) belong here.
"""

from __future__ import annotations

from lxml import etree

from .. import _xml, ns


def key_identifier_reference(
    parent: etree._Element, *, token_type: str, value_type: str, identifier: str
) -> etree._Element:
    """Append a ``wsse:SecurityTokenReference`` holding one ``wsse:KeyIdentifier`` to ``parent``.

    :param token_type: the ``wsse11:TokenType`` of the token referred to.
    :param value_type: the KeyIdentifier's ``ValueType`` (what kind of identifier ``identifier`` is).
    """
    reference = etree.SubElement(
        parent, _xml.qname(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11}
    )
    reference.set(_xml.qname(ns.WSSE11, "TokenType"), token_type)
    key_identifier = etree.SubElement(reference, _xml.qname(ns.WSSE, "KeyIdentifier"))
    key_identifier.text = identifier
    key_identifier.set("ValueType", value_type)
    return reference


def direct_reference(parent: etree._Element, *, identifier: str, value_type: str) -> etree._Element:
    """Append a ``wsse:SecurityTokenReference`` holding a ``wsse:Reference`` to the token ``#identifier`` in the
    same message (WSS 1.1 section 7.2), as a signature names the BinarySecurityToken whose key made it."""
    reference = etree.SubElement(parent, _xml.qname(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE})
    etree.SubElement(reference, _xml.qname(ns.WSSE, "Reference"), URI=f"#{identifier}", ValueType=value_type)
    return reference


def names_token(reference: etree._Element, *, identifier: str, value_type: str, by_uri: bool) -> bool:
    """Whether the SecurityTokenReference ``reference`` names the token ``identifier``.

    By a ``wsse:KeyIdentifier`` of ``value_type`` holding exactly the ID, or,
    where ``by_uri`` (SAML 2.0: SAML Token Profile 1.1 section 3.4.2), by a
    ``wsse:Reference URI="#ID"``. What a holder-of-key proof's KeyInfo must say.
    """
    for child in reference:
        if child.tag == _xml.qname(ns.WSSE, "KeyIdentifier") and child.get("ValueType") == value_type:
            if _xml.text(child) == identifier:
                return True
        elif child.tag == _xml.qname(ns.WSSE, "Reference") and by_uri and child.get("URI") == "#" + identifier:
            return True
    return False
