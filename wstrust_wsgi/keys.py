"""Keys and certificates: load once at start-up, pass objects afterwards.

Loading an RSA key from PEM validates it and costs tens of milliseconds, so
keys are loaded when an app is built, never per request. Trust is a list of
configured certificates (several, for key rollover); a certificate carried in
a message is never a source of trust.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import ConfigurationError, KeyPairError

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
        return cls.from_pem(_read(key_path, "signing key"), _read(cert_path, "certificate"),
                            key_name=f"signing key {key_path}", cert_name=f"certificate {cert_path}")

    @classmethod
    def generate(cls, common_name: str, *, organization: str = "wstrust-wsgi DEMO ONLY - do not use in production",
                 days: int = 30, valid_from: _dt.datetime | None = None) -> SigningKey:
        """A fresh RSA-2048 key and its self-signed certificate, in memory only (tests; nothing is written).

        ``valid_from`` (default: a day ago) lets a test that moves its clock far
        keep a certificate valid at that time. Generating a key costs tens of
        milliseconds or more, so a caller keeps the result (the testing kit
        makes one per process).
        """
        return cls(*_self_signed(common_name, organization, days, not_before=valid_from))

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, *, key_name: str, cert_name: str,
                 passphrase: bytes | None = None) -> SigningKey:
        """The one loader of a key pair: an RSA key and the certificate of its public half.

        The key is unencrypted, or encrypted with ``passphrase`` (the registry
        keeps its signing keys so, see :mod:`wstrust_wsgi.sts.keyring`).

        Raises :class:`KeyPairError` whose message names the wrong one as given
        (``key_name``/``cert_name``), so that the deployment file can name its
        field and the API its file.
        """
        try:
            private_key = serialization.load_pem_private_key(key_pem, password=passphrase)
        except TypeError:  # cryptography's signal for "encrypted, and no password given" (or the reverse)
            if passphrase is not None:
                raise KeyPairError(f"{key_name} is not encrypted, but a passphrase was given") from None
            raise KeyPairError(f"{key_name} is encrypted; it must be unencrypted, as it is read unattended "
                               "(protect it with file permissions instead)") from None
        except ValueError:
            if passphrase is not None:
                raise KeyPairError(f"{key_name}: not a PEM private key, or the passphrase is wrong") from None
            raise KeyPairError(f"{key_name} is not a PEM private key") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise KeyPairError(f"{key_name} is not an RSA key; only RSA keys can sign tokens")
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise KeyPairError(f"{cert_name} is not a PEM certificate") from None
        _check_pair(private_key, certificate, key_name=key_name, cert_name=cert_name)
        return cls(private_key, certificate)


def _check_pair(private_key: rsa.RSAPrivateKey, certificate: x509.Certificate, *, key_name: str,
                cert_name: str) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
        raise KeyPairError(f"{cert_name} does not match {key_name} (their public keys differ)")


@dataclass(frozen=True)
class KeySet:
    """The signing keys of an STS at one moment (key rollover, as AD FS does it).

    ``primary`` signs tokens and the metadata; ``published`` are the
    certificates relying parties are told to trust: the next key (published
    before it signs, so that relying parties learn it in time), the primary,
    and the previous one (until tokens it signed have expired).
    """

    primary: SigningKey
    published: tuple[x509.Certificate, ...]
    #: The private keys of other published certificates, where the source holds them (the registry's
    #: previous and next keys): what the STS wrapped with a former primary it can still read after a rollover.
    others: tuple[SigningKey, ...] = ()

    @property
    def held(self) -> tuple[SigningKey, ...]:
        """Every key pair held, the primary first."""
        return (self.primary, *self.others)

    @classmethod
    def of(cls, key: SigningKey) -> KeySet:
        """One key, nothing rolling: it signs and it is the one published."""
        return cls(key, (key.certificate,))


class KeySource(Protocol):
    """Where an STS reads its current :class:`KeySet` (the registry's signing keys, say), about once a second."""

    def signing_keys(self) -> KeySet: ...


def _read(path: PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{what} {path}: cannot be read ({exc.strerror})") from None


CertificateSource = PathLike | bytes | x509.Certificate

#: A key pair as the middleware's ``decryption_keys`` take it: a (key, certificate) tuple of paths or PEM
#: bytes, one PEM file (path or bytes) holding both, or an object with ``private_key`` and ``certificate``.
KeyPairSource = tuple[PathLike | bytes, PathLike | bytes] | PathLike | bytes | SigningKey


def load_key_pair(source: KeyPairSource, name: str) -> SigningKey:
    """A private key and its certificate from any :data:`KeyPairSource`, loaded (and matched) now.

    A decryption key is a key pair like a signing key: the certificate is what
    senders encrypt for, and it must name the private key's public half.
    Every refusal is a :class:`ConfigurationError` whose message starts with ``name``.
    """
    try:
        if isinstance(source, tuple) and len(source) == 2:
            key, cert = (item if isinstance(item, bytes) else _read(item, what)
                         for item, what in zip(source, ("key", "certificate")))
            names = [f"{what} {item[:20]!r}..." if isinstance(item, bytes) else f"{what} {item}"
                     for item, what in zip(source, ("key", "certificate"))]
            return SigningKey.from_pem(key, cert, key_name=names[0], cert_name=names[1])
        if isinstance(source, (str, bytes, os.PathLike)):
            data = source if isinstance(source, bytes) else _read(source, "key file")
            where = "PEM bytes" if isinstance(source, bytes) else str(source)
            return SigningKey.from_pem(data, data, key_name=f"{where} (private key)",
                                       cert_name=f"{where} (certificate)")
        private_key, certificate = getattr(source, "private_key", None), getattr(source, "certificate", None)
        if not isinstance(private_key, rsa.RSAPrivateKey) or not isinstance(certificate, x509.Certificate):
            raise ConfigurationError(f"give a (key, certificate) tuple, a PEM file holding both, or an object with an "
                                     f"RSA private_key and its certificate, not {type(source).__name__}")
        _check_pair(private_key, certificate, key_name="private_key", cert_name="certificate")
        return source if isinstance(source, SigningKey) else SigningKey(private_key, certificate)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None

_PEM_BEGIN = "-----BEGIN"


def load_certificate(source: CertificateSource) -> x509.Certificate:
    """A certificate from a PEM file path, PEM bytes (or text), or a certificate object."""
    if isinstance(source, x509.Certificate):
        return source
    if isinstance(source, str) and source.lstrip().startswith(_PEM_BEGIN):  # the file's text, read by the caller
        source = source.encode("ascii", "replace")
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise ConfigurationError(f"certificate: give a PEM file path, PEM bytes or an x509.Certificate, "
                                 f"not {type(source).__name__}")
    data = source if isinstance(source, bytes) else _read(source, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        where = f"{source[:40]!r}..." if isinstance(source, bytes) else str(source)
        raise ConfigurationError(f"certificate {where}: not a PEM certificate ({exc})") from None


def load_certificates(sources: CertificateSource | Iterable[CertificateSource]) -> tuple[x509.Certificate, ...]:
    """One certificate source or several (rollover): ``"sts.crt"`` is one path, as ``["sts.crt"]`` is.

    A single path is not iterated (a string is iterable, and its characters
    are not file names); ``trusted_certs`` names the argument in every refusal.
    """
    if isinstance(sources, (str, bytes, os.PathLike, x509.Certificate)):
        sources = (sources,)
    elif not isinstance(sources, Iterable):
        raise ConfigurationError(f"trusted_certs: give a certificate (path, PEM bytes or x509.Certificate) "
                                 f"or several, not {type(sources).__name__}")
    try:
        certs = tuple(load_certificate(s) for s in sources)
    except ConfigurationError as exc:
        raise ConfigurationError(f"trusted_certs: {exc}") from None
    if not certs:
        raise ConfigurationError("trusted_certs: at least one trusted certificate is required")
    return certs


def generate_demo_key_pair(common_name: str, directory: PathLike, stem: str, *, days: int = 3650) -> None:
    """Write ``stem.key`` and a self-signed ``stem.crt`` (RSA-2048, SHA-256) into ``directory``.

    For demos and tests only: the subject says "DEMO ONLY" so that nobody
    mistakes the pair for a deployment key, and existing files are replaced
    (``wstrust-wsgi certs`` regenerates them).
    """
    key, cert = _self_signed(common_name, "wstrust-wsgi DEMO ONLY - do not use in production", days)
    _write_pair(Path(directory), stem, key, cert, replace=True)


def generate_key_pair(
    common_name: str, directory: PathLike, stem: str = "sts", *, organization: str = "wstrust-wsgi",
    days: int = 1095,
) -> tuple[Path, Path]:
    """Write a deployment signing key ``stem.key`` and its self-signed ``stem.crt``; return both paths.

    RSA-2048 with a SHA-256 self-signature, as relying parties trust the STS by
    its certificate (``trusted_certs``), not through a CA chain. Three years by
    default: long enough not to surprise anyone, short enough that the rollover
    (a second trusted certificate) gets rehearsed. The key is unencrypted
    (gunicorn must read it unattended), so it is created ``0600`` from its
    first byte and its folder ``0700`` when this creates the folder.

    Never replaces anything: if either file exists, nothing is written and
    :class:`ConfigurationError` names it, because overwriting a deployed key
    silently invalidates every relying party's trust.
    """
    return _new_pair(directory, stem, days, common_name, organization)


def _new_pair(directory: PathLike, stem: str, days: int, common_name: str, organization: str,
              tls_names: Sequence[x509.GeneralName] = ()) -> tuple[Path, Path]:
    """Make a key pair and write it as ``stem.key``/``stem.crt``, never over an existing file."""
    if days < 1:
        raise ConfigurationError(f"days: must be at least 1, not {days}")
    out = Path(directory)
    for existing in (out / f"{stem}.key", out / f"{stem}.crt"):
        if existing.exists():
            raise ConfigurationError(f"{existing} already exists: not replacing a key pair")
    key, cert = _self_signed(common_name, organization, days, tls_names=tls_names)
    return _write_pair(out, stem, key, cert, replace=False)


#: A DNS name a TLS certificate may carry: letters, digits and hyphens per label, optionally
#: a leading ``*.`` wildcard (RFC 6125 6.4.3: the whole left-most label only).
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def tls_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """The subjectAltName entries for ``hosts``: an IP address as ``IPAddress``, anything else as ``DNSName``.

    Clients check the host they connected to against these entries only
    (RFC 6125; the subject CN is ignored), so a name that could never match is
    refused here rather than discovered at the first failed handshake.

    :raises ConfigurationError: no host, or one that is neither an IP address nor a DNS name.
    """
    if not hosts:
        raise ConfigurationError("TLS certificate: give at least one host name or IP address")
    names: list[x509.GeneralName] = []
    for host in hosts:
        text = host.strip().rstrip(".")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text.strip("[]"))))
            continue
        except ValueError:
            pass
        try:
            ascii_name = text.encode("idna").decode("ascii").lower()
        except UnicodeError:
            ascii_name = ""
        labels = ascii_name.split(".")
        if labels[:1] == ["*"] and len(labels) > 2:
            labels = labels[1:]
        if not ascii_name or len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise ConfigurationError(f"TLS certificate: {host!r} is neither an IP address nor a DNS name "
                                     "(letters, digits, hyphens and dots; a wildcard only as a whole first label)")
        names.append(x509.DNSName(ascii_name))
    return list(dict.fromkeys(names))


