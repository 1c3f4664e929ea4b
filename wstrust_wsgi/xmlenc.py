"""XML Encryption 1.1: an element as ``xenc:EncryptedData`` with an RSA-OAEP ``xenc:EncryptedKey``, and back.

https://www.w3.org/TR/xmlenc-core1/ . What :func:`encrypt` writes (section 3)::

    <xenc:EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element">
      <xenc:EncryptionMethod Algorithm="...xmlenc11#aes256-gcm"/>
      <ds:KeyInfo>
        <xenc:EncryptedKey>
          <xenc:EncryptionMethod Algorithm="...xmlenc#rsa-oaep-mgf1p">
            <ds:DigestMethod Algorithm="...xmldsig#sha1"/>
          </xenc:EncryptionMethod>
          <ds:KeyInfo>  X509Data/X509IssuerSerial, or a wsse:SecurityTokenReference with the
                        certificate's SKI or SHA-1 thumbprint; X509Certificate on request </ds:KeyInfo>
          <xenc:CipherData><xenc:CipherValue>RSA-OAEP(content key)</xenc:CipherValue></xenc:CipherData>
        </xenc:EncryptedKey>
      </ds:KeyInfo>
      <xenc:CipherData><xenc:CipherValue>IV || ciphertext (|| GCM tag)</xenc:CipherValue></xenc:CipherData>
    </xenc:EncryptedData>

Decryption is built against the published attacks on XML Encryption:

* **An allow-list checked before any key is touched** (:class:`DecryptionPolicy`): AES-GCM with
  RSA-OAEP by default; AES-CBC only where a peer's configuration opts in; RSA PKCS#1 v1.5 and
  3DES never. Accepting CBC or RSA 1.5 *at all* with a key breaks GCM and OAEP under that same
  key ("One Bad Apple", Jager, Paterson and Somorovsky, NDSS 2013; CXF's CVE-2012-5575 checked
  its algorithm suite after decrypting): give a CBC peer its own decryption key.
* **One error, one path** (:class:`~wstrust_wsgi.errors.DecryptionFailed`): a wrong key, bad
  OAEP padding, a bad GCM tag, bad CBC padding and a plaintext the parser refuses all raise the
  same class with the same reason and the same log text. When no key unwraps the content key, a
  random one takes its place and content decryption and parsing still run, so that neither the
  answer nor its timing tells a bad EncryptedKey from bad content (Bleichenbacher's attack on
  RSA 1.5 in XML Encryption, ESORICS 2012; Jager and Somorovsky's CBC attack, CCS 2011).
* **Nothing outside the message**: an EncryptedKey is inline in KeyInfo or reached by a
  ``ds:RetrievalMethod`` whose URI is a same-document ``#id`` inside the caller's ``scope``
  (the token); no CipherReference, no transforms, no second level of EncryptedKey.
* **The plaintext is untrusted XML**: it goes through :func:`wstrust_wsgi._xml.parse`, with its
  refusal of DTDs and entities and its size and depth limits.

How the roles use it:

* The STS signs the assertion, then ``encrypt(signed_bytes, rp_certificate, settings)`` and
  places the EncryptedData in ``saml2:EncryptedAssertion`` (SAML 2.0) or directly in
  ``wst:RequestedSecurityToken`` (SAML 1.1, as AD FS does). This module knows no SAML.
* The middleware (:mod:`wstrust_wsgi._encrypted`) builds one :class:`Decrypter` per policy at
  start-up (its ``decryption_keys``, several for rollover), finds the EncryptedData with
  :func:`encrypted_data_of` and decrypts with ``scope`` set to the token element; the returned
  element is then verified exactly as a plain token. Any refusal of a decrypted token (signature,
  conditions) raises the same ``DecryptionFailed``: otherwise the signature check becomes the
  oracle the CBC attack needs, and distinct faults would tell the bearer what the ciphertext hides.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import warnings
from base64 import b64decode, b64encode
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from . import _xml, ns
from .errors import ConfigurationError, DecryptionFailed, MalformedMessage, SecurityWarning

#: Content encryption: URI -> (key length in bytes, mode). Section 5.2.
_CONTENT: dict[str, tuple[int, Literal["gcm", "cbc"]]] = {
    ns.ALG_AES128_GCM: (16, "gcm"), ns.ALG_AES256_GCM: (32, "gcm"),
    ns.ALG_AES128_CBC: (16, "cbc"), ns.ALG_AES256_CBC: (32, "cbc"),
}
GCM_ALGORITHMS = frozenset({ns.ALG_AES128_GCM, ns.ALG_AES256_GCM})
CBC_ALGORITHMS = frozenset({ns.ALG_AES128_CBC, ns.ALG_AES256_CBC})
#: Key transport: RSA-OAEP only (section 5.5.2); RSA PKCS#1 v1.5 (5.5.1) is never accepted nor written.
KEY_TRANSPORTS = frozenset({ns.ALG_RSA_OAEP_MGF1P, ns.ALG_RSA_OAEP})
#: OAEP digests (ds:DigestMethod; SHA-1 when absent) and MGF1 functions (xenc11:MGF; MGF1-SHA1 when absent).
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    ns.ALG_SHA1: hashes.SHA1, ns.ALG_SHA256: hashes.SHA256, ns.ALG_SHA384: hashes.SHA384,
    ns.ALG_SHA512: hashes.SHA512,
}
#: npm xml-encryption's SHA-256 dialect, read on decryption only (never written): it labels the key
#: transport rsa-oaep-mgf1p, names the digest ``xmldsig#sha256`` (a URI no W3C spec defines) and
#: uses Node's OAEP, whose MGF1 takes the same digest. So the URI, which only it writes, means OAEP
#: with SHA-256 and MGF1-SHA-256: the pair xmlenc11#rsa-oaep names with mgf1sha256, already allowed.
_NPM_OAEP = {ns.ALG_SHA256_XMLENC_NPM: (ns.ALG_SHA256, ns.ALG_MGF1_SHA256)}
_OAEP_DIGESTS = frozenset(_DIGESTS) | frozenset(_NPM_OAEP)
_MGFS: dict[str, type[hashes.HashAlgorithm]] = {ns.ALG_MGF1_SHA1: hashes.SHA1, ns.ALG_MGF1_SHA256: hashes.SHA256}
_GCM_IV, _GCM_TAG, _BLOCK = 12, 16, 16
#: At most this many EncryptedKeys per EncryptedData (one per recipient; real senders write one).
MAX_ENCRYPTED_KEYS = 4

_XENC = {local: _xml.qname(ns.XENC, local) for local in (
    "EncryptedData", "EncryptedKey", "EncryptionMethod", "CipherData", "CipherValue", "CipherReference",
    "OAEPparams")}
_DS = {local: _xml.qname(ns.DS, local) for local in (
    "KeyInfo", "RetrievalMethod", "Transforms", "DigestMethod", "X509Data", "X509IssuerSerial", "X509IssuerName",
    "X509SerialNumber", "X509SKI", "X509Certificate")}
_MGF = _xml.qname(ns.XENC11, "MGF")
_STR = _xml.qname(ns.WSSE, "SecurityTokenReference")
_KEY_IDENTIFIER = _xml.qname(ns.WSSE, "KeyIdentifier")
_HOLDERS_OF_ID = etree.XPath("descendant-or-self::*[@Id = $id]")
#: The log text of every failure whose cause is secret (which key, which padding, which tag).
_SECRET_DETAIL = "decryption failed (content key, content or plaintext refused)"


class KeyPair(Protocol):
    """A private key and the certificate of its public half: :class:`wstrust_wsgi.keys.SigningKey` is one."""

    @property
    def private_key(self) -> rsa.RSAPrivateKey: ...

    @property
    def certificate(self) -> x509.Certificate: ...


# ------------------------------------------------------------------ encryption

KeyReference = Literal["issuer-serial", "ski", "thumbprint"]


@dataclass(frozen=True)
class EncryptionSettings:
    """How :func:`encrypt` encrypts for one recipient; checked at construction."""

    #: Content encryption. AES-256-GCM by default; AES-CBC only for peers that cannot read GCM
    #: (the .NET Framework's WIF), and then the peer carries the CBC risk on its side.
    algorithm: str = ns.ALG_AES256_GCM
    #: Key transport: ``rsa-oaep-mgf1p`` (what xmlsec1, AD FS and WIF read) or ``xmlenc11#rsa-oaep``.
    key_transport: str = ns.ALG_RSA_OAEP_MGF1P
    #: The OAEP digest, written as ds:DigestMethod.
    digest: str = ns.ALG_SHA1
    #: The mask generation function; only ``xmlenc11#rsa-oaep`` can name one other than MGF1-SHA1.
    mgf: str = ns.ALG_MGF1_SHA1
    #: How the EncryptedKey names the recipient's certificate.
    reference: KeyReference = "issuer-serial"
    #: Also write the certificate itself (ds:X509Certificate), for recipients that match on it.
    include_certificate: bool = False

    def __post_init__(self) -> None:
        if self.algorithm not in _CONTENT:
            raise ConfigurationError(f"algorithm: {self.algorithm!r} is not one of {sorted(_CONTENT)}")
        if self.key_transport not in KEY_TRANSPORTS:
            raise ConfigurationError(f"key_transport: {self.key_transport!r} is not one of {sorted(KEY_TRANSPORTS)}")
        if self.digest not in _DIGESTS:
            raise ConfigurationError(f"digest: {self.digest!r} is not one of {sorted(_DIGESTS)}")
        if self.mgf not in _MGFS:
            raise ConfigurationError(f"mgf: {self.mgf!r} is not one of {sorted(_MGFS)}")
        if self.key_transport == ns.ALG_RSA_OAEP_MGF1P and self.mgf != ns.ALG_MGF1_SHA1:
            raise ConfigurationError("mgf: rsa-oaep-mgf1p always uses MGF1 with SHA-1; use xmlenc11#rsa-oaep")
        if self.reference not in ("issuer-serial", "ski", "thumbprint"):
            raise ConfigurationError(f"reference: {self.reference!r} is not issuer-serial, ski or thumbprint")


def _oaep(digest: str, mgf: str, label: bytes | None) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(_MGFS[mgf]()), algorithm=_DIGESTS[digest](), label=label)


def _ski(certificate: x509.Certificate) -> bytes:
    """The certificate's SubjectKeyIdentifier extension, or RFC 5280's method 1 where it has none."""
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def _encrypt_content(algorithm: str, key: bytes, data: bytes) -> bytes:
    """IV || ciphertext (|| tag): section 5.2.4 for GCM (96-bit IV, 128-bit tag), 5.2.2 for CBC."""
    if _CONTENT[algorithm][1] == "gcm":
        iv = os.urandom(_GCM_IV)
        return iv + AESGCM(key).encrypt(iv, data, None)
    iv = os.urandom(_BLOCK)
    pad = _BLOCK - len(data) % _BLOCK  # section 5.2: the last octet counts the padding; PKCS#7 fills it
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()


def _name_certificate(key_info: etree._Element, certificate: x509.Certificate, settings: EncryptionSettings) -> None:
    """Write how the EncryptedKey names the recipient's certificate (WSS X.509 Token Profile 1.1 section 3.2)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    x509_data = None
    if settings.reference == "issuer-serial":
        x509_data = etree.SubElement(key_info, _DS["X509Data"])
        issuer_serial = etree.SubElement(x509_data, _DS["X509IssuerSerial"])
        etree.SubElement(issuer_serial, _DS["X509IssuerName"]).text = certificate.issuer.rfc4514_string()
        etree.SubElement(issuer_serial, _DS["X509SerialNumber"]).text = str(certificate.serial_number)
    else:
        reference = etree.SubElement(key_info, _STR, nsmap={"wsse": ns.WSSE})
        identifier = etree.SubElement(reference, _KEY_IDENTIFIER)
        identifier.set("ValueType", ns.WSSE_X509_SKI if settings.reference == "ski" else ns.WSSE_THUMBPRINT_SHA1)
        identifier.set("EncodingType", ns.WSSE_BASE64)
        identifier.text = _b64(_ski(certificate) if settings.reference == "ski" else hashlib.sha1(der).digest())
    if settings.include_certificate:
        if x509_data is None:
            x509_data = etree.SubElement(key_info, _DS["X509Data"])
        etree.SubElement(x509_data, _DS["X509Certificate"]).text = _b64(der)


