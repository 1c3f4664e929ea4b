"""The ``wstrust-wsgi`` command (also ``python -m wstrust_wsgi``).

Subcommands:

``client``  the WSO2 sample client's steps: request a token from the STS, print
            it, call the service with it, print the reply.
``certs``   (re)generate the DEMO-ONLY key pairs for the STS, the service and a client.

Failures print one plain sentence and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from lxml import etree

from . import _xml
from .client import StsClient, call_service
from .errors import ConfigurationError, RemoteFault, TransportError
from .keys import generate_demo_key_pair

ECHO_NS = "urn:wstrust-wsgi:demo:echo"
DEMO_STS = "http://127.0.0.1:8080/services/sts"
DEMO_SERVICE = "http://127.0.0.1:8081/services/echo"


def _echo_payload(message: str) -> etree._Element:
    echo = etree.Element(_xml.qname(ECHO_NS, "Echo"), nsmap={"echo": ECHO_NS})
    etree.SubElement(echo, _xml.qname(ECHO_NS, "Message")).text = message
    return echo


def _client(args: argparse.Namespace) -> int:
    password = args.password or os.environ.get("WSTRUST_PASSWORD")
    if password is None:
        password = getpass.getpass(f"Password for {args.username}: ")
    applies_to = args.applies_to or args.service
    client = StsClient(
        args.sts, username=args.username, password=password, digest=args.digest,
        soap_version=args.soap, trust_version=args.trust,
    )
    try:
        token = client.request_token(applies_to, token_type=args.token_type)
    except RemoteFault as fault:
        print(f"The STS at {args.sts} refused the request: {fault.reason} ({fault.local_code})", file=sys.stderr)
        return 1
    except TransportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"Issued token ({token.token_type}), id {token.assertion_id}, valid until "
          f"{token.expires.isoformat() if token.expires else 'unknown'}:")
    print(token.assertion.decode("utf-8", "replace"))
    if args.no_call:
        return 0
    payload = _xml.parse(open(args.payload, "rb").read()) if args.payload else _echo_payload(args.message)
    try:
        reply = call_service(args.service, token, payload, soap_version=args.soap)
    except RemoteFault as fault:
        print(f"The service at {args.service} refused the request: {fault.reason} ({fault.local_code})",
              file=sys.stderr)
        return 1
    except TransportError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(f"\nReply from {args.service}:")
    print(etree.tostring(reply, pretty_print=True).decode().rstrip())
    return 0


def _certs(args: argparse.Namespace) -> int:
    for stem, name in (("sts", "wstrust-wsgi demo STS signing"), ("service", "wstrust-wsgi demo service"),
                       ("client", "wstrust-wsgi demo client")):
        generate_demo_key_pair(name, args.dir, stem)
        print(f"wrote {os.path.join(args.dir, stem)}.key and .crt (DEMO ONLY)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wstrust-wsgi", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    client = commands.add_parser("client", help="request a token, print it, call the service with it")
    client.add_argument("--sts", default=DEMO_STS, help=f"STS endpoint (default {DEMO_STS})")
    client.add_argument("--service", default=DEMO_SERVICE, help=f"service to call (default {DEMO_SERVICE})")
    client.add_argument("--applies-to", help="wsp:AppliesTo address (default: the service URL)")
    client.add_argument("--username", default="admin")
    client.add_argument("--password", help="password (else $WSTRUST_PASSWORD, else a prompt)")
    client.add_argument("--digest", action="store_true", help="send PasswordDigest instead of PasswordText")
    client.add_argument("--soap", choices=["1.1", "1.2"], default="1.2")
    client.add_argument("--trust", choices=["1.3", "2005"], default="1.3")
    client.add_argument("--token-type", choices=["2.0", "1.1"], help="SAML version (default: the STS decides)")
    client.add_argument("--message", default="Hello from wstrust-wsgi", help="text for the demo echo service")
    client.add_argument("--payload", help="file holding the SOAP Body child to send instead of the echo")
    client.add_argument("--no-call", action="store_true", help="only request and print the token")
    client.set_defaults(run=_client)

    certs = commands.add_parser("certs", help="regenerate the DEMO-ONLY key pairs")
    certs.add_argument("--dir", default="certs", help="output folder (default ./certs)")
    certs.set_defaults(run=_certs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigurationError, OSError) as exc:
        print(f"wstrust-wsgi {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
