"""Setting a host up: ``certs`` (demo key pairs, or a TLS server certificate) and ``check`` (a deployment file).

``certs --tls HOST ...`` issues what gunicorn's ``--certfile``/``--keyfile``
need on a private network: a self-signed server certificate whose
subjectAltName lists every host name and IP address clients use, so that
they can trust it (``--cafile``, ``UrllibTransport(cafile=...)``) with
hostname checking on, and no openssl command is needed. Without ``--tls``,
``certs`` regenerates the DEMO-ONLY pairs of the demo.

``check FILE`` runs the start-up checks of
:func:`wstrust_wsgi.deploy.make_app` without starting a server: the file and
the signing pair, then one question to the registry, the user source (LDAP)
and the nonce cache (Redis). It prints one line per check (``ok``, ``warn``
or ``FAIL``, what was checked, the answer or the problem) and exits 0 when
every check passed, 1 when one failed.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import BadValue
from ..keys import generate_demo_key_pair, generate_tls_pair, load_certificate
from .output import fingerprint

#: Names of the checks, padded so the answers line up.
_WIDTH = 9


def _certs(args: argparse.Namespace) -> int:
    if args.tls:
        return _tls(args)
    if args.days is not None:
        raise BadValue("--days applies to the TLS certificate: give --tls HOST too")
    directory = args.dir or "certs"
    for stem, name in (("sts", "wstrust-wsgi demo STS signing"), ("service", "wstrust-wsgi demo service"),
                       ("client", "wstrust-wsgi demo client")):
        generate_demo_key_pair(name, directory, stem)
        print(f"wrote {os.path.join(directory, stem)}.key and .crt (DEMO ONLY)")
    return 0


def _tls(args: argparse.Namespace) -> int:
    directory = args.dir or "."
    days = {} if args.days is None else {"days": args.days}
    key_path, cert_path = generate_tls_pair(args.tls, directory, **days)
    cert = load_certificate(cert_path)
    print(f"wrote {key_path} (private key, mode 0600) and {cert_path}: a self-signed TLS server certificate for "
          f"{', '.join(args.tls)}, valid until {cert.not_valid_after_utc:%Y-%m-%d}, SHA-256 {fingerprint(cert)}")
    print(f"serve with: gunicorn ... --certfile {cert_path} --keyfile {key_path}")
    print(f"clients trust it with: wstrust-wsgi client --cafile {cert_path} ... "
          f"(Python: UrllibTransport(cafile=\"{cert_path}\"))")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..config import CONFIG_ENV, load_config  # not at import time: the other commands need neither
    from ..deploy import check_deployment
    from ..errors import ConfigurationError

    source = args.file or os.environ.get(CONFIG_ENV, "")
    if not source.strip():
        raise ConfigurationError(f"name the deployment file (wstrust-wsgi check /etc/wstrust/sts.toml) "
                                 f"or set {CONFIG_ENV}")
    try:
        config = load_config(source)
    except ConfigurationError as exc:  # the file, its keys or the signing pair: nothing else can be asked
        _line("FAIL", "file", str(exc))
        return 1
    cert = config.keys.loaded.certificate
    _line("ok", "file", f"{source}: every table and key known, every value checked")
    _line("ok", "keys", f"{config.keys.signing_key} and {config.keys.signing_cert}: "
                        f"{cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    for warning in config.warnings:
        _line("warn", "file", warning)
    failed = False
    for check in check_deployment(config):
        _line("ok" if check.ok else "FAIL", check.name, check.text)
        failed = failed or not check.ok
    return 1 if failed else 0


def _line(state: str, name: str, text: str) -> None:
    print(f"{state:<5}{name:<{_WIDTH}} {' '.join(text.split())}", flush=True)


def add_setup_commands(commands: Any) -> None:
    """Register ``certs`` and ``check`` on the subcommand group ``commands``."""
    certs = commands.add_parser(
        "certs", help="issue a TLS server certificate (--tls HOST), or regenerate the DEMO-ONLY key pairs",
        description="With --tls: write tls.key and a self-signed tls.crt whose subjectAltName lists the given "
                    "host names and IP addresses (for gunicorn --certfile/--keyfile; clients pass the certificate "
                    "as --cafile). Without: regenerate the DEMO-ONLY pairs sts, service and client.")
    certs.add_argument("--tls", action="append", metavar="HOST",
                       help="a host name or IP address clients use to reach the server (repeatable)")
    certs.add_argument("--dir", default=None,
                       help="output folder (default: . with --tls, else ./certs); existing TLS files are kept")
    certs.add_argument("--days", type=int, default=None, help="validity of the TLS certificate (default 397)")
    certs.set_defaults(run=_certs)

    check = commands.add_parser(
        "check", help="check a deployment file (keys, registry, LDAP, Redis) without starting the server",
        description="Run the start-up checks of wstrust_wsgi.deploy:make_app and print one line per check; "
                    "exit 0 when every check passed, 1 when one failed.")
    check.add_argument("file", nargs="?", metavar="FILE", help="the TOML file (default $WSTRUST_CONFIG)")
    check.set_defaults(run=_check)
