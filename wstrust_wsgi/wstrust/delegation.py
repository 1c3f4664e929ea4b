"""OnBehalfOf and ActAs on the client side: the RST part that presents an identity the requester represents.

The STS reads them with :func:`~wstrust_wsgi.wstrust.messages.delegation_of`:
``wst:OnBehalfOf`` in the RST's namespace, ``ActAs`` as WS-Trust 1.4's element
(``wst14:ActAs``), also inside a 1.3 or 2005 RST (where Rahas expects it too).
What they carry is either a UsernameToken built here or a signed SAML
assertion the caller holds, whose bytes are spliced in unchanged at
:data:`~wstrust_wsgi.wstrust.messages.TOKEN_MARKER` (re-serializing a signed
assertion can break its signature).
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from .. import _arguments, _xml, ns
from ..errors import ConfigurationError, MalformedMessage
from ..wssecurity.username import build_username_token
from .messages import TOKEN_MARKER

#: The root elements of a token that may be presented: a SAML 2.0 or 1.x assertion.
_ASSERTIONS = frozenset({_xml.qname(ns.SAML2, "Assertion"), _xml.qname(ns.SAML1, "Assertion")})


def add_delegation(rst: etree._Element, *, on_behalf_of: bytes | tuple[str, str] | None,
                   act_as: bytes | tuple[str, str] | None, digest: bool, now: datetime) -> bytes:
    """Add OnBehalfOf or ActAs to ``rst``; the assertion bytes to splice at its marker (``b""`` when none).

    Each argument is checked here, so that a mistake is a ConfigurationError
    naming it rather than an STS fault: a ``(username, password)`` pair
    becomes a UsernameToken (PasswordDigest when ``digest``, like the
    requester's own), bytes must be one SAML assertion (a saved file's XML
    declaration is dropped: it is not part of the signed element). Only one
    of the two may be given: the STS reads one identity to represent.
    """
    if on_behalf_of is not None and act_as is not None:
        raise ConfigurationError("on_behalf_of, act_as: give one of them, not both")
    name, kind, value = (("on_behalf_of", "OnBehalfOf", on_behalf_of) if act_as is None
                         else ("act_as", "ActAs", act_as))
    if value is None:
        return b""
    t = ns.WST14 if kind == "ActAs" else _xml.namespace(rst)
    holder = etree.SubElement(rst, _xml.qname(t, kind), nsmap={"wst14": ns.WST14} if kind == "ActAs" else None)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(part, str) for part in value) and value[0]:
        holder.append(build_username_token(*value, digest=digest, now=now))
        return b""
    data = value.strip() if isinstance(value, bytes) else b""
    if data.startswith(b"<?xml"):
        data = data[data.find(b"?>") + 2:].lstrip()
    try:
        is_assertion = bool(data) and _xml.parse(data).tag in _ASSERTIONS
    except MalformedMessage:
        is_assertion = False
    if not is_assertion:
        raise ConfigurationError(f"{name}: must be an IssuedToken, a SAML assertion's bytes or a (username, "
                                 f"password) pair, not {_arguments.given(value)}")
    holder.append(etree.Comment(TOKEN_MARKER[4:-3].decode()))
    return data
