"""What only the demonstration needs: the demo addresses and the echo message.

The demo STS (``demo_sts``) and the demo echo service (``demo_service``) stand
in for WSO2's sample pair. The ``client`` command defaults to their addresses
and, unless given ``--payload``, sends the echo service its message; ``certs``
(in :mod:`.setup`) regenerates their key pairs. None of this is for a real
deployment, so it is kept out of the commands that are.
"""

from __future__ import annotations

from lxml import etree

from .. import _xml

ECHO_NS = "urn:wstrust-wsgi:demo:echo"
DEMO_STS = "http://127.0.0.1:8080/services/sts"
DEMO_SERVICE = "http://127.0.0.1:8081/services/echo"


def echo_payload(message: str) -> etree._Element:
    """The SOAP Body child the demo echo service answers: ``<echo:Echo><echo:Message>``."""
    echo = etree.Element(_xml.qname(ECHO_NS, "Echo"), nsmap={"echo": ECHO_NS})
    etree.SubElement(echo, _xml.qname(ECHO_NS, "Message")).text = message
    return echo
