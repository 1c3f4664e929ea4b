"""Message signatures with a proof key (OASIS WSS 1.1 SOAP Message Security section 8).

How a holder-of-key client proves it holds the token's key: a ``ds:Signature``
in ``wsse:Security`` over the SOAP Body, the ``wsu:Timestamp`` and the
WS-Addressing headers, each referenced by its ``wsu:Id``, exclusive c14n,
HMAC-SHA256 (HMAC-SHA1 for WCF and AD FS peers), whose KeyInfo is a
SecurityTokenReference to the token (SAML Token Profile 1.1 section 3.4)::

    <wsse:Security>
      <wsu:Timestamp wsu:Id="...">...</wsu:Timestamp>
      <Assertion ID="_a1">...</Assertion>
      <ds:Signature Id="SIG-...">
        <ds:SignedInfo>... #Body, #Timestamp, #wsa:To ... </ds:SignedInfo>
        <ds:SignatureValue>...</ds:SignatureValue>
        <ds:KeyInfo><wsse:SecurityTokenReference wsse11:TokenType="...#SAMLV2.0">
          <wsse:KeyIdentifier ValueType="...#SAMLID">_a1</wsse:KeyIdentifier>
        </wsse:SecurityTokenReference></ds:KeyInfo>
      </ds:Signature>
    </wsse:Security>

:func:`verify_message` checks what matters to a receiver beyond the
signature value: each Reference resolves to exactly one element of the
message (:func:`wstrust_wsgi.xmldsig.verify_detached`), and the elements the
caller *processes* (the envelope's own Body, the one Timestamp, every
addressing header) are among those signed, by identity: a signed copy moved
elsewhere covers nothing (XML Signature Wrapping).
"""

from __future__ import annotations

import uuid
from base64 import b64decode, b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from .. import _xml, ns, xmldsig
from ..errors import FailedCheck, InvalidSecurity, MessageExpired
from .header import Timestamp, check_timestamp, read_timestamp
from .references import direct_reference, key_identifier_reference, names_token

WSU_ID = _xml.qname(ns.WSU, "Id")
SIGNATURE = _xml.qname(ns.DS, "Signature")
_KEY_INFO = _xml.qname(ns.DS, "KeyInfo")
_STR = _xml.qname(ns.WSSE, "SecurityTokenReference")
_NO_PROOF = "A holder-of-key token needs a signature made with its proof key over the body and timestamp."
#: WS-Addressing header blocks a proof signature covers when the message has them.
ADDRESSING = tuple(_xml.qname(wsa, local) for wsa in (ns.WSA10, ns.WSA04)
                   for local in ("Action", "To", "MessageID", "ReplyTo", "From", "FaultTo", "RelatesTo"))


def _id_of(element: etree._Element, prefix: str) -> str:
    """The element's wsu:Id, given a fresh one if it has none."""
    if element.get(WSU_ID) is None:
        element.set(WSU_ID, f"{prefix}-{uuid.uuid4().hex}")
    return element.get(WSU_ID, "")


def sign_message(envelope: etree._Element, security: etree._Element, key: xmldsig.HmacKey | rsa.RSAPrivateKey, *,
                 method: str, token_type: str = "", value_type: str = "", token_id: str = "",
                 certificate: x509.Certificate | None = None, signature_id: str | None = None,
                 binary_token: x509.Certificate | None = None, binary_token_id: str | None = None) -> etree._Element:
    """Sign the Body, the Timestamp of ``security`` and the addressing headers; append the Signature.

    ``envelope`` declares ``wsu`` (so the Ids carry that prefix). The
    Signature's KeyInfo references the token by KeyIdentifier (``value_type``
    ``#SAMLID`` or ``#SAMLAssertionID``, ``token_type`` the profile's
    ``wsse11:TokenType``), or, with ``certificate`` (an RSA key proving
    possession of itself, as a PublicKey RST does), holds that certificate.
    With ``binary_token`` (the key's certificate, as an X.509-authenticated
    request carries it), that certificate goes into ``security`` as a
    ``wsse:BinarySecurityToken`` the KeyInfo references by ``wsu:Id`` (``binary_token_id``
    when the caller must name it beforehand, as a PublicKey RST's UseKey does).
    """
    soap_ns = _xml.namespace(envelope)
    body = _xml.child(envelope, soap_ns, "Body")
    timestamp = _xml.child(security, ns.WSU, "Timestamp")
    if body is None or timestamp is None:
        raise ValueError("a proof signature needs the envelope's Body and a wsu:Timestamp in the Security header")
    header = _xml.child(envelope, soap_ns, "Header")
    targets = [(_id_of(body, "Body"), body), (_id_of(timestamp, "TS"), timestamp)]
    targets += [(_id_of(block, "WSA"), block) for block in (header if header is not None else [])
                if block.tag in ADDRESSING]
    signature = xmldsig.Signer(key, method, certificate=certificate).detached(targets)
    signature.set("Id", signature_id or f"SIG-{uuid.uuid4().hex}")
    if binary_token is not None:
        token = etree.Element(_xml.qname(ns.WSSE, "BinarySecurityToken"), ValueType=ns.WSSE_X509V3,
                              EncodingType=ns.WSSE_BASE64)
        token.text = b64encode(binary_token.public_bytes(Encoding.DER)).decode("ascii")
        if binary_token_id is not None:
            token.set(WSU_ID, binary_token_id)
        timestamp.addnext(token)
        direct_reference(etree.SubElement(signature, _KEY_INFO), identifier=_id_of(token, "X509"),
                         value_type=ns.WSSE_X509V3)
    elif certificate is None:
        key_identifier_reference(etree.SubElement(signature, _KEY_INFO), token_type=token_type,
                                 value_type=value_type, identifier=token_id)
    security.append(signature)
    return signature


