"""The one registry of XML-DSig algorithms: a record per URI (XML-DSig 1.1 section 6, RFC 6931).

Every table the signer, the verifier and the policies need (hash by
signature method, hashlib function by digest URI, what SHA-1 opens, the
setting names an STS stores) is derived from :data:`ALGORITHMS`, so that
they cannot disagree. https://www.w3.org/TR/xmldsig-core1/#sec-AlgID
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .. import ns
from ..errors import UnsupportedAlgorithm

KeyKind = Literal["rsa", "hmac"]
_PKCS1V15 = padding.PKCS1v15()


@dataclass(frozen=True)
class HmacKey:
    """A shared secret for HMAC signature methods (XML-DSig core 6.3.1).

    Refuses bytes that are a certificate or a public key (PEM or DER): keying
    an HMAC with the verifier's public material is the classic key-confusion
    forgery, since anyone can compute it.
    """

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or not self.secret:
            raise ValueError("HMAC key: a non-empty bytes secret is required")
        if b"-----BEGIN" in self.secret:
            raise ValueError("HMAC key: PEM data (a certificate or key) is not a shared secret")
        for load in (x509.load_der_x509_certificate, serialization.load_der_public_key):
            try:
                load(self.secret)
            except (ValueError, TypeError):
                continue
            raise ValueError("HMAC key: DER certificate or public key bytes are not a shared secret")


@dataclass(frozen=True)
class Algorithm:
    """One algorithm URI: a digest method (``key_kind`` None) or a signature method (RSA PKCS#1 v1.5 or HMAC)."""

    uri: str
    #: The hash, as cryptography names it; its ``name`` is also hashlib's.
    hash: type[hashes.HashAlgorithm]
    #: "rsa" or "hmac" for a SignatureMethod; None for a DigestMethod.
    key_kind: KeyKind | None
    #: SHA-1 based: accepted only when a policy asks for it (``allow_sha1``).
    deprecated: bool = False
    #: In :meth:`AlgorithmPolicy.default`. HMAC never is: it needs a shared secret configured for it.
    allowed_by_default: bool = True
    #: For a SignatureMethod, the DigestMethod of the same hash that the signer pairs with it.
    digest_uri: str = ""
    #: The setting name an STS stores for a signing algorithm ("rsa-sha256"); empty for digests.
    setting: str = ""
    _hashlib: Callable[[bytes], hashlib._Hash] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hashlib", getattr(hashlib, self.hash.name))

    def digest(self, data: bytes) -> bytes:
        """The digest of ``data`` (a DigestMethod, or a SignatureMethod's hash)."""
        return self._hashlib(data).digest()

    def sign(self, key: rsa.RSAPrivateKey | HmacKey, data: bytes) -> bytes:
        """The SignatureValue bytes over ``data`` (canonical SignedInfo)."""
        if self.key_kind == "rsa" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, _PKCS1V15, self.hash())
        if self.key_kind == "hmac" and isinstance(key, HmacKey):
            return hmac.new(key.secret, data, self.hash.name).digest()
        raise UnsupportedAlgorithm(f"{self.uri} cannot sign with a {type(key).__name__}")

    def verify(self, key: rsa.RSAPublicKey | HmacKey, signature: bytes, data: bytes) -> None:
        """Return if ``signature`` is valid over ``data`` with ``key``; raise InvalidSignature otherwise.

        HMAC compares in constant time; a key of the wrong kind (an RSA key for
        an HMAC method, a secret for RSA) never verifies.
        """
        if self.key_kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _PKCS1V15, self.hash())
            return
        if self.key_kind == "hmac" and isinstance(key, HmacKey):
            if hmac.compare_digest(hmac.new(key.secret, data, self.hash.name).digest(), signature):
                return
            raise InvalidSignature("HMAC mismatch")
        raise InvalidSignature(f"{self.uri} does not verify with a {type(key).__name__}")


def _digests() -> list[Algorithm]:
    return [
        Algorithm(ns.ALG_SHA256, hashes.SHA256, None),
        Algorithm(ns.ALG_SHA384, hashes.SHA384, None),
        Algorithm(ns.ALG_SHA512, hashes.SHA512, None),
        Algorithm(ns.ALG_SHA1, hashes.SHA1, None, deprecated=True, allowed_by_default=False),
    ]


