"""The real clients' captured RSTs (``tests/data/vectors/clients/``), rebuilt for our STS.

Shared by ``tests/sts/test_sts.py`` (in-process) and ``tests/interop/test_shapes.py``
(real gunicorn): each capture keeps its client's exact shape, and only the
credentials, the relying party and the clock are ours.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from lxml import etree

from wstrust_wsgi import ns

from .apps import SERVICE_URL
from .data import vector

CLIENT_CAPTURES = [
    "adal13", "adal2005", "msal13", "msal2005",
    "zeep_s11_digest", "zeep_s11_text", "zeep_s12_digest_wsa", "zeep_s12_text_wsa",
]


def q(namespace: str, local: str) -> str:
    """Clark notation, ``{namespace}local``."""
    return f"{{{namespace}}}{local}"


def rst_of(root: etree._Element) -> etree._Element:
    """The RequestSecurityToken in ``root``, in either WS-Trust version."""
    for trust_ns in (ns.WST13, ns.WST2005):
        found = root.find(f".//{q(trust_ns, 'RequestSecurityToken')}")
        if found is not None:
            return found
    raise AssertionError("no RST in the request")


def captured(name: str) -> tuple[bytes, dict[str, Any]]:
    """A capture's body and its HTTP facts (headers, path) as recorded."""
    body = vector(f"clients/{name}.xml").read_bytes()
    http = json.loads(vector(f"clients/{name}.http.json").read_text())
    return body, http


def rebuild_capture(data: bytes, clock: Any) -> bytes:
    """Give a captured RST our credentials and relying party, and move the clock to its time."""
    root = etree.fromstring(data)
    security = root.find(f".//{q(ns.WSSE, 'Security')}")
    token = security.find(q(ns.WSSE, "UsernameToken"))
    token.find(q(ns.WSSE, "Username")).text = "admin"
    password = token.find(q(ns.WSSE, "Password"))
    created_el = token.find(q(ns.WSU, "Created"))
    if password.get("Type", "").endswith("#PasswordDigest"):
        nonce = base64.b64decode(token.findtext(q(ns.WSSE, "Nonce")))
        created = created_el.text
        password.text = base64.b64encode(hashlib.sha1(nonce + created.encode() + b"admin").digest()).decode()
        clock.now = datetime.fromisoformat(created).astimezone(timezone.utc) + timedelta(seconds=1)
    else:
        password.text = "admin"
    stamp = security.find(q(ns.WSU, "Timestamp"))
    if stamp is not None:
        created = stamp.findtext(q(ns.WSU, "Created")).strip().replace("Z", "+00:00")
        clock.now = datetime.fromisoformat(created).astimezone(timezone.utc) + timedelta(seconds=1)
    addresses = list(rst_of(root).iter(q(ns.WSA10, "Address")))
    assert len(addresses) == 1
    addresses[0].text = SERVICE_URL
    return etree.tostring(root, xml_declaration=data.startswith(b"<?xml"), encoding="utf-8")
