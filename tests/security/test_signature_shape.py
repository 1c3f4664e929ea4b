"""Signature exclusion, misdirected References, duplicate IDs and ID attribute tricks.

Each case takes alice's genuine token and edits it the way an attacker would
after it was signed (or, in the last group, has the *trusted* key sign a shape
the verifier must still refuse: a narrower reference, a decoy carrying the
assertion's ID, a transplanted signature over another element). The request
goes through the real middleware; the answer must be the named wsse fault and
the protected app must not run. The assertion's ID repeated *outside* the
assertion is refused too (an ambiguous reference; ``test_ambiguous_ids.py``
covers every admission path). A few edits are harmless by design (the
signature moved among the assertion's own children) and must be admitted as
alice, exactly.

Known library bugs these tests pin (see the report):

* a Signature that breaks the XML-DSig schema (SignatureValue or an
  X509Certificate that is not base64, a second SignatureValue or DigestValue, an
  empty KeyInfo) makes signxml raise ``lxml.etree.DocumentInvalid``, which
  ``saml._verify_signature`` does not catch: the client gets an internal-error
  ``wst:RequestFailed`` (a Receiver fault) instead of ``wsse:FailedCheck``;
* a duplicated SignedInfo / Transforms / DigestMethod raises ``MalformedMessage``
  out of ``_xml.child``: a bare soap:Client "not a well-formed SOAP message"
  instead of ``wsse:FailedCheck``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    SAML_VERSIONS,
    SOAP_VERSIONS,
    admitted,
    alice_tokens,
    build,
    envelope,
    forge_signature,
    guarded,
    key_info_x509,
    low_privilege,
    post,
    recorder,
    reference_of,
    refused,
    signature_of,
    signed_info_of,
    sts_key,
    tostring,
)
from _forge import DS, qn
from wstrust_wsgi import ns, saml

ADMIT = "admitted-as-alice"
OUTSIDE_ID = "_outside"


@dataclass
class Forged:
    security: list[bytes]
    headers: list[bytes] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    version: saml.SamlVersion
    assertion_id: str
    #: alice's token of the other SAML version (a second genuine signature to transplant).
    other: bytes


Edit = Callable[[etree._Element, Context], "Forged | None"]


def _signature_value(root: etree._Element) -> etree._Element:
    return signature_of(root).find(qn(DS, "SignatureValue"))


def _subject(root: etree._Element, ctx: Context) -> etree._Element:
    return next(root.iter(qn(ctx.version.namespace, "Subject")))


def _remove_children(element: etree._Element) -> None:
    for child in list(element):
        element.remove(child)


def _decoy(attribute: str, value: str) -> etree._Element:
    decoy = etree.Element(qn("urn:example:decoy", "Decoy"))
    decoy.set(attribute, value)
    return decoy


def _outside_element(attribute: str = qn(ns.WSU, "Id"), value: str = OUTSIDE_ID) -> bytes:
    element = etree.Element(qn("urn:example:elsewhere", "Data"), nsmap={"wsu": ns.WSU})
    element.set(attribute, value)
    element.text = "signed elsewhere"
    return tostring(element)


# --------------------------------------------------------------------------- edits after signing


def remove_signature(root, ctx):  # type: ignore[no-untyped-def]
    root.remove(signature_of(root))


def empty_signature(root, ctx):  # type: ignore[no-untyped-def]
    _remove_children(signature_of(root))


def remove_signed_info(root, ctx):  # type: ignore[no-untyped-def]
    signature_of(root).remove(signed_info_of(root))


def empty_signed_info(root, ctx):  # type: ignore[no-untyped-def]
    _remove_children(signed_info_of(root))


def remove_signature_value(root, ctx):  # type: ignore[no-untyped-def]
    signature_of(root).remove(_signature_value(root))


def empty_signature_value(root, ctx):  # type: ignore[no-untyped-def]
    _signature_value(root).text = ""


def zero_signature_value(root, ctx):  # type: ignore[no-untyped-def]
    _signature_value(root).text = "A" * 344  # 256 zero bytes, base64


def non_base64_signature_value(root, ctx):  # type: ignore[no-untyped-def]
    _signature_value(root).text = "!!!! not base64 !!!!"


def transplanted_signature_value(root, ctx):  # type: ignore[no-untyped-def]
    _signature_value(root).text = _signature_value(etree.fromstring(ctx.other)).text


def second_signature_value(root, ctx):  # type: ignore[no-untyped-def]
    value = _signature_value(root)
    bogus = copy.deepcopy(value)
    bogus.text = "A" * 344
    value.addprevious(bogus)


def empty_digest_value(root, ctx):  # type: ignore[no-untyped-def]
    reference_of(root).find(qn(DS, "DigestValue")).text = ""


def second_digest_value(root, ctx):  # type: ignore[no-untyped-def]
    value = reference_of(root).find(qn(DS, "DigestValue"))
    bogus = copy.deepcopy(value)
    bogus.text = "A" * 44
    value.addprevious(bogus)


def second_signed_info(root, ctx):  # type: ignore[no-untyped-def]
    signed_info_of(root).addnext(copy.deepcopy(signed_info_of(root)))


def second_transforms(root, ctx):  # type: ignore[no-untyped-def]
    transforms = reference_of(root).find(qn(DS, "Transforms"))
    transforms.addnext(copy.deepcopy(transforms))


def second_digest_method(root, ctx):  # type: ignore[no-untyped-def]
    method = reference_of(root).find(qn(DS, "DigestMethod"))
    method.addnext(copy.deepcopy(method))


def empty_key_info(root, ctx):  # type: ignore[no-untyped-def]
    _remove_children(signature_of(root).find(qn(DS, "KeyInfo")))


def non_base64_certificate_in_key_info(root, ctx):  # type: ignore[no-untyped-def]
    signature_of(root).find(f".//{qn(DS, 'X509Certificate')}").text = "!!!! not base64 !!!!"


def signature_moved_into_subject(root, ctx):  # type: ignore[no-untyped-def]
    signature = signature_of(root)
    root.remove(signature)
    _subject(root, ctx).append(signature)


def signature_moved_into_conditions(root, ctx):  # type: ignore[no-untyped-def]
    signature = signature_of(root)
    root.remove(signature)
    root.find(qn(ctx.version.namespace, "Conditions")).append(signature)


def signature_detached_into_security_header(root, ctx):  # type: ignore[no-untyped-def]
    signature = signature_of(root)
    root.remove(signature)
    return Forged([tostring(root), tostring(signature)])


def signature_duplicated(root, ctx):  # type: ignore[no-untyped-def]
    signature_of(root).addnext(copy.deepcopy(signature_of(root)))


def signature_moved_to_first_child(root, ctx):  # type: ignore[no-untyped-def]
    signature = signature_of(root)
    root.remove(signature)
    root.insert(0, signature)


def signature_moved_to_last_child(root, ctx):  # type: ignore[no-untyped-def]
    signature = signature_of(root)
    root.remove(signature)
    root.append(signature)


def _set_uri(value: str | None) -> Edit:
    def edit(root, ctx):  # type: ignore[no-untyped-def]
        reference = reference_of(root)
        if value is None:
            del reference.attrib["URI"]
        else:
            reference.set("URI", value.replace("{id}", ctx.assertion_id))
    return edit


def reference_to_the_subject(root, ctx):  # type: ignore[no-untyped-def]
    _subject(root, ctx).set("ID", "_subject")
    reference_of(root).set("URI", "#_subject")


def reference_to_an_id_outside_the_assertion(root, ctx):  # type: ignore[no-untyped-def]
    reference_of(root).set("URI", "#" + OUTSIDE_ID)
    return Forged([tostring(root)], body=[_outside_element()])


def second_reference_to_the_assertion(root, ctx):  # type: ignore[no-untyped-def]
    reference_of(root).addnext(copy.deepcopy(reference_of(root)))


def second_reference_to_the_subject(root, ctx):  # type: ignore[no-untyped-def]
    _subject(root, ctx).set("ID", "_subject")
    extra = copy.deepcopy(reference_of(root))
    extra.set("URI", "#_subject")
    reference_of(root).addnext(extra)


def second_reference_outside(root, ctx):  # type: ignore[no-untyped-def]
    extra = copy.deepcopy(reference_of(root))
    extra.set("URI", "#" + OUTSIDE_ID)
    reference_of(root).addnext(extra)
    return Forged([tostring(root)], headers=[_outside_element()])


def reference_moved_into_object_manifest(root, ctx):  # type: ignore[no-untyped-def]
    reference = reference_of(root)
    signed_info_of(root).remove(reference)
    manifest = etree.SubElement(etree.SubElement(signature_of(root), qn(DS, "Object")), qn(DS, "Manifest"))
    manifest.append(reference)


def _decoy_inside(where: str, attribute: str) -> Edit:
    def edit(root, ctx):  # type: ignore[no-untyped-def]
        decoy = _decoy(attribute, ctx.assertion_id)
        if where == "subject":
            _subject(root, ctx).append(decoy)
        elif where == "object":
            etree.SubElement(signature_of(root), qn(DS, "Object")).append(decoy)
        elif where == "key-info":
            signature_of(root).find(qn(DS, "KeyInfo")).append(decoy)
    return edit


def id_repeated_in_the_body(root, ctx):  # type: ignore[no-untyped-def]
    return Forged([tostring(root)], body=[_outside_element("ID", ctx.assertion_id)])


def id_repeated_in_another_header(root, ctx):  # type: ignore[no-untyped-def]
    return Forged([tostring(root)], headers=[_outside_element("AssertionID", ctx.assertion_id),
                                             _outside_element(qn(ns.WSU, "Id"), ctx.assertion_id)])


def id_attribute_renamed(root, ctx):  # type: ignore[no-untyped-def]
    other = "Id" if ctx.version is saml.SAML2 else "ID"
    root.set(other, root.attrib.pop(ctx.version.id_attribute))


def _id_changed(new: str, *, follow: bool) -> Edit:
    def edit(root, ctx):  # type: ignore[no-untyped-def]
        value = new.replace("{id}", ctx.assertion_id)
        root.set(ctx.version.id_attribute, value)
        if follow:
            reference_of(root).set("URI", "#" + value)
    return edit


def _extra_id_attribute(attribute: str | None) -> Edit:
    def edit(root, ctx):  # type: ignore[no-untyped-def]
        name = attribute or ("AssertionID" if ctx.version is saml.SAML2 else "ID")
        root.set(name, ctx.assertion_id)
    return edit


FAILED = "wsse:FailedCheck"
UNSUPPORTED = "wsse:UnsupportedAlgorithm"
#: name -> (edit, expected outcome)
EDITS: dict[str, tuple[Edit, str]] = {
    # signature exclusion
    "signature-removed": (remove_signature, FAILED),
    "signature-emptied": (empty_signature, FAILED),
    "signed-info-removed": (remove_signed_info, FAILED),
    "signed-info-emptied": (empty_signed_info, UNSUPPORTED),
    "signature-value-removed": (remove_signature_value, FAILED),
    "signature-value-empty": (empty_signature_value, FAILED),
    "signature-value-zeros": (zero_signature_value, FAILED),
    "signature-value-not-base64": (non_base64_signature_value, FAILED),
    "signature-value-of-another-token": (transplanted_signature_value, FAILED),
    "second-signature-value": (second_signature_value, FAILED),
    "digest-value-empty": (empty_digest_value, FAILED),
    "second-digest-value": (second_digest_value, FAILED),
    "second-signed-info": (second_signed_info, FAILED),
    "second-transforms": (second_transforms, FAILED),
    "second-digest-method": (second_digest_method, FAILED),
    "key-info-emptied": (empty_key_info, FAILED),
    "key-info-certificate-not-base64": (non_base64_certificate_in_key_info, FAILED),
    # signature moved
    "signature-moved-into-subject": (signature_moved_into_subject, FAILED),
    "signature-moved-into-conditions": (signature_moved_into_conditions, FAILED),
    "signature-detached-into-security-header": (signature_detached_into_security_header, FAILED),
    "signature-duplicated": (signature_duplicated, FAILED),
    "signature-moved-to-first-child": (signature_moved_to_first_child, ADMIT),
    "signature-moved-to-last-child": (signature_moved_to_last_child, ADMIT),
    # references
    "reference-to-nothing": (_set_uri("#_nowhere"), FAILED),
    "reference-to-whole-document": (_set_uri(""), FAILED),
    "reference-without-uri": (_set_uri(None), FAILED),
    "reference-bare-id-without-hash": (_set_uri("{id}"), FAILED),
    "reference-xpointer-root": (_set_uri("#xpointer(/)"), FAILED),
    "reference-xpointer-id": (_set_uri("#xpointer(id('{id}'))"), FAILED),
    "reference-with-leading-space": (_set_uri("# {id}"), FAILED),
    "reference-with-trailing-space": (_set_uri("#{id} "), FAILED),
    "reference-to-the-subject": (reference_to_the_subject, FAILED),
    "reference-to-an-id-outside-the-assertion": (reference_to_an_id_outside_the_assertion, FAILED),
    "two-references-to-the-assertion": (second_reference_to_the_assertion, FAILED),
    "references-to-assertion-and-subject": (second_reference_to_the_subject, FAILED),
    "references-to-assertion-and-outside": (second_reference_outside, FAILED),
    "reference-moved-into-object-manifest": (reference_moved_into_object_manifest, FAILED),
    # duplicate IDs
    "decoy-ID-in-subject": (_decoy_inside("subject", "ID"), FAILED),
    "decoy-Id-in-subject": (_decoy_inside("subject", "Id"), FAILED),
    "decoy-AssertionID-in-subject": (_decoy_inside("subject", "AssertionID"), FAILED),
    "decoy-wsu-Id-in-subject": (_decoy_inside("subject", qn(ns.WSU, "Id")), FAILED),
    "decoy-ID-in-signature-object": (_decoy_inside("object", "ID"), FAILED),
    "decoy-Id-in-key-info": (_decoy_inside("key-info", "Id"), FAILED),
    "id-repeated-in-the-body": (id_repeated_in_the_body, FAILED),
    "id-repeated-in-other-headers": (id_repeated_in_another_header, FAILED),
    # ID attribute tricks
    "id-attribute-renamed": (id_attribute_renamed, "wsse:InvalidSecurityToken"),
    "id-trailing-space": (_id_changed("{id} ", follow=False), FAILED),
    "id-trailing-space-reference-follows": (_id_changed("{id} ", follow=True), FAILED),
    "id-leading-newline-reference-follows": (_id_changed("\n{id}", follow=True), FAILED),
    "id-other-case-reference-follows": (_id_changed("{id}".upper(), follow=True), FAILED),
    "id-replaced-reference-follows": (_id_changed("_attacker", follow=True), FAILED),
    "wsu-Id-added-on-assertion": (_extra_id_attribute(qn(ns.WSU, "Id")), FAILED),
    "other-versions-id-attribute-added": (_extra_id_attribute(None), FAILED),
}


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("edit", list(EDITS))
def test_token_edited_after_signing(guarded, recorder, alice_tokens, soap, version, edit):
    change, expected = EDITS[edit]
    token = alice_tokens[version.name]
    other = alice_tokens[(saml.SAML11 if version is saml.SAML2 else saml.SAML2).name].signed
    root = etree.fromstring(token.signed)
    forged = change(root, Context(version, token.what.assertion_id, other)) or Forged([tostring(root)])
    body = envelope(forged.security, soap=soap, headers=forged.headers, body=forged.body)
    response = post(guarded, body, soap)
    if expected == ADMIT:
        assert admitted(response, recorder, "alice").assertion_id == token.what.assertion_id
    else:
        refused(response, soap, expected, recorder=recorder)


# --------------------------------------------------------------------------- shapes the trusted key signed


def _narrow_reference(root, version, key):  # type: ignore[no-untyped-def]
    """A genuine STS signature covering only the Subject (which carries an ID of its own)."""
    subject = next(root.iter(qn(version.namespace, "Subject")))
    subject.set("ID", "_subject")
    forge_signature(root, private_key=key.private_key, target=subject, target_id="_subject",
                    transforms=(ns.ALG_EXC_C14N,), key_info=key_info_x509(key.certificate))


def _signed_decoy(attribute):  # type: ignore[no-untyped-def]
    def make(root, version, key):  # type: ignore[no-untyped-def]
        subject = next(root.iter(qn(version.namespace, "Subject")))
        subject.append(_decoy(attribute, root.get(version.id_attribute)))
        forge_signature(root, private_key=key.private_key)
    return make


def _transplanted_timestamp_signature(root, version, key):  # type: ignore[no-untyped-def]
    """A genuine STS signature over a wsu:Timestamp, moved into an unsigned assertion."""
    holder = etree.Element(qn("urn:example:holder", "Holder"), nsmap={"wsu": ns.WSU})
    stamp = etree.SubElement(holder, qn(ns.WSU, "Timestamp"))
    stamp.set(qn(ns.WSU, "Id"), "_ts")
    etree.SubElement(stamp, qn(ns.WSU, "Created")).text = "2030-01-01T00:00:00Z"
    signature = forge_signature(holder, private_key=key.private_key, target=stamp, target_id="_ts",
                                transforms=(ns.ALG_EXC_C14N,), position=1)
    placeholder = root.find(qn(DS, "Signature"))
    placeholder.addprevious(signature)
    root.remove(placeholder)


def make_evil_content(clock):  # type: ignore[no-untyped-def]
    return low_privilege(clock.now, subject="admin", attributes={ns.CLAIM_ROLE: ["admin"]})


SIGNED_SHAPES = {
    "trusted-signature-over-the-subject-only": _narrow_reference,
    "trusted-signature-with-decoy-ID-signed-in": _signed_decoy("ID"),
    "trusted-signature-with-decoy-wsu-Id-signed-in": _signed_decoy(qn(ns.WSU, "Id")),
    "trusted-signature-over-a-timestamp-transplanted": _transplanted_timestamp_signature,
}


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("shape", list(SIGNED_SHAPES))
def test_shape_signed_by_the_trusted_key_is_still_refused(guarded, recorder, sts_key, clock, soap, version, shape):
    root = build(version, make_evil_content(clock))
    SIGNED_SHAPES[shape](root, version, sts_key)
    refused(post(guarded, envelope([tostring(root)], soap=soap), soap), soap, FAILED, recorder=recorder)


@SAML_VERSIONS
def test_hand_made_signature_with_the_trusted_key_is_admitted(guarded, recorder, sts_key, clock, version):
    """Control for the shapes above: the same hand-made signature over the whole assertion verifies,
    so what refuses them is the shape, not the way they were made."""
    root = build(version, low_privilege(clock.now))
    forge_signature(root, private_key=sts_key.private_key, key_info=key_info_x509(sts_key.certificate))
    admitted(post(guarded, envelope([tostring(root)])), recorder, "alice")
