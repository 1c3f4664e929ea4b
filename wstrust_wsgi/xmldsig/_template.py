"""A Signature written from bytes fixed per key and algorithm: SignedInfo in its exclusive-c14n form.

Private to :mod:`wstrust_wsgi.xmldsig`: the one signing path. Only the
Reference URIs and DigestValues vary between signatures, so SignedInfo is
rendered by joining fixed bytes instead of building a tree and
canonicalizing it (why that pays: ``bench/README.md``). The bytes are the
exclusive canonical form of SignedInfo (Exclusive XML Canonicalization 1.0
section 3, C14N 1.0 section 2.3: attribute values escaped, empty elements as
start and end tag), and ``tests/test_fast_paths.py`` holds them equal to
lxml's canonicalization of the same SignedInfo built as a tree.
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Sequence
from typing import NamedTuple

from .. import ns
from .algorithms import Algorithm

_DS = ns.DS.encode()
_EXC = ns.ALG_EXC_C14N.encode()


def c14n_attribute(value: str) -> bytes:
    """An attribute value as canonical XML writes it (C14N 1.0 section 2.3, "Attribute Nodes")."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace("\t", "&#x9;").replace("\n", "&#xA;").replace("\r", "&#xD;").encode("utf-8"))


class Reference(NamedTuple):
    """One ds:Reference: a same-document URI, the digest of what it selects, and whether it envelops the Signature."""

    uri: str
    digest: bytes
    enveloped: bool


class SignedInfoBytes:
    """SignedInfo and the Signature around it, from bytes fixed per SignatureMethod, DigestMethod and KeyInfo."""

    def __init__(self, method: Algorithm, digest: Algorithm, key_info: bytes) -> None:
        self.method = method
        self.digest = digest
        self.head = (
            b'<ds:SignedInfo xmlns:ds="' + _DS + b'"><ds:CanonicalizationMethod Algorithm="' + _EXC
            + b'"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm="' + method.uri.encode()
            + b'"></ds:SignatureMethod>'
        )
        digest_method = (
            b'<ds:DigestMethod Algorithm="' + digest.uri.encode() + b'"></ds:DigestMethod><ds:DigestValue>'
        )
        exc = b'<ds:Transform Algorithm="' + _EXC + b'"></ds:Transform>'
        self.enveloped_middle = (
            b'"><ds:Transforms><ds:Transform Algorithm="' + ns.ALG_ENVELOPED.encode() + b'"></ds:Transform>'
            + exc + b"</ds:Transforms>" + digest_method
        )
        self.detached_middle = b'"><ds:Transforms>' + exc + b"</ds:Transforms>" + digest_method
        self.open = b'<ds:Signature xmlns:ds="' + _DS + b'">'
        self.close = b"</ds:SignatureValue>" + key_info + b"</ds:Signature>"

    def render(self, references: Sequence[Reference]) -> bytes:
        """SignedInfo's exclusive canonical bytes: what the SignatureValue signs."""
        parts = [self.head]
        for reference in references:
            parts += [b'<ds:Reference URI="', c14n_attribute(reference.uri),
                      self.enveloped_middle if reference.enveloped else self.detached_middle,
                      b64encode(reference.digest), b"</ds:DigestValue></ds:Reference>"]
        parts.append(b"</ds:SignedInfo>")
        return b"".join(parts)

    def signature(self, signed_info: bytes, value: bytes) -> bytes:
        """The whole ds:Signature, in canonical form, around a rendered SignedInfo and its SignatureValue."""
        return self.open + signed_info + b"<ds:SignatureValue>" + b64encode(value) + self.close


def key_info_x509(certificate_b64: str) -> bytes:
    """KeyInfo/X509Data/X509Certificate with the certificate's base64 as given."""
    return (b"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>" + certificate_b64.encode("ascii")
            + b"</ds:X509Certificate></ds:X509Data></ds:KeyInfo>")
