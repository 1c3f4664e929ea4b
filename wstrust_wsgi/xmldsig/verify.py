"""Verifying XML-DSig signatures: enveloped, and detached by ID (XML-DSig core section 3.2).

One rule: **trust only what verify returns**. :func:`verify_enveloped` and
:func:`verify_detached` return a frozen :class:`Verified` holding the signed
elements and the key that verified them, or raise (FailedCheck,
UnsupportedAlgorithm, InvalidSecurityToken from :mod:`wstrust_wsgi.errors`).
Which keys may verify is asked of a :data:`KeyResolver`; the default,
:func:`trusted_certificates`, answers with configured certificates only and
never with a key or certificate the message carries in KeyInfo.
https://www.w3.org/TR/xmldsig-core1/#sec-CoreValidation
"""

from __future__ import annotations

import copy
import functools
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from .. import _xml, ns
from .._checks import Trace
from ..errors import FailedCheck, InvalidSecurityToken, UnsupportedAlgorithm
from .algorithms import ALGORITHMS, Algorithm, AlgorithmPolicy, HmacKey
from .keyvalue import read_key_value


class Candidate(NamedTuple):
    """A key that may verify a signature: a trusted certificate's RSA key (None if not RSA), or an HMAC secret."""

    key: rsa.RSAPublicKey | HmacKey | None
    certificate: x509.Certificate | None = None
    #: The certificate's validity, read once (the properties decode ASN.1 on every access).
    not_before: datetime | None = None
    not_after: datetime | None = None

    @classmethod
    def of(cls, certificate: x509.Certificate) -> Candidate:
        key = certificate.public_key()
        return cls(key if isinstance(key, rsa.RSAPublicKey) else None, certificate,
                   certificate.not_valid_before_utc, certificate.not_valid_after_utc)

    def name(self) -> str:
        """For failure messages only (formatting a subject costs more than a digest)."""
        return self.certificate.subject.rfc4514_string() if self.certificate is not None else "HMAC key"


#: Given the ds:Signature element, the keys that may verify it, tried in order. A resolver
#: may read KeyInfo (a WS-Security SecurityTokenReference, say) to choose among keys it
#: already trusts; it must never answer with a key taken from the message itself.
KeyResolver = Callable[[etree._Element], Iterable[Candidate]]


def trusted_certificates(certificates: Iterable[x509.Certificate]) -> KeyResolver:
    """The default resolver: every configured certificate, whatever KeyInfo says."""
    candidates = tuple(Candidate.of(c) for c in certificates)
    return lambda signature: candidates


def shared_secrets(keys: Iterable[HmacKey]) -> KeyResolver:
    """A resolver for HMAC signature methods: the configured secrets."""
    candidates = tuple(Candidate(k) for k in keys)
    return lambda signature: candidates


@dataclass(frozen=True)
class Verified:
    """What a signature covered and what verified it. Read the signed data from ``signed`` only."""

    #: The referenced elements, in Reference order (for an enveloped signature: the root,
    #: its Signature removed, i.e. the very tree its digested bytes were written from).
    signed: tuple[etree._Element, ...] = field(repr=False)
    #: The candidate that verified: its key and certificate (None for an HMAC secret).
    key: rsa.RSAPublicKey | HmacKey = field(repr=False)
    certificate: x509.Certificate | None
    signature_method: str


_Q = {local: _xml.qname(ns.DS, local) for local in (
    "Signature", "SignedInfo", "CanonicalizationMethod", "SignatureMethod", "Reference", "Transforms", "Transform",
    "DigestMethod", "DigestValue", "SignatureValue", "KeyInfo", "KeyValue", "HMACOutputLength")}
_DER_KEY = _xml.qname(ns.DSIG11, "DEREncodedKeyValue")
_FIND_NS = {"ds": ns.DS, "dsig11": ns.DSIG11}
_EXC_C14N_NS = {"ec": ns.ALG_EXC_C14N}
#: Every attribute whose value is $id.
_ID_VALUES = etree.XPath("//@*[. = $id]")
ENVELOPED = [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N]
DETACHED = [ns.ALG_EXC_C14N]


class Parts(NamedTuple):
    """A Signature's elements as the shape check found them (by name, each the only one)."""

    signature: etree._Element
    signed_info: etree._Element
    c14n_method: etree._Element
    method: etree._Element
    references: list[etree._Element]
    #: Per reference: its Transform elements, and its DigestMethod.
    steps: list[list[etree._Element]]
    digest_methods: list[etree._Element]