def generate_tls_pair(hosts: Sequence[str], directory: PathLike, stem: str = "tls", *,
                      days: int = 397) -> tuple[Path, Path]:
    """Write a TLS server key ``stem.key`` and a self-signed ``stem.crt`` for ``hosts``; return both paths.

    For gunicorn's ``--certfile``/``--keyfile`` on a private network: clients
    trust the certificate itself (``UrllibTransport(cafile=...)``,
    ``wstrust-wsgi client --cafile``), and hostname checking stays on because
    every host name and IP address the clients use is in subjectAltName. The
    certificate is an end-entity one (serverAuth, not a CA), so trusting it
    lets it vouch for nothing but this server. 397 days by default, the most
    public CAs may issue, so no client's policy finds it too long. Like
    :func:`generate_key_pair` it never replaces an existing file.

    :raises ConfigurationError: a bad host or ``days``, or the files exist.
    """
    names = tls_names(hosts)
    return _new_pair(directory, stem, days, str(names[0].value)[:64], "wstrust-wsgi TLS", tls_names=names)


def _self_signed(common_name: str, organization: str, days: int, *,
                 tls_names: Sequence[x509.GeneralName] = (),
                 not_before: _dt.datetime | None = None) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A fresh RSA-2048 key and a self-signed end-entity certificate (not a CA).

    With ``tls_names`` it is a TLS server certificate: those names in
    subjectAltName, extended key usage serverAuth, and the key identifiers
    that strict verifiers (OpenSSL's X509_STRICT, Python 3.13's default)
    require.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    # Backdated a day so that a peer whose clock runs behind still accepts it.
    now = not_before or _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=1)
    builder = (
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
    )
    if tls_names:
        identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            builder.add_extension(x509.SubjectAlternativeName(tls_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(identifier, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier),
                           critical=False)
        )
    return key, builder.sign(key, hashes.SHA256())


def _write_pair(out: Path, stem: str, key: rsa.RSAPrivateKey, cert: x509.Certificate, *,
                replace: bool) -> tuple[Path, Path]:
    """Write the key (created 0600, so it is never readable by others, not even briefly) and the certificate.

    With ``replace`` false the files are created exclusively (``O_EXCL``), so a
    pair that appeared meanwhile is never overwritten; if the certificate
    cannot be written the new key is removed again, leaving no half pair.
    """
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    key_path, cert_path = out / f"{stem}.key", out / f"{stem}.crt"
    if replace:
        key_path.unlink(missing_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _create(key_path, key_pem, 0o600)
    try:
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        if replace:
            cert_path.write_bytes(cert_pem)
        else:
            _create(cert_path, cert_pem, 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    return key_path, cert_path


def _create(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` (before any byte is written) and write ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have removed bits we asked for; never adds any for the key
