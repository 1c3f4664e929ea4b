"""SOAP 1.1 and 1.2 envelopes, actions and faults.

The two SOAP versions differ in data only (namespace, media type, fault shape,
the HTTP status of a fault), so each is one frozen :class:`SoapVersion` value.
The HTTP status of a fault is decided here and nowhere else:

* SOAP 1.1 (``text/xml``): every fault is HTTP 500 (SOAP 1.1 HTTP binding).
* SOAP 1.2 (``application/soap+xml``): ``env:Sender`` is 400, every other code
  500 (SOAP 1.2 part 2, table 20).
* A version mismatch (an envelope of another SOAP version than the media type
  announced, or in an unknown envelope namespace) is answered as SOAP 1.2
  part 1 appendix A says, whatever the media type: a SOAP 1.1 ``VersionMismatch``
  fault (``text/xml``, HTTP 500) with an ``Upgrade`` header block listing the
  envelopes this package reads (section 5.4.7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from . import _xml, ns
from .errors import MalformedMessage, SoapFault, VersionMismatch


@dataclass(frozen=True)
class SoapVersion:
    """One SOAP version's wire facts."""

    name: str
    namespace: str
    media_type: str
    sender_code: str
    receiver_code: str

    def content_type(self, action: str | None = None) -> str:
        value = f"{self.media_type}; charset=utf-8"
        if action and self is SOAP12:
            value += f'; action="{action}"'
        return value


SOAP11 = SoapVersion("1.1", ns.SOAP11, "text/xml", "Client", "Server")
SOAP12 = SoapVersion("1.2", ns.SOAP12, "application/soap+xml", "Sender", "Receiver")
_BY_MEDIA = {SOAP11.media_type: SOAP11, SOAP12.media_type: SOAP12}
_BY_NS = {SOAP11.namespace: SOAP11, SOAP12.namespace: SOAP12}
_WSA = (ns.WSA10, ns.WSA04)
_WSA_ACTIONS = tuple(_xml.qname(a, "Action") for a in _WSA)


@dataclass(frozen=True)
class _Names:
    """A SOAP version's element and attribute names in Clark notation, computed once."""

    envelope: str
    header: str
    body: str
    must_understand: str
    actor: str
    role: str

    @classmethod
    def of(cls, namespace: str) -> _Names:
        return cls(*(_xml.qname(namespace, n) for n in ("Envelope", "Header", "Body", "mustUnderstand", "actor",
                                                         "role")))


_NAMES = {version.namespace: _Names.of(version.namespace) for version in (SOAP11, SOAP12)}
_ENVELOPES = {names.envelope: _BY_NS[namespace] for namespace, names in _NAMES.items()}
#: actor (SOAP 1.1) / role (SOAP 1.2) values that address the ultimate receiver,
#: which also acts as "next" (SOAP 1.1 section 4.2.2, SOAP 1.2 part 1 section 2.2).
_ROLES_FOR_US = frozenset({
    "", ns.SOAP11_ACTOR_NEXT, ns.SOAP12_ROLE_NEXT, ns.SOAP12_ROLE_ULTIMATE_RECEIVER,
})


#: Header blocks this package processes: wsse:Security and the WS-Addressing headers.
UNDERSTOOD_HEADERS = frozenset(
    [_xml.qname(ns.WSSE, "Security")]
    + [_xml.qname(a, h) for a in _WSA
       for h in ("Action", "To", "MessageID", "ReplyTo", "From", "FaultTo", "RelatesTo")]
)
#: Most header blocks accepted in one envelope.
MAX_HEADER_BLOCKS = 32
#: The envelopes this package reads, in order of preference, as a VersionMismatch fault's Upgrade lists them.
SUPPORTED_ENVELOPES = (SOAP12, SOAP11)


def for_this_node(header: etree._Element, soap_ns: str) -> bool:
    """Whether a header block is addressed to us (the ultimate receiver)."""
    names = _NAMES.get(soap_ns) or _Names.of(soap_ns)
    role = header.get(names.actor) or header.get(names.role) or ""
    return role.strip() in _ROLES_FOR_US


