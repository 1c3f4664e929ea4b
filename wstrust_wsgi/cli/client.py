"""The ``client`` command: the WSO2 sample client's steps, as one command.

Request a token from the STS, print it, call the service with it, print the
reply: what WSO2's sample client does, so that a person can watch a token go
round without writing code. It is a thin shell over :class:`StsClient` and
:func:`call_service`; a refusal by either side is one line on stderr and exit
1, an unreachable peer exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from lxml import etree

from .. import _xml, exchange
from ..client import StsClient, UrllibTransport, call_service
from ..model import TOKEN_TYPES
from ..errors import RemoteFault, TransportError
from .demo import DEMO_SERVICE, DEMO_STS, echo_payload


def _client(args: argparse.Namespace) -> int:
    password = args.password or os.environ.get("WSTRUST_PASSWORD")
    if password is None:
        password = getpass.getpass(f"Password for {args.username}: ")
    applies_to = args.applies_to or args.service
    transport = exchange.transport_from_args(args, UrllibTransport(cafile=args.cafile), secrets=[password])
    client = StsClient(
        args.sts, username=args.username, password=password, digest=args.digest,
        soap_version=args.soap, trust_version=args.trust, transport=transport,
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
    print(exchange.token_text_from_args(args, token.assertion))
    if args.no_call:
        return 0
    payload = _xml.parse(Path(args.payload).read_bytes()) if args.payload else echo_payload(args.message)
    try:
        reply = call_service(args.service, token, payload, soap_version=args.soap, transport=transport)
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


def add_client_command(commands: Any) -> None:
    """Register ``client`` on the subcommand group ``commands``."""
    client = commands.add_parser("client", help="request a token, print it, call the service with it")
    client.add_argument("--sts", default=DEMO_STS, help=f"STS endpoint (default {DEMO_STS})")
    client.add_argument("--service", default=DEMO_SERVICE, help=f"service to call (default {DEMO_SERVICE})")
    client.add_argument("--applies-to", help="wsp:AppliesTo address (default: the service URL)")
    client.add_argument("--username", default="admin")
    client.add_argument("--password", help="password (else $WSTRUST_PASSWORD, else a prompt)")
    client.add_argument("--digest", action="store_true", help="send PasswordDigest instead of PasswordText")
    client.add_argument("--soap", choices=["1.1", "1.2"], default="1.2")
    client.add_argument("--trust", choices=["1.3", "2005"], default="1.3")
    client.add_argument("--token-type", choices=TOKEN_TYPES, help="SAML version (default: the STS decides)")
    client.add_argument("--message", default="Hello from wstrust-wsgi", help="text for the demo echo service")
    client.add_argument("--payload", help="file holding the SOAP Body child to send instead of the echo")
    client.add_argument("--no-call", action="store_true", help="only request and print the token")
    client.add_argument("--cafile", help="PEM certificate(s) to trust for HTTPS instead of the system store")
    exchange.add_arguments(client)
    client.set_defaults(run=_client)
