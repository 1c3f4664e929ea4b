"""Keys and certificates: load once at start-up, pass objects afterwards.

Loading an RSA key from PEM validates it and costs tens of milliseconds, so
keys are loaded when an app is built, never per request. Trust is a list of
configured certificates (several, for key rollover); a certificate carried in
a message is never a source of trust.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .errors import ConfigurationError

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class SigningKey:
    """A private key and the certificate that names its public half."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_files(cls, key_path: PathLike, cert_path: PathLike) -> SigningKey:
        """Load a PEM private key and certificate; fail with a sentence naming the file."""
        key = _read(key_path, "signing key")
        try:
            private_key = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"signing key {key_path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"signing key {key_path}: only RSA keys are supported")
        certificate = load_certificate(cert_path)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if certificate.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
            raise ConfigurationError(f"certificate {cert_path} does not match the signing key {key_path}")
        return cls(private_key, certificate)


def _read(path: PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{what} {path}: cannot be read ({exc.strerror})") from None


def load_certificate(source: PathLike | bytes | x509.Certificate) -> x509.Certificate:
    """A certificate from a PEM file path, PEM bytes, or a certificate object."""
    if isinstance(source, x509.Certificate):
        return source
    data = source if isinstance(source, bytes) else _read(source, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        where = f"{source[:40]!r}..." if isinstance(source, bytes) else str(source)
        raise ConfigurationError(f"certificate {where}: not a PEM certificate ({exc})") from None


def load_certificates(sources: Iterable[PathLike | bytes | x509.Certificate]) -> tuple[x509.Certificate, ...]:
    certs = tuple(load_certificate(s) for s in sources)
    if not certs:
        raise ConfigurationError("trusted_certs: at least one trusted certificate is required")
    return certs


def generate_demo_key_pair(common_name: str, directory: PathLike, stem: str, *, days: int = 3650) -> None:
    """Write ``stem.key`` and a self-signed ``stem.crt`` (RSA-2048, SHA-256) into ``directory``.

    For demos and tests only: the key is stored unencrypted.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wstrust-wsgi DEMO ONLY - do not use in production"),
        ]
    )
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    key_file = out / f"{stem}.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    (out / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
