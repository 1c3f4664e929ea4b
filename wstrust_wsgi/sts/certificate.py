"""X.509-authenticated requests: the AD FS ``certificatemixed`` way of saying who is asking.

Instead of a UsernameToken, the request's ``wsse:Security`` header carries a
``wsse:BinarySecurityToken`` (ValueType ``#X509v3``) with the client's
certificate and one ``ds:Signature`` made with that certificate's key over the
``wsu:Timestamp``, the SOAP Body and ``wsa:To`` when present. The rules, in
order, each refusing with its own fault and no token:

* exactly one X.509 BinarySecurityToken and one Signature, and no
  UsernameToken beside them (which of two identities would the token be
  for? the request is refused as ambiguous);
* a Timestamp with an Expires, fresh within the clock skew, and expiring within
  the digest window (the replay cache keeps the signature until then, so a
  Timestamp a year long would pin an entry for a year);
* the certificate, by the SHA-256 of its exact DER bytes, registered to a user
  (:meth:`UserStore.user_by_certificate`); never by its subject name, and
  nothing in the message makes a certificate trusted: only the registration;
* the certificate within its validity dates now; an RSA key of 2048 bits or more;
* no lockout of that user or the client address; a bad signature counts as a
  failure, as a wrong password does;
* the signature verifies with the certificate's key and covers the envelope's
  own Body, the one Timestamp and every ``wsa:To`` (by identity, so a signed
  copy moved elsewhere covers nothing);
* its SignatureValue seen once (the STS's replay cache) until the Timestamp expires.
"""

from __future__ import annotations

import dataclasses

from base64 import b64decode
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from .. import _xml, ns, soap, wssecurity
from ..errors import FailedAuthentication, InvalidSecurity, InvalidSecurityToken, SoapFault
from ..model import Principal, certificate_fingerprint
from ..stores import ReplayCache
from ..wssecurity.signature import SIGNATURE, WSU_ID
from ..xmldsig import AlgorithmPolicy
from .lockout import Lockout

__all__ = ["certificate_principal", "has_certificate_token"]

_BST = _xml.qname(ns.WSSE, "BinarySecurityToken")
_USERNAME_TOKEN = _xml.qname(ns.WSSE, "UsernameToken")
_REFERENCE = _xml.qname(ns.WSSE, "Reference")
_TO = tuple(_xml.qname(wsa, "To") for wsa in (ns.WSA10, ns.WSA04))


def has_certificate_token(security: etree._Element, envelope: soap.Envelope | None = None) -> bool:
    """Whether the Security header carries an X.509 BinarySecurityToken (then this module authenticates).

    With ``envelope``, tokens that the RST's ``wst:UseKey`` references beside a
    UsernameToken do not count: they are the key a PublicKey request binds
    (:mod:`.proof` checks its proof), not who is asking; the password is.
    """
    tokens = [bst for bst in security.iterchildren(_BST) if bst.get("ValueType") == ns.WSSE_X509V3]
    if tokens and envelope is not None and security.find(_USERNAME_TOKEN) is not None:
        referenced = {reference.get("URI", "")[1:] for operation in envelope.body
                      for use_key in _xml.children(operation, (ns.WST13, ns.WST2005), "UseKey")
                      for reference in use_key.iter(_REFERENCE)}
        return not all(token.get(WSU_ID) in referenced for token in tokens)
    return bool(tokens)


