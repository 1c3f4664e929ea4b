"""A SOAP echo service behind :class:`RelyingPartyMiddleware`, for ``gunicorn demo_service.app:app``.

It answers ``<echo:Echo><echo:Message>text</echo:Message></echo:Echo>``
(namespace ``urn:wstrust-wsgi:demo:echo``) with the message, the caller's
NameID and the token's attributes, in the request's SOAP version.

=============================  ==========================================
WSTRUST_DEMO_CERTS             folder with sts.crt, the trusted STS cert
WSTRUST_DEMO_SERVICE_PATH      mount path (``/services/echo``)
WSTRUST_DEMO_SERVICE_URL       expected audience (``http://127.0.0.1:8081/services/echo``)
WSTRUST_DEMO_ISSUER            accepted issuer (``http://127.0.0.1:8080/services/sts``)
WSTRUST_DEMO_REPLAY_CACHE      unset (the default): no replay detection, a
                               token is reusable for its lifetime; set, each
                               assertion is admitted once, recorded in
                               ``memory:`` (this worker only),
                               ``sqlite:///abs/path.db`` (the workers of one
                               host) or ``redis://host:port/db`` (all hosts)
WSTRUST_DEMO_REVOCATION_STORE  unset: tokens cancelled at the STS are
                               admitted until they expire; the STS's
                               ``WSTRUST_DEMO_TOKEN_STORE`` (``redis://``):
                               they are refused
=============================  ==========================================
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from lxml import etree

from wstrust_wsgi import RelyingPartyMiddleware, get_assertion
from wstrust_wsgi import _xml, soap
from wstrust_wsgi.errors import SoapFault
from wstrust_wsgi._wsgi import mount
from wstrust_wsgi.stores.replay import replay_cache_from_url
from wstrust_wsgi.stores.tokens import token_store_from_url

ECHO_NS = "urn:wstrust-wsgi:demo:echo"
ROOT = Path(__file__).resolve().parent.parent
CERTS = Path(os.environ.get("WSTRUST_DEMO_CERTS", ROOT / "certs"))
SERVICE_PATH = os.environ.get("WSTRUST_DEMO_SERVICE_PATH", "/services/echo")
SERVICE_URL = os.environ.get("WSTRUST_DEMO_SERVICE_URL", "http://127.0.0.1:8081/services/echo")
ISSUER = os.environ.get("WSTRUST_DEMO_ISSUER", "http://127.0.0.1:8080/services/sts")
REPLAY_CACHE = os.environ.get("WSTRUST_DEMO_REPLAY_CACHE", "")
#: The STS's issued-token store (redis://...), to refuse tokens cancelled there; unset: not consulted.
REVOCATION_STORE = os.environ.get("WSTRUST_DEMO_REVOCATION_STORE", "")


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The unprotected service: echoes the message and who the middleware said the caller is."""
    version = soap.version_for_content_type(environ.get("CONTENT_TYPE")) or soap.SOAP11
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    try:
        envelope = soap.parse_envelope(body, content_type=environ.get("CONTENT_TYPE"))
        text = _xml.text(envelope.body.find(f".//{{{ECHO_NS}}}Message"))
    except SoapFault as fault:  # an admitted caller can still send a message we cannot echo
        status, content_type, answer = soap.fault_response(version, fault)
        start_response(f"{status} Error", [("Content-Type", content_type), ("Content-Length", str(len(answer)))])
        return [answer]
    response = etree.Element(_xml.qname(ECHO_NS, "EchoResponse"), nsmap={"echo": ECHO_NS})
    etree.SubElement(response, _xml.qname(ECHO_NS, "Message")).text = text
    etree.SubElement(response, _xml.qname(ECHO_NS, "Caller")).text = environ.get("REMOTE_USER", "")
    assertion = get_assertion(environ)
    if assertion is not None:
        for name, values in sorted(assertion.attributes.items()):
            for value in values:
                etree.SubElement(response, _xml.qname(ECHO_NS, "Attribute"), Name=name).text = value
    payload = soap.envelope(version, response)
    start_response("200 OK", [("Content-Type", version.content_type()), ("Content-Length", str(len(payload)))])
    return [payload]


def make_app() -> Any:
    return RelyingPartyMiddleware(
        echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[CERTS / "sts.crt"],
        replay_cache=replay_cache_from_url(REPLAY_CACHE) if REPLAY_CACHE.strip() else None,
        revocation_store=token_store_from_url(REVOCATION_STORE) if REVOCATION_STORE.strip() else None,
    )


logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
app = mount(SERVICE_PATH, make_app())
