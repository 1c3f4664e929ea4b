"""The WS-Security header and its Timestamp (OASIS WSS 1.1 SOAP Message Security, sections 5 and 10).

::

    <wsse:Security s:mustUnderstand="1">
      <wsu:Timestamp><wsu:Created>...</wsu:Created><wsu:Expires>...</wsu:Expires></wsu:Timestamp>
      ... tokens ...
    </wsse:Security>

One ``wsse:Security`` header per endpoint (actor / role) is accepted; a
Timestamp's Created may not lie in the future nor its Expires in the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from .. import _xml, ns
from .._time import format_datetime, parse_datetime
from ..errors import InvalidSecurity, MalformedMessage, MessageExpired
from ..soap import for_this_node

_SECURITY = _xml.qname(ns.WSSE, "Security")


def security_header(headers: list[etree._Element], soap_ns: str) -> etree._Element | None:
    """The one ``wsse:Security`` header for this endpoint; two are refused."""
    mine = [h for h in headers if h.tag == _SECURITY and for_this_node(h, soap_ns)]
    if len(mine) > 1:
        raise InvalidSecurity(f"{len(mine)} wsse:Security headers for this endpoint, expected at most 1",
                              check="security-header", expected="at most 1", actual=len(mine))
    return mine[0] if mine else None


@dataclass(frozen=True)
class Timestamp:
    created: datetime
    expires: datetime | None


_TIMESTAMP = _xml.qname(ns.WSU, "Timestamp")


def read_timestamp(security: etree._Element) -> Timestamp | None:
    found = security.iterchildren(_TIMESTAMP)
    element = next(found, None)
    if element is None:
        return None
    if next(found, None) is not None:
        raise MalformedMessage(f"{2 + sum(1 for _ in found)} Timestamp elements where at most one is allowed")
    try:
        created = parse_datetime(_xml.text(_xml.child(element, ns.WSU, "Created")))
        expires_el = _xml.child(element, ns.WSU, "Expires")
        expires = parse_datetime(_xml.text(expires_el)) if expires_el is not None else None
    except ValueError as exc:
        raise InvalidSecurity(f"wsu:Timestamp: {exc}", check="timestamp") from None
    return Timestamp(created, expires)


def check_timestamp(timestamp: Timestamp, *, now: datetime, skew: timedelta) -> None:
    """Created may not lie in the future, Expires not in the past (both allowing ``skew``)."""
    if timestamp.created > now + skew:
        raise MessageExpired(f"wsu:Timestamp Created {format_datetime(timestamp.created)} is in the future",
                             check="timestamp", expected=f"Created <= {format_datetime(now + skew)} (now + skew)",
                             actual=f"Created {format_datetime(timestamp.created)}")
    if timestamp.expires is not None and timestamp.expires <= now - skew:
        raise MessageExpired(f"wsu:Timestamp expired at {format_datetime(timestamp.expires)}",
                             check="timestamp", expected=f"Expires > {format_datetime(now - skew)} (now - skew)",
                             actual=f"Expires {format_datetime(timestamp.expires)}")
    if timestamp.expires is not None and timestamp.expires < timestamp.created:
        raise MessageExpired("wsu:Timestamp Expires precedes Created", check="timestamp",
                             expected="Expires >= Created",
                             actual=f"Created {format_datetime(timestamp.created)}, "
                                    f"Expires {format_datetime(timestamp.expires)}")


def build_timestamp(now: datetime, ttl: timedelta = timedelta(minutes=5)) -> etree._Element:
    stamp = etree.Element(_xml.qname(ns.WSU, "Timestamp"), nsmap={"wsu": ns.WSU})
    etree.SubElement(stamp, _xml.qname(ns.WSU, "Created")).text = format_datetime(now)
    etree.SubElement(stamp, _xml.qname(ns.WSU, "Expires")).text = format_datetime(now + ttl)
    return stamp


def security_element(soap_ns: str, *children: etree._Element, must_understand: bool = True) -> etree._Element:
    security = etree.Element(_xml.qname(ns.WSSE, "Security"), nsmap={"wsse": ns.WSSE, "wsu": ns.WSU})
    if must_understand:
        security.set(_xml.qname(soap_ns, "mustUnderstand"), "1")
    security.extend(children)
    return security
