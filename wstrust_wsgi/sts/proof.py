"""Holder-of-key at the STS: the proof key of a SymmetricKey request, and where it goes.

The key (:mod:`wstrust_wsgi.wstrust.proof`: client entropy, the STS's, or
both through P_SHA1) travels twice:

* to the client, in the RSTR: ``RequestedProofToken`` (``ComputedKey`` when
  both entropies made it, the key itself as ``BinarySecret`` when the STS made
  it alone: only over TLS or from a loopback peer), the STS ``Entropy`` and
  ``KeySize``;
* to the relying party, inside the signed assertion: a holder-of-key
  SubjectConfirmation whose ``ds:KeyInfo`` holds the key as an
  ``xenc:EncryptedKey`` for the party's registered certificate
  (``RelyingParty.certificate_pem``), RSA-OAEP (never RSA 1.5, which WSO2
  writes and WSS4J refuses). A party with no certificate cannot read a proof
  key, so a symmetric request for it is refused.

A PublicKey request names the requester's RSA key (2048 bits or more) in
``wst:UseKey``, one of: ``ds:KeyInfo/ds:X509Data/ds:X509Certificate``; a
``wsse:BinarySecurityToken``; a ``wsse:SecurityTokenReference`` (directly or in
``ds:KeyInfo``) whose ``wsse:Reference URI="#id"`` names the one X.509
BinarySecurityToken of the Security header holding that id (an id two elements
hold is refused: the signature and this code could read different ones); or a
``ds:KeyValue/ds:RSAKeyValue`` (directly or in ``ds:KeyInfo``: CXF writes the
one, PicketLink the other). An X.509-signed request (:mod:`.certificate`) with
no key in UseKey, or no UseKey, binds the certificate that signed it, as
vCenter's STS does for pyVmomi. Whichever, the request must prove possession
(:func:`_public`); the assertion's confirmation then carries the certificate
as ``ds:X509Data``, or the bare key as ``ds:KeyValue``.
"""

from __future__ import annotations

from base64 import b64decode
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from .. import _xml, ns, wssecurity
from ..errors import InvalidRequest, SoapFault
from ..model import RelyingParty
from ..wssecurity.signature import SIGNATURE, WSU_ID
from ..wstrust.proof import ProofKey, ProofRequest, issue_symmetric, parse_proof_request
from ..xmldsig import AlgorithmPolicy, certificate_base64, id_holders
from ..xmldsig.keyvalue import KEY_VALUE, key_value_element, read_key_value
from ..xmlenc import encrypt_key
from .binding import TrustCall
from .encryption import usable_certificate


@dataclass(frozen=True)
class IssuedProof:
    """The proof key issued with one token: for the RSTR, and the KeyInfo for the assertion."""

    #: The symmetric key (None for PublicKey: the requester keeps its private key).
    key: ProofKey | None
    key_info: etree._Element
    #: PublicKey: where the request named its key.
    source: str = ""

    @property
    def described(self) -> str:
        """For the log line."""
        if self.key is None:
            return f"the requester's public key ({self.source}, possession proven)"
        return f"a symmetric key from {_SOURCES[self.key.mode]}"


_SOURCES = {"both": "both entropies (P_SHA1)", "client": "the client's entropy", "sts": "the STS's entropy"}
_REFUSED_PROOF = "The request must be signed with the wst:UseKey key over its Body and Timestamp."


def issue_proof(call: TrustCall, party: RelyingParty) -> IssuedProof | None:
    """The proof key a request asks for (None for bearer), or InvalidRequest saying why none can be issued.

    A key made by the STS alone is sent back in clear, so only when
    ``call.protected`` (TLS or a loopback peer).
    """
    request: ProofRequest = parse_proof_request(call.rst)
    protected = call.protected
    if party.key_types is not None and request.kind not in party.key_types:
        raise InvalidRequest(f"key type {request.kind} is not allowed for {party.address!r} "
                             f"(allowed: {sorted(party.key_types)})",
                             reason=f"The relying party accepts only these key types: "
                                    f"{', '.join(sorted(party.key_types))}.")
    if request.kind == "bearer":
        return None
    if request.kind == "public":
        return _public(call, request)
    if party.certificate_pem is None:
        raise InvalidRequest(f"SymmetricKey for {party.address!r}, which has no certificate to encrypt the "
                             "proof key for", reason="The relying party has no certificate registered, so it "
                             "cannot be issued a holder-of-key token; ask for a bearer token.")
    if request.client_entropy is None and not protected:
        raise InvalidRequest("SymmetricKey without client entropy over plain HTTP from a remote peer",
                             reason="A proof key made by the STS alone is sent only over TLS; send wst:Entropy.")
    certificate = usable_certificate(party, call.now)  # the one reader of a party's certificate, dates included
    key = issue_symmetric(request)
    return IssuedProof(key, symmetric_key_info(key.key, certificate))