def parse_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into its lower-cased media type and parameters."""
    if not content_type:
        return "", {}
    media, *params = content_type.split(";")
    values: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), values


def version_for_content_type(content_type: str | None) -> SoapVersion | None:
    """The SOAP version a Content-Type announces, or None if it is not a SOAP media type."""
    return _BY_MEDIA.get(_media_type(content_type)[0])


@lru_cache(maxsize=256)
def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """:func:`parse_media_type`, remembered for the few Content-Type values clients send (read-only result)."""
    return parse_media_type(content_type)


class Envelope:
    """A parsed SOAP request: version, the root element, its Header and Body child."""

    __slots__ = ("version", "root", "header", "body", "action")

    def __init__(self, version: SoapVersion, root: etree._Element, header: etree._Element | None,
                 body: etree._Element, action: str) -> None:
        self.version = version
        self.root = root
        self.header = header
        self.body = body
        #: The action, from the Content-Type ``action`` parameter, the SOAPAction
        #: header or ``wsa:Action``, first found; empty when none was sent.
        self.action = action

    def __repr__(self) -> str:
        return f"Envelope(SOAP {self.version.name}, action={self.action!r})"

    def header_blocks(self) -> list[etree._Element]:
        if self.header is None:
            return []
        return [el for el in self.header if isinstance(el.tag, str)]

    def body_child(self) -> etree._Element:
        """The single element child of Body (the operation)."""
        elements = [el for el in self.body if isinstance(el.tag, str)]
        if len(elements) != 1:
            raise MalformedMessage(f"SOAP Body has {len(elements)} element children, expected exactly 1")
        return elements[0]

    def must_understand(self, header: etree._Element) -> bool:
        """Whether this node must process ``header``: mustUnderstand set and addressed to us."""
        value = header.get(_NAMES[self.version.namespace].must_understand, "0").strip()
        return value in ("1", "true") and for_this_node(header, self.version.namespace)


def parse_envelope(
    data: bytes,
    *,
    content_type: str | None,
    soap_action: str | None = None,
    max_bytes: int = _xml.DEFAULT_MAX_BYTES,
    max_depth: int = _xml.DEFAULT_MAX_DEPTH,
) -> Envelope:
    """Parse a request body as the SOAP version its Content-Type announces."""
    media, params = _media_type(content_type)
    version = _BY_MEDIA.get(media)
    if version is None:
        raise MalformedMessage(f"unsupported content type {media!r}")
    root = _xml.parse(data, max_bytes=max_bytes, max_depth=max_depth)
    names = _NAMES[version.namespace]
    if root.tag != names.envelope:
        other = _ENVELOPES.get(root.tag)
        if other is not None:
            raise VersionMismatch(f"SOAP {other.name} envelope sent with content type {media} (SOAP {version.name})")
        qname = etree.QName(root)
        if qname.localname == "Envelope" and qname.namespace:  # SOAP 1.1 section 4.1.2, SOAP 1.2 part 1 5.4.7
            raise VersionMismatch(f"Envelope in namespace {qname.namespace!r}, not a SOAP version this endpoint reads",
                                  reason="The SOAP envelope is of a version this endpoint does not support.")
        raise MalformedMessage(f"root element is {root.tag}, not a SOAP Envelope")
    elements = list(root.iterchildren(etree.Element))
    tags = [el.tag for el in elements]
    if tags == [names.header, names.body]:
        header, body = elements
    elif tags == [names.body]:
        header, body = None, elements[0]
    elif names.header in tags[1:] and tags.count(names.header) == 1 and tags.count(names.body) == 1 \
            and len(tags) == 2:
        raise MalformedMessage("Header must come before Body")
    else:
        raise MalformedMessage("Envelope must hold at most one Header and exactly one Body, nothing else")
    if header is not None and len(header) > MAX_HEADER_BLOCKS:
        raise MalformedMessage(f"{len(header)} header blocks, more than {MAX_HEADER_BLOCKS}",
                               reason="The SOAP header has too many blocks.")
    action = params.get("action", "") or (soap_action or "").strip().strip('"')
    if not action and header is not None:
        actions = [block for block in header if block.tag in _WSA_ACTIONS]
        if len(actions) > 1:
            raise MalformedMessage(f"{len(actions)} Action elements where at most one is allowed")
        action = _xml.text(actions[0]) if actions else ""
    return Envelope(version, root, header, body, action)


def envelope(version: SoapVersion, body: etree._Element, headers: Sequence[etree._Element] = ()) -> bytes:
    """Serialize an envelope holding ``headers`` and ``body`` (UTF-8, with declaration)."""
    env = etree.Element(_xml.qname(version.namespace, "Envelope"), nsmap={"s": version.namespace})
    if headers:
        header = etree.SubElement(env, _xml.qname(version.namespace, "Header"))
        header.extend(headers)
    etree.SubElement(env, _xml.qname(version.namespace, "Body")).append(body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


@dataclass(frozen=True)
class RelatesTo:
    """A request's ``wsa:MessageID``, which the reply answers (WS-Addressing 1.0 Core section 3.4).

    The reply carries ``wsa:Action`` and ``wsa:RelatesTo`` (holding the
    MessageID) in the WS-Addressing version the request used::

        <wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">...</wsa:Action>
        <wsa:RelatesTo xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:uuid:...</wsa:RelatesTo>
    """

    #: The WS-Addressing namespace of the request's MessageID (1.0 or the 2004/08 submission).
    namespace: str
    message_id: str

    @classmethod
    def of(cls, envelope: Envelope) -> RelatesTo | None:
        """The request's ``wsa:MessageID`` (1.0, else the 2004/08 submission) to answer; None if it has none."""
        if envelope.header is None:
            return None
        for wsa in _WSA:
            message_id = _xml.child(envelope.header, wsa, "MessageID")
            if message_id is not None:
                return cls(wsa, _xml.text(message_id))
        return None

    def headers(self, action: str) -> list[etree._Element]:
        """The reply's header blocks: ``wsa:Action`` (``action``), then ``wsa:RelatesTo``."""
        wsa = self.namespace
        action_el = etree.Element(_xml.qname(wsa, "Action"), nsmap={"wsa": wsa})
        action_el.text = action
        relates = etree.Element(_xml.qname(wsa, "RelatesTo"), nsmap={"wsa": wsa})
        relates.text = self.message_id
        return [action_el, relates]