class _Refused(Exception):
    """A signature refused during verification (becomes FailedCheck, naming ``check``)."""

    def __init__(self, detail: str, check: str = "signature-shape", expected: object = None,
                 actual: object = None) -> None:
        super().__init__(detail)
        self.check, self.expected, self.actual = check, expected, actual


@functools.lru_cache(maxsize=None)
def _schemas() -> list[etree.XMLSchema]:
    """The XML-DSig schema, as signxml ships it (the copy the reference verifier validates with)."""
    from signxml import XMLVerifier  # the schema files only
    return list(XMLVerifier.schemas())


def _signed_info_parts(signature: etree._Element, algorithms: AlgorithmPolicy
                       ) -> tuple[etree._Element, etree._Element, etree._Element, list[etree._Element]]:
    """SignedInfo, CanonicalizationMethod (exclusive c14n only), an allowed SignatureMethod, the References."""
    signed_info = _xml.only(signature, _Q["SignedInfo"])
    if signed_info is None:
        raise FailedCheck("Signature has no SignedInfo", check="signature-shape")
    c14n = _xml.only(signed_info, _Q["CanonicalizationMethod"])
    if c14n is None or c14n.get("Algorithm") != ns.ALG_EXC_C14N:
        found = c14n.get("Algorithm") if c14n is not None else None
        raise UnsupportedAlgorithm(f"canonicalization {found!r}", expected=f"CanonicalizationMethod {ns.ALG_EXC_C14N}",
                                   actual=found)
    method = _xml.only(signed_info, _Q["SignatureMethod"])
    algorithms.signature_method(method.get("Algorithm") if method is not None else None)
    assert method is not None
    if _xml.only(method, _Q["HMACOutputLength"]) is not None:  # truncation attacks (CVE-2009-0217)
        raise UnsupportedAlgorithm("HMACOutputLength is not accepted")
    return signed_info, c14n, method, list(signed_info.iterchildren(_Q["Reference"]))


def _parts(signature: etree._Element, algorithms: AlgorithmPolicy, transforms: list[str],
           found: tuple[etree._Element, etree._Element, etree._Element, list[etree._Element]]) -> Parts:
    """Every Reference must apply exactly ``transforms`` and an allowed DigestMethod."""
    signed_info, c14n, method, references = found
    all_steps, digests = [], []
    for reference in references:
        holder = _xml.only(reference, _Q["Transforms"])
        steps = list(holder.iterchildren(_Q["Transform"])) if holder is not None else []
        uris = [t.get("Algorithm") for t in steps]
        if uris != transforms:
            raise UnsupportedAlgorithm(f"transforms {uris!r}: only {transforms!r} are allowed",
                                       expected=f"Transforms {transforms}", actual=uris)
        digest = _xml.only(reference, _Q["DigestMethod"])
        algorithms.digest_method(digest.get("Algorithm") if digest is not None else None)
        assert digest is not None
        all_steps.append(steps)
        digests.append(digest)
    return Parts(signature, signed_info, c14n, method, references, all_steps, digests)


def id_holders(document: etree._Element, reference_id: str, id_names: frozenset[str]) -> list[etree._Element]:
    """Every element of ``document``'s whole tree holding ``reference_id`` in an attribute named one of
    ``id_names`` (by local name, in any namespace: ``wsu:Id`` is an ``Id``), in document order."""
    values = cast(list[etree._ElementUnicodeResult], _ID_VALUES(document, id=reference_id))
    return [value.getparent() for value in values if etree.QName(value.attrname).localname in id_names]


