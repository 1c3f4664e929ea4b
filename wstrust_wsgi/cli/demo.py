"""What only the demonstration needs: the ``certs`` command, the demo addresses, the echo message.

The demo STS (``demo_sts``) and the demo echo service (``demo_service``) stand
in for WSO2's sample pair. The ``client`` command defaults to their addresses
and, unless given ``--payload``, sends the echo service its message; ``certs``
regenerates their key pairs. None of this is for a real deployment (``init``
makes the STS key pair there), so it is kept out of the commands that are.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from lxml import etree

from .. import _xml
from ..keys import generate_demo_key_pair

ECHO_NS = "urn:wstrust-wsgi:demo:echo"
DEMO_STS = "http://127.0.0.1:8080/services/sts"
DEMO_SERVICE = "http://127.0.0.1:8081/services/echo"


def echo_payload(message: str) -> etree._Element:
    """The SOAP Body child the demo echo service answers: ``<echo:Echo><echo:Message>``."""
    echo = etree.Element(_xml.qname(ECHO_NS, "Echo"), nsmap={"echo": ECHO_NS})
    etree.SubElement(echo, _xml.qname(ECHO_NS, "Message")).text = message
    return echo


def _certs(args: argparse.Namespace) -> int:
    for stem, name in (("sts", "wstrust-wsgi demo STS signing"), ("service", "wstrust-wsgi demo service"),
                       ("client", "wstrust-wsgi demo client")):
        generate_demo_key_pair(name, args.dir, stem)
        print(f"wrote {os.path.join(args.dir, stem)}.key and .crt (DEMO ONLY)")
    return 0


def add_certs_command(commands: Any) -> None:
    """Register ``certs`` on the subcommand group ``commands``."""
    certs = commands.add_parser("certs", help="regenerate the DEMO-ONLY key pairs")
    certs.add_argument("--dir", default="certs", help="output folder (default ./certs)")
    certs.set_defaults(run=_certs)