def encrypt(
    plaintext: bytes | etree._Element, certificate: x509.Certificate,
    settings: EncryptionSettings = EncryptionSettings(), *, data_id: str | None = None,
) -> etree._Element:
    """Encrypt one element for the holder of ``certificate``'s key; return a new ``xenc:EncryptedData``.

    ``plaintext`` is the element, or its exact serialized bytes (a signed
    assertion is passed as the bytes that were signed, so that nothing is
    re-serialized); the bytes must be a standalone document (every namespace
    declared), as the recipient parses them alone. A fresh content key is
    made per call and sent RSA-OAEP encrypted in an inline EncryptedKey.
    """
    data = plaintext if isinstance(plaintext, bytes) else etree.tostring(plaintext)
    content_key = os.urandom(_CONTENT[settings.algorithm][0])
    cipher_value = _encrypt_content(settings.algorithm, content_key, data)
    encrypted_data = etree.Element(_XENC["EncryptedData"], nsmap={"xenc": ns.XENC, "ds": ns.DS})
    if data_id is not None:
        encrypted_data.set("Id", data_id)
    encrypted_data.set("Type", ns.XENC_TYPE_ELEMENT)
    etree.SubElement(encrypted_data, _XENC["EncryptionMethod"]).set("Algorithm", settings.algorithm)
    etree.SubElement(encrypted_data, _DS["KeyInfo"]).append(encrypt_key(content_key, certificate, settings))
    cipher_data = etree.SubElement(encrypted_data, _XENC["CipherData"])
    etree.SubElement(cipher_data, _XENC["CipherValue"]).text = _b64(cipher_value)
    return encrypted_data


