"""The UsernameToken (OASIS WSS UsernameToken Profile 1.1), read by the STS and written by the client.

Wire format (PasswordText, or PasswordDigest with
``Base64(SHA-1(nonce + created + password))``)::

    <wsse:Security>
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
from datetime import datetime

from lxml import etree

from .. import _xml, ns
from .._time import format_datetime, parse_datetime
from ..errors import FailedAuthentication


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


