"""The STS's WSDL 1.1 description, with its WS-SecurityPolicy, served at ``GET <endpoint>?wsdl``.

Specifications: WSDL 1.1 (https://www.w3.org/TR/2001/NOTE-wsdl-20010315) with
its SOAP 1.1 binding and the SOAP 1.2 binding
(https://www.w3.org/Submission/wsdl11soap12/); WS-Policy attachment by
``wsp:PolicyReference`` (WS-Policy 2004/09); WS-SecurityPolicy 1.2
(http://docs.oasis-open.org/ws-sx/ws-securitypolicy/v1.2/ws-securitypolicy.html)
for the WS-Trust 1.3 ports and WS-SecurityPolicy 1.1 (2005/07) for the
February 2005 ports, the pairing AD FS publishes; WS-Addressing metadata
(``wsam:Action``) for the actions.

What the document says, and nothing more than the STS does:

* one service, ``SecurityTokenService``, with four ports at the same address
  (the STS tells the versions apart by Content-Type and body namespace):
  WS-Trust 1.3 and February 2005, each over SOAP 1.1 and SOAP 1.2;
* one operation per binding the STS answers, ``Issue`` (and ``Validate``,
  ``Renew``, ``Cancel`` with an issued-token store): a ``RequestSecurityToken`` in, a
  ``RequestSecurityTokenResponseCollection`` (1.3) or a
  ``RequestSecurityTokenResponse`` (2005) out. The elements are declared
  loosely (``xs:any`` content, any attribute) in an inline schema, so a client
  can build and send any RST without importing the WS-Trust schemas;
* the policy, the "UsernameToken over transport" pattern of AD FS
  ``usernamemixed`` and WSO2 Identity Server's STS: ``sp:TransportBinding``
  with ``sp:HttpsToken``, a ``sp:UsernameToken`` (``sp:WssUsernameToken10``)
  as a signed supporting token, and ``sp:Trust13`` (``sp:Trust10`` for 2005).
  A timestamp is honoured, not required, so ``sp:IncludeTimestamp`` is absent.

The address is the STS's ``public_url`` when one is configured (behind a
proxy, the URL the request arrived on is the proxy's inner one), otherwise the
request's own URL (scheme, Host and path, as the client reached the endpoint),
so the document follows the STS wherever it is mounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from .. import _xml, ns, wstrust
from ..wstrust.lifecycle import response_action

WSDL, WSDL_SOAP11, WSDL_SOAP12 = ns.WSDL, ns.WSDL_SOAP11, ns.WSDL_SOAP12
WSAM, SOAP_HTTP_TRANSPORT, SP12, SP11 = ns.WSAM, ns.SOAP_HTTP_TRANSPORT, ns.SP12, ns.SP11

#: The WSDL's own target namespace (messages, port types, bindings, service).
TARGET_NAMESPACE = "urn:wstrust-wsgi:sts"
SERVICE_NAME = "SecurityTokenService"
OPERATION = "Issue"


@dataclass(frozen=True)
class _TrustPort:
    """What one WS-Trust version contributes: schema, messages, port type, policy."""

    dialect: wstrust.Dialect
    label: str            # WSTrust13 / WSTrustFeb2005: port type, binding and port names start with it
    response_element: str
    policy_ns: str        # the WS-SecurityPolicy version that goes with this WS-Trust version
    trust_assertion: str  # sp:Trust13 (WS-SP 1.2) or sp:Trust10 (WS-SP 1.1)


_TRUST_PORTS = (
    _TrustPort(wstrust.WSTRUST13, "WSTrust13", "RequestSecurityTokenResponseCollection", SP12, "Trust13"),
    _TrustPort(wstrust.WSTRUST2005, "WSTrustFeb2005", "RequestSecurityTokenResponse", SP11, "Trust10"),
)
#: (suffix, WSDL binding namespace) for SOAP 1.1 and SOAP 1.2.
_SOAP_BINDINGS = (("Soap11", WSDL_SOAP11), ("Soap12", WSDL_SOAP12))


def port_name(trust: str, soap: str) -> str:
    """The port for WS-Trust ``"1.3"``/``"2005"`` over SOAP ``"1.1"``/``"1.2"``, e.g. ``WSTrust13_Soap12``."""
    label = {"1.3": "WSTrust13", "2005": "WSTrustFeb2005"}[trust]
    return f"{label}_Soap{soap.replace('.', '')}"


def is_wsdl_query(query_string: str) -> bool:
    """Whether a query string asks for the WSDL: exactly ``wsdl`` (any case), as WCF, Axis2 and CXF take it."""
    return query_string.strip().lower() == "wsdl"


def document(address: str, operations: tuple[str, ...] = (OPERATION,)) -> bytes:
    """The WSDL for an STS reached at ``address`` (absolute URL), UTF-8 with a declaration.

    ``operations``: the WS-Trust bindings the STS answers (``Issue``, and
    ``Validate``, ``Renew``, ``Cancel`` when it keeps an issued-token store),
    one operation each per port type, with their actions.
    """
    return _document(address, operations, False)


def mex_document(address: str, operations: tuple[str, ...] = (OPERATION,)) -> bytes:
    """The same service as MEX clients read it (:mod:`.mex`): SOAP 1.2 ports only, as AD FS's MEX.

    msal's MEX reader (``msal.mex``) takes every ``wsdl:binding`` to have a
    ``soap12:binding``, finds the address in a ``wsa:EndpointReference`` of
    the port, and recognises a UsernameToken policy of WS-SecurityPolicy 1.2
    only as ``sp:SignedEncryptedSupportingTokens`` (what AD FS's
    ``usernamemixed`` says: over the TLS of ``sp:TransportBinding`` the
    token is both signed and encrypted); so this flavour has those three.
    """
    return _document(address, operations, True)


def _actions(dialect: wstrust.Dialect, operation: str) -> tuple[str, str]:
    """The request and response actions of an operation."""
    if operation == OPERATION:
        return dialect.issue_action, dialect.issue_response_action
    return dialect.action(operation), response_action(dialect, operation)


@lru_cache(maxsize=16)  # the address comes from the Host header: keep a few, never grow
def _document(address: str, operations: tuple[str, ...], mex: bool) -> bytes:
    q = _xml.qname
    root = etree.Element(q(WSDL, "definitions"), name=SERVICE_NAME, targetNamespace=TARGET_NAMESPACE, nsmap={
        "wsdl": WSDL, "soap": WSDL_SOAP11, "soap12": WSDL_SOAP12, "xs": ns.XS, "tns": TARGET_NAMESPACE,
        "wst": ns.WST13, "t": ns.WST2005, "wsp": ns.WSP12, "wsu": ns.WSU, "wsam": WSAM,
        **({"wsa10": ns.WSA10} if mex else {}),
    })
    soap_bindings = _SOAP_BINDINGS[1:] if mex else _SOAP_BINDINGS
    for port in _TRUST_PORTS:
        root.append(_policy(port, encrypted=mex and port.policy_ns == SP12))
    types = etree.SubElement(root, q(WSDL, "types"))
    for port in _TRUST_PORTS:
        types.append(_schema(port))
    for port in _TRUST_PORTS:
        for name in operations:
            for direction, element in (("Request", "RequestSecurityToken"), ("Response", port.response_element)):
                message = etree.SubElement(root, q(WSDL, "message"), name=f"{port.label}{name}{direction}")
                part = etree.SubElement(message, q(WSDL, "part"), name=direction.lower())
                part.set("element", _prefixed(root, port.dialect.namespace, element))
    for port in _TRUST_PORTS:
        port_type = etree.SubElement(root, q(WSDL, "portType"), name=port.label)
        for name in operations:
            operation = etree.SubElement(port_type, q(WSDL, "operation"), name=name)
            for tag, direction, action in zip(("input", "output"), ("Request", "Response"),
                                              _actions(port.dialect, name)):
                io = etree.SubElement(operation, q(WSDL, tag), message=f"tns:{port.label}{name}{direction}")
                io.set(q(WSAM, "Action"), action)
    for port in _TRUST_PORTS:
        for suffix, binding_ns in soap_bindings:
            root.append(_binding(port, suffix, binding_ns, operations))
    service = etree.SubElement(root, q(WSDL, "service"), name=SERVICE_NAME)
    for port in _TRUST_PORTS:
        for suffix, binding_ns in soap_bindings:
            name = f"{port.label}_{suffix}"
            wsdl_port = etree.SubElement(service, q(WSDL, "port"), name=name, binding=f"tns:{name}Binding")
            etree.SubElement(wsdl_port, q(binding_ns, "address"), location=address)
            if mex:
                reference = etree.SubElement(wsdl_port, q(ns.WSA10, "EndpointReference"))
                etree.SubElement(reference, q(ns.WSA10, "Address")).text = address
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def _prefixed(root: etree._Element, namespace: str, local: str) -> str:
    prefix = next(p for p, uri in root.nsmap.items() if uri == namespace)
    return f"{prefix}:{local}"


def _schema(port: _TrustPort) -> etree._Element:
    """An inline schema declaring the RST and the response loosely (any content, any attribute)."""
    q = _xml.qname
    schema = etree.Element(q(ns.XS, "schema"), targetNamespace=port.dialect.namespace,
                           elementFormDefault="qualified", nsmap={"xs": ns.XS})
    for name in ("RequestSecurityToken", port.response_element):
        element = etree.SubElement(schema, q(ns.XS, "element"), name=name)
        complex_type = etree.SubElement(element, q(ns.XS, "complexType"))
        sequence = etree.SubElement(complex_type, q(ns.XS, "sequence"))
        etree.SubElement(sequence, q(ns.XS, "any"), namespace="##any", processContents="lax",
                         minOccurs="0", maxOccurs="unbounded")
        etree.SubElement(complex_type, q(ns.XS, "anyAttribute"), namespace="##any", processContents="lax")
    return schema


def _policy_id(port: _TrustPort) -> str:
    return f"{port.label}_UsernameTokenOverTransport_policy"


def _nested(parent: etree._Element, sp: str, name: str, *inner: str) -> tuple[etree._Element, etree._Element]:
    """``<sp:name><wsp:Policy><sp:inner/>...</wsp:Policy></sp:name>`` under ``parent``: (assertion, its policy)."""
    assertion = etree.SubElement(parent, _xml.qname(sp, name))
    policy = etree.SubElement(assertion, _xml.qname(ns.WSP12, "Policy"))
    for child in inner:
        etree.SubElement(policy, _xml.qname(sp, child))
    return assertion, policy


def _policy(port: _TrustPort, *, encrypted: bool = False) -> etree._Element:
    """UsernameToken over HTTPS: TransportBinding + Signed(Encrypted)SupportingTokens/UsernameToken + TrustNN."""
    sp = port.policy_ns
    policy = etree.Element(_xml.qname(ns.WSP12, "Policy"), nsmap={"sp": sp})
    policy.set(_xml.qname(ns.WSU, "Id"), _policy_id(port))
    alternative = etree.SubElement(etree.SubElement(policy, _xml.qname(ns.WSP12, "ExactlyOne")),
                                   _xml.qname(ns.WSP12, "All"))
    _, transport = _nested(alternative, sp, "TransportBinding")
    _nested(transport, sp, "TransportToken", "HttpsToken")
    _nested(transport, sp, "AlgorithmSuite", "Basic256")
    _nested(transport, sp, "Layout", "Lax")
    _, supporting = _nested(alternative, sp, "SignedEncryptedSupportingTokens" if encrypted else "SignedSupportingTokens")
    username, _ = _nested(supporting, sp, "UsernameToken", "WssUsernameToken10")
    username.set(_xml.qname(sp, "IncludeToken"), f"{sp}/IncludeToken/AlwaysToRecipient")
    _nested(alternative, sp, port.trust_assertion, "MustSupportIssuedTokens")
    return policy


def _binding(port: _TrustPort, suffix: str, binding_ns: str, operations: tuple[str, ...]) -> etree._Element:
    q = _xml.qname
    binding = etree.Element(q(WSDL, "binding"), name=f"{port.label}_{suffix}Binding", type=f"tns:{port.label}")
    etree.SubElement(binding, q(ns.WSP12, "PolicyReference"), URI=f"#{_policy_id(port)}")
    etree.SubElement(binding, q(binding_ns, "binding"), transport=SOAP_HTTP_TRANSPORT, style="document")
    for name in operations:
        operation = etree.SubElement(binding, q(WSDL, "operation"), name=name)
        etree.SubElement(operation, q(binding_ns, "operation"), soapAction=_actions(port.dialect, name)[0],
                         style="document")
        for tag in ("input", "output"):
            etree.SubElement(etree.SubElement(operation, q(WSDL, tag)), q(binding_ns, "body"), use="literal")
    return binding
