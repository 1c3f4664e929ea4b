"""The middleware's encrypted tokens: its decryption keys, the per-peer CBC opt-in, and one fault for all.

An encrypted token in ``wsse:Security`` is a ``saml2:EncryptedAssertion``
(SAML 2.0) or a bare ``xenc:EncryptedData`` (SAML 1.1, which has no
EncryptedAssertion; AD FS sends it so). :meth:`EncryptedTokens.verify`
decrypts it (:class:`wstrust_wsgi.xmlenc.Decrypter`, RetrievalMethod confined
to the token) and verifies the plaintext exactly as a plain token
(:func:`wstrust_wsgi.saml.verify_standalone`: a trusted certificate's
signature, claims read from the signed element only).

**No oracle.** Every refusal of an encrypted token, from the algorithm check
through decryption, parsing and the signature to the claims, leaves here as
one :class:`~wstrust_wsgi.errors.DecryptionFailed` raised at one place, so the
client gets byte-identical faults; the precise cause is in its log detail only.
A padding, parse or signature error that answered differently would be the
oracle of Jager and Somorovsky's attack (CCS 2011). Claims checks (time,
audience) could have kept their own faults, as they run after a valid
signature; they do not, so that the rule has no exception to get wrong. The
checks on the message around the token (Timestamp, a duplicated ID, replay,
client address) keep theirs.

**CBC only for a named peer, on a key of its own** (:class:`LegacyCbcKey`).
The default allows AES-GCM with RSA-OAEP only. AES-CBC is decrypted only with
keys marked for one issuer, and nothing decrypted with such a key is admitted
unless that issuer signed it (its :class:`ValidationPolicy` trusts that issuer
alone). Accepting CBC under a key exposes every content key wrapped for it,
GCM ones included ("One Bad Apple", Jager, Paterson and Somorovsky, NDSS 2013),
so a CBC key is never one that GCM peers encrypt for: the same certificate may
not appear twice. RSA PKCS#1 v1.5 is never accepted (Bleichenbacher's attack on
XML Encryption, ESORICS 2012). A CBC token is routed to the CBC keys by its
EncryptionMethod, a public value, so the route tells nothing secret.

**Reuse.** A verified encrypted token is cached (the middleware's
:class:`~wstrust_wsgi.saml.VerificationCache`) under the SHA-256 of its exact
serialized bytes, so a client reusing it costs a hash and a lookup: decryption
and verification run once per distinct token; a hit is re-checked for time,
audience and certificate validity as any cached token is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from . import _xml, ns
from .errors import ConfigurationError, DecryptionFailed, InvalidSecurityToken, SoapFault
from .keys import KeyPairSource, SigningKey, load_key_pair
from .saml import ValidationPolicy, VerificationCache, VerifiedAssertion, verify_standalone
from .xmlenc import CBC_ALGORITHMS, Decrypter, DecryptionPolicy, encrypted_data_of

#: The elements that carry an encrypted token in ``wsse:Security``.
ENCRYPTED_TOKENS = frozenset({_xml.qname(ns.SAML2, "EncryptedAssertion"), _xml.qname(ns.XENC, "EncryptedData")})
_METHOD = _xml.qname(ns.XENC, "EncryptionMethod")
#: Prefixed to the token's bytes for its cache key, so it can never be a plain assertion's key.
_DOMAIN = b"wstrust-wsgi encrypted token\0"


def is_encrypted_token(element: etree._Element) -> bool:
    return element.tag in ENCRYPTED_TOKENS


@dataclasses.dataclass(frozen=True)
class LegacyCbcKey:
    """A decryption key for one peer that sends AES-CBC (AD FS, WCF and Okta do by default), and for it only.

    ::

        decryption_keys=[("rp.key", "rp.crt"),                       # GCM peers (our STS)
                         LegacyCbcKey(("adfs-rp.key", "adfs-rp.crt"),  # a key of its own
                                      issuer="http://adfs.example/adfs/services/trust")]

    Tokens decrypted with this key, CBC or GCM, are admitted only when signed
    and issued by ``issuer`` (exactly as written, one of the middleware's
    ``issuer`` values). Register its certificate with that peer alone.
    """

    key: KeyPairSource
    issuer: str


#: What ``decryption_keys`` takes: one key, or several (a list); a (key, certificate) tuple is one key.
DecryptionKeys = KeyPairSource | LegacyCbcKey | Iterable[KeyPairSource | LegacyCbcKey]


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def _entries(value: object) -> tuple[object, ...]:
    """``decryption_keys`` as a tuple of key sources: a list of them, or one source (a pair is one)."""
    one = (str, bytes, os.PathLike, LegacyCbcKey, SigningKey)
    if isinstance(value, one) or hasattr(value, "private_key"):
        return (value,)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (str, bytes, os.PathLike)) for v in value):
        return (value,)  # ("rp.key", "rp.crt"): one pair, not two files
    if isinstance(value, Iterable):
        return tuple(value)
    raise ConfigurationError(f"decryption_keys: give a list of keys, not {type(value).__name__}")


class EncryptedTokens:
    """Decrypt and verify encrypted tokens with the middleware's keys; built once, at construction.

    :param keys: ``decryption_keys`` (see :class:`~wstrust_wsgi.RelyingPartyMiddleware`).
    :param policy: the middleware's validation policy.
    :param cache: the middleware's verification cache, or None.
    """

    def __init__(self, keys: tuple[object, ...], *, policy: ValidationPolicy, cache: VerificationCache | None) -> None:
        plain: list[SigningKey] = []
        legacy: list[SigningKey] = []
        self._peers: dict[bytes, str] = {}  # a CBC key's public key -> the one issuer it admits
        seen: set[bytes] = set()
        for index, entry in enumerate(keys):
            name = f"decryption_keys[{index}]"
            issuer = None
            if isinstance(entry, LegacyCbcKey):
                issuer = entry.issuer
                if not isinstance(issuer, str) or issuer not in policy.issuers:
                    raise ConfigurationError(f"{name}: LegacyCbcKey issuer {issuer!r} is not one of the "
                                             f"middleware's issuers {sorted(policy.issuers)!r}")
                entry = entry.key
            pair = load_key_pair(entry, name)  # type: ignore[arg-type]
            spki = _spki(pair.certificate)
            if spki in seen:
                raise ConfigurationError(f"{name}: this key is listed twice; a key that decrypts CBC for one peer "
                                         "must not serve any other (One Bad Apple), and a plain key once is enough")
            seen.add(spki)
            (legacy if issuer is not None else plain).append(pair)
            if issuer is not None:
                self._peers[spki] = issuer
        self._cache = cache
        #: The GCM peers' keys, which also unwrap holder-of-key proof keys (:mod:`wstrust_wsgi._proof`).
        self.keys = tuple(plain)
        self.use_policy(policy)
        # GCM from anyone with any key; CBC only with the keys of named peers (the route is public: the
        # EncryptedData's EncryptionMethod), so a GCM peer's wrapped content key never meets CBC.
        self._gcm = Decrypter([*plain, *legacy])
        self._cbc = Decrypter(legacy, policy=DecryptionPolicy(allow_cbc=True)) if legacy else None

    def use_policy(self, policy: ValidationPolicy) -> None:
        """Verify with ``policy`` from now on: the middleware's, replaced when the STS's keys roll
        (``metadata_url``), so that encrypted tokens follow the trusted certificates as plain ones do."""
        if getattr(self, "_policy", None) is policy:
            return
        bound = {spki: dataclasses.replace(policy, issuers=frozenset({issuer})) for spki, issuer in self._peers.items()}
        # The three are read together; assigned here in an order under which a reader between two
        # lines still sees policies that were all current at one moment or another.
        self._bound = bound
        self._policies = (policy, *bound.values())
        self._policy = policy

    @staticmethod
    def key_of(wire: bytes) -> bytes:
        """The cache key of a token's exact bytes."""
        return hashlib.sha256(_DOMAIN + wire).digest()

    def verify(self, token: etree._Element, now: datetime, *, key: bytes | None = None) -> VerifiedAssertion:
        """The verified assertion inside ``token`` (see :func:`is_encrypted_token`), or DecryptionFailed.

        ``key`` is the token's cache key (:meth:`key_of` its exact bytes); by
        default that of its serialization.
        """
        if key is None:
            key = self.key_of(etree.tostring(token)) if self._cache is not None else b""
        try:
            verified = self.cached(key, now) or self._decrypt_and_verify(token, key, now)
        except Exception as exc:  # one fault for every cause, raised here only (see the module docstring)
            detail = exc.detail if isinstance(exc, DecryptionFailed) else f"{type(exc).__name__}: {exc}"
            raise DecryptionFailed(f"encrypted token refused: {detail}") from None
        return verified if verified.encrypted else dataclasses.replace(verified, encrypted=True)

    def cached(self, key: bytes, now: datetime) -> VerifiedAssertion | None:
        """The token verified before under ``key``, re-checked at ``now`` (a fault if it no longer passes), or None."""
        if self._cache is None:
            return None
        for policy in self._policies:  # the entry is kept under the policy it was verified with
            hit = self._cache.get(key, policy, now)
            if hit is not None:
                return dataclasses.replace(hit, encrypted=True)
        return None

    def _decrypt_and_verify(self, token: etree._Element, key: bytes, now: datetime) -> VerifiedAssertion:
        encrypted_data = encrypted_data_of(token)
        method = encrypted_data.find(_METHOD)
        cbc = method is not None and method.get("Algorithm") in CBC_ALGORITHMS
        decrypter = self._cbc if cbc and self._cbc is not None else self._gcm  # _gcm refuses CBC by policy
        decrypted = decrypter.decrypt(encrypted_data, scope=token)
        base = self._policy  # read once: the keys may roll while this token is verified
        policy = self._bound.get(_spki(decrypted.certificate), base)
        try:
            return verify_standalone(decrypted.element, decrypted.plaintext, policy, now=now, cache=self._cache,
                                     key=key)
        except SoapFault as exc:
            if policy is base:
                raise
            peer, = policy.issuers
            raise DecryptionFailed(f"{type(exc).__name__}: {exc.detail} (decrypted with the LegacyCbcKey of "
                                   f"{peer!r}, which admits that issuer's tokens only)") from None


def encrypted_tokens(keys: DecryptionKeys, *, policy: ValidationPolicy, cache: VerificationCache | None
                     ) -> EncryptedTokens | None:
    """The middleware's :class:`EncryptedTokens`, or None when no keys are given (none, or an empty list)."""
    entries = _entries(keys)
    return EncryptedTokens(entries, policy=policy, cache=cache) if entries else None


def refuse_encrypted(token: etree._Element, now: datetime) -> VerifiedAssertion:
    """What a middleware without ``decryption_keys`` does with an encrypted token."""
    raise InvalidSecurityToken(f"{token.tag} received, and no decryption_keys are configured",
                               reason="This service does not accept encrypted security tokens.")
