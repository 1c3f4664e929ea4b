"""WS-MetadataExchange: the STS's WSDL where AD FS clients look for it, at ``<sts>/mex``.

Clients such as msal find an STS's username endpoint by reading its MEX
document (the address comes from home-realm discovery): an HTTP ``GET`` of
``<sts>/mex`` answers the bare ``wsdl:definitions``
(:func:`wstrust_wsgi.sts.wsdl.mex_document`), as AD FS does. A ``POST`` of a
WS-Transfer ``Get`` (action ``http://schemas.xmlsoap.org/ws/2004/09/transfer/Get``,
an empty Body; WS-MetadataExchange 1.1 section 6, as WSO2's MEX service
answers it) gets the same document wrapped in
``wsx:Metadata/wsx:MetadataSection Dialect="http://schemas.xmlsoap.org/wsdl/"``.

The address advertised is the STS's ``public_url`` when configured, else
the URL the request reached the STS at; msal only takes ``https://`` ones.
"""

from __future__ import annotations

from lxml import etree
from webob import Request, Response

from .. import _wsgi, _xml, ns, soap
from ..errors import InvalidRequest, MalformedMessage
from . import wsdl

#: Below the STS's own address.
MEX_PATH = "/mex"


def get_response(address: str, operations: tuple[str, ...]) -> Response:
    """``GET <sts>/mex``: the bare WSDL, advertising the bindings ``operations`` names."""
    return _wsgi.soap_response(200, "text/xml; charset=utf-8", wsdl.mex_document(address, operations))


def transfer_get(envelope: soap.Envelope, address: str, operations: tuple[str, ...]) -> bytes:
    """The answer to a WS-Transfer Get: the WSDL in a ``wsx:Metadata`` section, in the request's SOAP version."""
    if envelope.action != ns.WS_TRANSFER_GET:
        raise InvalidRequest(f"action {envelope.action!r} at the MEX address is not WS-Transfer Get",
                             reason=f"The MEX address answers WS-Transfer Get ({ns.WS_TRANSFER_GET}) only.")
    if any(isinstance(child.tag, str) for child in envelope.body):
        raise MalformedMessage("WS-Transfer Get with a non-empty Body", reason="A WS-Transfer Get has an empty Body.")
    metadata = etree.Element(_xml.qname(ns.WSX, "Metadata"), nsmap={"wsx": ns.WSX})
    section = etree.SubElement(metadata, _xml.qname(ns.WSX, "MetadataSection"), Dialect=ns.WSX_DIALECT_WSDL,
                               Identifier=wsdl.TARGET_NAMESPACE)
    section.append(etree.fromstring(wsdl.mex_document(address, operations)))  # our own bytes, not untrusted input
    relates = soap.RelatesTo.of(envelope)
    headers = relates.headers(ns.WS_TRANSFER_GET_RESPONSE) if relates is not None else []
    return soap.envelope(envelope.version, metadata, headers)


def is_mex(request: Request) -> bool:
    """Whether the request is for the MEX address (``<sts>/mex``)."""
    return request.path_info.rstrip("/") == MEX_PATH
