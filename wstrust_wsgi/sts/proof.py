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
from ..wssecurity.signature import SIGNATURE
from ..wstrust.proof import ProofKey, ProofRequest, issue_symmetric, parse_proof_request
from ..xmldsig import AlgorithmPolicy, certificate_base64
from ..xmlenc import encrypt_key
from .binding import TrustCall
from .encryption import usable_certificate


@dataclass(frozen=True)
class IssuedProof:
    """The proof key issued with one token: for the RSTR, and the KeyInfo for the assertion."""

    #: The symmetric key (None for PublicKey: the requester keeps its private key).
    key: ProofKey | None
    key_info: etree._Element

    @property
    def described(self) -> str:
        """For the log line."""
        if self.key is None:
            return "the requester's public key (UseKey, possession proven)"
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
    key_info = etree.Element(_xml.qname(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    key_info.append(encrypt_key(key.key, certificate))
    return IssuedProof(key, key_info)


def _use_key_certificate(use_key: etree._Element) -> x509.Certificate:
    """The certificate ``wst:UseKey`` holds: ``ds:KeyInfo/ds:X509Data/ds:X509Certificate`` or a BinarySecurityToken."""
    found = use_key.findall(f"{_xml.qname(ns.DS, 'KeyInfo')}/{_xml.qname(ns.DS, 'X509Data')}/"
                            f"{_xml.qname(ns.DS, 'X509Certificate')}")
    found += use_key.findall(_xml.qname(ns.WSSE, "BinarySecurityToken"))
    if len(found) != 1:
        raise InvalidRequest(f"UseKey holds {len(found)} certificates, expected one (X509Certificate or a "
                             "BinarySecurityToken)", reason="wst:UseKey must hold one X.509 certificate.")
    try:
        certificate = x509.load_der_x509_certificate(b64decode("".join(_xml.text(found[0]).split())))
        public_key = certificate.public_key()
    except ValueError:
        raise InvalidRequest("UseKey certificate does not parse", reason="wst:UseKey must hold one X.509 "
                             "certificate.") from None
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < 2048:
        raise InvalidRequest("UseKey key is not RSA of 2048 bits or more",
                             reason="The wst:UseKey key must be an RSA key of at least 2048 bits.")
    return certificate


def _public(call: TrustCall, request: ProofRequest) -> IssuedProof:
    """PublicKey (WS-Trust 1.3 section 4.4.1): the UseKey certificate, once the request proves its key.

    The proof is a signature in the RST's Security header (the one ``UseKey/@Sig``
    names, when it names one) made with that key over the envelope's own Body
    (which holds the UseKey) and the Timestamp, as vCenter's and OIOIDWS's
    clients send it. The certificate is not trusted for anything else: the
    requester is authenticated by its UsernameToken; the key is only bound.
    """
    assert request.use_key is not None
    certificate = _use_key_certificate(request.use_key)
    envelope = call.envelope
    security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
    signatures = list(security.iterchildren(SIGNATURE)) if security is not None else []
    named = (request.use_key.get("Sig") or "").lstrip("#")
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
        wssecurity.verify_message(signatures[0], key=certificate.public_key(),  # type: ignore[arg-type]
                                  algorithms=AlgorithmPolicy.default(), must_cover=[envelope.body, stamp],
                                  now=call.now)
    except SoapFault as exc:
        raise InvalidRequest(f"UseKey proof of possession refused: {exc.detail}", reason=_REFUSED_PROOF) from None
    key_info = etree.Element(_xml.qname(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    x509_data = etree.SubElement(key_info, _xml.qname(ns.DS, "X509Data"))
    etree.SubElement(x509_data, _xml.qname(ns.DS, "X509Certificate")).text = certificate_base64(certificate)
    return IssuedProof(None, key_info)
