"""The request-path signature verifier against signxml, verdict for verdict.

The production verifier (``xmldsig.verify_enveloped``, as ``saml.verify`` calls
it: exclusive c14n and RSA on the one parsed tree) must
reach the same verdict as ``verify_with_signxml`` in ``tests/_support/signing_oracles.py`` (signxml's
``XMLVerifier``, the reference) on every input that passes the shape checks,
and return the same signed element when both accept. The inputs: valid SAML
2.0 and 1.1 tokens (our signer and signxml's, every allowed algorithm, pretty
printed so that text sits around the Signature, a real AD FS token), each
byte-level edit at hundreds of offsets, element-level edits of every element
(removed, duplicated, text changed, attribute added, child added, comment and
processing instruction inserted, Signature moved), and the wrong certificates
(an untrusted key, a rollover pair, a certificate not valid at ``now``).
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod

from _support.signing_oracles import sign_with_signxml, sign_with_tree, verify_with_signxml
from _forge import ADFS_AUDIENCE, ADFS_ISSUER, ADFS_VECTOR, content, sign_with, vector_assertion
from _support import ISSUER, SERVICE_URL
from wstrust_wsgi import _xml, ns, saml
from wstrust_wsgi.saml import verify as saml_verify
from wstrust_wsgi.errors import FailedCheck, MalformedMessage, SecurityFault

DS = ns.DS


def verdict(verifier: Any, data: bytes, policy: saml.ValidationPolicy, now: datetime) -> tuple[Any, ...]:
    """What ``verifier`` says about ``data``, as verify_assertion would reach it (after parse and shape checks)."""
    try:
        root = _xml.parse(data)
    except MalformedMessage:
        return ("unparsable",)
    version = saml.version_of(root)
    if version is None:
        return ("not an assertion",)
    try:
        saml_verify._check_signature_shape(root, version, policy)
    except (SecurityFault, MalformedMessage) as exc:
        return ("shape", type(exc).__name__)
    try:
        signed = verifier(root, version, policy, now)
    except FailedCheck:
        return ("refused",)
    return ("verified", etree.tostring(signed, method="c14n", exclusive=True))


def _verify_as_requests_do(root: etree._Element, version: saml.SamlVersion, policy: saml.ValidationPolicy,
                           now: datetime) -> etree._Element:
    """The request path: the shape check hands its elements on to the verifier."""
    _, parts = saml_verify._signature_shape(root, version, policy)
    return saml_verify._verify_signature_and_cert(root, version, policy, now, parts)[0]


def same(data: bytes, policy: saml.ValidationPolicy, now: datetime) -> tuple[Any, ...]:
    ours = verdict(saml_verify._verify_signature, data, policy, now)
    request_path = verdict(_verify_as_requests_do, data, policy, now)
    reference = verdict(verify_with_signxml, data, policy, now)
    assert ours == reference, f"ours {ours[:2]!r} vs signxml {reference[:2]!r} on {data[:2000]!r}"
    assert request_path == reference, f"request path {request_path[:2]!r} vs signxml {reference[:2]!r} on {data[:2000]!r}"
    return ours


@pytest.fixture(scope="module")
def world(keydir: Any) -> dict[str, Any]:
    from wstrust_wsgi.keys import SigningKey, load_certificate
    sts = SigningKey.from_files(keydir / "sts.key", keydir / "sts.crt")
    rogue = SigningKey.from_files(keydir / "rogue.key", keydir / "rogue.crt")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    tokens: dict[str, bytes] = {}
    for version in (saml.SAML2, saml.SAML11):
        what = content(now)
        tokens[f"{version.name} ours"] = saml.AssertionSigner(sts).sign(version, what)
        tokens[f"{version.name} ours rsa-sha512"] = saml.AssertionSigner(sts).sign(version, what, algorithm="rsa-sha512")
        tokens[f"{version.name} signxml"] = sign_with_signxml(sts, version, what)
        tokens[f"{version.name} tree"] = sign_with_tree(sts, version, what, algorithm="rsa-sha384")
        tokens[f"{version.name} signxml sha384"] = sign_with(
            sts, version, what, signature=SignatureMethod.RSA_SHA384, digest=DigestAlgorithm.SHA384)
        tokens[f"{version.name} sha1"] = sign_with(
            sts, version, what, signature=SignatureMethod.RSA_SHA1, digest=DigestAlgorithm.SHA1)
        pretty = (saml.build_saml2 if version is saml.SAML2 else saml.build_saml11)(what)
        etree.indent(pretty)
        tokens[f"{version.name} indented"] = sign_with(sts, version, what, root=pretty)
        tokens[f"{version.name} rogue"] = saml.AssertionSigner(rogue).sign(version, what)
    sts_cert = load_certificate(keydir / "sts.crt")
    return {
        "now": now, "tokens": tokens, "sts": sts_cert, "rogue": load_certificate(keydir / "rogue.crt"),
        "sts2": load_certificate(keydir / "sts2.crt"),
    }


def policy_for(*certs: Any, allow_sha1: bool = True) -> saml.ValidationPolicy:
    return saml.policy(trusted_certs=certs, issuers=[ISSUER], audiences=[SERVICE_URL], allow_sha1=allow_sha1)


def test_valid_tokens_verify_alike(world: dict[str, Any]) -> None:
    policy = policy_for(world["sts"])
    for name, token in world["tokens"].items():
        result = same(token, policy, world["now"])
        assert (result[0] == "verified") == ("rogue" not in name), name


def test_certificates_alike(world: dict[str, Any]) -> None:
    now = world["now"]
    for certs in ([world["rogue"]], [world["sts2"]], [world["rogue"], world["sts"]], [world["sts"], world["sts2"]]):
        for token in world["tokens"].values():
            same(token, policy_for(*certs), now)
    token = world["tokens"]["2.0 ours"]
    for moment in (now - timedelta(days=3), now + timedelta(days=3651), now):
        result = same(token, policy_for(world["sts"]), moment)
        assert (result[0] == "verified") == (moment == now)
    same(world["tokens"]["2.0 sha1"], policy_for(world["sts"], allow_sha1=False), now)


def _mutations(data: bytes, stride: int) -> list[bytes]:
    out = []
    for i in range(0, len(data), stride):
        c = data[i:i + 1]
        if c.isalnum():
            out.append(data[:i] + (b"A" if c != b"A" else b"B") + data[i + 1:])
        out.append(data[:i] + data[i + 1:])
        out.append(data[:i] + b" " + data[i:])
    return out


@pytest.mark.parametrize("name", ["2.0 ours", "1.1 ours", "2.0 indented", "1.1 signxml"])
def test_byte_level_tampering_alike(world: dict[str, Any], name: str) -> None:
    token = world["tokens"][name]
    policy = policy_for(world["sts"])
    verified = 0
    mutants = _mutations(token, 7)
    for mutant in mutants:
        verified += same(mutant, policy, world["now"])[0] == "verified"
    assert len(mutants) > 500
    assert verified < len(mutants) // 2  # most edits must break the signature, alike


def _element_mutations(token: bytes) -> list[bytes]:
    root = etree.fromstring(token)
    count = sum(1 for _ in root.iter())
    out = []
    for index in range(count):
        for edit in ("remove", "duplicate", "text", "attribute", "child", "comment", "pi", "tail"):
            tree = copy.deepcopy(root)
            el = list(tree.iter())[index]
            parent = el.getparent()
            if edit == "remove" and parent is not None:
                parent.remove(el)
            elif edit == "duplicate" and parent is not None:
                parent.insert(parent.index(el), copy.deepcopy(el))
            elif edit == "text":
                el.text = (el.text or "") + "x"
            elif edit == "attribute":
                el.set("Extra", "1")
            elif edit == "child":
                etree.SubElement(el, "{urn:x}extra")
            elif edit == "comment":
                el.insert(0, etree.Comment("c"))
            elif edit == "pi":
                el.insert(0, etree.ProcessingInstruction("p", "x"))
            elif edit == "tail" and parent is not None:
                el.tail = (el.tail or "") + "\n  "
            else:
                continue
            out.append(etree.tostring(tree))
    # the Signature moved among the assertion's children (allowed: the verdict must still agree)
    for position in range(len(root)):
        tree = copy.deepcopy(root)
        signature = tree.find(f"{{{DS}}}Signature")
        tree.remove(signature)
        tree.insert(position, signature)
        out.append(etree.tostring(tree))
    return out


@pytest.mark.parametrize("name", ["2.0 ours", "1.1 ours", "2.0 indented", "1.1 indented", "2.0 sha1"])
def test_element_level_tampering_alike(world: dict[str, Any], name: str) -> None:
    policy = policy_for(world["sts"])
    outcomes: dict[str, int] = {}
    for mutant in _element_mutations(world["tokens"][name]):
        result = same(mutant, policy, world["now"])
        outcomes[result[0]] = outcomes.get(result[0], 0) + 1
    assert outcomes.get("verified", 0) and outcomes.get("refused", 0), outcomes


def test_real_adfs_token_alike() -> None:
    assertion, cert = vector_assertion(ADFS_VECTOR)
    data = etree.tostring(assertion)
    policy = saml.policy(trusted_certs=[cert], issuers=[ADFS_ISSUER], audiences=[ADFS_AUDIENCE], allow_sha1=True)
    moment = cert.not_valid_before_utc + timedelta(days=1)
    assert same(data, policy, moment)[0] == "verified"
    for mutant in _mutations(data, 23):
        same(mutant, policy, moment)


def test_inclusive_namespaces_alike(world: dict[str, Any], keydir: Any) -> None:
    """An InclusiveNamespaces PrefixList (as some IdPs send) is refused alike: the XML-DSig schema signxml
    validates against declares no InclusiveNamespaces element, and both paths validate with it."""
    from wstrust_wsgi.keys import SigningKey
    from signxml import XMLSigner, methods, CanonicalizationMethod
    sts = SigningKey.from_files(keydir / "sts.key", keydir / "sts.crt")
    what = content(world["now"])
    root = saml.build_saml2(what)
    root.set("{urn:extra}note", "n")  # a prefix in scope that the PrefixList names
    signer = XMLSigner(method=methods.enveloped, c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signed = signer.sign(root, key=sts.private_key, cert=[sts.certificate_pem.decode()],
                         reference_uri=what.assertion_id, id_attribute="ID", inclusive_ns_prefixes=["xs", "ns0"])
    data = etree.tostring(signed)
    policy = policy_for(world["sts"])
    assert b"InclusiveNamespaces" in data
    assert same(data, policy, world["now"]) == ("refused",)
    for mutant in _mutations(data, 5):
        same(mutant, policy, world["now"])