def symmetric_key_info(secret: bytes, certificate: x509.Certificate) -> etree._Element:
    """The holder-of-key ``ds:KeyInfo`` of a symmetric proof key: the key as an RSA-OAEP ``xenc:EncryptedKey``
    for the relying party's ``certificate`` (at issue and at renewal)."""
    key_info = etree.Element(_KEY_INFO, nsmap={"ds": ns.DS})
    key_info.append(encrypt_key(secret, certificate))
    return key_info


def public_key_info(key: rsa.RSAPublicKey, certificate: x509.Certificate | None) -> etree._Element:
    """The holder-of-key ``ds:KeyInfo`` of a bound public key: its ``certificate`` as ``ds:X509Data``, or, for a
    key bound bare (``ds:KeyValue`` in UseKey, no certificate), the key as ``ds:KeyValue``."""
    key_info = etree.Element(_KEY_INFO, nsmap={"ds": ns.DS})
    if certificate is None:
        key_info.append(key_value_element(key))
    else:
        x509_data = etree.SubElement(key_info, _X509_DATA)
        etree.SubElement(x509_data, _xml.qname(ns.DS, "X509Certificate")).text = certificate_base64(certificate)
    return key_info


_BST = _xml.qname(ns.WSSE, "BinarySecurityToken")
_STR = _xml.qname(ns.WSSE, "SecurityTokenReference")
_KEY_INFO = _xml.qname(ns.DS, "KeyInfo")
_X509_DATA = _xml.qname(ns.DS, "X509Data")
_NO_KEY = ("A PublicKey request must name its key in wst:UseKey, or be signed with a registered X.509 "
           "certificate (which is then the key).")


@dataclass(frozen=True)
class BoundKey:
    """The public key a PublicKey request binds, and how it named it (for the log)."""

    key: rsa.RSAPublicKey
    #: The certificate it came in (the confirmation carries it); None for a bare ``ds:KeyValue``.
    certificate: x509.Certificate | None
    source: str


def _refuse(detail: str, reason: str = "wst:UseKey must name one RSA key: an X.509 certificate "
            "(ds:X509Data, a BinarySecurityToken or a reference to one) or a ds:KeyValue.") -> InvalidRequest:
    return InvalidRequest(detail, reason=reason)