@dataclass(frozen=True)
class MessageProof:
    """A verified proof signature: what it covered and its SignatureValue's bytes (the replay cache's key)."""

    verified: xmldsig.Verified
    signature_value: bytes


def verify_message(signature: etree._Element, *, key: xmldsig.HmacKey | rsa.RSAPublicKey,
                   algorithms: xmldsig.AlgorithmPolicy, must_cover: Sequence[etree._Element],
                   now: datetime) -> MessageProof:
    """Verify a proof signature with ``key`` and check that it covers each element of ``must_cover``.

    Raises FailedCheck (bad value, a Reference that does not resolve to one
    element, an element left uncovered) or UnsupportedAlgorithm (a method not
    allowed, ``HMACOutputLength``).
    """
    verified = xmldsig.verify_detached(signature, id_attributes=[WSU_ID], algorithms=algorithms,
                                       keys=lambda _: (xmldsig.Candidate(key),), now=now)
    for element in must_cover:
        if not any(signed is element for signed in verified.signed):
            raise FailedCheck(f"the proof signature does not cover the message's {etree.QName(element).localname}",
                              reason="The signature does not cover the message body, timestamp and addressing "
                                     "headers.")
    # The decoded bytes, not the text: a replay re-encoded (whitespace, other padding bits) is the same value.
    value = b64decode(_xml.text(signature.find(_xml.qname(ns.DS, "SignatureValue"))))
    return MessageProof(verified, value)


def verify_token_proof(security: etree._Element, *, body: etree._Element, headers: Sequence[etree._Element],
                       token_id: str, value_type: str, by_uri: bool, key: xmldsig.HmacKey | rsa.RSAPublicKey,
                       algorithms: xmldsig.AlgorithmPolicy, now: datetime, skew: timedelta,
                       max_age: timedelta) -> tuple[MessageProof, Timestamp]:
    """The one proof of possession of token ``token_id``'s key in ``security``, checked; and its Timestamp.

    What the relying-party middleware and the STS's Renew of a holder-of-key
    token both require, in order: exactly one ``ds:Signature`` whose KeyInfo
    is a SecurityTokenReference naming the token (:func:`.references.names_token`);
    a Timestamp with Expires, within the skew and created at most ``max_age``
    ago; the signature made with ``key`` over the envelope's own ``body``, that
    Timestamp and every addressing header among ``headers``
    (:func:`verify_message`). Replay is the caller's: it keys its cache on the
    returned SignatureValue until the Timestamp expires.

    :raises InvalidSecurity: no such signature, or no Timestamp with Expires.
    :raises MessageExpired: a stale or future Timestamp.
    :raises FailedCheck: a bad signature, or one that covers too little.
    """
    signatures = [s for s in security.iterchildren(SIGNATURE)
                  if any(names_token(reference, identifier=token_id, value_type=value_type, by_uri=by_uri)
                         for key_info in s.iterchildren(_KEY_INFO) for reference in key_info.iterchildren(_STR))]
    if len(signatures) != 1:
        raise InvalidSecurity(f"{len(signatures)} signatures reference holder-of-key token {token_id}, "
                              "expected exactly 1", reason=_NO_PROOF)
    stamp = read_timestamp(security)
    if stamp is None or stamp.expires is None:
        raise InvalidSecurity("holder-of-key proof without a wsu:Timestamp with Expires", reason=_NO_PROOF)
    check_timestamp(stamp, now=now, skew=skew)
    if stamp.created < now - max_age - skew:
        raise MessageExpired(f"wsu:Timestamp Created {stamp.created.isoformat()} is older than {max_age}")
    timestamp = next(security.iterchildren(_xml.qname(ns.WSU, "Timestamp")))
    cover = [body, timestamp, *(h for h in headers if h.tag in ADDRESSING)]
    return verify_message(signatures[0], key=key, algorithms=algorithms, must_cover=cover, now=now), stamp
