"""The middleware's holder-of-key check: a token is admitted as holder-of-key only with a proof.

**Policy** (``confirmation=``): ``"bearer"`` admits bearer confirmations only;
``"holder-of-key"`` admits holder-of-key only, proven; ``"any"`` (the
default) uses a bearer confirmation when the token offers one (SAML 2.0 core
2.4.1.1: satisfying any one confirmation suffices) and otherwise requires the
proof. So a token that offers only holder-of-key is never admitted without one,
whatever the policy, and a bearer token never satisfies ``"holder-of-key"``.

**Per audience** (:class:`ConfirmationPolicy`): ``confirmation`` may instead map
some of the middleware's audiences to a word, ``"*"`` naming the policy of the
others (``"any"`` when absent). A token is held to the policy of the service's
audiences its AudienceRestriction names; when it names several with different
words it must satisfy each: ``"any"`` gives way to the other word, and
``"bearer"`` beside ``"holder-of-key"`` can never both be met, so such a token
is refused (``InvalidSecurityToken``), never admitted under the weaker word.

**The proof**, in order, each refusal with its own fault and the app not called:

1. the proof key: the holder-of-key ``ds:KeyInfo`` of the *signed* assertion
   holds an ``xenc:EncryptedKey`` (every copy the same key: SAML 1.1 repeats
   it per statement), unwrapped with the service's ``decryption_keys``
   (RSA-OAEP only, so never RSA 1.5), 16 to 64 bytes. HMAC keys come from
   here only, never from the message's KeyInfo or a certificate;
2. the signature (this rule to 4. are
   :func:`wstrust_wsgi.wssecurity.verify_token_proof`, which the STS's Renew of a
   holder-of-key token applies too): exactly one ``ds:Signature`` in ``wsse:Security`` whose
   KeyInfo references this token (KeyIdentifier ``#SAMLID`` / ``#SAMLAssertionID``
   or, SAML 2.0, ``wsse:Reference URI="#ID"``); an HMAC method (SHA-1 only
   with ``allow_sha1``), no ``HMACOutputLength``;
3. coverage: it signs the envelope's own Body (the one the app reads), the
   Security header's Timestamp and every WS-Addressing header, each Reference
   resolved to exactly one element (:func:`wstrust_wsgi.wssecurity.verify_message`);
4. freshness: the Timestamp has Expires, is not expired, not from the future,
   and its Created is at most :data:`MAX_AGE` (plus the skew) old;
5. replay: with a ``replay_cache``, a SignatureValue is admitted once
   (atomic add; the entry lives until the Timestamp expires).

The message is parsed again here, whole, for the proof (the token's own
verification may have used the cut fast path, :mod:`wstrust_wsgi._reuse`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from base64 import b64decode
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from . import _xml, ns, soap, wssecurity
from .errors import (ConfigurationError, FailedCheck, InvalidSecurity, InvalidSecurityToken, RequestFailed,
                     SoapFault)
from .saml import VerifiedAssertion, version_of
from .saml.confirmation import BEARER, HOLDER_OF_KEY, confirmations
from .saml.versions import SAML2, SAML11
from .stores import ReplayCache
from .xmldsig import AlgorithmPolicy, HmacKey
from .xmldsig.keyvalue import KEY_VALUE, read_key_value
from .xmlenc import Decrypter, KeyPair

POLICIES = ("bearer", "holder-of-key", "any")
#: The oldest a proof's Timestamp Created may be (WSS4J's default time-to-live).
MAX_AGE = timedelta(minutes=5)
#: Proof key lengths accepted, in bytes (128 to 512 bits).
KEY_BYTES = range(16, 65)
_ENCRYPTED_KEY = _xml.qname(ns.XENC, "EncryptedKey")
_X509_DATA = _xml.qname(ns.DS, "X509Data")


def _public_key(carrier: etree._Element) -> rsa.RSAPublicKey:
    """The RSA key (2048 bits or more) a PublicKey token's holder-of-key KeyInfo names: the one
    ``ds:X509Certificate`` of its ``ds:X509Data``, or its ``ds:KeyValue/ds:RSAKeyValue`` (a bare key).
    The key is trusted because the signed assertion carries it, never for what the certificate says."""
    try:
        if carrier.tag == KEY_VALUE:
            key = read_key_value(carrier)
        else:
            certificates = carrier.findall(_xml.qname(ns.DS, "X509Certificate"))
            if len(certificates) != 1:
                raise ValueError(f"{len(certificates)} certificates")
            key = x509.load_der_x509_certificate(b64decode("".join(_xml.text(certificates[0]).split()))
                                                 ).public_key()
    except ValueError as exc:
        raise InvalidSecurityToken(f"holder-of-key {etree.QName(carrier).localname} unusable: {exc}",
                                   reason="The holder-of-key token's key cannot be read.") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise InvalidSecurityToken("holder-of-key key is not RSA of 2048 bits or more",
                                   reason="The holder-of-key token's key cannot be read.")
    return key
_NO_PROOF = "A holder-of-key token needs a signature made with its proof key over the body and timestamp."


#: ``confirmation=``: one policy word, or a mapping of audience (or :data:`OTHER_AUDIENCES`) to one.
Confirmation = Union[str, Mapping[str, str]]
#: The key of a per-audience ``confirmation`` mapping that names the policy of every audience it does not name.
OTHER_AUDIENCES = "*"
#: The confirmations each policy word admits: a token held to several words must meet all, the intersection.
_ADMITS = {"bearer": frozenset({BEARER}), "holder-of-key": frozenset({HOLDER_OF_KEY}),
           "any": frozenset({BEARER, HOLDER_OF_KEY})}
_WORD = {admits: word for word, admits in _ADMITS.items()}
#: What each policy word requires of a token, as ``wstrust-wsgi diagnose`` says it.
REQUIRES = {"any": "bearer, or holder-of-key with a signature by its key", "bearer": "a bearer confirmation",
            "holder-of-key": "holder-of-key, with a signature by its key"}


def _word(value: object, name: str) -> str:
    """``value`` if it is a policy word; a typo must fail at start-up, not admit under a default."""
    if not isinstance(value, str) or value not in POLICIES:
        raise ConfigurationError(f"{name}: must be one of {', '.join(map(repr, POLICIES))}, not {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ConfirmationPolicy:
    """``confirmation=`` checked once at construction: one word for every audience, or a word per audience.

    ``default`` holds for the audiences ``by_audience`` does not name. Only
    ``audiences`` (the middleware's) count when a token is matched: an audience
    of another service beside ours in the token's restriction picks no policy.
    """

    default: str
    by_audience: Mapping[str, str]
    audiences: frozenset[str]

    @classmethod
    def of(cls, confirmation: Confirmation, audiences: Iterable[str]) -> ConfirmationPolicy:
        """The policy ``confirmation`` describes, or a ConfigurationError naming what is wrong with it."""
        accepted = frozenset(audiences)
        if isinstance(confirmation, str):
            return cls(_word(confirmation, "confirmation"), MappingProxyType({}), accepted)
        if not isinstance(confirmation, Mapping) or not confirmation:
            raise ConfigurationError(f"confirmation: must be one of {', '.join(map(repr, POLICIES))}, or a "
                                     f"non-empty mapping of this service's audiences (and {OTHER_AUDIENCES!r} for "
                                     f"the others) to one of them, not {confirmation!r}")
        words: dict[str, str] = {}
        for audience, word in confirmation.items():
            if audience != OTHER_AUDIENCES and audience not in accepted:
                raise ConfigurationError(
                    f"confirmation: names the audience {audience!r}, which is not one of this service's audiences "
                    f"{sorted(accepted)!r} (audiences are compared exactly; {OTHER_AUDIENCES!r} names the others)")
            words[audience] = _word(word, f"confirmation[{audience!r}]")
        default = words.pop(OTHER_AUDIENCES, "any")
        return cls(default, MappingProxyType(words), accepted)

    def describe(self) -> str:
        """The configuration in one line, for ``wstrust-wsgi diagnose``'s proof check."""
        if not self.by_audience:
            return self.default
        named = ", ".join(f"{audience} {word}" for audience, word in sorted(self.by_audience.items()))
        return f"{named}, others {self.default}"

    def for_token(self, token_audiences: Iterable[str]) -> str:
        """The word a token naming ``token_audiences`` is held to: the one its audiences of this service all
        allow, or an InvalidSecurityToken when they allow nothing in common (bearer beside holder-of-key)."""
        if not self.by_audience:
            return self.default
        ours = sorted(self.audiences.intersection(token_audiences))
        words = {self.by_audience.get(audience, self.default) for audience in ours} or {self.default}
        admits = frozenset.intersection(*(_ADMITS[word] for word in words))
        if not admits:
            raise InvalidSecurityToken(
                f"token names audiences {ours!r} whose confirmation policies {sorted(words)!r} cannot all be met",
                reason="The security token names audiences of this service that require different confirmations.",
                expected="audiences whose confirmation policies agree", actual=f"{ours!r}: {sorted(words)!r}")
        return _WORD[admits]


class ProofOfPossession:
    """Applies the confirmation policy and checks holder-of-key proofs; built once by the middleware."""

    def __init__(self, *, confirmation: Confirmation, keys: Sequence[KeyPair], allow_sha1: bool,
                 clock_skew: timedelta, replay: ReplayCache | None, max_body: int, remember: int = 10_000,
                 audiences: Iterable[str] = ()) -> None:
        self.confirmation = ConfirmationPolicy.of(confirmation, audiences)
        self._decrypter = Decrypter(keys) if keys else None
        methods = [ns.ALG_HMAC_SHA256, ns.ALG_HMAC_SHA384, ns.ALG_HMAC_SHA512, ns.ALG_SHA256, ns.ALG_SHA384,
                   ns.ALG_SHA512] + ([ns.ALG_HMAC_SHA1, ns.ALG_SHA1] if allow_sha1 else [])
        self._algorithms = AlgorithmPolicy.of(methods)
        self._rsa = AlgorithmPolicy.default(allow_sha1=allow_sha1)
        #: Proof keys already unwrapped, by their signed EncryptedKey's canonical bytes (the same
        #: ciphertext always unwraps to the same key, so a reused token costs no RSA decryption).
        self._unwrapped: dict[bytes, bytes] = {}
        self._remember = remember  # the middleware's verified_cache_size: 0 remembers nothing
        self._skew = clock_skew
        self._replay = replay
        self._max_body = max_body

    def check(self, verified: VerifiedAssertion, body: bytes, content_type: str | None,
              now: datetime, *, consume: bool = True) -> VerifiedAssertion:
        """``verified`` saying which confirmation this request satisfied, or the fault of the first rule broken.

        ``consume=False`` leaves the replay cache alone (``wstrust-wsgi diagnose``
        must not use a proof up).
        """
        offered = verified.confirmations
        policy = self.policy_for(verified)
        if policy != "holder-of-key" and BEARER in offered:
            return verified if verified.confirmation == BEARER else dataclasses.replace(verified, confirmation=BEARER)
        if HOLDER_OF_KEY not in offered:
            raise InvalidSecurityToken(f"token offers {sorted(offered)}, the policy requires holder-of-key",
                                       reason="This service requires a holder-of-key token.",
                                       expected=f"confirmation policy {policy!r}", actual=sorted(offered))
        if policy == "bearer":
            raise InvalidSecurityToken("holder-of-key token, and the policy admits bearer tokens only",
                                       reason="This service accepts bearer tokens only.",
                                       expected=f"confirmation policy {policy!r}", actual=sorted(offered))
        key = self._proof_key(verified)
        self._check_signature(verified, key, body, content_type, now, consume=consume)
        kind = "public" if isinstance(key, rsa.RSAPublicKey) else "symmetric"
        return dataclasses.replace(verified, confirmation=HOLDER_OF_KEY, proof_key=kind)

    def policy_for(self, verified: VerifiedAssertion) -> str:
        """The policy word ``verified`` is held to: the one of the service's audiences it was admitted for."""
        return self.confirmation.for_token(verified.audiences)

    def _proof_key(self, verified: VerifiedAssertion) -> HmacKey | rsa.RSAPublicKey:
        version = version_of(verified.element)
        assert version is not None
        _, key_infos = confirmations(verified.element, version)
        encrypted = [child for key_info in key_infos for child in key_info if isinstance(child.tag, str)]
        if len({etree.tostring(child, method="c14n", exclusive=True) for child in encrypted}) > 1:
            raise InvalidSecurityToken("holder-of-key confirmations name different keys",
                                       reason="The holder-of-key token names more than one proof key.")
        if encrypted and encrypted[0].tag in (_X509_DATA, KEY_VALUE):
            return _public_key(encrypted[0])
        if not encrypted or any(child.tag != _ENCRYPTED_KEY for child in encrypted):
            raise InvalidSecurityToken("holder-of-key KeyInfo holds something other than an xenc:EncryptedKey "
                                       f"({sorted({etree.QName(c).localname for c in encrypted})})",
                                       reason="The holder-of-key token's proof key is not an encrypted key.")
        if self._decrypter is None:
            raise InvalidSecurityToken("holder-of-key token, and no decryption_keys to read its proof key with",
                                       reason="This service cannot read holder-of-key proof keys.")
        wrapped = etree.tostring(encrypted[0], method="c14n", exclusive=True)
        secret = self._unwrapped.get(wrapped)
        if secret is None:  # an RSA private-key operation: once per token, not per request
            secret = self._decrypter.unwrap(encrypted[0], sizes=KEY_BYTES)
            if len(self._unwrapped) >= self._remember:
                self._unwrapped.clear()
            if self._remember:
                self._unwrapped[wrapped] = secret
        try:
            return HmacKey(secret)
        except ValueError as exc:
            raise InvalidSecurityToken(f"proof key refused: {exc}") from None

    def _check_signature(self, verified: VerifiedAssertion, key: HmacKey | rsa.RSAPublicKey, body: bytes,
                         content_type: str | None, now: datetime, *, consume: bool = True) -> None:
        envelope = soap.parse_envelope(body, content_type=content_type, max_bytes=self._max_body)
        security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
        if security is None:  # the token was found in it, so only a message changed under us gets here
            raise InvalidSecurity("no wsse:Security header on the second parse", reason=_NO_PROOF)
        algorithms = self._rsa if isinstance(key, rsa.RSAPublicKey) else self._algorithms
        saml = SAML2 if verified.version == SAML2.name else SAML11
        proof, stamp = wssecurity.verify_token_proof(
            security, body=envelope.body, headers=envelope.header_blocks(), token_id=verified.assertion_id,
            value_type=saml.key_identifier_value_type, by_uri=saml is SAML2, key=key, algorithms=algorithms,
            now=now, skew=self._skew, max_age=MAX_AGE)
        if self._replay is not None and consume:
            entry = "proof:" + hashlib.sha256(proof.signature_value).hexdigest()
            try:
                first = self._replay.add(entry, expires=stamp.expires + self._skew, now=now)
            except SoapFault:
                raise
            except Exception as exc:  # fail closed
                raise RequestFailed(f"replay cache unavailable: {exc!r}",
                                    reason="The service cannot check tokens right now.") from None
            if not first:
                raise FailedCheck(f"proof signature of token {verified.assertion_id} replayed",
                                  reason="The message has already been received.")
