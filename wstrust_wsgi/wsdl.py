"""Former home of the STS's WSDL, now :mod:`wstrust_wsgi.sts.wsdl`; kept importable for existing imports."""

from __future__ import annotations

from .sts.wsdl import (
    OPERATION,
    SERVICE_NAME,
    SOAP_HTTP_TRANSPORT,
    SP11,
    SP12,
    TARGET_NAMESPACE,
    WSAM,
    WSDL,
    WSDL_SOAP11,
    WSDL_SOAP12,
    document,
    is_wsdl_query,
    port_name,
)

__all__ = [
    "OPERATION", "SERVICE_NAME", "SOAP_HTTP_TRANSPORT", "SP11", "SP12", "TARGET_NAMESPACE", "WSAM", "WSDL",
    "WSDL_SOAP11", "WSDL_SOAP12", "document", "is_wsdl_query", "port_name",
]