def enveloped_shape(root: etree._Element, *, id_attribute: str, id_names: frozenset[str],
                    algorithms: AlgorithmPolicy, trace: Trace | None = None) -> tuple[str, Parts]:
    """Refuse anything but one enveloped signature over ``root`` by its unique ID; return the ID and the parts.

    ``root`` must carry its ID in ``id_attribute``, one ds:Signature in the
    whole tree (root's own child), and no other element may hold that ID in
    an attribute named one of ``id_names`` (in any namespace): the reference
    must resolve to ``root`` and nothing else (XML Signature Wrapping).
    """
    what = etree.QName(root).localname
    reference_id = root.get(id_attribute, "")
    if not reference_id:
        raise InvalidSecurityToken(f"{what} has no {id_attribute}", check="signature-shape",
                                   expected=f"an {id_attribute} attribute", actual="none")
    signatures = list(root.iter(_Q["Signature"]))
    if not signatures:
        raise FailedCheck(f"{what} is not signed", reason="The security token is not signed.", check="signed",
                          expected="one ds:Signature", actual="none")
    if trace is not None:
        trace.passed("signed", "one ds:Signature", f"{len(signatures)} ds:Signature")
    if len(signatures) > 1 or signatures[0].getparent() is not root:
        raise FailedCheck(f"{what} must carry exactly one signature, as its own child", check="signature-shape",
                          expected=f"one ds:Signature, child of the {what}",
                          actual=f"{len(signatures)} ds:Signature, the first in {signatures[0].getparent().tag}")
    holders = id_holders(root, reference_id, id_names)
    if any(holder is not root for holder in holders):
        raise FailedCheck(f"ID {reference_id!r} is not unique to the {what} ({len(holders)} holders)",
                          check="signature-shape", expected=f"ID {reference_id!r} held by the {what} only",
                          actual=f"{len(holders)} holders")
    found = _signed_info_parts(signatures[0], algorithms)
    references = found[3]
    if len(references) != 1:
        raise FailedCheck(f"signature has {len(references)} references, expected exactly 1", check="signature-shape",
                          expected="1 Reference", actual=f"{len(references)} References")
    uri = references[0].get("URI")
    if uri != "#" + reference_id:
        raise FailedCheck(f"reference URI {uri!r} does not point at {what} {reference_id!r}", check="signature-shape",
                          expected=f"Reference URI '#{reference_id}'", actual=f"Reference URI {uri!r}")
    return reference_id, _parts(signatures[0], algorithms, ENVELOPED, found)


def _inclusive_prefixes(node: etree._Element) -> list[str] | None:
    if len(node) == 0:  # no child, so no ec:InclusiveNamespaces (the usual case)
        return None
    inclusive = node.find("./ec:InclusiveNamespaces[@PrefixList]", namespaces=_EXC_C14N_NS)
    return None if inclusive is None else inclusive.get("PrefixList", "").split(" ")


def _c14n(element: etree._Element, transform: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                          inclusive_ns_prefixes=_inclusive_prefixes(transform))


def _remove_enveloped(signature: etree._Element) -> None:
    """The enveloped-signature transform (XML-DSig core 6.6.4): drop the Signature, keep the text after it."""
    parent = signature.getparent()
    assert parent is not None
    tail = signature.tail
    previous = signature.getprevious()
    signature.tail = None
    if tail is not None:
        if previous is None:
            parent.text = (parent.text or "") + tail
        else:
            previous.tail = (previous.tail or "") + tail
    parent.remove(signature)


def _find(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, namespaces=_FIND_NS)
    if found is None:
        raise _Refused(f"no {path} in {element.tag}")
    return found


def _key_value_matches(signature: etree._Element, public_key: rsa.RSAPublicKey) -> bool:
    """A KeyValue or DEREncodedKeyValue next to the trusted certificate must name the same key (as signxml)."""
    key_info = next(signature.iterchildren(_Q["KeyInfo"]), None)
    if key_info is None:
        return True
    key_value = der = None  # the first of each, as signxml's find() takes it
    for child in key_info:
        if child.tag == _Q["KeyValue"] and key_value is None:
            key_value = child
        elif child.tag == _DER_KEY and der is None:
            der = child
    if key_value is None and der is None:  # the usual case: no key named, nothing to compare
        return True
    numbers = public_key.public_numbers()
    if key_value is not None:  # not an RSA key, or malformed: ValueError, a failure for the caller
        if read_key_value(key_value).public_numbers() != numbers:
            return False
    if der is not None:
        carried = serialization.load_der_public_key(b64decode(der.text))  # type: ignore[arg-type]
        if not isinstance(carried, rsa.RSAPublicKey):
            return False
        if (carried.public_numbers().n, carried.public_numbers().e) != (numbers.n, numbers.e):
            return False
    return True


def _schema_view(parts: Parts) -> etree._Element:
    """A detached (message) Signature as the XML-DSig schema can judge it.

    SignedInfo's CanonicalizationMethod takes *strict* wildcard content, and
    the schema set knows no ``ec:InclusiveNamespaces`` (Exclusive C14N section
    4.1), which WSS4J writes there in every message signature. So a copy
    without it is validated, once it is checked to be only what that spec
    defines: a PrefixList, no other attribute, no content. Enveloped (token)
    signatures keep the schema's verdict, as the signxml reference has it.
    """
    inclusive = parts.c14n_method.findall("ec:InclusiveNamespaces", namespaces=_EXC_C14N_NS)
    if not inclusive:
        return parts.signature
    if len(inclusive) > 1 or set(inclusive[0].attrib) != {"PrefixList"} or len(inclusive[0]) or (
            inclusive[0].text or "").strip():
        raise _Refused("CanonicalizationMethod's InclusiveNamespaces is not one PrefixList")
    view = copy.deepcopy(parts.signature)
    method = view.find("ds:SignedInfo/ds:CanonicalizationMethod", namespaces=_FIND_NS)
    assert method is not None  # a copy of parts.c14n_method's tree
    method.remove(method.find("ec:InclusiveNamespaces", namespaces=_EXC_C14N_NS))  # type: ignore[arg-type]
    return view


