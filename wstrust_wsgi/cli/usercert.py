"""``wstrust-wsgi user cert add|remove|list``: certificates that authenticate a user (X.509-signed requests).

A request carrying a BinarySecurityToken and a signature by its key (AD FS
``certificatemixed``) is admitted as the user its certificate is registered to
here, found by the SHA-256 of the certificate's DER bytes: registering is the
only thing that makes a certificate trusted, whoever issued it and whatever
its subject says. Removing it takes effect at the next request on every STS
host sharing the registry.
"""

from __future__ import annotations

import argparse
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .._time import utcnow
from ..errors import BadValue
from ..keys import load_certificate
from .admin import _add_command, _registry
from .output import Result

__all__ = ["add_user_cert_commands"]


def _data(name: str, fingerprint: str, certificate: x509.Certificate) -> dict[str, str]:
    return {"user": name, "sha256": fingerprint, "subject": certificate.subject.rfc4514_string(),
            "not_after": certificate.not_valid_after_utc.isoformat()}


def _add(args: argparse.Namespace, url: str) -> Result:
    from ..stores.sql.certificates import RegistryUserCertificates

    certificate = load_certificate(args.pem)
    if certificate.not_valid_after_utc <= utcnow():
        raise BadValue(f"certificate {args.pem} expired on {certificate.not_valid_after_utc:%Y-%m-%d}")
    with _registry(url) as registry:
        fingerprint = RegistryUserCertificates(registry).add(
            args.name, certificate.public_bytes(serialization.Encoding.PEM))
    return Result(_data(args.name, fingerprint, certificate),
                  f"Registered sha256:{fingerprint} ({certificate.subject.rfc4514_string()}) to {args.name!r}.")


def _remove(args: argparse.Namespace, url: str) -> Result:
    from ..stores.sql.certificates import RegistryUserCertificates

    with _registry(url) as registry:
        gone = RegistryUserCertificates(registry).remove(args.name, args.fingerprint)
    text = "\n".join(f"Removed sha256:{f} from {args.name!r}." for f in gone) or f"{args.name!r} had no certificate."
    return Result({"user": args.name, "removed": gone}, text)


def _list(args: argparse.Namespace, url: str) -> Result:
    from ..stores.sql.certificates import RegistryUserCertificates

    with _registry(url) as registry:
        held = RegistryUserCertificates(registry).certificates(args.name)
    rows = [_data(args.name, f, x509.load_pem_x509_certificate(pem)) for f, pem in held]
    text = "\n".join(f"sha256:{row['sha256']}  {row['subject']}  until {row['not_after']}" for row in rows)
    return Result(rows, text or f"No certificate is registered to {args.name!r}.")


def add_user_cert_commands(users: Any) -> None:
    """Register ``cert add|remove|list`` on the ``user`` command's subcommand group ``users``."""
    cert = users.add_parser("cert", help="manage the certificates that authenticate a user (add, remove, list)")
    actions = cert.add_subparsers(dest="cert_action", required=True, metavar="ACTION")
    add = _add_command(actions, "add", _add, "register a certificate (PEM file) to a user", "user cert add")
    add.add_argument("name", metavar="NAME")
    add.add_argument("pem", metavar="PEM")
    remove = _add_command(actions, "remove", _remove, "unregister a user's certificate (all of them without "
                                                       "FINGERPRINT)", "user cert remove")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("fingerprint", nargs="?", metavar="FINGERPRINT", help="SHA-256, as user cert list shows it")
    lister = _add_command(actions, "list", _list, "list a user's certificates", "user cert list")
    lister.add_argument("name", metavar="NAME")