def encrypt_key(key: bytes, certificate: x509.Certificate,
                settings: EncryptionSettings = EncryptionSettings()) -> etree._Element:
    """``key`` RSA-OAEP encrypted for ``certificate``'s holder, an ``xenc:EncryptedKey`` (section 3.5.1);
    also how a holder-of-key assertion carries its symmetric proof key."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ConfigurationError("encryption certificate: not an RSA key; XML Encryption here needs RSA-OAEP")
    wrapped = public_key.encrypt(key, _oaep(settings.digest, settings.mgf, None))
    encrypted_key = etree.Element(_XENC["EncryptedKey"], nsmap={"xenc": ns.XENC, "ds": ns.DS})
    method = etree.SubElement(encrypted_key, _XENC["EncryptionMethod"])
    method.set("Algorithm", settings.key_transport)
    etree.SubElement(method, _DS["DigestMethod"]).set("Algorithm", settings.digest)
    if settings.key_transport == ns.ALG_RSA_OAEP:
        etree.SubElement(method, _MGF, nsmap={"xenc11": ns.XENC11}).set("Algorithm", settings.mgf)
    _name_certificate(etree.SubElement(encrypted_key, _DS["KeyInfo"]), certificate, settings)
    cipher_data = etree.SubElement(encrypted_key, _XENC["CipherData"])
    etree.SubElement(cipher_data, _XENC["CipherValue"]).text = _b64(wrapped)
    return encrypted_key


# ------------------------------------------------------------------ decryption policy and keys


@dataclass(frozen=True)
class DecryptionPolicy:
    """What encrypted data from one peer may use: an allow-list, checked before any decryption.

    The default accepts AES-128/256-GCM content with RSA-OAEP key transport
    (either URI, OAEP digest SHA-1/256/384/512, MGF1 with SHA-1/256). RSA
    PKCS#1 v1.5 and 3DES are never accepted.
    """

    #: Also accept AES-128/256-CBC content, for a named peer that sends nothing else (AD FS,
    #: WCF, Okta default to aes256-cbc). CBC gives no integrity, so a peer that can tell a
    #: padding error from a parse error decrypts anything; this module gives no such signal, but
    #: accepting CBC under a key also exposes that key's GCM traffic (One Bad Apple): use a
    #: decryption key for CBC peers that no GCM peer encrypts for. Issues a SecurityWarning.
    allow_cbc: bool = False
    #: Caps on the decrypted document, applied by :func:`wstrust_wsgi._xml.parse`.
    max_bytes: int = _xml.DEFAULT_MAX_BYTES
    max_depth: int = _xml.DEFAULT_MAX_DEPTH

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_depth < 1:
            raise ConfigurationError(f"max_bytes and max_depth: must be positive, not {self.max_bytes}, "
                                     f"{self.max_depth}")
        if self.allow_cbc:
            warnings.warn("allow_cbc: AES-CBC encrypted tokens are accepted; CBC has no integrity of its own "
                          "(give this peer a decryption key of its own)", SecurityWarning, stacklevel=3)

    @property
    def content_algorithms(self) -> frozenset[str]:
        return GCM_ALGORITHMS | CBC_ALGORITHMS if self.allow_cbc else GCM_ALGORITHMS


class _Key(NamedTuple):
    """A decryption key with the names an EncryptedKey may give its certificate, computed once."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    der: bytes
    ski: bytes
    thumbprint: bytes

    @classmethod
    def of(cls, pair: KeyPair) -> _Key:
        if not isinstance(pair.private_key, rsa.RSAPrivateKey):
            raise ConfigurationError("decryption key: not an RSA private key")
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if pair.certificate.public_key().public_bytes(*spki) != pair.private_key.public_key().public_bytes(*spki):
            raise ConfigurationError("decryption key: its certificate names another public key")
        der = pair.certificate.public_bytes(serialization.Encoding.DER)
        return cls(pair.private_key, pair.certificate, der, _ski(pair.certificate), hashlib.sha1(der).digest())

    def issued_as(self, issuer: str, serial: str) -> bool:
        if serial.strip() != str(self.certificate.serial_number):
            return False
        if issuer.strip() == self.certificate.issuer.rfc4514_string():
            return True
        try:
            return x509.Name.from_rfc4514_string(issuer.strip()) == self.certificate.issuer
        except ValueError:
            return False