def _signed_info(parts: Parts, *, message: bool = False) -> tuple[Algorithm, bytes, bytes]:
    """The SignatureMethod, the SignatureValue bytes and SignedInfo's canonical bytes, after the schema check
    (of :func:`_schema_view` for a ``message`` signature)."""
    view = _schema_view(parts) if message else parts.signature
    for schema in _schemas():
        schema.assertValid(view)
    value = next(parts.signature.iterchildren(_Q["SignatureValue"]))
    method = ALGORITHMS[parts.method.get("Algorithm")]  # type: ignore[index]  # allowed by _signed_info_parts
    return method, b64decode(value.text), _c14n(parts.signed_info, parts.c14n_method)  # type: ignore[arg-type]


def _check_digest(element: etree._Element, reference: etree._Element, digest_method: etree._Element,
                  last_transform: etree._Element) -> bytes:
    """The digest of ``element``, which must be the Reference's DigestValue (else _Refused, naming both)."""
    written = next(reference.iterchildren(_Q["DigestValue"])).text
    expected = b64decode(written)  # type: ignore[arg-type]
    actual = ALGORITHMS[digest_method.get("Algorithm")].digest(_c14n(element, last_transform))  # type: ignore[index]
    if actual != expected:
        raise _Refused("digest mismatch", "digest", f"DigestValue {(written or '').strip()}",
                       f"digest of the assertion as received {b64encode(actual).decode()}")
    return actual


def _by_key(signature: etree._Element, method: Algorithm, value: bytes, signed_info: bytes,
            keys: KeyResolver, now: datetime) -> Candidate:
    """The first candidate whose key verifies ``value`` over ``signed_info`` and is valid at ``now``; or FailedCheck."""
    at = now.astimezone(timezone.utc) if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
    failures = []
    out_of_date = 0
    candidates = tuple(keys(signature))
    for candidate in candidates:
        if candidate.not_before is not None and at < candidate.not_before:
            failures.append(f"{candidate.name()}: certificate is not yet valid at {at.isoformat()}")
            out_of_date += 1
            continue
        if candidate.not_after is not None and at > candidate.not_after:
            failures.append(f"{candidate.name()}: certificate expired at {candidate.not_after.isoformat()}")
            out_of_date += 1
            continue
        if candidate.key is None:
            failures.append(f"{candidate.name()}: not an RSA key")
            continue
        try:
            method.verify(candidate.key, value, signed_info)
            if isinstance(candidate.key, rsa.RSAPublicKey) and not _key_value_matches(signature, candidate.key):
                failures.append(f"{candidate.name()}: KeyInfo names another key")
                continue
        except (InvalidSignature, _Refused, etree.LxmlError, TypeError, ValueError) as exc:
            failures.append(f"{candidate.name()}: {type(exc).__name__}: {exc}")
            continue
        return candidate
    raise FailedCheck("signature did not verify with any trusted certificate: " + "; ".join(failures),
                      check="certificate-validity" if failures and out_of_date == len(failures) else "signing-key",
                      expected="a signature by one of: " + "; ".join(_named(c) for c in candidates),
                      actual="; ".join(failures) or "no trusted certificate configured")


def thumbprints(certificate: x509.Certificate) -> tuple[str, str]:
    """The SHA-1 and SHA-256 thumbprints in upper-case hex, as AD FS and Windows show them (SHA-1 names a
    certificate there, it secures nothing here)."""
    return (certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
            certificate.fingerprint(hashes.SHA256()).hex().upper())


def _named(candidate: Candidate) -> str:
    """A candidate as a person compares it: its subject and thumbprints (for a failure only)."""
    if candidate.certificate is None:
        return candidate.name()
    sha1, sha256 = thumbprints(candidate.certificate)
    return f"{candidate.name()} (SHA-1 {sha1}, SHA-256 {sha256}, valid {candidate.not_before} to {candidate.not_after})"


def _verified(candidate: Candidate, signed: tuple[etree._Element, ...], method: Algorithm) -> Verified:
    assert candidate.key is not None
    return Verified(signed, candidate.key, candidate.certificate, method.uri)


