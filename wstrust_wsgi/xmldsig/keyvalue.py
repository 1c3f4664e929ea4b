"""``ds:KeyValue/ds:RSAKeyValue`` (XML-DSig 1.1 section 4.5.2.2): a bare RSA public key, read and written.

A PublicKey request may name its key this way instead of by certificate (CXF's
client does by default, PicketLink's fixtures too), and the holder-of-key
confirmation then carries it the same way. The two integers are base64
CryptoBinary: big-endian, no sign byte needed, leading zero bytes tolerated.
Nothing here trusts the key: the caller decides what proves it.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from .. import _xml, ns

__all__ = ["KEY_VALUE", "key_value_element", "read_key_value"]

KEY_VALUE = _xml.qname(ns.DS, "KeyValue")
_RSA = _xml.qname(ns.DS, "RSAKeyValue")


def _crypto_binary(value: int) -> str:
    return b64encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")).decode("ascii")


def key_value_element(key: rsa.RSAPublicKey) -> etree._Element:
    """``ds:KeyValue/ds:RSAKeyValue`` holding ``key``'s modulus and exponent."""
    numbers = key.public_numbers()
    key_value = etree.Element(KEY_VALUE, nsmap={"ds": ns.DS})
    rsa_value = etree.SubElement(key_value, _RSA)
    etree.SubElement(rsa_value, _xml.qname(ns.DS, "Modulus")).text = _crypto_binary(numbers.n)
    etree.SubElement(rsa_value, _xml.qname(ns.DS, "Exponent")).text = _crypto_binary(numbers.e)
    return key_value


def read_key_value(key_value: etree._Element) -> rsa.RSAPublicKey:
    """The RSA key a ``ds:KeyValue`` holds, or ValueError saying why it holds none (DSA, EC, malformed)."""
    children = [child for child in key_value if isinstance(child.tag, str)]
    if len(children) != 1 or children[0].tag != _RSA:
        raise ValueError(f"ds:KeyValue holds {[etree.QName(c).localname for c in children]}, not one RSAKeyValue")
    values = []
    for name in ("Modulus", "Exponent"):
        found = children[0].findall(_xml.qname(ns.DS, name))
        if len(found) != 1:
            raise ValueError(f"ds:RSAKeyValue holds {len(found)} {name} elements")
        try:
            values.append(int.from_bytes(b64decode("".join(_xml.text(found[0]).split()), validate=True), "big"))
        except (binascii.Error, ValueError):
            raise ValueError(f"ds:RSAKeyValue {name} is not base64") from None
    modulus, exponent = values
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as exc:
        raise ValueError(f"ds:RSAKeyValue is not an RSA key: {exc}") from None
