"""The SOAP request a client sends with a token, and the reading of what a service answers.

:func:`soap_request` is :func:`wstrust_wsgi.client.service_request`, the
envelope :func:`~wstrust_wsgi.call_service` posts, so a test sends exactly
what a real client sends. :func:`read_answer` reads an answer the way
:class:`~wstrust_wsgi.StsClient` does: a SOAP fault becomes a
:class:`~wstrust_wsgi.RemoteFault` (code, local code, reason), anything else
the first element of the Body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from lxml import etree

from .. import _xml, ns
from ..client import IssuedToken, raise_for_fault, service_request
from ..errors import MalformedMessage, RemoteFault


class SoapRequest(NamedTuple):
    """A SOAP request to post: ``body, headers = soap_request(...)``."""

    body: bytes
    #: ``Content-Type`` (with the action in SOAP 1.2) and, in SOAP 1.1, ``SOAPAction``.
    headers: dict[str, str]

    @property
    def content_type(self) -> str:
        return self.headers["Content-Type"]


def soap_request(
    token: IssuedToken | bytes | None,
    payload: etree._Element | bytes | str,
    *,
    soap_version: str = "1.1",
    action: str = "",
) -> SoapRequest:
    """The envelope carrying ``payload`` in its Body and ``token`` in ``wsse:Security``, and its HTTP headers.

    ``token`` is a minted or issued :class:`~wstrust_wsgi.IssuedToken`, or an
    assertion's bytes (spliced in unchanged), or None for a request without
    any security header. ``payload`` is the operation element (bytes, text or
    an lxml element).
    """
    # EXTENSION POINT (holder-of-key): a token carrying a proof key will have the message
    # signed with it here (a WS-Security message signature), once the package makes one.
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    body, headers = service_request(token, data, soap_version=soap_version, action=action)
    return SoapRequest(body, headers)


@dataclass(frozen=True)
class SoapAnswer:
    """A service's answer, read: exactly one of :attr:`body` and :attr:`fault` is set for a SOAP answer.

    Neither is set when the answer is not SOAP at all (a 405 or 415 in plain
    text, an HTML error page); :attr:`problem` then says what it was.
    """

    status: int
    content_type: str
    data: bytes
    #: The answer's Body's first element, when it is not a fault.
    body: etree._Element | None
    #: The fault, read as a client reads it (``code``, ``local_code``, ``reason``, ``status``).
    fault: RemoteFault | None

    @property
    def problem(self) -> str | None:
        """Why the answer is neither a result nor a fault, or None."""
        if self.body is not None or self.fault is not None:
            return None
        text = self.data[:300].decode("utf-8", "replace").strip()
        return f"HTTP {self.status} {self.content_type or '(no content type)'}: {text or '(empty body)'}"


def read_answer(status: int, content_type: str, data: bytes) -> SoapAnswer:
    """Read a service's answer (status, Content-Type, body) into a :class:`SoapAnswer`."""
    body: etree._Element | None = None
    fault: RemoteFault | None = None
    try:
        # a test's own service may answer more than a request may carry: no size limit here
        root = _xml.parse(data, max_bytes=max(len(data), _xml.DEFAULT_MAX_BYTES)) if data.strip() else None
    except MalformedMessage:
        root = None
    if root is not None and root.tag in (_xml.qname(ns.SOAP11, "Envelope"), _xml.qname(ns.SOAP12, "Envelope")):
        try:
            raise_for_fault(root, status)
        except RemoteFault as remote:
            fault = remote
        else:
            found = _xml.child(root, _xml.namespace(root), "Body")
            body = next((c for c in found if isinstance(c.tag, str)), None) if found is not None else None
    return SoapAnswer(status, content_type, data, body, fault)


def describe_fault(fault: RemoteFault) -> str:
    """One line for a test report: the fault code, its reason and the HTTP status."""
    return f"{fault.local_code} ({fault.code}): {fault.reason!r}, HTTP {fault.status}"


__all__ = ["SoapAnswer", "SoapRequest", "describe_fault", "read_answer", "soap_request"]