@dataclass(frozen=True)
class Decrypted:
    """What :meth:`Decrypter.decrypt` returns: the decrypted element, parsed alone, and how it was protected.

    Decryption proves nothing about who wrote the data (anyone may encrypt for
    a public key): verify the element's signature before reading it.
    """

    #: The decrypted element, the root of its own tree (parsed by the hardened parser).
    element: etree._Element = field(repr=False)
    #: The exact decrypted bytes (what the sender serialized, e.g. a signed assertion).
    plaintext: bytes = field(repr=False)
    algorithm: str
    key_transport: str
    #: The certificate of the decryption key that unwrapped the content key.
    certificate: x509.Certificate


class _EncryptedKey(NamedTuple):
    """One EncryptedKey after the public checks: its padding, wrapped key and the keys it names."""

    algorithm: str
    oaep: padding.OAEP
    wrapped: bytes
    named: tuple[_Key, ...]


class _Plan(NamedTuple):
    """Everything read from the message before any secret is used."""

    algorithm: str
    cipher_value: bytes
    encrypted_keys: tuple[_EncryptedKey, ...]


def _refuse(detail: str) -> DecryptionFailed:
    return DecryptionFailed(detail)


def encrypted_data_of(token: etree._Element) -> etree._Element:
    """``token`` if it is an ``xenc:EncryptedData``, else its one EncryptedData child (``saml2:EncryptedAssertion``)."""
    if token.tag == _XENC["EncryptedData"]:
        return token
    found = list(token.iterchildren(_XENC["EncryptedData"]))
    if len(found) != 1:
        raise _refuse(f"{etree.QName(token).localname} holds {len(found)} EncryptedData elements, expected 1")
    return found[0]


