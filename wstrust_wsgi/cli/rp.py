"""The ``rp`` commands: register relying parties, and say whether their tokens are encrypted and how.

``rp add ADDRESS [--encrypt-cert PEM [--encryption ALG]]``, ``rp set ADDRESS
--encrypt-cert PEM | --no-encrypt | --encryption ALG``, ``rp list``, ``rp show``,
``rp remove``. An encryption certificate is checked here, when it is given
(PEM, an RSA key of 2048 bits or more, valid now), so that a party whose
tokens could never be encrypted is not registered; the STS checks its dates
again on every request, since a certificate expires while registered.

``--cert``, the option that kept a certificate "for encryption" before the STS
encrypted anything, is kept as a deprecated spelling of ``--encrypt-cert``:
what it stored was always meant as the encryption certificate, so scripts
keep working, and a warning says that tokens are now encrypted for it.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from .._time import utcnow
from ..errors import BadValue, RegistryError
from ..keys import load_certificate
from ..model import (
    ENCRYPTION_ALGORITHMS, KEY_REFERENCES, KEY_TRANSPORTS, LEGACY_ENCRYPTION_ALGORITHMS, NO_ENCRYPTION, TOKEN_TYPES,
    RelyingParty,
    check_address, check_claim_uri, check_key_types, encryption_certificate, shown,
)
from .admin import MAX_LIFETIME, _add_command, _party, _registry, _seconds
from .output import Result, as_seconds, duration, party_data, party_text, table

#: An encryption certificate expiring sooner than this gets a warning when registered.
EXPIRY_WARNING = timedelta(days=30)
_DEFAULTS = {"encryption": "aes256-gcm", "key_transport": "rsa-oaep-mgf1p", "key_reference": "issuer-serial"}


def _certificate(path: str, option: str, warnings: list[str]) -> bytes:
    """The PEM of the certificate at ``path``, if tokens can be encrypted for it now."""
    pem = load_certificate(path).public_bytes(serialization.Encoding.PEM)
    now = utcnow()
    certificate = encryption_certificate(pem, f"{option} {path}", now=now)
    if certificate.not_valid_after_utc - now < EXPIRY_WARNING:
        warnings.append(f"warning: {option} {path} expires on {certificate.not_valid_after_utc:%Y-%m-%d}; the STS "
                        "refuses to issue tokens for this party from then on (rp set --encrypt-cert NEW.pem)")
    return pem


def _encryption_changes(args: argparse.Namespace, warnings: list[str]) -> dict[str, Any]:
    """The encryption fields the options give (certificate, algorithm, key transport, reference)."""
    changes: dict[str, Any] = {}
    if getattr(args, "cert", None) is not None:
        if args.encrypt_cert is not None:
            raise BadValue("give --encrypt-cert only (--cert is its deprecated spelling)")
        warnings.append("warning: --cert is deprecated, use --encrypt-cert: tokens for this party are now "
                        "encrypted for that certificate")
        args.encrypt_cert = args.cert
    if args.encrypt_cert is not None:
        changes["certificate_pem"] = _certificate(args.encrypt_cert, "--encrypt-cert", warnings)
    if getattr(args, "no_encrypt", False):
        changes["certificate_pem"] = None
    for name in _DEFAULTS:
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if changes.get("encryption") in LEGACY_ENCRYPTION_ALGORITHMS:
        warnings.append(f"warning: {changes['encryption']} is a legacy choice for parties that cannot read GCM: "
                        "CBC does not protect the token's integrity (prefer aes256-gcm)")
    return changes


def _rp_add(args: argparse.Namespace, url: str) -> Result:
    address = check_address(args.address, "relying-party address")
    lifetime = (None if args.lifetime is None
                else _seconds(args.lifetime, "--lifetime", minimum=1, maximum=MAX_LIFETIME))
    claims = None if args.claim is None else frozenset(check_claim_uri(c) for c in args.claim)
    warnings: list[str] = []
    encryption = _encryption_changes(args, warnings)
    if "certificate_pem" not in encryption and encryption:
        raise BadValue(f"--{next(iter(encryption)).replace('_', '-')} says how tokens are encrypted: give "
                       "--encrypt-cert PEM too")
    key_types = None if args.key_types is None else check_key_types(args.key_types, "--key-types")
    party = RelyingParty(address, token_type=args.token_type, lifetime=lifetime, claims=claims, key_types=key_types,
                         **encryption)
    with _registry(url) as registry:
        if registry.get(address) is not None:
            raise RegistryError(f"relying party {address!r} already exists (remove it first, or change its "
                                "encryption with `rp set`)")
        registry.add_relying_party(party)
        stored = _party(registry, address)
        settings = registry.get_settings()
    text = (f"Added relying party {address} (clients must name exactly this address in wsp:AppliesTo).\n"
            + party_text(stored, settings))
    return Result(party_data(stored), text, tuple(warnings))


def _rp_set(args: argparse.Namespace, url: str) -> Result:
    warnings: list[str] = []
    changes = _encryption_changes(args, warnings)
    if args.key_types is not None:
        changes["key_types"] = None if args.key_types == ["all"] else check_key_types(args.key_types, "--key-types")
    if not changes:
        raise BadValue("nothing to change: give --encrypt-cert PEM, --no-encrypt, --encryption, --key-transport, "
                       "--key-reference or --key-types")
    with _registry(url) as registry:
        party = _party(registry, args.address)
        if (changes.get("certificate_pem", party.certificate_pem) is None
                and set(changes) - {"certificate_pem", "key_types"}):
            raise BadValue(f"relying party {shown(args.address)} has no encryption certificate: give "
                           "--encrypt-cert PEM with the algorithm options")
        stored = registry.update_relying_party(party.address, **changes)
        settings = registry.get_settings()
    said = ("tokens for it are now sent in clear" if not stored.encrypts_tokens
            else "its tokens are now encrypted as shown")
    text = (f"Changed relying party {stored.address}: {said} (a running STS applies this at its next request).\n"
            + party_text(stored, settings))
    return Result(party_data(stored), text, tuple(warnings))


def _rp_list(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        parties = sorted(registry.list_relying_parties(), key=lambda p: p.address)
        settings = registry.get_settings()
    rows = [(p.address, f"SAML {p.token_type}",
             duration(p.lifetime) if p.lifetime is not None else f"default ({as_seconds(settings.default_lifetime)} s)",
             "all" if p.claims is None else str(len(p.claims)), p.encryption if p.certificate_pem else "-")
            for p in parties]
    return Result([party_data(p) for p in parties],
                  table(("address", "token", "lifetime", "claims", "encryption"), rows,
                        empty="No relying parties (add one with `rp add ADDRESS`)."))


def _rp_show(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        party = _party(registry, args.address)
        settings = registry.get_settings()
    return Result(party_data(party), party_text(party, settings))


def _rp_remove(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        _party(registry, args.address)
        registry.remove_relying_party(args.address)
    return Result({"removed": args.address}, f"Removed relying party {shown(args.address)}.")


def _encryption_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encryption", choices=(*ENCRYPTION_ALGORITHMS, NO_ENCRYPTION), metavar="ALG",
                        help=f"content encryption: {', '.join(ENCRYPTION_ALGORITHMS)} (default aes256-gcm; the "
                             "CBC ones only for parties that cannot read GCM), or none (the certificate then serves "
                             "holder-of-key proof keys only; tokens go in clear)")
    parser.add_argument("--key-transport", choices=KEY_TRANSPORTS, metavar="ALG",
                        help="RSA-OAEP URI: rsa-oaep-mgf1p (default, XML Encryption 1.0) or rsa-oaep (1.1)")
    parser.add_argument("--key-reference", choices=KEY_REFERENCES, metavar="HOW",
                        help="how the EncryptedKey names the certificate: issuer-serial (default), ski, thumbprint")


def add_rp_commands(commands: Any) -> None:
    """Register ``rp add|set|list|show|remove`` on the subcommand group ``commands``."""
    rp = commands.add_parser("rp", help="manage relying parties (add, set, list, show, remove)")
    rps = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _add_command(rps, "add", _rp_add, "register a relying party by its endpoint address", "rp add")
    add.add_argument("address", metavar="ADDRESS", help="the exact wsp:AppliesTo address, an http(s) URL "
                     "or urn:NAMESPACE:NAME (becomes the audience)")
    add.add_argument("--token-type", choices=TOKEN_TYPES, default="2.0",
                     help="SAML version when the request names none (default 2.0)")
    add.add_argument("--lifetime", metavar="SECONDS", help="token lifetime (default: the STS default)")
    add.add_argument("--claim", action="append", metavar="URI",
                     help="release only these claims (repeatable; default: all of the user's)")
    add.add_argument("--encrypt-cert", metavar="PEMFILE",
                     help="the party's encryption certificate: its tokens are signed, then encrypted for it")
    add.add_argument("--cert", metavar="PEMFILE", help=argparse.SUPPRESS)  # deprecated: see the module docstring
    _encryption_options(add)
    add.add_argument("--key-types", type=lambda v: v.split(","), metavar="TYPES",
                     help="the key types its tokens may have, e.g. symmetric,public (default: all; symmetric "
                          "needs --encrypt-cert, which the proof key is encrypted for)")
    set_ = _add_command(rps, "set", _rp_set, "change how a relying party's tokens are encrypted, or its key types",
                        "rp set")
    set_.add_argument("address", metavar="ADDRESS")
    which = set_.add_mutually_exclusive_group()
    which.add_argument("--encrypt-cert", metavar="PEMFILE", help="encrypt its tokens for this certificate")
    which.add_argument("--no-encrypt", action="store_true", help="send its tokens in clear (forget the certificate)")
    _encryption_options(set_)
    set_.add_argument("--key-types", type=lambda v: v.split(","), metavar="TYPES",
                      help="the key types its tokens may have, e.g. bearer,symmetric, or all")
    _add_command(rps, "list", _rp_list, "list relying parties", "rp list")
    _add_command(rps, "show", _rp_show, "show one relying party", "rp show").add_argument("address", metavar="ADDRESS")
    _add_command(rps, "remove", _rp_remove, "remove a relying party", "rp remove").add_argument(
        "address", metavar="ADDRESS")