def _signature_methods() -> list[Algorithm]:
    rsa_ = [
        (ns.ALG_RSA_SHA256, hashes.SHA256, ns.ALG_SHA256, "rsa-sha256"),
        (ns.ALG_RSA_SHA384, hashes.SHA384, ns.ALG_SHA384, "rsa-sha384"),
        (ns.ALG_RSA_SHA512, hashes.SHA512, ns.ALG_SHA512, "rsa-sha512"),
        (ns.ALG_RSA_SHA1, hashes.SHA1, ns.ALG_SHA1, "rsa-sha1"),
    ]
    hmac_ = [
        (ns.ALG_HMAC_SHA256, hashes.SHA256, ns.ALG_SHA256, "hmac-sha256"),
        (ns.ALG_HMAC_SHA384, hashes.SHA384, ns.ALG_SHA384, "hmac-sha384"),
        (ns.ALG_HMAC_SHA512, hashes.SHA512, ns.ALG_SHA512, "hmac-sha512"),
        (ns.ALG_HMAC_SHA1, hashes.SHA1, ns.ALG_SHA1, "hmac-sha1"),
    ]
    found = []
    for kind, rows in (("rsa", rsa_), ("hmac", hmac_)):
        for uri, hash_, digest_uri, setting in rows:
            sha1 = hash_ is hashes.SHA1
            found.append(Algorithm(uri, hash_, kind, deprecated=sha1,  # type: ignore[arg-type]
                                   allowed_by_default=kind == "rsa" and not sha1,
                                   digest_uri=digest_uri, setting=setting))
    return found


#: Every algorithm this package implements, by URI.
ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType({a.uri: a for a in _digests() + _signature_methods()})
#: Signature methods by setting name ("rsa-sha256", ...), in the registry's order.
BY_SETTING: Mapping[str, Algorithm] = MappingProxyType({a.setting: a for a in ALGORITHMS.values() if a.setting})


def setting_names(kind: KeyKind = "rsa") -> tuple[str, ...]:
    """The setting names of the signature methods of ``kind``, in the registry's order.

    ``setting_names("rsa")`` is what an STS with an RSA key can sign with
    (``model.SIGNATURE_ALGORITHMS`` must equal it).
    """
    return tuple(a.setting for a in BY_SETTING.values() if a.key_kind == kind)


def for_setting(name: str) -> tuple[Algorithm, Algorithm]:
    """The (SignatureMethod, DigestMethod) pair a setting name stands for."""
    try:
        method = BY_SETTING[name]
    except KeyError:
        raise UnsupportedAlgorithm(f"signature algorithm {name!r}: not one of {sorted(BY_SETTING)}") from None
    return method, ALGORITHMS[method.digest_uri]


@dataclass(frozen=True)
class AlgorithmPolicy:
    """The SignatureMethod and DigestMethod URIs a verifier accepts; anything else is UnsupportedAlgorithm."""

    signature_methods: frozenset[str]
    digest_methods: frozenset[str]

    def __post_init__(self) -> None:
        for uri in self.signature_methods:
            if uri not in ALGORITHMS or ALGORITHMS[uri].key_kind is None:
                raise ValueError(f"signature_methods: {uri!r} is not a signature method this package implements")
        for uri in self.digest_methods:
            if uri not in ALGORITHMS or ALGORITHMS[uri].key_kind is not None:
                raise ValueError(f"digest_methods: {uri!r} is not a digest method this package implements")

    @classmethod
    def of(cls, uris: Iterable[str]) -> AlgorithmPolicy:
        """A policy allowing exactly ``uris`` (signature and digest methods mixed)."""
        chosen = [ALGORITHMS[u] for u in uris if u in ALGORITHMS]
        return cls(frozenset(a.uri for a in chosen if a.key_kind is not None),
                   frozenset(a.uri for a in chosen if a.key_kind is None))

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def default(*, allow_sha1: bool = False) -> AlgorithmPolicy:
        """RSA with SHA-256/384/512; with ``allow_sha1`` also rsa-sha1 and sha1 (never HMAC)."""
        return AlgorithmPolicy.of(
            a.uri for a in ALGORITHMS.values()
            if a.allowed_by_default or (allow_sha1 and a.deprecated and a.key_kind != "hmac")
        )

    def signature_method(self, uri: str | None) -> Algorithm:
        """The allowed SignatureMethod record for ``uri``, or UnsupportedAlgorithm."""
        if uri not in self.signature_methods:
            raise UnsupportedAlgorithm(f"signature method {uri!r} not allowed",
                                       expected=f"SignatureMethod one of {sorted(self.signature_methods)}", actual=uri)
        return ALGORITHMS[uri]  # type: ignore[index]

    def digest_method(self, uri: str | None) -> Algorithm:
        """The allowed DigestMethod record for ``uri``, or UnsupportedAlgorithm."""
        if uri not in self.digest_methods:
            raise UnsupportedAlgorithm(f"digest method {uri!r} not allowed",
                                       expected=f"DigestMethod one of {sorted(self.digest_methods)}", actual=uri)
        return ALGORITHMS[uri]  # type: ignore[index]
