"""Encrypting an issued token for its relying party: sign, then encrypt (XML Encryption 1.1).

A relying party registered with an encryption certificate
(:attr:`RelyingParty.certificate_pem <wstrust_wsgi.model.RelyingParty>`) gets
its signed assertion encrypted for that certificate's key, so that nobody who
handles the token on its way (the client, a proxy, a log) reads its claims.
The plaintext is exactly the signed serialization, so the bytes the signature
covers come out of decryption unchanged. The wire forms are those of AD FS::

    SAML 2.0 (SAML Core section 2.3.4):
      <wst:RequestedSecurityToken>
        <saml2:EncryptedAssertion><xenc:EncryptedData .../></saml2:EncryptedAssertion>
    SAML 1.1 (which has no EncryptedAssertion):
      <wst:RequestedSecurityToken><xenc:EncryptedData .../>

The RSTR's attached and unattached references still name the assertion's ID:
the relying party finds it inside once decrypted.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from cryptography import x509
from lxml import etree

from .. import _xml, ns, xmlenc
from ..errors import BadValue, RequestFailed
from ..model import RelyingParty, encryption_certificate
from ..saml import SAML2, SamlVersion

#: The model's names (RelyingParty.encryption / key_transport) -> XML Encryption URIs.
_CONTENT = {"aes256-gcm": ns.ALG_AES256_GCM, "aes128-gcm": ns.ALG_AES128_GCM,
            "aes256-cbc": ns.ALG_AES256_CBC, "aes128-cbc": ns.ALG_AES128_CBC}
_TRANSPORT = {"rsa-oaep-mgf1p": ns.ALG_RSA_OAEP_MGF1P, "rsa-oaep": ns.ALG_RSA_OAEP}
_ENCRYPTED_ASSERTION = _xml.qname(ns.SAML2, "EncryptedAssertion")


def settings_for(party: RelyingParty) -> xmlenc.EncryptionSettings:
    """The :class:`~wstrust_wsgi.xmlenc.EncryptionSettings` the party's choice names.

    The OAEP digest stays SHA-1 (with MGF1-SHA1): what every peer reads
    (xmlsec1 ``--decrypt``, AD FS, WIF); OAEP's security does not rest on the
    digest's collision resistance.
    """
    return _settings(party.encryption, party.key_transport, party.key_reference)


@lru_cache(maxsize=64)
def _settings(encryption: str, key_transport: str, key_reference: str) -> xmlenc.EncryptionSettings:
    return xmlenc.EncryptionSettings(algorithm=_CONTENT[encryption], key_transport=_TRANSPORT[key_transport],
                                     reference=key_reference)  # type: ignore[arg-type]  # a model-checked name


@lru_cache(maxsize=256)
def _certificate(pem: bytes, address: str) -> x509.Certificate:
    """The parsed certificate (RSA, big enough), once per distinct PEM: the request path only checks its dates."""
    return encryption_certificate(pem, f"relying party {address}")


def usable_certificate(party: RelyingParty, now: datetime) -> x509.Certificate:
    """The party's encryption certificate if a token can be encrypted for it now.

    :raises RequestFailed: the certificate is unreadable, not RSA, too small,
        expired or not yet valid; the log says which, the client only that no
        token could be issued for this party (issuing in clear instead would
        hand the claims to whoever carries the token).
    """
    assert party.certificate_pem is not None
    try:
        certificate = _certificate(party.certificate_pem, party.address)
        if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
            encryption_certificate(party.certificate_pem, f"relying party {party.address}", now=now)  # says which
        return certificate
    except BadValue as exc:
        raise RequestFailed(f"cannot encrypt for {exc}; no token issued (rp set {party.address} --encrypt-cert "
                            "NEW.pem registers a new one)",
                            reason="The relying party's encryption certificate is not usable; no token was "
                                   "issued.") from None


def encrypt_token(version: SamlVersion, signed: bytes, party: RelyingParty, now: datetime) -> bytes:
    """``signed`` (the signed assertion's exact bytes) encrypted for ``party``, in ``version``'s wire form."""
    encrypted = xmlenc.encrypt(signed, usable_certificate(party, now), settings_for(party))
    if version is SAML2:
        wrapper = etree.Element(_ENCRYPTED_ASSERTION, nsmap={"saml2": ns.SAML2})
        wrapper.append(encrypted)
        return etree.tostring(wrapper)
    return etree.tostring(encrypted)