def certificate_principal(envelope: soap.Envelope, security: etree._Element, *, users: object,
                          nonces: ReplayCache, now: datetime, skew: timedelta, window: timedelta, address: str,
                          lockout: Lockout | None) -> Principal:
    """The principal whose registered certificate signed the request, by every rule above but the roles.

    ``users`` finds certificates with ``user_by_certificate(sha256) -> Principal | None`` (an optional
    method of a :class:`~wstrust_wsgi.stores.UserStore`: without it every certificate is unknown).
    """
    tokens = list(security.iterchildren(_BST))
    signatures = list(security.iterchildren(SIGNATURE))
    if security.find(_USERNAME_TOKEN) is not None:
        raise FailedAuthentication("both a UsernameToken and an X.509 BinarySecurityToken: ambiguous requester",
                                   reason="Authenticate with a UsernameToken or an X.509 signature, not both.")
    if len(tokens) != 1 or len(signatures) != 1 or tokens[0].get("ValueType") != ns.WSSE_X509V3:
        raise InvalidSecurity(f"{len(tokens)} BinarySecurityTokens and {len(signatures)} Signatures, expected one "
                              "X509v3 token and one signature", reason=_ONE_EACH)
    stamp = security.find(_xml.qname(ns.WSU, "Timestamp"))
    timestamp = wssecurity.read_timestamp(security)
    if stamp is None or timestamp is None or timestamp.expires is None:
        raise InvalidSecurity("X.509-signed request without a Timestamp with Expires",
                              reason="An X.509-signed request needs a signed wsu:Timestamp with Expires.")
    wssecurity.check_timestamp(timestamp, now=now, skew=skew)
    if timestamp.expires > now + window + skew:
        raise InvalidSecurity(f"X.509-signed request: Timestamp Expires {timestamp.expires.isoformat()} lies beyond "
                              f"the {window} window", reason="The wsu:Timestamp expires too far in the future.")
    try:
        certificate = x509.load_der_x509_certificate(b64decode("".join(_xml.text(tokens[0]).split()),
                                                                validate=True))
        key = certificate.public_key()
    except ValueError:
        raise InvalidSecurityToken("the BinarySecurityToken is not a DER X.509 certificate",
                                   reason="The BinarySecurityToken must hold one X.509 certificate.") from None
    fingerprint = certificate_fingerprint(certificate)
    find = getattr(users, "user_by_certificate", None)
    principal = find(fingerprint) if callable(find) else None
    if principal is None:
        why = "" if callable(find) else " (the user store has no certificates)"
        raise FailedAuthentication(f"certificate sha256:{fingerprint.hex()} ({certificate.subject.rfc4514_string()})"
                                   f" is registered to no user{why}", reason=_REFUSED)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise FailedAuthentication(f"certificate of {principal.name!r} valid from {certificate.not_valid_before_utc} "
                                   f"to {certificate.not_valid_after_utc}, not now", reason=_REFUSED)
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise FailedAuthentication(f"certificate of {principal.name!r}: not an RSA key of 2048 bits or more",
                                   reason=_REFUSED)
    attempt = lockout.check(principal.name, address, now) if lockout is not None else None
    if attempt is not None and attempt.refused:
        assert lockout is not None
        lockout.failed(attempt, now)
        raise FailedAuthentication(f"{attempt.refused}: {principal.name!r} (X.509) from {address or 'in-process'} "
                                   "refused", reason=_REFUSED)
    to = [block for block in envelope.header_blocks() if block.tag in _TO]
    try:
        proof = wssecurity.verify_message(signatures[0], key=key, algorithms=AlgorithmPolicy.default(),
                                          must_cover=[envelope.body, stamp, *to], now=now)
    except SoapFault:
        if lockout is not None and attempt is not None:
            lockout.failed(attempt, now)
        raise
    if not nonces.add(f"x509:{proof.signature_value.hex()}", expires=timestamp.expires + 2 * skew, now=now):
        raise FailedAuthentication(f"X.509 signature of {principal.name!r} replayed", reason=_REFUSED)
    if lockout is not None and attempt is not None:
        lockout.succeeded(attempt, now)
    return dataclasses.replace(principal, certificate_sha256=fingerprint)


_ONE_EACH = "An X.509-signed request needs one X509v3 BinarySecurityToken and one ds:Signature."
_REFUSED = "The X.509 certificate or signature was not accepted."
