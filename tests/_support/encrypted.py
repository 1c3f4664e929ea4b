"""Encrypted tokens for the middleware's tests: a signed assertion put in the wire form a peer sends.

SAML 2.0: ``saml2:EncryptedAssertion`` around the ``xenc:EncryptedData``; SAML 1.1 (no
EncryptedAssertion): the bare ``xenc:EncryptedData``, as AD FS sends it. The assertion is
encrypted as the exact bytes that were signed (:func:`wstrust_wsgi.xmlenc.encrypt`).
Also the app gunicorn serves in the deployment test (:func:`gunicorn_app`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from lxml import etree

from wstrust_wsgi import LegacyCbcKey, RelyingPartyMiddleware, ns, saml
from wstrust_wsgi.xmlenc import EncryptionSettings, encrypt

from .apps import echo

ENCRYPTED_ASSERTION = f"{{{ns.SAML2}}}EncryptedAssertion"


def wrap(encrypted_data: etree._Element, version: str) -> bytes:
    """The token as it stands in wsse:Security: EncryptedAssertion for SAML 2.0, bare EncryptedData for 1.1."""
    if version == "1.1":
        return etree.tostring(encrypted_data)
    holder = etree.Element(ENCRYPTED_ASSERTION, nsmap={"saml2": ns.SAML2})
    holder.append(encrypted_data)
    return etree.tostring(holder)


def encrypted_token(assertion: bytes, certificate: x509.Certificate, *, algorithm: str = ns.ALG_AES256_GCM,
                    **settings: object) -> bytes:
    """``assertion`` (signed bytes) encrypted for ``certificate``, in its version's wire form."""
    version = saml.version_of(etree.fromstring(assertion))
    assert version is not None, "not a SAML assertion"
    settings_ = EncryptionSettings(algorithm=algorithm, **settings)  # type: ignore[arg-type]
    encrypted = encrypt(assertion, certificate, settings_)
    return wrap(encrypted, version.name)


def gunicorn_app(keydir: str, issuer: str, audience: str, peer_issuer: str) -> RelyingPartyMiddleware:
    """The echo service trusting ``keydir``/sts.crt; it decrypts with rp.key (GCM) and peer.key (CBC, for
    ``peer_issuer`` only)."""
    keys = Path(keydir)
    return RelyingPartyMiddleware(
        echo, audience=audience, issuer=[issuer, peer_issuer], trusted_certs=[keys / "sts.crt"],
        decryption_keys=[(keys / "rp.key", keys / "rp.crt"),
                         LegacyCbcKey((keys / "peer.key", keys / "peer.crt"), issuer=peer_issuer)],
    )


def sts_peer_app(keydir: str, issuer: str, audience: str) -> RelyingPartyMiddleware:
    """The echo service for the whole deployed round trip: it trusts ``keydir``/sts.crt and decrypts GCM with
    rp.key and, for our own STS as the named legacy peer, CBC with peer.key (a key of its own)."""
    keys = Path(keydir)
    return RelyingPartyMiddleware(
        echo, audience=audience, issuer=issuer, trusted_certs=[keys / "sts.crt"], require_encryption=True,
        decryption_keys=[(keys / "rp.key", keys / "rp.crt"),
                         LegacyCbcKey((keys / "peer.key", keys / "peer.crt"), issuer=issuer)],
    )
