"""Proof keys (WS-Trust 1.3 section 4.4): KeyType, Entropy, KeySize, P_SHA1 and RequestedProofToken.

A holder-of-key token binds a key its holder must prove it has. For a
SymmetricKey request the key comes from one of three places (section 4.4.3,
"Keys and Entropy")::

    client sends                          STS answers                                 the key
    Entropy + ComputedKeyAlgorithm PSHA1  RequestedProofToken/ComputedKey, Entropy     P_SHA1(client, STS)
    Entropy, no ComputedKeyAlgorithm      nothing but KeySize                         the client's entropy
    no Entropy                            RequestedProofToken/BinarySecret            the STS's (TLS only)

P_SHA1 is the TLS 1.0 PRF's hash part (RFC 2246 section 5) with the
**requestor's entropy as the secret and the issuer's as the seed**, as CXF,
WSS4J, Rahas and WIF all compute it (section 4.4.4). KeySize is in bits,
128 to 512, 256 when the request names none (CXF's bounds and default); an
entropy shorter than the key is refused rather than silently replaced.

Wire format only: the STS (``sts.proof``) and the client put these pieces
together; the key itself is never logged (``repr`` hides it).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from .. import _xml, ns
from ..errors import InvalidRequest
from .dialects import Dialect, dialect_of

KeyKind = Literal["bearer", "symmetric", "public"]
EntropyMode = Literal["both", "client", "sts"]
#: KeySize bounds and default, in bits (CXF's SignatureProperties).
MIN_KEY_SIZE, MAX_KEY_SIZE, DEFAULT_KEY_SIZE = 128, 512, 256


def p_sha1(secret: bytes, seed: bytes, length: int) -> bytes:
    """P_SHA1(secret, seed) truncated to ``length`` bytes (RFC 2246 section 5)::

        A(0) = seed;  A(i) = HMAC_SHA1(secret, A(i-1))
        P_SHA1 = HMAC_SHA1(secret, A(1) + seed) + HMAC_SHA1(secret, A(2) + seed) + ...
    """
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hashlib.sha1).digest()
        out += hmac.new(secret, a + seed, hashlib.sha1).digest()
    return out[:length]


def key_type_uri(dialect: Dialect, kind: KeyKind) -> str:
    """The KeyType URI of ``kind`` in ``dialect`` (``.../200512/SymmetricKey``, the 2005 NoProofKey for bearer)."""
    if kind == "bearer":
        return dialect.bearer_key_types[0]
    return f"{dialect.namespace}/{'SymmetricKey' if kind == 'symmetric' else 'PublicKey'}"


def key_kind(dialect: Dialect, key_type: str | None) -> KeyKind | None:
    """What a request's KeyType asks for (absent: bearer, as WSO2's STS defaults); None for an unknown URI."""
    if key_type is None or key_type in dialect.bearer_key_types:
        return "bearer"
    for kind in ("symmetric", "public"):
        if key_type == key_type_uri(dialect, kind):  # type: ignore[arg-type]
            return kind  # type: ignore[return-value]
    return None


def psha1_uri(dialect: Dialect) -> str:
    """The ComputedKeyAlgorithm / ComputedKey URI of P_SHA1 (``.../CK/PSHA1``)."""
    return f"{dialect.namespace}/CK/PSHA1"


def _binary_secret(parent: etree._Element | None, t: str, what: str) -> bytes | None:
    if parent is None:
        return None
    secret = _xml.child(parent, t, "BinarySecret")
    if secret is None or len([c for c in parent if isinstance(c.tag, str)]) != 1:
        raise InvalidRequest(f"{what} holds no single wst:BinarySecret (encrypted entropy is not read)",
                             reason=f"wst:{what} must hold one wst:BinarySecret.")
    try:
        value = b64decode("".join(_xml.text(secret).split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{what}/BinarySecret is not base64", reason=f"wst:{what} is not base64.") from None
    if not value:
        raise InvalidRequest(f"{what}/BinarySecret is empty", reason=f"wst:{what} is empty.")
    return value


@dataclass(frozen=True)
class ProofRequest:
    """What an RST asks for its proof key."""

    kind: KeyKind
    #: Bits: the request's KeySize, or :data:`DEFAULT_KEY_SIZE`.
    key_size: int
    client_entropy: bytes | None = field(repr=False)
    #: Whether the request names ComputedKeyAlgorithm P_SHA1 (combine both entropies).
    computed: bool
    #: PublicKey: the ``wst:UseKey`` element naming the requester's key (its ``Sig`` names the proof); None
    #: when the request has none.
    use_key: etree._Element | None = field(default=None, repr=False)


def parse_proof_request(rst: etree._Element) -> ProofRequest:
    """Read KeyType, KeySize, Entropy and ComputedKeyAlgorithm of an RST (a RequestSecurityToken element)."""
    dialect = dialect_of(rst)
    assert dialect is not None
    t = dialect.namespace
    key_type = _xml.text(_xml.child(rst, t, "KeyType")) or None
    kind = key_kind(dialect, key_type)
    if kind is None:
        raise InvalidRequest(f"KeyType {key_type!r} is not a key type of WS-Trust {dialect.name}",
                             reason="KeyType must be Bearer, SymmetricKey or PublicKey.")
    size_text = _xml.text(_xml.child(rst, t, "KeySize"))
    key_size = DEFAULT_KEY_SIZE
    if size_text:
        if not size_text.isdigit() or not MIN_KEY_SIZE <= int(size_text) <= MAX_KEY_SIZE or int(size_text) % 8:
            raise InvalidRequest(f"KeySize {size_text!r} out of bounds",
                                 reason=f"wst:KeySize must be a multiple of 8 from {MIN_KEY_SIZE} to {MAX_KEY_SIZE}.")
        key_size = int(size_text)
    algorithm = _xml.text(_xml.child(rst, t, "ComputedKeyAlgorithm")) or None
    if algorithm is not None and algorithm != psha1_uri(dialect):
        raise InvalidRequest(f"ComputedKeyAlgorithm {algorithm!r} is not P_SHA1",
                             reason=f"Only the ComputedKeyAlgorithm {psha1_uri(dialect)} is supported.")
    entropy = _binary_secret(_xml.child(rst, t, "Entropy"), t, "Entropy")
    if kind == "symmetric" and entropy is not None and len(entropy) * 8 < key_size:
        raise InvalidRequest(f"client entropy of {len(entropy) * 8} bits for a {key_size}-bit key",
                             reason=f"The client entropy is shorter than the {key_size}-bit key.")
    use_key = _xml.child(rst, t, "UseKey")  # PublicKey without one: the STS decides (an X.509-signed request)
    return ProofRequest(kind, key_size, entropy, algorithm is not None, use_key)


@dataclass(frozen=True)
class ProofKey:
    """A symmetric proof key as the STS made it, and what its RSTR says about it."""

    key: bytes = field(repr=False)
    mode: EntropyMode
    #: The STS's entropy (sent as wst:Entropy) when the key is computed.
    sts_entropy: bytes | None = field(repr=False)
    key_size: int


def issue_symmetric(request: ProofRequest, *, random: Callable[[int], bytes] = os.urandom) -> ProofKey:
    """The proof key for a SymmetricKey request (see the module docstring for the three cases)."""
    size = request.key_size // 8
    if request.client_entropy is None:
        return ProofKey(random(size), "sts", None, request.key_size)
    if not request.computed:
        return ProofKey(request.client_entropy[:size], "client", None, request.key_size)
    sts_entropy = random(size)
    return ProofKey(p_sha1(request.client_entropy, sts_entropy, size), "both", sts_entropy, request.key_size)


def _sub(parent: etree._Element, t: str, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _xml.qname(t, local))
    if text is not None:
        element.text = text
    return element


def proof_elements(dialect: Dialect, proof: ProofKey) -> list[etree._Element]:
    """The RSTR's RequestedProofToken, Entropy and KeySize (section 4.4.3) for ``proof``."""
    t = dialect.namespace
    found = []
    holder = etree.Element(_xml.qname(t, "RSTR"), nsmap={"wst": t})  # only to give the elements their prefix
    if proof.mode != "client":
        requested = _sub(holder, t, "RequestedProofToken")
        if proof.mode == "both":
            _sub(requested, t, "ComputedKey", psha1_uri(dialect))
        else:
            _sub(requested, t, "BinarySecret", b64encode(proof.key).decode()).set("Type", f"{t}/SymmetricKey")
        found.append(requested)
    if proof.sts_entropy is not None:
        secret = _sub(_sub(holder, t, "Entropy"), t, "BinarySecret", b64encode(proof.sts_entropy).decode())
        secret.set("Type", f"{t}/Nonce")
        found.append(secret.getparent())  # type: ignore[arg-type]
    found.append(_sub(holder, t, "KeySize", str(proof.key_size)))
    return found


