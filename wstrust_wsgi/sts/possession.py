"""Holder-of-key at renewal: what the STS keeps of a token's key, and the proof a Renew request must carry.

WS-Trust 1.3 section 5 keeps a renewed token's key semantics unchanged, and
CXF's renewer (``verifyProofOfPossession``, on by default) asks the requester
to prove it holds the token's key. So for a holder-of-key token the STS keeps,
in the issued-token record (:mod:`wstrust_wsgi.stores.tokens`):

* **SymmetricKey**: the proof key itself, *wrapped*: AES-256-GCM under a
  key-encryption key derived with HKDF-SHA256 (info :data:`KEK_INFO`) from the
  STS's signing private key, the token's full ID as associated data (a wrapped
  key moved to another record does not open), and beside it the SHA-256
  thumbprint of that signing certificate, so that after a key rollover the
  right key is tried first; every signing key the STS still holds is tried.
  The store (a database, Redis) so never holds a key that proves possession of
  a live token: reading one takes the STS's private key as well. A tampered
  wrapped key fails its GCM tag, and the renewal is refused;
* **PublicKey**: the bound certificate (base64 DER), which is not secret; or,
  for a key bound as a bare ``ds:KeyValue``, ``spki:`` and the base64 DER of
  its SubjectPublicKeyInfo.

A Renew of such a token must then carry, in its Security header, a signature
made with that key (HMAC with the symmetric key, RSA with the certificate's
key) over the RST's Body and a fresh Timestamp, its KeyInfo a
SecurityTokenReference to the token: the very proof the relying-party
middleware requires (:func:`wstrust_wsgi.wssecurity.verify_token_proof`), its
SignatureValue entered in the STS's replay cache. The requester is still
authenticated as the token's subject (UsernameToken or X.509) first. When it
authenticated by an X.509 signature with the very certificate a PublicKey
token is bound to, that signature (over the Body and a fresh Timestamp,
verified and entered in the replay cache by :mod:`.certificate`) is the proof:
one signature per request, as vCenter's clients send it.

The renewed token keeps the binding: the same symmetric key, encrypted again
for the relying party's certificate *of the moment* (a party's certificate
rollover is followed), or the same certificate.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from lxml import etree

from .. import _xml, ns, wssecurity, wstrust
from ..errors import SoapFault, UnableToRenew
from ..keys import SigningKey
from ..model import RelyingParty, certificate_fingerprint
from ..saml import SAML2, SAML11
from ..stores import ReplayCache
from ..stores.tokens import TokenRecord
from ..wstrust.proof import key_kind
from ..xmldsig import AlgorithmPolicy, HmacKey
from ..xmldsig.keyvalue import KEY_VALUE, read_key_value
from .binding import TrustCall
from .encryption import usable_certificate
from .proof import public_key_info, symmetric_key_info

__all__ = ["KEK_INFO", "ProofKeeper"]

#: The HKDF info label of the key-encryption key: names what it is for, and a version to change it by.
KEK_INFO = b"wstrust-wsgi issued-token proof key v1"
#: The oldest a Renew proof's Timestamp Created may be: as the middleware's (WSS4J's time-to-live).
MAX_AGE = timedelta(minutes=5)
_NONCE = 12
#: How a PublicKey record marks a bare key (``ds:KeyValue``) rather than a certificate.
_SPKI = "spki:"
_NO_PROOF = ("Renewing a holder-of-key token needs a signature made with its proof key over the body and "
             "timestamp.")
_HMAC = AlgorithmPolicy.of([ns.ALG_HMAC_SHA256, ns.ALG_HMAC_SHA384, ns.ALG_HMAC_SHA512, ns.ALG_SHA256,
                            ns.ALG_SHA384, ns.ALG_SHA512])
_RSA = AlgorithmPolicy.default()


def thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-256 of the certificate's DER bytes, lowercase hex: which signing key wrapped a proof key."""
    return certificate_fingerprint(certificate).hex()


def kind_of(record: TokenRecord) -> str | None:
    """``"bearer"``, ``"symmetric"`` or ``"public"`` for the record's KeyType URI in any WS-Trust version."""
    return next((found for dialect in wstrust.DIALECTS.values()
                 if (found := key_kind(dialect, record.key_type)) is not None), None)


