"""The ``wstrust-wsgi`` command (also ``python -m wstrust_wsgi``).

Subcommands:

``client``  the WSO2 sample client's steps: request a token from the STS, print
            it, call the service with it, print the reply.
``certs``   issue a TLS server certificate for given hosts (``--tls HOST``), or
            (re)generate the DEMO-ONLY key pairs for the STS, the service and a client.
``check``   run a deployment file's start-up checks without starting the server.
``diagnose`` explain, check by check, why the relying party would refuse (or admit) a token
            (:mod:`.diagnose`; exit 0 admitted, 1 refused, 2 bad input).

Administration (WSO2 Identity Server's management-console steps, as commands,
on the SQL registry a running STS reads; changes reach it without a restart):

``init``    create the registry and the STS signing key pair.
``user``    add, list, show, passwd, grant, revoke, claim, unclaim, remove, unlock;
            ``user cert add|remove|list``: certificates that authenticate a user (:mod:`.usercert`).
``role``    add, list, remove.
``sts``     show, set (issuer, allowed roles, lifetime, clock skew, algorithm, plain HTTP).
``rp``      add, list, show, remove relying parties (service providers).
``keys``    list, add-next, promote, retire, rollover --auto: the STS's rolling signing keys.
``delegation``  add, list, remove who may use OnBehalfOf and ActAs for whom (:mod:`.delegation`).

Every administration command takes ``--registry URL`` (default: ``$WSTRUST_REGISTRY``,
else ``sqlite:///./wstrust.db``) and ``--json`` (machine-readable output on
stdout), either before the command name or after it. Exit codes: 0 done;
1 the registry refused (unknown or duplicate user, role or relying party, or a
database error); 2 a bad value (usage, invalid URL or number, unreadable file,
no registry); 130 interrupted. Passwords are read from a prompt (twice) or,
with ``--password-stdin``, from standard input, never from the command line.

Failures print one plain sentence and exit non-zero; never a traceback.
``wstrust-wsgi --version`` prints the version.

Where things live: this module builds the parser, runs a command and turns
every failure into one line and an exit code (the one place that knows the
exit codes); :mod:`.admin` holds the administration commands, :mod:`.client`
the ``client`` command, :mod:`.setup` ``certs`` and ``check``, :mod:`.diagnose`
and :mod:`.report` ``diagnose``, :mod:`.demo` what only the demonstration needs (the demo addresses and echo message) and :mod:`.output` what the
administration commands print (tables, fields, ``--json``).
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import sys
from collections.abc import Sequence

from .. import __version__
from .._urls import redact_url
from ..errors import BadValue, ConfigurationError, RegistryError
from .admin import DEFAULT_REGISTRY, REGISTRY_ENV, Handler, add_admin_commands, admin_options, registry_url
from .client import add_client_command
from .keys import add_keys_commands
from .delegation import add_delegation_commands
from .demo import ECHO_NS, echo_payload
from .diagnose import add_diagnose_command
from .output import emit, one_line
from .rp import add_rp_commands
from .setup import add_setup_commands
from .usercert import add_user_cert_commands

__all__ = ["ECHO_NS", "build_parser", "echo_payload", "main"]

EXIT_OK, EXIT_REFUSED, EXIT_BAD_VALUE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: What ``--help`` shows above the commands: plain text, as a terminal prints it.
DESCRIPTION = "The wstrust-wsgi command (also python -m wstrust_wsgi)."


def _database_errors() -> tuple[type[BaseException], ...]:
    """The DB-API error bases of the drivers in use (psycopg only if something imported it).

    Evaluated when an exception is matched, so the CLI never imports psycopg itself.
    """
    errors: list[type[BaseException]] = [sqlite3.Error]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(getattr(psycopg, "Error", None), type):
        errors.append(psycopg.Error)
    return tuple(errors)


def _run_admin(args: argparse.Namespace) -> int:
    """Run one administration command: every failure is one line on stderr and an exit code."""
    where = f"wstrust-wsgi {args.where}"
    for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding cannot show is escaped, not fatal
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    url = args.registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY
    handler: Handler = args.handler
    try:
        url = registry_url(url)
        result = handler(args, url)
    except BadValue as exc:  # before ConfigurationError, its base
        return _fail(where, exc, EXIT_BAD_VALUE)
    except RegistryError as exc:
        return _fail(where, exc, EXIT_REFUSED)
    except ConfigurationError as exc:
        return _fail(where, exc, EXIT_BAD_VALUE)
    except OSError as exc:
        detail = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else exc
        return _fail(where, detail, EXIT_BAD_VALUE)
    except _database_errors() as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _fail(where, f"database error at {redact_url(url)}: {first}", EXIT_REFUSED)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the contract is "never a traceback"; the type name still helps a bug report
        return _fail(where, f"unexpected {type(exc).__name__}: {exc}", EXIT_REFUSED)
    emit(result, as_json=args.json)
    return EXIT_OK


def _fail(where: str, message: object, code: int) -> int:
    print(f"{where}: {one_line(message)}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: ``client``, ``certs`` and the administration commands."""
    parser = argparse.ArgumentParser(
        prog="wstrust-wsgi", description=DESCRIPTION,
        epilog=f"Administration commands take --registry URL (default ${REGISTRY_ENV}, else {DEFAULT_REGISTRY}) "
               "and --json, before or after the command name. Exit codes: 0 done, 1 refused by the registry "
               "(unknown or duplicate name, database error), 2 bad value, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    admin_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True)
    add_client_command(commands)
    add_setup_commands(commands)
    add_diagnose_command(commands)
    add_user_cert_commands(add_admin_commands(commands))
    add_rp_commands(commands)
    add_keys_commands(commands)
    add_delegation_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "diagnose" and args.registry is not None:
        parser.error("--registry applies to the administration commands, not to diagnose")
    if args.command in ("client", "certs", "check") and (args.json or args.registry is not None):
        parser.error(f"--json and --registry apply to the administration commands, not to {args.command}")
    if "handler" in args:  # an administration command: it maps its own failures to exit codes
        return _run_admin(args)
    try:
        return int(args.run(args))
    except (ConfigurationError, OSError) as exc:
        return _fail(f"wstrust-wsgi {args.command}", exc, EXIT_BAD_VALUE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