def _base64(element: etree._Element | None, what: str) -> bytes:
    if element is None:
        raise _refuse(f"no {what}")
    try:
        return b64decode("".join(_xml.text(element).split()), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(f"{what} is not base64") from None


def _algorithm(method: etree._Element | None, allowed: frozenset[str], what: str) -> str:
    """The Algorithm of ``method`` if the allow-list holds it (section 3.2 / 3.5.1)."""
    uri = method.get("Algorithm") if method is not None else None
    if uri is None or uri not in allowed:
        raise _refuse(f"{what} {uri!r} is not allowed by the decryption policy (allowed: {sorted(allowed)})")
    return uri


class Decrypter:
    """Decrypts ``xenc:EncryptedData`` with configured keys under one :class:`DecryptionPolicy`.

    ``keys`` are tried in order (several for rollover); an EncryptedKey that
    names a certificate (X509IssuerSerial, X509SKI, X509Certificate, or a
    SecurityTokenReference with an SKI or SHA-1 thumbprint) is tried with the
    key of that certificate only; one that names none of them, with every key.
    What the message names only chooses among configured keys. Stateless after
    construction, so one Decrypter serves every thread.
    """

    def __init__(self, keys: Sequence[KeyPair], *, policy: DecryptionPolicy | None = None) -> None:
        self._keys = tuple(_Key.of(k) for k in keys)
        if not self._keys:
            raise ConfigurationError("decryption_keys: at least one decryption key is required")
        self.policy = policy if policy is not None else DecryptionPolicy()

    # -------------------------------------------------------------- public checks (no secret used)

    def _named(self, key_info: etree._Element | None) -> tuple[_Key, ...] | None:
        """The configured keys the EncryptedKey's KeyInfo names; None when it names no certificate."""
        if key_info is None:
            return None
        names = False
        found: list[_Key] = []
        holders = [key_info, *key_info.iterchildren(_STR)]
        for holder in holders:
            for x509_data in holder.iterchildren(_DS["X509Data"]):
                for item in x509_data:
                    names = names or item.tag in (_DS["X509IssuerSerial"], _DS["X509SKI"], _DS["X509Certificate"])
                    if item.tag == _DS["X509IssuerSerial"]:
                        issuer = _xml.text(_xml.only(item, _DS["X509IssuerName"]))
                        serial = _xml.text(_xml.only(item, _DS["X509SerialNumber"]))
                        found += [k for k in self._keys if k.issued_as(issuer, serial)]
                    elif item.tag == _DS["X509SKI"]:
                        found += [k for k in self._keys if k.ski == _base64(item, "X509SKI")]
                    elif item.tag == _DS["X509Certificate"]:
                        found += [k for k in self._keys if k.der == _base64(item, "X509Certificate")]
        for reference in key_info.iterchildren(_STR):
            for identifier in reference.iterchildren(_KEY_IDENTIFIER):
                value_type = identifier.get("ValueType")
                if value_type == ns.WSSE_X509_SKI:
                    names = True
                    found += [k for k in self._keys if k.ski == _base64(identifier, "KeyIdentifier")]
                elif value_type == ns.WSSE_THUMBPRINT_SHA1:
                    names = True
                    found += [k for k in self._keys if k.thumbprint == _base64(identifier, "KeyIdentifier")]
        if not names:
            return None
        return tuple(k for k in self._keys if any(k is f for f in found))

    def _encrypted_key(self, element: etree._Element) -> _EncryptedKey:
        """Check one EncryptedKey's algorithms against the policy (section 5.5.2) and read it."""
        method = _xml.only(element, _XENC["EncryptionMethod"])
        transport = _algorithm(method, KEY_TRANSPORTS, "key transport")
        assert method is not None
        digest_method = _xml.only(method, _DS["DigestMethod"])
        digest = ns.ALG_SHA1 if digest_method is None else _algorithm(digest_method, _OAEP_DIGESTS, "OAEP digest")
        mgf_method = _xml.only(method, _MGF)
        if mgf_method is not None and transport == ns.ALG_RSA_OAEP_MGF1P:
            raise _refuse("rsa-oaep-mgf1p names an MGF; it has MGF1 with SHA-1 built in")
        mgf = _algorithm(mgf_method, frozenset(_MGFS), "MGF") if mgf_method is not None else ns.ALG_MGF1_SHA1
        if digest in _NPM_OAEP:
            if transport != ns.ALG_RSA_OAEP_MGF1P:
                raise _refuse(f"OAEP digest {digest!r} is read only as npm xml-encryption writes it, "
                              "with rsa-oaep-mgf1p")
            digest, mgf = _NPM_OAEP[digest]
        params = _xml.only(method, _XENC["OAEPparams"])
        label = _base64(params, "OAEPparams") if params is not None else None
        key_info = _xml.only(element, _DS["KeyInfo"])
        if key_info is not None and any(child.tag in (_XENC["EncryptedKey"], _DS["RetrievalMethod"])
                                        for child in key_info):
            raise _refuse("an EncryptedKey whose key is itself encrypted or retrieved is not accepted")
        cipher_data = _xml.only(element, _XENC["CipherData"])
        if cipher_data is None or _xml.only(cipher_data, _XENC["CipherReference"]) is not None:
            raise _refuse("EncryptedKey has no CipherData/CipherValue (a CipherReference is never followed)")
        wrapped = _base64(_xml.only(cipher_data, _XENC["CipherValue"]), "EncryptedKey CipherValue")
        # A name that matches no configured key (a DN written another way, a certificate renewed
        # under the same key) falls back to every key: the name only orders the work, never trust.
        named = self._named(key_info)
        return _EncryptedKey(transport, _oaep(digest, mgf, label), wrapped, named or self._keys)

    def _retrieved(self, method: etree._Element, scope: etree._Element) -> etree._Element:
        """The EncryptedKey a ds:RetrievalMethod points at: a same-document ``#id`` inside ``scope`` only."""
        if method.get("Type") != ns.XENC_TYPE_ENCRYPTED_KEY:
            raise _refuse(f"RetrievalMethod Type {method.get('Type')!r} is not xenc#EncryptedKey")
        if _xml.only(method, _DS["Transforms"]) is not None:
            raise _refuse("RetrievalMethod with Transforms is not accepted")
        uri = method.get("URI") or ""
        if not uri.startswith("#") or len(uri) < 2:
            raise _refuse(f"RetrievalMethod URI {uri!r} is not a same-document #id")
        holders = list(_HOLDERS_OF_ID(scope, id=uri[1:]))
        if len(holders) != 1 or holders[0].tag != _XENC["EncryptedKey"]:
            raise _refuse(f"RetrievalMethod URI {uri!r} names {len(holders)} elements in the token, "
                          "expected one EncryptedKey")
        return holders[0]

    def _plan(self, encrypted_data: etree._Element, scope: etree._Element) -> _Plan:
        if encrypted_data.tag != _XENC["EncryptedData"]:
            raise _refuse(f"{encrypted_data.tag} is not xenc:EncryptedData")
        if encrypted_data.get("Type") not in (None, ns.XENC_TYPE_ELEMENT):
            raise _refuse(f"EncryptedData Type {encrypted_data.get('Type')!r}: only an encrypted element is accepted")
        algorithm = _algorithm(_xml.only(encrypted_data, _XENC["EncryptionMethod"]),
                               self.policy.content_algorithms, "content encryption")
        key_info = _xml.only(encrypted_data, _DS["KeyInfo"])
        if key_info is None:
            raise _refuse("EncryptedData has no KeyInfo")
        elements = list(key_info.iterchildren(_XENC["EncryptedKey"]))
        elements += [self._retrieved(m, scope) for m in key_info.iterchildren(_DS["RetrievalMethod"])]
        if not elements:
            raise _refuse("EncryptedData's KeyInfo holds no EncryptedKey and no RetrievalMethod to one")
        if len(elements) > MAX_ENCRYPTED_KEYS:
            raise _refuse(f"{len(elements)} EncryptedKeys, at most {MAX_ENCRYPTED_KEYS} are accepted")
        encrypted_keys = tuple(self._encrypted_key(e) for e in elements)  # every one passes the policy
        cipher_data = _xml.only(encrypted_data, _XENC["CipherData"])
        if cipher_data is None or _xml.only(cipher_data, _XENC["CipherReference"]) is not None:
            raise _refuse("EncryptedData has no CipherData/CipherValue (a CipherReference is never followed)")
        cipher_value = _base64(_xml.only(cipher_data, _XENC["CipherValue"]), "EncryptedData CipherValue")
        mode = _CONTENT[algorithm][1]
        shortest = _GCM_IV + _GCM_TAG if mode == "gcm" else 2 * _BLOCK
        if len(cipher_value) < shortest or (mode == "cbc" and len(cipher_value) % _BLOCK):
            raise _refuse(f"CipherValue of {len(cipher_value)} bytes cannot be {algorithm} output")
        if len(cipher_value) > self.policy.max_bytes + shortest:
            raise _refuse(f"CipherValue of {len(cipher_value)} bytes exceeds the limit of {self.policy.max_bytes}")
        return _Plan(algorithm, cipher_value, encrypted_keys)

    # -------------------------------------------------------------- the one secret path

    def _content_key(self, plan: _Plan) -> tuple[bytes, _Key | None, str]:
        """The content key, the key that unwrapped it and the transport; a random key and None when none did.

        A key of the wrong length is no key (anyone can OAEP-encrypt any bytes
        to a public key). The random stand-in keeps the rest of the path, and
        so the answer and its timing, the same as for a bad ciphertext.
        """
        size = _CONTENT[plan.algorithm][0]
        for encrypted_key in plan.encrypted_keys:
            for key in encrypted_key.named:
                try:
                    content_key = key.private_key.decrypt(encrypted_key.wrapped, encrypted_key.oaep)
                except ValueError:
                    continue
                if len(content_key) == size:
                    return content_key, key, encrypted_key.algorithm
        return os.urandom(size), None, ""

    @staticmethod
    def _content(algorithm: str, key: bytes, cipher_value: bytes) -> tuple[bytes, bool]:
        """The plaintext and whether it decrypted well (GCM tag, CBC padding), without an early return.

        A CBC plaintext whose padding is bad is still handed on whole to the
        parser, so that a padding error and a parse error cost the same work.
        """
        if _CONTENT[algorithm][1] == "gcm":
            try:
                return AESGCM(key).decrypt(cipher_value[:_GCM_IV], cipher_value[_GCM_IV:], None), True
            except InvalidTag:
                return b"", False
        decryptor = Cipher(algorithms.AES(key), modes.CBC(cipher_value[:_BLOCK])).decryptor()
        padded = decryptor.update(cipher_value[_BLOCK:]) + decryptor.finalize()
        pad = padded[-1]
        good = 1 <= pad <= _BLOCK  # section 5.2: only the last octet is defined; the others are arbitrary
        return padded[:-pad] if good else padded, good

    def unwrap(self, encrypted_key: etree._Element, *, sizes: range) -> bytes:
        """The key an ``xenc:EncryptedKey`` carries (a proof key), of a length in ``sizes``: the content
        keys' allow-list (RSA-OAEP only), one DecryptionFailed for every failure."""
        try:
            found = self._encrypted_key(encrypted_key) if encrypted_key.tag == _XENC["EncryptedKey"] else None
        except MalformedMessage as exc:
            raise _refuse(f"malformed EncryptedKey: {exc}") from None
        for key in found.named if found is not None else ():
            try:
                value = key.private_key.decrypt(found.wrapped, found.oaep)  # type: ignore[union-attr]
            except ValueError:
                continue
            if len(value) in sizes:
                return value
        raise _refuse("no configured key unwraps the EncryptedKey to a key of an allowed length")

    def decrypt(self, encrypted_data: etree._Element, *, scope: etree._Element | None = None) -> Decrypted:
        """Decrypt ``encrypted_data`` (see :func:`encrypted_data_of`) or raise :class:`DecryptionFailed`.

        :param scope: the element a ``ds:RetrievalMethod`` may point into (the
            token, e.g. ``saml2:EncryptedAssertion``); the whole document by default.
        """
        try:
            plan = self._plan(encrypted_data, scope if scope is not None else encrypted_data.getroottree().getroot())
        except MalformedMessage as exc:  # a duplicated element, text where none belongs
            raise _refuse(f"malformed EncryptedData: {exc}") from None
        content_key, key, transport = self._content_key(plan)
        plaintext, good = self._content(plan.algorithm, content_key, plan.cipher_value)
        element = None
        try:
            element = _xml.parse(plaintext, max_bytes=self.policy.max_bytes, max_depth=self.policy.max_depth)
        except MalformedMessage:
            good = False
        if not good or key is None or element is None:
            raise _refuse(_SECRET_DETAIL)
        return Decrypted(element, plaintext, plan.algorithm, transport, key.certificate)


def decrypt(encrypted_data: etree._Element, keys: Sequence[KeyPair], *, policy: DecryptionPolicy | None = None,
            scope: etree._Element | None = None) -> Decrypted:
    """One-off :meth:`Decrypter.decrypt`; build a :class:`Decrypter` once where keys serve many messages."""
    return Decrypter(keys, policy=policy).decrypt(encrypted_data, scope=scope)


__all__ = [
    "CBC_ALGORITHMS", "GCM_ALGORITHMS", "KEY_TRANSPORTS", "MAX_ENCRYPTED_KEYS", "Decrypted", "Decrypter",
    "DecryptionPolicy", "EncryptionSettings", "KeyPair", "KeyReference", "decrypt", "encrypt", "encrypt_key",
    "encrypted_data_of",
]