class ProofKeeper:
    """Wraps proof keys for the issued-token record and reads them back; checks a Renew's proof with them.

    :param keys: the signing keys the STS holds now, the primary first (its key wraps; any unwraps).
    """

    def __init__(self, keys: Callable[[], Sequence[SigningKey]]) -> None:
        self._keys = keys
        self._keks: dict[str, bytes] = {}  # thumbprint -> KEK: one HKDF per key and process

    def _kek(self, key: SigningKey) -> tuple[str, bytes]:
        name = thumbprint(key.certificate)
        kek = self._keks.get(name)
        if kek is None:
            secret = key.private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption())
            kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEK_INFO).derive(secret)
            self._keks = {**self._keks, name: kek}
        return name, kek

    def kept(self, assertion_id: str, secret: bytes | None, key_info: etree._Element | None) -> tuple[str | None,
                                                                                                     str | None]:
        """(proof, wrapped by) to record for a token just issued: the symmetric ``secret`` wrapped, else the
        certificate ``key_info`` binds (PublicKey), else (None, None) for a bearer token."""
        if secret is not None:
            name, kek = self._kek(self._keys()[0])
            nonce = os.urandom(_NONCE)
            sealed = AESGCM(kek).encrypt(nonce, secret, assertion_id.encode("utf-8"))
            return b64encode(nonce + sealed).decode("ascii"), name
        found = key_info.find(f".//{_xml.qname(ns.DS, 'X509Certificate')}") if key_info is not None else None
        if found is not None:
            return "".join(_xml.text(found).split()), None
        value = key_info.find(f".//{KEY_VALUE}") if key_info is not None else None
        if value is not None:
            spki = read_key_value(value).public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            return _SPKI + b64encode(spki).decode("ascii"), None
        return None, None

    def unwrap(self, record: TokenRecord) -> bytes:
        """The symmetric proof key of ``record``, unwrapped with the signing key that wrapped it, or any held.

        :raises UnableToRenew: no key kept (an older record), or none of the held keys opens it (the
            signing key is gone, or the stored value was altered: the GCM tag fails).
        """
        if not record.proof:
            raise UnableToRenew(f"token {record.assertion_id}: its record keeps no proof key (recorded before "
                                "schema version 8)", reason=_NOT_KEPT)
        try:
            blob = b64decode(record.proof, validate=True)
        except ValueError:
            blob = b""
        keys = sorted(self._keys(), key=lambda k: thumbprint(k.certificate) != record.proof_wrapped_by)
        for key in keys:
            try:
                return AESGCM(self._kek(key)[1]).decrypt(blob[:_NONCE], blob[_NONCE:],
                                                         record.assertion_id.encode("utf-8"))
            except (InvalidTag, ValueError):
                continue
        raise UnableToRenew(f"token {record.assertion_id}: its wrapped proof key opens with none of the "
                            f"{len(keys)} signing keys held (wrapped by {record.proof_wrapped_by}; the key "
                            "retired, or the stored value altered)", reason=_NOT_KEPT)

    def proven_key(self, call: TrustCall, record: TokenRecord, nonces: ReplayCache | None) -> bytes | str:
        """The token's key, once the Renew request proved possession of it: the symmetric key's bytes, or the
        bound certificate (base64 DER) for PublicKey. A refusal is UnableToRenew (its detail in the log)."""
        kind = kind_of(record)
        if kind == "symmetric":
            secret = self.unwrap(record)
            key: HmacKey | rsa.RSAPublicKey = HmacKey(secret)
            kept: bytes | str = secret
        elif kind == "public" and record.proof:
            public = _public_key(record.proof)
            if public is None:
                raise UnableToRenew(f"token {record.assertion_id}: the recorded certificate is unusable",
                                    reason=_NOT_KEPT)
            key, kept = public, record.proof
            signed_by = call.principal.certificate_sha256
            if signed_by is not None and not record.proof.startswith(_SPKI) and \
                    hmac.compare_digest(signed_by, hashlib.sha256(b64decode(record.proof)).digest()):
                return kept  # the X.509 signature that authenticated the request is by the bound key
        else:
            raise UnableToRenew(f"token {record.assertion_id} has KeyType {record.key_type!r} and its record keeps "
                                "no key to check a proof of possession with", reason=_NOT_KEPT)
        envelope = call.envelope
        security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
        saml = SAML2 if record.token_type == SAML2.name else SAML11
        try:
            if security is None:
                raise UnableToRenew("no wsse:Security header", reason=_NO_PROOF)
            proof, stamp = wssecurity.verify_token_proof(
                security, body=envelope.body, headers=envelope.header_blocks(), token_id=record.assertion_id,
                value_type=saml.key_identifier_value_type, by_uri=saml is SAML2, key=key,
                algorithms=_RSA if isinstance(key, rsa.RSAPublicKey) else _HMAC, now=call.now,
                skew=call.settings.clock_skew, max_age=MAX_AGE)
        except SoapFault as exc:
            raise UnableToRenew(f"token {record.assertion_id}: proof of possession refused: {exc.detail}",
                                reason=_NO_PROOF) from None
        assert stamp.expires is not None
        entry = "renew-proof:" + hashlib.sha256(proof.signature_value).hexdigest()
        if nonces is not None and not nonces.add(entry, expires=stamp.expires + call.settings.clock_skew,
                                                 now=call.now):
            raise UnableToRenew(f"token {record.assertion_id}: proof signature replayed",
                                reason="The message has already been received.")
        return kept


def renewed_key_info(kept: bytes | str, party: RelyingParty, call: TrustCall) -> etree._Element:
    """The renewed token's holder-of-key KeyInfo: the same symmetric key encrypted for the party's certificate
    as it is now, or the same certificate."""
    if isinstance(kept, bytes):
        if party.certificate_pem is None:
            raise UnableToRenew(f"relying party {party.address!r} has no certificate any more to encrypt the "
                                "proof key for", reason="The relying party can no longer receive a proof key.")
        return symmetric_key_info(kept, usable_certificate(party, call.now))
    public = _public_key(kept)
    assert public is not None  # read once already, by proven_key
    return public_key_info(public, None if kept.startswith(_SPKI)
                           else x509.load_der_x509_certificate(b64decode(kept)))


_NOT_KEPT = "The holder-of-key token's proof key is not available to this STS; request a new token."


def _public_key(kept: str) -> rsa.RSAPublicKey | None:
    """The RSA key a PublicKey record keeps (a certificate, or ``spki:`` and a bare key), None if unusable."""
    try:
        if kept.startswith(_SPKI):
            public = serialization.load_der_public_key(b64decode(kept[len(_SPKI):], validate=True))
        else:
            public = x509.load_der_x509_certificate(b64decode(kept, validate=True)).public_key()
    except ValueError:
        return None
    return public if isinstance(public, rsa.RSAPublicKey) else None