def _certificate(text: str, where: str) -> BoundKey:
    try:
        certificate = x509.load_der_x509_certificate(b64decode("".join(text.split()), validate=True))
        key = certificate.public_key()
    except ValueError:
        raise _refuse(f"{where}: not a DER X.509 certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise _refuse(f"{where}: not an RSA key")
    return BoundKey(key, certificate, where)


def _referenced_token(reference: etree._Element, envelope: etree._Element, security: etree._Element | None
                      ) -> etree._Element:
    """The X.509 BinarySecurityToken of the Security header a ``wsse:SecurityTokenReference`` names by
    ``wsse:Reference URI="#id"``: the id held by exactly one element of the whole envelope, and that one
    such a token (two elements sharing the id could be read differently by the signature and by us)."""
    references = reference.findall(_xml.qname(ns.WSSE, "Reference"))
    uri = references[0].get("URI", "") if len(references) == 1 else ""
    value_type = references[0].get("ValueType") if len(references) == 1 else None
    if not uri.startswith("#") or len(uri) == 1 or value_type not in (None, ns.WSSE_X509V3):
        raise _refuse(f"UseKey SecurityTokenReference holds {len(references)} wsse:Reference (URI {uri!r}, "
                      f"ValueType {value_type!r}), expected one local #id reference to an X509v3 token")
    holders = id_holders(envelope, uri[1:], frozenset({"Id", "ID"}))
    if len(holders) != 1:
        raise _refuse(f"UseKey reference {uri} is held by {len(holders)} elements, expected exactly one",
                      reason=f"wst:UseKey references {uri}, which must name exactly one X.509 "
                             "BinarySecurityToken of the Security header.")
    token = holders[0]
    if token.tag != _BST or token.get("ValueType") != ns.WSSE_X509V3 or token.getparent() is not security:
        raise _refuse(f"UseKey reference {uri} names a {etree.QName(token).localname} "
                      f"(ValueType {token.get('ValueType')!r}) outside the Security header's X509v3 tokens",
                      reason=f"wst:UseKey references {uri}, which must name exactly one X.509 "
                             "BinarySecurityToken of the Security header.")
    return token


def _use_key(use_key: etree._Element | None, envelope: etree._Element,
             security: etree._Element | None) -> BoundKey:
    """The one key ``wst:UseKey`` names, in any of the forms of the module's docstring (or ``_NO_KEY``)."""
    carriers: list[etree._Element] = []
    for child in use_key if use_key is not None else ():
        if child.tag == _KEY_INFO:
            carriers += [c for c in child if isinstance(c.tag, str)]
        elif isinstance(child.tag, str):
            carriers.append(child)
    if not carriers:  # vCenter's clients: an empty UseKey naming the X.509 signature that authenticated
        tokens = [t for t in security.iterchildren(_BST) if t.get("ValueType") == ns.WSSE_X509V3] \
            if security is not None else []
        if len(tokens) != 1:
            raise _refuse(f"PublicKey with {'an empty' if use_key is not None else 'no'} wst:UseKey and "
                          f"{len(tokens)} X.509 tokens in the Security header", reason=_NO_KEY)
        return _certificate(_xml.text(tokens[0]), "the certificate that signed the request")
    if len(carriers) != 1:
        raise _refuse(f"UseKey names {len(carriers)} keys "
                      f"({', '.join(etree.QName(c).localname for c in carriers)}), expected one")
    carrier = carriers[0]
    if carrier.tag == _X509_DATA:
        found = carrier.findall(_xml.qname(ns.DS, "X509Certificate"))
        if len(found) != 1:
            raise _refuse(f"UseKey X509Data holds {len(found)} certificates, expected one")
        return _certificate(_xml.text(found[0]), "UseKey X509Data")
    if carrier.tag == _BST:
        if carrier.get("ValueType", ns.WSSE_X509V3) != ns.WSSE_X509V3:
            raise _refuse(f"UseKey BinarySecurityToken of ValueType {carrier.get('ValueType')!r}")
        return _certificate(_xml.text(carrier), "UseKey BinarySecurityToken")
    if carrier.tag == _STR:
        token = _referenced_token(carrier, envelope, security)
        return _certificate(_xml.text(token), f"the BinarySecurityToken UseKey references (#{token.get(WSU_ID)})")
    if carrier.tag == KEY_VALUE:
        try:
            return BoundKey(read_key_value(carrier), None, "UseKey KeyValue")
        except ValueError as exc:
            raise _refuse(f"UseKey {exc}") from None
    raise _refuse(f"UseKey holds a {carrier.tag}, which names no key this STS reads")


def _public(call: TrustCall, request: ProofRequest) -> IssuedProof:
    """PublicKey (WS-Trust 1.3 section 4.4.1): the UseKey key, once the request proves it holds it.

    The proof is a signature in the RST's Security header (the one ``UseKey/@Sig``
    names, when it names one) made with that key over the envelope's own Body
    (which holds the UseKey) and the Timestamp, as vCenter's and OIOIDWS's
    clients send it. The key is not trusted for anything else: the requester
    is authenticated by its UsernameToken or its registered certificate; the
    key is only bound. Without a key in UseKey, an X.509-signed request binds
    the certificate that signed it (what vCenter's STS does for pyVmomi).
    """
    envelope = call.envelope
    security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
    bound = _use_key(request.use_key, envelope.root, security)
    if bound.key.key_size < 2048:
        raise _refuse(f"{bound.source}: an RSA key of {bound.key.key_size} bits",
                      reason="The wst:UseKey key must be an RSA key of at least 2048 bits.")
    signatures = list(security.iterchildren(SIGNATURE)) if security is not None else []
    named = ((request.use_key.get("Sig") if request.use_key is not None else None) or "").lstrip("#")
    if named:
        signatures = [s for s in signatures if s.get("Id") == named]
    stamp = security.find(_xml.qname(ns.WSU, "Timestamp")) if security is not None else None
    if len(signatures) != 1 or stamp is None:
        raise InvalidRequest(f"PublicKey request with {len(signatures)} candidate proof signatures "
                             f"(UseKey Sig {named!r}) and {'a' if stamp is not None else 'no'} Timestamp",
                             reason=_REFUSED_PROOF)
    try:
        timestamp = wssecurity.read_timestamp(security)  # type: ignore[arg-type]
        assert timestamp is not None
        wssecurity.check_timestamp(timestamp, now=call.now, skew=call.settings.clock_skew)
        wssecurity.verify_message(signatures[0], key=bound.key, algorithms=AlgorithmPolicy.default(),
                                  must_cover=[envelope.body, stamp], now=call.now)
    except SoapFault as exc:
        raise InvalidRequest(f"UseKey proof of possession ({bound.source}) refused: {exc.detail}",
                             reason=_REFUSED_PROOF) from None
    return IssuedProof(None, public_key_info(bound.key, bound.certificate), bound.source)
