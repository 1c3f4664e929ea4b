"""Domain values and the one set of rules for their fields.

The values (:class:`Principal`, :class:`RelyingParty`, :class:`StsSettings`)
are what the stores hand to the STS, :class:`User` what the in-memory store is
given, and :class:`PasswordProof` what a user store needs from a
UsernameToken; the rules (names, addresses, claim URIs)
are what the command line, the registry and the deployment file all call, so
that a value one of them accepts is never refused by another. This module sits
at the base tier: of the package it imports only :mod:`wstrust_wsgi.errors`
(and ``cryptography`` to read a relying party's encryption certificate).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import BadValue

@dataclass(frozen=True)
class Principal:
    """An authenticated user: name, roles, and claim values (claim URI -> values).

    ``certificate_sha256`` is set by the STS when the request was authenticated
    by an X.509 signature (the SHA-256 of that certificate's DER): that one
    signature also proves possession of the certificate's key, which a Renew of
    a token bound to the same certificate relies on. It takes no part in equality.
    """

    name: str
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    certificate_sha256: bytes | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RelyingParty:
    """A service provider registered with the STS by its endpoint address.

    ``address`` is compared exactly with ``wsp:AppliesTo`` and becomes the
    token's audience. ``token_type`` is ``"2.0"`` or ``"1.1"``, used when the
    request names none. ``lifetime``: None means the STS default
    (:attr:`StsSettings.default_lifetime`). ``claims`` limits which user claims
    are released (None: all of them); roles are always released.
    ``certificate_pem`` is the party's encryption certificate (PEM): when set,
    every token for it is signed, then encrypted for that certificate's key
    (XML Encryption, :mod:`wstrust_wsgi.xmlenc`); None sends tokens in clear.
    ``encryption`` (one of :data:`ENCRYPTION_ALGORITHMS`, or ``"none"`` to keep
    the certificate for holder-of-key proof keys only), ``key_transport``
    (:data:`KEY_TRANSPORTS`) and ``key_reference`` (:data:`KEY_REFERENCES`, how
    the EncryptedKey names the certificate) say how; they matter only with a
    certificate, and are checked here.
    The same certificate is the one a symmetric holder-of-key proof key is
    encrypted for. ``key_types`` limits which WS-Trust key types the party's
    tokens may have (:data:`KEY_TYPES`; None: every one the STS issues), so that
    a party can require holder-of-key (``{"symmetric"}``).
    """

    address: str
    token_type: str = "2.0"
    lifetime: timedelta | None = None
    claims: frozenset[str] | None = None
    certificate_pem: bytes | None = None
    encryption: str = "aes256-gcm"
    key_transport: str = "rsa-oaep-mgf1p"
    key_reference: str = "issuer-serial"
    key_types: frozenset[str] | None = None

    def __post_init__(self) -> None:
        check_encryption(self.encryption, self.key_transport, self.key_reference, f"relying party {self.address}")

    @property
    def encrypts_tokens(self) -> bool:
        """Whether its tokens are encrypted: it has a certificate, and ``encryption`` is not ``"none"``."""
        return self.certificate_pem is not None and self.encryption != NO_ENCRYPTION


@dataclass(frozen=True)
class User:
    """A user of :class:`~wstrust_wsgi.stores.memory.MemoryUserStore`.

    ``digest_secret``: PasswordDigest needs the plaintext password on the
    server; keep it only for users who must use digest (True by default here,
    since the in-memory store holds the password in process memory anyway).
    """

    name: str
    password: str
    roles: Sequence[str] = ()
    claims: Mapping[str, Sequence[str]] = field(default_factory=dict)
    digest_secret: bool = True
    #: PEM certificates whose signature authenticates this user (X.509-authenticated requests), found by SHA-256.
    certificates: Sequence[bytes] = ()


class PasswordProof(Protocol):
    """What a user store needs from a WS-Security UsernameToken to check it.

    :class:`wstrust_wsgi.wssecurity.UsernameToken` is one. Defined here, at
    the base tier, so that the stores check passwords without importing the
    WS-Security layer.
    """

    @property
    def username(self) -> str:
        """The name as sent, compared exactly."""

    @property
    def password(self) -> str:
        """The password as sent (PasswordText), or the Base64 digest (PasswordDigest)."""

    @property
    def digest(self) -> bool:
        """True for PasswordDigest: check it with :meth:`digest_matches`, never compare ``password``."""

    def digest_matches(self, secret: str) -> bool:
        """Whether the digest was made from ``secret`` (the user's plaintext password), in constant time."""


#: Signature algorithms the STS can sign with, by setting value.
SIGNATURE_ALGORITHMS = ("rsa-sha256", "rsa-sha384", "rsa-sha512", "rsa-sha1")


@dataclass(frozen=True)
class StsSettings:
    """The STS's own settings (WSO2's "STS security" page), read per request.

    :param issuer: the Issuer of every assertion.
    :param allowed_roles: roles allowed to request tokens; empty allows every
        authenticated user (not the default).
    :param default_lifetime: token lifetime for relying parties without their own.
    :param clock_skew: tolerance on every time comparison.
    :param signature_algorithm: one of :data:`SIGNATURE_ALGORITHMS`
        (rsa-sha1 only for peers that cannot verify anything better).
    :param allow_plaintext_http: accept PasswordText over plain HTTP from
        non-loopback peers. Off: a password would cross the network in clear.
    """

    issuer: str
    allowed_roles: frozenset[str] = frozenset({"admin"})
    default_lifetime: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(minutes=5)
    signature_algorithm: str = "rsa-sha256"
    allow_plaintext_http: bool = False



# ---------------------------------------------------------------------------- rules

#: Content encryption of a relying party's tokens, by setting value. AES-GCM (XML Encryption 1.1)
#: authenticates what it encrypts; the CBC pair is a legacy choice for parties that cannot read
#: GCM (the .NET Framework's WIF): CBC has no integrity, which is what the published attacks on
#: XML Encryption exploit at the receiver (Jager and Somorovsky, CCS 2011).
ENCRYPTION_ALGORITHMS = ("aes256-gcm", "aes128-gcm", "aes256-cbc", "aes128-cbc")
#: ``encryption="none"``: the certificate serves holder-of-key proof keys only and tokens go in clear, for a
#: party that proves keys but cannot decrypt tokens (CXF's STS encrypts issued tokens only when told to).
NO_ENCRYPTION = "none"
#: The legacy subset of :data:`ENCRYPTION_ALGORITHMS`.
LEGACY_ENCRYPTION_ALGORITHMS = ("aes256-cbc", "aes128-cbc")
#: Key transport: ``rsa-oaep-mgf1p`` (XML Encryption 1.0, what AD FS, WIF and xmlsec1 read) or
#: ``rsa-oaep`` (XML Encryption 1.1's URI); both RSA-OAEP with SHA-1 and MGF1-SHA1. Never RSA 1.5.
KEY_TRANSPORTS = ("rsa-oaep-mgf1p", "rsa-oaep")
#: How the EncryptedKey names the party's certificate: X509IssuerSerial (WCF and AD FS), or a
#: SecurityTokenReference with the SubjectKeyIdentifier or the SHA-1 thumbprint.
KEY_REFERENCES = ("issuer-serial", "ski", "thumbprint")


#: The smallest RSA key a token is encrypted for (NIST SP 800-57: 2048 bits protect to 2030).
MIN_ENCRYPTION_KEY_BITS = 2048


def user_certificate(pem: bytes, what: str) -> tuple[bytes, x509.Certificate]:
    """A PEM certificate registered to a user, and its SHA-256 fingerprint (of the DER bytes).

    The fingerprint is the only key an X.509-authenticated request is matched
    by: exact bytes, never a subject name (anyone can get a certificate with
    someone's name from some CA).
    """
    certificate = _pem_certificate(pem, what, "user certificate")
    return certificate_fingerprint(certificate), certificate


def _pem_certificate(pem: bytes, what: str, kind: str) -> x509.Certificate:
    """``pem`` read as one PEM certificate, or a BadValue naming ``what`` and the ``kind`` of certificate."""
    if not isinstance(pem, bytes):
        raise BadValue(f"{what}: the {kind} must be PEM bytes, not {type(pem).__name__}")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise BadValue(f"{what}: the {kind} is not a PEM certificate ({exc})") from None


def certificate_fingerprint(certificate: x509.Certificate) -> bytes:
    """The SHA-256 of the certificate's DER bytes."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()


def encryption_certificate(pem: bytes, what: str, *, now: datetime | None = None) -> x509.Certificate:
    """A relying party's encryption certificate, if a token can be encrypted for it (at ``now``, when given).

    PEM, an RSA key (RSA-OAEP is the only key transport) of at least
    :data:`MIN_ENCRYPTION_KEY_BITS` bits, and, with ``now``, valid then: the
    CLI checks that when a party is registered, the STS on every request (a
    certificate expires while registered). The registry, which has no clock of
    its own, checks the rest.
    """
    certificate = _pem_certificate(pem, what, "encryption certificate")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadValue(f"{what}: the encryption certificate holds no RSA key (an {type(key).__name__}); tokens "
                       "are encrypted with RSA-OAEP, which needs one")
    if key.key_size < MIN_ENCRYPTION_KEY_BITS:
        raise BadValue(f"{what}: the encryption certificate's RSA key has {key.key_size} bits, "
                       f"at least {MIN_ENCRYPTION_KEY_BITS} are required")
    if now is not None:
        if certificate.not_valid_after_utc <= now:
            raise BadValue(f"{what}: the encryption certificate ({certificate.subject.rfc4514_string()}) expired on "
                           f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if certificate.not_valid_before_utc > now:
            raise BadValue(f"{what}: the encryption certificate ({certificate.subject.rfc4514_string()}) is not "
                           f"valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    return certificate


def check_encryption(encryption: str, key_transport: str, key_reference: str, what: str) -> None:
    """A relying party's encryption choice: each value one of its short list (names, not URIs)."""
    for value, allowed, name in ((encryption, (*ENCRYPTION_ALGORITHMS, NO_ENCRYPTION), "encryption"),
                                 (key_transport, KEY_TRANSPORTS, "key transport"),
                                 (key_reference, KEY_REFERENCES, "key reference")):
        if value not in allowed:
            raise BadValue(f"{what}: {name} must be one of {', '.join(allowed)}, not {value!r}")


#: Key types a relying party's tokens may have (WS-Trust 1.3 section 4.4: Bearer, SymmetricKey, PublicKey).
KEY_TYPES = ("bearer", "symmetric", "public")


def check_key_types(values: object, what: str) -> frozenset[str]:
    """A non-empty set of :data:`KEY_TYPES` names (a string is one name, not its letters)."""
    given = [values] if isinstance(values, str) else values
    if not isinstance(given, (list, tuple, set, frozenset)) or not given:
        raise BadValue(f"{what}: give one or more of {', '.join(KEY_TYPES)}, not {values!r}")
    wrong = [value for value in given if value not in KEY_TYPES]
    if wrong:
        raise BadValue(f"{what}: {wrong[0]!r} is not one of {', '.join(KEY_TYPES)}")
    return frozenset(given)


#: SAML versions a relying party can be given, by the names the registry, the CLI and the
#: deployment file use (``wstrust_wsgi.saml`` names its versions the same; a test pins it).
TOKEN_TYPES = ("2.0", "1.1")

_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_URN = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+$", re.IGNORECASE)
#: What :data:`_URN` accepts, in words: every message about a URN says this, so the rule and its message agree.
URN_RULE = ("a URN is urn:NAMESPACE:NAME, e.g. urn:example:service, where NAMESPACE is a letter or digit "
            "and then up to 31 letters, digits or hyphens, and NAME is not empty")


def shown(value: str) -> str:
    """``value`` with control characters escaped, so registry content cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def check_name(value: str, what: str) -> str:
    """A user or role name: non-empty, no surrounding blanks, printable, at most 255 characters.

    Surrounding blanks are refused rather than stripped: the STS compares the
    UsernameToken's Username exactly, so "bob " would be a different user.
    """
    if not isinstance(value, str):
        raise BadValue(f"{what} name: must be a string, not {value!r}")
    if not value:
        raise BadValue(f"{what} name: must not be empty")
    if value != value.strip():
        raise BadValue(f"{what} name {value!r}: must not start or end with a blank")
    if not value.isprintable():
        raise BadValue(f"{what} name {shown(value)!r}: must not contain control characters")
    if len(value) > 255:
        raise BadValue(f"{what} name: at most 255 characters, not {len(value)}")
    return value


def check_address(value: str, what: str) -> str:
    """An http(s) URL with a host, or a URN: what WS-Addressing and SAML name endpoints and issuers with.

    Relying-party addresses are compared with ``wsp:AppliesTo`` *exactly*, so
    nothing is normalised here; a value that could never match (relative,
    without a scheme, with blanks) is refused instead of being stored.
    """
    if not isinstance(value, str):
        raise BadValue(f"{what}: must be a string, not {value!r}")
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise BadValue(f"{what} {shown(value)!r}: must be an absolute URL or a URN, without blanks")
    if _URN.match(value):
        return value
    if value[:4].lower() == "urn:":  # meant as a URN: say what one must look like (RFC 8141), not what a URL is
        raise BadValue(f"{what} {value!r}: not a URN ({URN_RULE}); or give an absolute URL such as "
                       "https://host/path")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise BadValue(f"{what} {value!r}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadValue(f"{what} {value!r}: must be an absolute URL such as https://host/path, or a URN "
                       f"({URN_RULE})")
    return value


def check_claim_uri(value: str) -> str:
    """A claim name: an absolute URI, as WSO2 and WS-Federation name claims."""
    if not isinstance(value, str):
        raise BadValue(f"claim: must be a URI string, not {value!r}")
    if not _URI_SCHEME.match(value) or any(c.isspace() or not c.isprintable() for c in value) or value.endswith(":"):
        raise BadValue(f"claim {shown(value)!r}: must be an absolute URI, e.g. "
                       "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress")
    return value


def check_claim_value(value: str, uri: str) -> str:
    """A claim value: any printable text (no control characters, which logs and terminals would obey)."""
    if not isinstance(value, str):
        raise BadValue(f"claim {uri} value: must be a string, not {value!r}")
    if not value.isprintable():
        raise BadValue(f"claim {uri} value {shown(value)!r}: must not contain control characters")
    return value


def check_public_url(value: str, what: str) -> str:
    """The address clients reach an endpoint at from outside (behind a proxy), as its documents advertise it.

    An absolute http(s) URL with a host (:func:`check_address`), and no user,
    query or fragment: a WSDL port address (and later metadata) is written
    exactly as given, and clients append nothing to it before they POST.
    """
    if not isinstance(value, str) or not value.lower().startswith(("http://", "https://")):
        raise BadValue(f"{what} {value!r}: must be an http(s) URL such as https://sts.example.org/services/sts")
    check_address(value, what)
    if urlsplit(value).username is not None or "?" in value or "#" in value:
        raise BadValue(f"{what} {value!r}: must have no user, query or fragment")
    return value