def verify_enveloped(
    root: etree._Element, *, id_attribute: str, algorithms: AlgorithmPolicy, keys: KeyResolver, now: datetime,
    id_names: frozenset[str] = frozenset(), parts: Parts | None = None, trace: Trace | None = None,
) -> Verified:
    """Verify the enveloped signature of ``root``, a standalone tree that this call consumes.

    Checks the shape (:func:`enveloped_shape`, unless its ``parts`` are handed
    on), validates the Signature against the XML-DSig schema, verifies
    SignedInfo's signature with the first key from ``keys`` that is valid at
    ``now``, and the digest of ``root`` without its Signature. What is
    returned as signed is ``root`` itself, its Signature removed: the very
    tree the digested bytes were written from (comments dropped at parse,
    the Signature's tail kept), so everything read from it was signed.
    With a ``trace``, the digest and key checks are recorded as they pass.
    """
    if parts is None:
        _, parts = enveloped_shape(root, id_attribute=id_attribute, id_names=id_names | {id_attribute},
                                   algorithms=algorithms)
    try:
        method, value, signed_info = _signed_info(parts)
        # the shape check made root the one holder of its ID: the reference resolves to root
        _remove_enveloped(parts.signature)
        digest = _check_digest(root, parts.references[0], parts.digest_methods[0], parts.steps[0][-1])
    except (_Refused, etree.LxmlError, TypeError, ValueError, IndexError, StopIteration) as exc:
        raise _failed(exc) from None
    if trace is not None:
        trace.passed("digest", "the Reference's DigestValue", f"{b64encode(digest).decode()} (matches)")
    try:
        candidate = _by_key(parts.signature, method, value, signed_info, keys, now)
    except FailedCheck as fault:
        if trace is not None and fault.check == "signing-key":  # some trusted certificate was in date
            trace.passed("certificate-validity", f"valid at {now.isoformat()}", "a trusted certificate is valid")
        raise
    if trace is not None and candidate.certificate is not None:
        trace.passed("certificate-validity", f"valid at {now.isoformat()}",
                     f"valid {candidate.not_before} to {candidate.not_after}")
    if trace is not None:
        trace.passed("signing-key", "a trusted certificate", _named(candidate))
    return _verified(candidate, (root,), method)


def _failed(exc: Exception) -> FailedCheck:
    """The FailedCheck for a refusal inside verification: the check ``_Refused`` names, else the shape."""
    if isinstance(exc, _Refused):
        return FailedCheck(f"signature refused: _Refused: {exc}", check=exc.check, expected=exc.expected,
                           actual=exc.actual)
    return FailedCheck(f"signature refused: {type(exc).__name__}: {exc}", check="signature-shape",
                       expected="a Signature valid against the XML-DSig schema", actual=str(exc))


def verify_detached(
    signature: etree._Element, *, id_attributes: Sequence[str], algorithms: AlgorithmPolicy, keys: KeyResolver,
    now: datetime,
) -> Verified:
    """Verify a detached signature whose References point by ``#id`` at elements of the same document.

    Each ID must be held by exactly one element of the document (in any of
    ``id_attributes``, Clark names for namespaced ones such as wsu:Id), which
    must not contain the Signature; the transform is exclusive c14n only.
    Returns the referenced elements in Reference order.
    """
    parts = _parts(signature, algorithms, DETACHED, _signed_info_parts(signature, algorithms))
    if not parts.references:
        raise FailedCheck("signature has no references")
    document = signature.getroottree()
    targets = []
    for reference in parts.references:
        uri = reference.get("URI") or ""
        if not uri.startswith("#") or len(uri) < 2:
            raise FailedCheck(f"reference URI {uri!r} is not a same-document #id")
        holders = [el for name in id_attributes
                   for el in document.iter() if isinstance(el.tag, str) and el.get(name) == uri[1:]]
        if len(holders) != 1:
            raise FailedCheck(f"reference {uri!r} resolves to {len(holders)} elements, expected exactly 1")
        if any(ancestor is holders[0] for ancestor in signature.iterancestors()):
            raise FailedCheck(f"reference {uri!r} contains the signature: not a detached signature")
        targets.append(holders[0])
    try:
        method, value, signed_info = _signed_info(parts, message=True)
        for target, reference, digest, steps in zip(targets, parts.references, parts.digest_methods, parts.steps):
            _check_digest(target, reference, digest, steps[-1])
    except (_Refused, etree.LxmlError, TypeError, ValueError, IndexError, StopIteration) as exc:
        raise _failed(exc) from None
    return _verified(_by_key(signature, method, value, signed_info, keys, now), tuple(targets), method)
