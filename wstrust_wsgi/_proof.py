"""The middleware's holder-of-key check: a token is admitted as holder-of-key only with a proof.

**Policy** (``confirmation=``): ``"bearer"`` admits bearer confirmations only;
``"holder-of-key"`` admits holder-of-key only, proven; ``"any"`` (the
default) uses a bearer confirmation when the token offers one (SAML 2.0 core
2.4.1.1: satisfying any one confirmation suffices) and otherwise requires the
proof. So a token that offers only holder-of-key is never admitted without one,
whatever the policy, and a bearer token never satisfies ``"holder-of-key"``.

**The proof**, in order, each refusal with its own fault and the app not called:

1. the proof key: the holder-of-key ``ds:KeyInfo`` of the *signed* assertion
   holds an ``xenc:EncryptedKey`` (every copy the same key: SAML 1.1 repeats
   it per statement), unwrapped with the service's ``decryption_keys``
   (RSA-OAEP only, so never RSA 1.5), 16 to 64 bytes. HMAC keys come from
   here only, never from the message's KeyInfo or a certificate;
2. the signature: exactly one ``ds:Signature`` in ``wsse:Security`` whose
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
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from . import _xml, ns, soap, wssecurity
from .errors import (ConfigurationError, FailedCheck, InvalidSecurity, InvalidSecurityToken, MessageExpired,
                     RequestFailed, SoapFault)
from .saml import VerifiedAssertion, version_of
from .saml.confirmation import BEARER, HOLDER_OF_KEY, confirmations
from .saml.versions import SAML2, SAML11
from .stores import ReplayCache
from .wssecurity.signature import ADDRESSING, SIGNATURE
from .xmldsig import AlgorithmPolicy, HmacKey
from .xmldsig.keyvalue import KEY_VALUE, read_key_value
from .xmlenc import Decrypter, KeyPair

POLICIES = ("bearer", "holder-of-key", "any")
#: The oldest a proof's Timestamp Created may be (WSS4J's default time-to-live).
MAX_AGE = timedelta(minutes=5)
#: Proof key lengths accepted, in bytes (128 to 512 bits).
KEY_BYTES = range(16, 65)
_ENCRYPTED_KEY = _xml.qname(ns.XENC, "EncryptedKey")
_STR = _xml.qname(ns.WSSE, "SecurityTokenReference")
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


def _references(signature: etree._Element, assertion_id: str, version: str) -> bool:
    """Whether the signature's KeyInfo is a SecurityTokenReference to the assertion ``assertion_id``."""
    key_info = signature.find(_xml.qname(ns.DS, "KeyInfo"))
    value_type = (SAML2 if version == SAML2.name else SAML11).key_identifier_value_type
    for reference in key_info.iterchildren(_STR) if key_info is not None else ():
        for child in reference:
            if child.tag == _xml.qname(ns.WSSE, "KeyIdentifier") and child.get("ValueType") == value_type:
                if _xml.text(child) == assertion_id:
                    return True
            elif child.tag == _xml.qname(ns.WSSE, "Reference") and version == SAML2.name:
                if child.get("URI") == "#" + assertion_id:
                    return True
    return False


class ProofOfPossession:
    """Applies the confirmation policy and checks holder-of-key proofs; built once by the middleware."""

    def __init__(self, *, confirmation: str, keys: Sequence[KeyPair], allow_sha1: bool, clock_skew: timedelta,
                 replay: ReplayCache | None, max_body: int, remember: int = 10_000) -> None:
        if confirmation not in POLICIES:
            raise ConfigurationError(f"confirmation: must be one of {', '.join(map(repr, POLICIES))}, "
                                     f"not {confirmation!r}")
        self.policy = confirmation
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
        if self.policy != "holder-of-key" and BEARER in offered:
            return verified if verified.confirmation == BEARER else dataclasses.replace(verified, confirmation=BEARER)
        if HOLDER_OF_KEY not in offered:
            raise InvalidSecurityToken(f"token offers {sorted(offered)}, the policy requires holder-of-key",
                                       reason="This service requires a holder-of-key token.")
        if self.policy == "bearer":
            raise InvalidSecurityToken("holder-of-key token, and the policy admits bearer tokens only",
                                       reason="This service accepts bearer tokens only.")
        key = self._proof_key(verified)
        self._check_signature(verified, key, body, content_type, now, consume=consume)
        kind = "public" if isinstance(key, rsa.RSAPublicKey) else "symmetric"
        return dataclasses.replace(verified, confirmation=HOLDER_OF_KEY, proof_key=kind)

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
        signatures = [s for s in security.iterchildren(SIGNATURE)
                      if _references(s, verified.assertion_id, verified.version)]
        if len(signatures) != 1:
            raise InvalidSecurity(f"{len(signatures)} signatures reference holder-of-key token "
                                  f"{verified.assertion_id}, expected exactly 1", reason=_NO_PROOF)
        timestamps = list(security.iterchildren(_xml.qname(ns.WSU, "Timestamp")))
        stamp = wssecurity.read_timestamp(security)
        if stamp is None or stamp.expires is None:
            raise InvalidSecurity("holder-of-key proof without a wsu:Timestamp with Expires", reason=_NO_PROOF)
        wssecurity.check_timestamp(stamp, now=now, skew=self._skew)
        if stamp.created < now - MAX_AGE - self._skew:
            raise MessageExpired(f"wsu:Timestamp Created {stamp.created.isoformat()} is older than {MAX_AGE}")
        cover = [envelope.body, timestamps[0]] + [h for h in envelope.header_blocks()
                                                  if h.tag in ADDRESSING]
        algorithms = self._rsa if isinstance(key, rsa.RSAPublicKey) else self._algorithms
        proof = wssecurity.verify_message(signatures[0], key=key, algorithms=algorithms, must_cover=cover, now=now)
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