def fault_status(version: SoapVersion, fault: SoapFault) -> int:
    """The HTTP status of a fault: see the module docstring."""
    return 400 if version is SOAP12 and fault.sender else 500


def fault_element(version: SoapVersion, fault: SoapFault, *, trust_ns: str = ns.WST13) -> etree._Element:
    """Build the ``Fault`` element for ``fault`` in ``version``."""
    env_ns = version.namespace
    if fault.family == "soap":
        top = fault.code
        if top == "Client":
            top = version.sender_code
        sub: tuple[str, str, str] | None = None
    else:
        top = version.sender_code if fault.sender else version.receiver_code
        sub_ns, prefix = (trust_ns, "wst") if fault.family == "wst" else (ns.WSSE, "wsse")
        sub = (prefix, sub_ns, fault.code)
    nsmap = {"s": env_ns}
    if sub is not None:
        nsmap[sub[0]] = sub[1]
    element = etree.Element(_xml.qname(env_ns, "Fault"), nsmap=nsmap)
    if version is SOAP11:
        code = etree.SubElement(element, "faultcode")
        code.text = f"{sub[0]}:{sub[2]}" if sub is not None else f"s:{top}"
        etree.SubElement(element, "faultstring").text = fault.reason
    else:
        code = etree.SubElement(element, _xml.qname(env_ns, "Code"))
        etree.SubElement(code, _xml.qname(env_ns, "Value")).text = f"s:{top}"
        if sub is not None:
            subcode = etree.SubElement(code, _xml.qname(env_ns, "Subcode"))
            etree.SubElement(subcode, _xml.qname(env_ns, "Value")).text = f"{sub[0]}:{sub[2]}"
        reason = etree.SubElement(element, _xml.qname(env_ns, "Reason"))
        text = etree.SubElement(reason, _xml.qname(env_ns, "Text"))
        text.set(_xml.qname(ns.XML, "lang"), "en")
        text.text = fault.reason
    return element


def _add_upgrade(header: etree._Element) -> etree._Element:
    """Append the ``Upgrade`` block of a VersionMismatch fault to ``header`` (SOAP 1.2 part 1, section 5.4.7)::

        <upg:Upgrade xmlns:upg="http://www.w3.org/2003/05/soap-envelope">
          <upg:SupportedEnvelope qname="upg:Envelope"/>
          <upg:SupportedEnvelope xmlns:ns2="http://schemas.xmlsoap.org/soap/envelope/" qname="ns2:Envelope"/>
        </upg:Upgrade>

    One SupportedEnvelope per envelope we read, in order of preference, its
    ``qname`` naming that version's Envelope with a prefix declared on it or
    above. Built in place: lxml drops a declaration that only a qname value
    uses when an element moves under a parent declaring the same namespace.
    """
    upgrade = etree.SubElement(header, _xml.qname(ns.SOAP12, "Upgrade"), nsmap={"upg": ns.SOAP12})
    for number, version in enumerate(SUPPORTED_ENVELOPES, 1):
        prefix = "upg" if version.namespace == ns.SOAP12 else f"ns{number}"
        etree.SubElement(upgrade, _xml.qname(ns.SOAP12, "SupportedEnvelope"), {"qname": f"{prefix}:Envelope"},
                         nsmap={} if prefix == "upg" else {prefix: version.namespace})
    return upgrade


def fault_response(
    version: SoapVersion, fault: SoapFault, *, trust_ns: str = ns.WST13
) -> tuple[int, str, bytes]:
    """``(status, content_type, body)`` answering ``fault`` in ``version``.

    A :class:`VersionMismatch` is answered in SOAP 1.1 whatever ``version``
    the request announced (SOAP 1.2 part 1 appendix A: a SOAP 1.1 fault over
    the SOAP 1.1 binding, which every SOAP node can read), with an Upgrade
    header block naming the envelopes we support.
    """
    if isinstance(fault, VersionMismatch):
        root = etree.Element(_xml.qname(SOAP11.namespace, "Envelope"), nsmap={"s": SOAP11.namespace})
        _add_upgrade(etree.SubElement(root, _xml.qname(SOAP11.namespace, "Header")))
        etree.SubElement(root, _xml.qname(SOAP11.namespace, "Body")).append(fault_element(SOAP11, fault))
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        return fault_status(SOAP11, fault), SOAP11.content_type(), body
    body = envelope(version, fault_element(version, fault, trust_ns=trust_ns))
    return fault_status(version, fault), version.content_type(), body
