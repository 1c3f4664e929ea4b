"""``wstrust-wsgi keys``: the STS's signing keys in the registry, rolled over without an outage.

``list``, ``add-next (--generate | --key PEM --cert PEM)``, ``promote``,
``retire [--fingerprint FP]``, and ``rollover --auto [--dry-run]`` for a timer
(cron, a systemd timer): it adds a next key ``--generate-before`` days before
the primary's certificate expires, promotes it ``--promote-after`` days after
it was published (relying parties that refresh metadata daily have learnt it
by then), and retires the previous key once the longest token it can have
signed has expired (the longest lifetime plus the clock skew, read from the
registry). Each step happens only when due, so running it hourly is safe.

Private keys are stored as PKCS#8 PEM encrypted with a passphrase (the best
encryption the cryptography library offers) read from ``--passphrase-file`` or
``$WSTRUST_KEY_PASSPHRASE_FILE`` / ``$WSTRUST_KEY_PASSPHRASE``, never from the
command line. Every STS host signs with the new primary within a second of
``promote`` (:mod:`wstrust_wsgi.sts.keyring`).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import BadValue, KeyPairError
from ..keys import SigningKey
from ..stores.sql.keyring import KeyRecord, SigningKeys
from ..sts.keyring import passphrase_from_environment, read_passphrase
from .admin import _add_command, _registry
from .output import Result, fingerprint, table

__all__ = ["add_keys_commands"]


def _passphrase(args: argparse.Namespace) -> bytes:
    found = read_passphrase(args.passphrase_file) if args.passphrase_file else passphrase_from_environment()
    if not found:
        raise BadValue("no passphrase: give --passphrase-file FILE, or set $WSTRUST_KEY_PASSPHRASE_FILE or "
                       "$WSTRUST_KEY_PASSPHRASE (never on the command line)")
    return found


def _data(record: KeyRecord) -> dict[str, Any]:
    subject = x509.load_pem_x509_certificate(record.cert_pem).subject.rfc4514_string()
    return {"state": record.state, "fingerprint": record.fingerprint, "subject": subject,
            "not_after": record.not_after.isoformat(timespec="seconds"),
            "added": record.added.isoformat(timespec="seconds"),
            "changed": record.changed.isoformat(timespec="seconds")}


def _rows(records: list[KeyRecord]) -> str:
    data = [_data(r) for r in records]
    return table(("state", "fingerprint", "subject", "not after", "changed"),
                 [(d["state"], d["fingerprint"], d["subject"], d["not_after"], d["changed"]) for d in data],
                 empty="No signing keys in the registry (the deployment file's key signs).")


def _list(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        records = SigningKeys(registry).list()
    return Result([_data(r) for r in records], _rows(records))


def _store_next(keys: SigningKeys, key: SigningKey, passphrase: bytes, now: datetime) -> KeyRecord:
    encrypted = key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.BestAvailableEncryption(passphrase))
    return keys.add_next(fingerprint=fingerprint(key.certificate), key_pem=encrypted, cert_pem=key.certificate_pem,
                         not_after=key.certificate.not_valid_after_utc, now=now)


def _generated(args: argparse.Namespace) -> SigningKey:
    if not 1 <= args.days <= 3650:
        raise BadValue(f"--days: must be 1 to 3650, not {args.days}")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return SigningKey.generate(f"{args.common_name} {stamp}", organization="wstrust-wsgi", days=args.days)


def _add_next(args: argparse.Namespace, url: str) -> Result:
    passphrase = _passphrase(args)
    if args.generate == bool(args.key or args.cert) or bool(args.key) != bool(args.cert):
        raise BadValue("give either --generate, or both --key PEM and --cert PEM")
    if args.generate:
        key = _generated(args)
    else:
        key_pem, cert_pem = Path(args.key).read_bytes(), Path(args.cert).read_bytes()
        try:
            key = SigningKey.from_pem(key_pem, cert_pem, key_name=f"--key {args.key}", cert_name=f"--cert {args.cert}")
        except KeyPairError as exc:
            if "encrypted" not in str(exc):
                raise
            key = SigningKey.from_pem(key_pem, cert_pem, passphrase=passphrase, key_name=f"--key {args.key}",
                                      cert_name=f"--cert {args.cert}")
    with _registry(url) as registry:
        record = _store_next(SigningKeys(registry), key, passphrase, datetime.now(timezone.utc))
    return Result(_data(record), f"Added next key {record.fingerprint}: published now, signing after `keys promote`.")


def _promote(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        primary, previous = SigningKeys(registry).promote(now=datetime.now(timezone.utc))
    text = f"Promoted {primary.fingerprint}: it signs now."
    if previous is not None:
        text += f" {previous.fingerprint} is previous (published until `keys retire`)."
    return Result({"primary": _data(primary), "previous": _data(previous) if previous else None}, text)


def _retire(args: argparse.Namespace, url: str) -> Result:
    with _registry(url) as registry:
        gone = SigningKeys(registry).retire(fingerprint=args.fingerprint)
    return Result([_data(r) for r in gone],
                  "Retired " + ", ".join(r.fingerprint for r in gone) + ": no longer published nor trusted.")


def _longest_token(registry: Any) -> timedelta:
    """How long a token signed now can be used: the longest lifetime plus the clock skew."""
    settings = registry.get_settings()
    lifetimes = [settings.default_lifetime, *(p.lifetime for p in registry.list_relying_parties() if p.lifetime)]
    return max(lifetimes) + settings.clock_skew


def _rollover(args: argparse.Namespace, url: str) -> Result:
    if not args.auto:
        raise BadValue("keys rollover: give --auto (the steps by hand are add-next, promote and retire)")
    now = datetime.now(timezone.utc)
    before, after = timedelta(days=args.generate_before), timedelta(days=args.promote_after)
    done: list[str] = []
    with _registry(url) as registry:
        keys = SigningKeys(registry)
        retire_after = (timedelta(seconds=args.retire_after) if args.retire_after is not None
                        else _longest_token(registry))
        records = keys.list()
        for old in (r for r in records if r.state == "previous" and now - r.changed >= retire_after):
            done.append(f"retire {old.fingerprint} (stopped signing {old.changed.isoformat(timespec='seconds')})")
            if not args.dry_run:
                keys.retire(fingerprint=old.fingerprint)
        waiting = next((r for r in records if r.state == "next"), None)
        primary = next((r for r in records if r.state == "primary"), None)
        if waiting is not None and now - waiting.added >= after:
            done.append(f"promote {waiting.fingerprint} (published {waiting.added.isoformat(timespec='seconds')})")
            if not args.dry_run:
                keys.promote(now=now)
        elif waiting is None and (primary is None or primary.not_after - now <= before):
            key = _generated(args)
            done.append(f"add next key {fingerprint(key.certificate)} (valid until "
                        f"{key.certificate.not_valid_after_utc.isoformat(timespec='seconds')})")
            if not args.dry_run:
                _store_next(keys, key, _passphrase(args), now)
    verb = "Would" if args.dry_run else "Did"
    text = "\n".join(f"{verb} {step}." for step in done) or "Nothing is due."
    return Result({"dry_run": args.dry_run, "steps": done}, text)


def add_keys_commands(commands: Any) -> None:
    """Register ``keys`` and its actions on the subcommand group ``commands``."""
    group = commands.add_parser("keys", help="the STS's signing keys and their rollover (list, add-next, promote, "
                                             "retire, rollover)")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_command(actions, "list", _list, "list the signing keys and their states", "keys list")

    def generation(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--passphrase-file", metavar="FILE",
                            help="file whose first line encrypts the stored private key (default: "
                                 "$WSTRUST_KEY_PASSPHRASE_FILE, else $WSTRUST_KEY_PASSPHRASE)")
        parser.add_argument("--days", type=int, default=365, help="validity of a generated certificate (default 365)")
        parser.add_argument("--common-name", default="wstrust-wsgi STS signing",
                            help="subject CN of a generated certificate (the date is appended)")

    add = _add_command(actions, "add-next", _add_next, "add the next signing key (published, not yet signing)",
                       "keys add-next")
    add.add_argument("--generate", action="store_true", help="generate an RSA-2048 key and a self-signed certificate")
    add.add_argument("--key", metavar="PEM", help="an existing private key (clear, or encrypted with the passphrase)")
    add.add_argument("--cert", metavar="PEM", help="its certificate")
    generation(add)
    _add_command(actions, "promote", _promote, "the next key signs from now on; the primary becomes previous",
                 "keys promote")
    retire = _add_command(actions, "retire", _retire, "stop publishing (and trusting) the previous key(s)",
                          "keys retire")
    retire.add_argument("--fingerprint", metavar="FP", help="retire only this previous key")
    roll = _add_command(actions, "rollover", _rollover, "do the rollover steps that are due (for a timer)",
                        "keys rollover")
    roll.add_argument("--auto", action="store_true", help="decide each step from the keys' dates")
    roll.add_argument("--dry-run", action="store_true", help="say what is due, change nothing")
    roll.add_argument("--generate-before", type=float, default=30, metavar="DAYS",
                      help="add a next key this many days before the primary expires (default 30)")
    roll.add_argument("--promote-after", type=float, default=5, metavar="DAYS",
                      help="promote the next key this many days after it was added (default 5)")
    roll.add_argument("--retire-after", type=float, default=None, metavar="SECONDS",
                      help="retire a previous key this long after it stopped signing (default: the longest token "
                           "lifetime plus the clock skew, from the registry)")
    generation(roll)
