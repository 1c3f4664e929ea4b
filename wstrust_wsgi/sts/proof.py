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

import functools
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from .. import _xml, ns
from ..errors import InvalidRequest
from ..model import RelyingParty
from ..wstrust.proof import ProofKey, ProofRequest, issue_symmetric, parse_proof_request
from ..xmlenc import encrypt_key


@dataclass(frozen=True)
class IssuedProof:
    """The proof key issued with one token: for the RSTR, and the KeyInfo for the assertion."""

    key: ProofKey
    key_info: etree._Element


@functools.lru_cache(maxsize=256)
def _certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def issue_proof(rst: etree._Element, party: RelyingParty, *, protected: bool) -> IssuedProof | None:
    """The proof key a request asks for (None for bearer), or InvalidRequest saying why none can be issued.

    :param protected: whether the request came over TLS or from a loopback peer
        (a key made by the STS alone is sent back in clear).
    """
    request: ProofRequest = parse_proof_request(rst)
    if request.kind == "bearer":
        return None
    if request.kind == "public":
        raise InvalidRequest("KeyType PublicKey is not issued yet",
                             reason="Only the Bearer and SymmetricKey key types are issued.")
    if party.certificate_pem is None:
        raise InvalidRequest(f"SymmetricKey for {party.address!r}, which has no certificate to encrypt the "
                             "proof key for", reason="The relying party has no certificate registered, so it "
                             "cannot be issued a holder-of-key token; ask for a bearer token.")
    if request.client_entropy is None and not protected:
        raise InvalidRequest("SymmetricKey without client entropy over plain HTTP from a remote peer",
                             reason="A proof key made by the STS alone is sent only over TLS; send wst:Entropy.")
    try:
        certificate = _certificate(party.certificate_pem)
    except ValueError:
        raise InvalidRequest(f"certificate of {party.address!r} is not a PEM certificate",
                             reason="The relying party's certificate cannot be used.") from None
    key = issue_symmetric(request)
    key_info = etree.Element(_xml.qname(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    key_info.append(encrypt_key(key.key, certificate))
    return IssuedProof(key, key_info)