def with_proof(envelope: bytes, dialect: Dialect, proof: ProofKey) -> bytes:
    """The RSTR envelope ``envelope`` with :func:`proof_elements` spliced in right after ``wst:KeyType``.

    The first ``</wst:KeyType>`` of the serialized response is the RSTR's: in
    the signed token (canonical bytes) and in every escaped value, ``<`` is
    written ``&lt;``, so no other markup can spell it.
    """
    end = b"</wst:KeyType>"
    at = envelope.index(end) + len(end)
    extra = b"".join(etree.tostring(element) for element in proof_elements(dialect, proof))
    return envelope[:at] + extra + envelope[at:]


# ------------------------------------------------------------------ the client's side


def request_elements(rst: etree._Element, dialect: Dialect, *, key_size: int, entropy: EntropyMode,
                     random: Callable[[int], bytes] = os.urandom) -> bytes | None:
    """Add KeySize, Entropy and ComputedKeyAlgorithm of a SymmetricKey request to ``rst``; the client entropy."""
    t = dialect.namespace
    _sub(rst, t, "KeySize", str(key_size))
    if entropy == "sts":
        return None
    nonce = random(key_size // 8)
    secret = _sub(_sub(rst, t, "Entropy"), t, "BinarySecret", b64encode(nonce).decode())
    secret.set("Type", f"{t}/{'Nonce' if entropy == 'both' else 'SymmetricKey'}")
    if entropy == "both":
        _sub(rst, t, "ComputedKeyAlgorithm", psha1_uri(dialect))
    return nonce


def proof_key_of(rstr: etree._Element, client_entropy: bytes | None, key_size: int) -> bytes:
    """The proof key an RSTR gives a client that sent ``client_entropy`` and asked for ``key_size`` bits.

    The RSTR's KeySize, when present, wins over the request's (an STS may
    answer another size; the Microsoft federation gateway returns 24 bytes
    for 256 asked). Raises ValueError when the RSTR gives no usable key.
    """
    t = _xml.namespace(rstr)
    size_text = _xml.text(_xml.child(rstr, t, "KeySize"))
    size = int(size_text) // 8 if size_text.isdigit() else key_size // 8
    requested = _xml.child(rstr, t, "RequestedProofToken")
    computed = _xml.child(requested, t, "ComputedKey") if requested is not None else None
    if computed is not None:
        if _xml.text(computed) != f"{t}/CK/PSHA1" or client_entropy is None:
            raise ValueError(f"ComputedKey {_xml.text(computed)!r} without P_SHA1 or without our entropy")
        server = _binary_secret(_xml.child(rstr, t, "Entropy"), t, "Entropy")
        if server is None:
            raise ValueError("ComputedKey without the STS's wst:Entropy")
        return p_sha1(client_entropy, server, size)
    if requested is not None:
        secret = _binary_secret(requested, t, "RequestedProofToken")
        assert secret is not None
        return secret
    if client_entropy is None:
        raise ValueError("no RequestedProofToken and no entropy of ours to use as the key")
    return client_entropy[:size]


def use_key_element(rst: etree._Element, dialect: Dialect, key: str | etree._Element, signature_id: str) -> None:
    """Add ``wst:UseKey Sig="#signature_id"`` holding ``ds:KeyInfo`` to ``rst``: with ``key`` a base64
    certificate, ``ds:X509Data/ds:X509Certificate``; with an element (a ``ds:KeyValue``, a
    ``wsse:SecurityTokenReference``), that element."""
    use_key = _sub(rst, dialect.namespace, "UseKey")
    use_key.set("Sig", "#" + signature_id)
    key_info = etree.SubElement(use_key, _xml.qname(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    if not isinstance(key, str):
        key_info.append(key)
        return
    x509_data = etree.SubElement(key_info, _xml.qname(ns.DS, "X509Data"))
    etree.SubElement(x509_data, _xml.qname(ns.DS, "X509Certificate")).text = key
