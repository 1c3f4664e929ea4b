"""What the administration commands print: the ``Result`` of a command, its tables and fields, ``--json``.

Every administration command returns a ``Result`` holding both forms of its
answer (``data`` for ``--json``, ``text`` for a person) instead of printing as
it goes, so that both forms exist for every command and the printing, with its
failure modes (a closed pipe, a terminal that cannot show a name), lives here
once. The renderers of users, relying parties and STS settings are here too, so
that ``show``, ``list`` and the answers of changing commands look alike.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..errors import RemoteFault, TransportError
from ..model import RelyingParty, StsSettings, shown

if TYPE_CHECKING:
    from ..stores.sql import UserInfo


@dataclass(frozen=True)
class Result:
    """What an administration command produced: ``data`` for ``--json``, ``text`` for a person.

    Kept apart so that every command has both forms and the printing (and its
    failure modes) lives in one place. ``warnings`` go to stderr in both forms.
    """

    data: Any
    text: str
    warnings: tuple[str, ...] = field(default=())


def emit(result: Result, *, as_json: bool) -> None:
    """Print ``result``: its warnings on stderr, then its JSON or its text on stdout."""
    for warning in result.warnings:
        print(one_line(warning), file=sys.stderr)
    try:
        if as_json:
            print(json.dumps(result.data, indent=2, ensure_ascii=False))
        else:
            print(result.text)
        sys.stdout.flush()
    except BrokenPipeError:  # `wstrust-wsgi user list | head -1`: the reader left, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


T = TypeVar("T")


def answered(call: Callable[[], T], refused: str) -> T | int:
    """``call()``, or the exit code of the client commands: a fault is one sentence, ``refused`` then its
    reason and code (1); no answer at all is the transport's own sentence (2). On standard error."""
    try:
        return call()
    except RemoteFault as fault:
        print(f"{refused}: {fault.reason} ({fault.local_code})", file=sys.stderr)
        return 1
    except TransportError as exc:
        print(str(exc), file=sys.stderr)
        return 2


def one_line(text: object) -> str:
    """Collapse a message to one line: the contract is one sentence on stderr."""
    return " ".join(str(text).split())


def as_seconds(span: timedelta) -> int | float:
    """``span`` in seconds, as a whole number when it is one (as the options take it)."""
    seconds = span.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def duration(span: timedelta) -> str:
    """``300 s (5 min)``: seconds, as the options take them, and a size a person can judge."""
    seconds = as_seconds(span)
    text = f"{seconds} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{text} ({int(seconds // size)} {unit})"
    return text


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str) -> str:
    """Left-aligned columns two spaces apart, headers in capitals (as ``ps`` or ``kubectl get``)."""
    cells = [[shown(cell) for cell in row] for row in rows]
    if not cells:
        return empty
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = [[h.upper() for h in headers], *cells]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def fields(pairs: Sequence[tuple[str, str | Sequence[str]]]) -> str:
    """Label/value lines with the values aligned; a list value continues on following lines."""
    width = max(len(label) for label, _ in pairs)
    lines = []
    for label, value in pairs:
        values = [value] if isinstance(value, str) else list(value) or ["-"]
        for index, item in enumerate(values):
            lines.append(f"{label if index == 0 else '':<{width}}  {shown(item)}".rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------- users, parties, settings


def user_data(user: UserInfo) -> dict[str, Any]:
    """A user as ``--json`` shows it."""
    return {"name": user.name, "roles": sorted(user.roles),
            "claims": {uri: list(values) for uri, values in sorted(user.claims.items())},
            "digest_secret": user.digest_secret}


def user_text(user: UserInfo) -> str:
    """A user as a person reads it."""
    claims = [f"{uri} = {value}" for uri, values in sorted(user.claims.items()) for value in values]
    return fields([
        ("name", user.name),
        ("roles", ", ".join(sorted(user.roles)) or "-"),
        ("PasswordDigest", "yes (password kept recoverable)" if user.digest_secret else "no (PasswordText only)"),
        ("claims", claims),
    ])


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint as colon-separated hex pairs, the form people compare by eye."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def certificate_data(pem: bytes | None) -> dict[str, Any] | None:
    """A stored certificate's subject, fingerprint and expiry (or why it cannot be read)."""
    if pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return {"pem": pem.decode("ascii", "replace"), "error": "not a PEM certificate"}
    return {"subject": cert.subject.rfc4514_string(), "sha256": fingerprint(cert),
            "sha1": cert.fingerprint(hashes.SHA1()).hex(":").upper(),  # the thumbprint AD FS and Windows show
            "not_after": cert.not_valid_after_utc.isoformat(), "pem": pem.decode("ascii")}


def party_data(party: RelyingParty) -> dict[str, Any]:
    """A relying party as ``--json`` shows it (``encryption``: None when its tokens go in clear)."""
    return {"address": party.address, "token_type": party.token_type,
            "lifetime": None if party.lifetime is None else as_seconds(party.lifetime),
            "claims": None if party.claims is None else sorted(party.claims),
            "certificate": certificate_data(party.certificate_pem),
            "encryption": None if party.certificate_pem is None else {
                "algorithm": party.encryption, "key_transport": party.key_transport,
                "key_reference": party.key_reference},
            "key_types": None if party.key_types is None else sorted(party.key_types)}


def party_text(party: RelyingParty, settings: StsSettings) -> str:
    """A relying party as a person reads it; ``settings`` supply the defaults it falls back on."""
    cert = certificate_data(party.certificate_pem)
    legacy = " (legacy: CBC, no integrity)" if party.encryption.endswith("-cbc") else ""
    return fields([
        ("address", party.address),
        ("token type", f"SAML {party.token_type}"),
        ("lifetime", duration(party.lifetime) if party.lifetime is not None
         else f"STS default, {duration(settings.default_lifetime)}"),
        ("claims released", "all of the user's" if party.claims is None else sorted(party.claims) or ["none"]),
        ("encryption", "none (tokens are sent in clear)" if cert is None else
         f"{party.encryption}{legacy}, key transport {party.key_transport}, certificate named by "
         f"{party.key_reference}"),
        ("certificate", "-" if cert is None else cert.get("error") or
         [cert["subject"], f"SHA-1 thumbprint {cert['sha1']}", f"SHA-256 {cert['sha256']}",
          f"valid until {cert['not_after']}"]),
        ("key types", "all" if party.key_types is None else sorted(party.key_types)),
    ])


def settings_data(settings: StsSettings) -> dict[str, Any]:
    """The STS settings as ``--json`` shows them."""
    return {"issuer": settings.issuer, "allowed_roles": sorted(settings.allowed_roles),
            "default_lifetime": as_seconds(settings.default_lifetime),
            "clock_skew": as_seconds(settings.clock_skew),
            "signature_algorithm": settings.signature_algorithm,
            "allow_plaintext_http": settings.allow_plaintext_http}


def settings_text(settings: StsSettings) -> str:
    """The STS settings as a person reads them."""
    return fields([
        ("issuer", settings.issuer),
        ("allowed roles", ", ".join(sorted(settings.allowed_roles)) or "any (every authenticated user)"),
        ("default lifetime", duration(settings.default_lifetime)),
        ("clock skew", duration(settings.clock_skew)),
        ("signature algorithm", settings.signature_algorithm),
        ("PasswordText over HTTP", "allowed from anywhere" if settings.allow_plaintext_http
         else "no (HTTPS or loopback only)"),
    ])
