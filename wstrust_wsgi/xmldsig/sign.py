"""Creating XML-DSig signatures: enveloped, and detached by ID (XML-DSig core section 3.1).

Always exclusive c14n (for SignedInfo and as the last transform of every
Reference), one SignatureMethod and its matching DigestMethod from the
registry, RSA PKCS#1 v1.5 or HMAC. https://www.w3.org/TR/xmldsig-core1/#sec-CoreGeneration
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree


from ..errors import UnsupportedAlgorithm
from . import _template
from .algorithms import ALGORITHMS, BY_SETTING, Algorithm, HmacKey


def canonical(element: etree._Element) -> bytes:
    """``element`` in exclusive canonical form without comments: what a Reference to it digests."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def certificate_base64(certificate: x509.Certificate) -> str:
    """The base64 body of the certificate's PEM, line breaks kept (as signxml writes X509Certificate)."""
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return "".join(pem.splitlines(keepends=True)[1:-1])


class Signer:
    """Signs with one key and one SignatureMethod (a URI or a setting name such as ``"rsa-sha256"``).

    An RSA key writes its ``certificate`` in KeyInfo/X509Data (if given); an
    :class:`HmacKey` writes no KeyInfo and refuses a certificate (the verifier
    must know the secret, never learn it from the message). Stateless after
    construction, so one Signer serves every thread.
    """

    def __init__(self, key: rsa.RSAPrivateKey | HmacKey, method: str, *,
                 certificate: x509.Certificate | None = None) -> None:
        found = BY_SETTING.get(method) or ALGORITHMS.get(method)
        if found is None or found.key_kind is None:
            raise UnsupportedAlgorithm(f"{method!r} is not a signature method")
        kind = "hmac" if isinstance(key, HmacKey) else "rsa" if isinstance(key, rsa.RSAPrivateKey) else None
        if kind != found.key_kind:
            raise UnsupportedAlgorithm(f"{found.uri} needs a {found.key_kind} key, not a {type(key).__name__}")
        if kind == "hmac" and certificate is not None:
            raise ValueError("certificate: an HMAC signature carries no certificate")
        self.key = key
        self.method: Algorithm = found
        self.digest: Algorithm = ALGORITHMS[found.digest_uri]
        key_info = b"" if certificate is None else _template.key_info_x509(certificate_base64(certificate))
        self._bytes = _template.SignedInfoBytes(found, self.digest, key_info)

    def enveloped(self, canonical_root: bytes, reference_id: str) -> bytes:
        """The Signature (canonical bytes) enveloped in an element whose exclusive c14n is ``canonical_root``.

        ``canonical_root`` is the signed element without its Signature (what the
        enveloped-signature transform leaves); the caller places the returned
        bytes inside that element, where its schema wants them.
        """
        reference = _template.Reference("#" + reference_id, self.digest.digest(canonical_root), True)
        return self._signature([reference])

    def sign_enveloped(self, root: etree._Element, reference_id: str, *, index: int = -1) -> etree._Element:
        """Insert an enveloped Signature over ``root`` (referenced as ``#reference_id``) at child ``index``."""
        signature = etree.fromstring(self.enveloped(canonical(root), reference_id))
        if index < 0:
            root.append(signature)
        else:
            root.insert(index, signature)
        return signature

    def detached(self, targets: Sequence[tuple[str, etree._Element]]) -> etree._Element:
        """A Signature (not yet placed) with one Reference ``#id`` per (id, element) target.

        Each target is digested in its exclusive canonical form where it
        stands, so it must not change afterwards; the Signature may go
        anywhere outside the targets (a WS-Security header, say).
        """
        if not targets:
            raise ValueError("targets: a detached signature references at least one element")
        references = [_template.Reference("#" + target_id, self.digest.digest(canonical(element)), False)
                      for target_id, element in targets]
        return etree.fromstring(self._signature(references))

    def _signature(self, references: Sequence[_template.Reference]) -> bytes:
        signed_info = self._bytes.render(references)
        return self._bytes.signature(signed_info, self.method.sign(self.key, signed_info))



