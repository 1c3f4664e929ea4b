"""WS-Security 1.0/1.1 header processing: the Security header, UsernameToken, Timestamp.

UsernameToken Profile 1.1 wire format (PasswordText, or PasswordDigest with
``Base64(SHA-1(nonce + created + password))``)::

    <wsse:Security>
      <wsu:Timestamp><wsu:Created>...</wsu:Created><wsu:Expires>...</wsu:Expires></wsu:Timestamp>
      <wsse:UsernameToken>
        <wsse:Username>admin</wsse:Username>
        <wsse:Password Type="...#PasswordDigest">base64</wsse:Password>
        <wsse:Nonce EncodingType="...#Base64Binary">base64</wsse:Nonce>
        <wsu:Created>2026-11-26T10:00:00Z</wsu:Created>
      </wsse:UsernameToken>
    </wsse:Security>

A missing ``Type`` means PasswordText (as ADAL and MSAL send it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from . import _xml, ns
from .soap import for_this_node
from ._time import format_datetime, parse_datetime
from .errors import FailedAuthentication, InvalidSecurity, MalformedMessage, MessageExpired

_SECURITY = _xml.qname(ns.WSSE, "Security")


def security_header(headers: list[etree._Element], soap_ns: str) -> etree._Element | None:
    """The one ``wsse:Security`` header for this endpoint; two are refused."""
    mine = [h for h in headers if h.tag == _SECURITY and for_this_node(h, soap_ns)]
    if len(mine) > 1:
        raise InvalidSecurity(f"{len(mine)} wsse:Security headers for this endpoint, expected at most 1")
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
        raise InvalidSecurity(f"wsu:Timestamp: {exc}") from None
    return Timestamp(created, expires)


def check_timestamp(timestamp: Timestamp, *, now: datetime, skew: timedelta) -> None:
    """Created may not lie in the future, Expires not in the past (both allowing ``skew``)."""
    if timestamp.created > now + skew:
        raise MessageExpired(f"wsu:Timestamp Created {format_datetime(timestamp.created)} is in the future")
    if timestamp.expires is not None and timestamp.expires <= now - skew:
        raise MessageExpired(f"wsu:Timestamp expired at {format_datetime(timestamp.expires)}")
    if timestamp.expires is not None and timestamp.expires < timestamp.created:
        raise MessageExpired("wsu:Timestamp Expires precedes Created")


@dataclass(frozen=True)
class UsernameToken:
    """A parsed ``wsse:UsernameToken``."""

    username: str
    password: str
    digest: bool
    nonce: bytes | None
    #: Created exactly as sent (the digest covers these characters), and parsed.
    created_text: str | None
    created: datetime | None

    def digest_matches(self, secret: str) -> bool:
        """Constant-time check of a PasswordDigest against the user's plaintext secret."""
        if not self.digest or self.nonce is None or self.created_text is None:
            return False
        expected = hashlib.sha1(self.nonce + self.created_text.encode() + secret.encode()).digest()
        try:
            supplied = base64.b64decode(self.password, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(expected, supplied)


def read_username_token(security: etree._Element) -> UsernameToken | None:
    element = _xml.child(security, ns.WSSE, "UsernameToken")
    if element is None:
        return None
    username = _xml.text(_xml.child(element, ns.WSSE, "Username"))
    password_el = _xml.child(element, ns.WSSE, "Password")
    if not username or password_el is None:
        raise FailedAuthentication("UsernameToken without Username or Password")
    password_type = password_el.get("Type", ns.WSSE_PASSWORD_TEXT).strip()
    if password_type not in (ns.WSSE_PASSWORD_TEXT, ns.WSSE_PASSWORD_DIGEST):
        raise FailedAuthentication(f"unsupported password type {password_type!r}")
    nonce_el = _xml.child(element, ns.WSSE, "Nonce")
    nonce = None
    if nonce_el is not None:
        encoding = nonce_el.get("EncodingType", ns.WSSE_BASE64)
        if encoding != ns.WSSE_BASE64:
            raise FailedAuthentication(f"unsupported nonce encoding {encoding!r}")
        try:
            nonce = base64.b64decode(_xml.text(nonce_el), validate=True)
        except (binascii.Error, ValueError):
            raise FailedAuthentication("nonce is not base64") from None
    created_el = _xml.child(element, ns.WSU, "Created")
    created_text = _xml.text(created_el) if created_el is not None else None
    created = None
    if created_text is not None:
        try:
            created = parse_datetime(created_text)
        except ValueError as exc:
            raise FailedAuthentication(f"UsernameToken Created: {exc}") from None
    digest = password_type == ns.WSSE_PASSWORD_DIGEST
    if digest and (nonce is None or created is None):
        raise FailedAuthentication("PasswordDigest requires Nonce and Created")
    # A password is an xs:string: its spaces are part of it, so it is not stripped.
    password = _xml.text(password_el, strip=False)
    if digest:
        password = password.strip()
    return UsernameToken(username, password, digest, nonce, created_text, created)


def build_username_token(
    username: str, password: str, *, digest: bool, now: datetime, nonce: bytes | None = None
) -> etree._Element:
    """A client-side UsernameToken, PasswordText or PasswordDigest."""
    token = etree.Element(_xml.qname(ns.WSSE, "UsernameToken"), nsmap={"wsse": ns.WSSE, "wsu": ns.WSU})
    etree.SubElement(token, _xml.qname(ns.WSSE, "Username")).text = username
    password_el = etree.SubElement(token, _xml.qname(ns.WSSE, "Password"))
    if not digest:
        password_el.set("Type", ns.WSSE_PASSWORD_TEXT)
        password_el.text = password
        return token
    nonce = nonce if nonce is not None else os.urandom(16)
    created = format_datetime(now)
    password_el.set("Type", ns.WSSE_PASSWORD_DIGEST)
    password_el.text = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    nonce_el = etree.SubElement(token, _xml.qname(ns.WSSE, "Nonce"), EncodingType=ns.WSSE_BASE64)
    nonce_el.text = base64.b64encode(nonce).decode()
    etree.SubElement(token, _xml.qname(ns.WSU, "Created")).text = created
    return token


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
