"""XML Signature Wrapping (XSW) against the bearer token in wsse:Security.

The eight variants of Somorovsky et al., "On Breaking SAML: Be Whoever You Want
to Be" (USENIX Security 2012), adapted to a WS-Security bearer token. The
attacker holds a genuine token the STS issued to *alice* (no admin role) and
builds an *evil* assertion claiming *admin* with the admin role:

* XSW1 / XSW2 wrap at message level in the paper (the signed Response). Here the
  wsse:Security header plays the Response: the evil assertion stands in the
  header, the genuine ds:Signature is moved out of the assertion into the header,
  with the signed (now signature-less) original inside it (XSW1) or as a sibling
  before it (XSW2).
* XSW3: evil copy inserted before the signed original (XSW3-after: after it).
* XSW4: the signed original moved *into* the evil assertion.
* XSW5: the evil assertion keeps the original's signature; the signed content goes
  after it, signature-less.
* XSW6: like XSW5, the signed content put inside the evil assertion's ds:Signature.
* XSW7: the evil copy wrapped in an Extensions element next to the original.
* XSW8: like XSW6, the signed content wrapped in a ds:Object inside the Signature.
* Advice: the signed original wrapped in the evil assertion's saml:Advice.
* Hidden: the signed original hidden under an unknown wrapper element, the evil
  assertion (unsigned) presented in its place.

Each is sent with everything in the wsse:Security header ("in-header") and with
the attack's moved part elsewhere in the envelope: the Body, a header block of
its own, or a wsse:Security header addressed to another actor. The evil copy
either keeps the original's ID or gets a fresh one. The middleware must refuse,
or admit only alice with her own signed claims; an admission as admin is the
critical failure these tests exist to catch. Wherever the genuine token's ID is
held by a second element anywhere in the message (a copy of the original, or
an evil copy keeping its ID), the Reference is ambiguous and the answer is
``wsse:FailedCheck``, whatever the table says (issue 10, item 1).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    ANOTHER_NODE,
    alice_tokens,
    SAML_VERSIONS,
    SOAP_VERSIONS,
    admitted,
    envelope,
    guarded,
    low_privilege,
    make_evil,
    post,
    recorder,
    refused,
    rogue_key,
    security_block,
    signature_of,
    sts_key,
    tostring,
    without_signature,
    wrapper,
)
from _forge import DS, qn, sign
from _support import EMAIL
from wstrust_wsgi import ns, saml

SAML2P = "urn:oasis:names:tc:SAML:2.0:protocol"
ADMITTED_AS_ALICE = "admitted-as-alice"


@dataclass(frozen=True)
class Wrapping:
    """One XSW shape: what goes in the Security header, and how it splits when moved elsewhere."""

    in_header: list[bytes]
    #: With the moved part elsewhere: what stays in the Security header ...
    left: list[bytes]
    #: ... and what is moved out of it.
    moved: list[bytes]


def _parts(signed: bytes) -> tuple[etree._Element, etree._Element]:
    """The signed original parsed, and a copy of it without its signature."""
    original = etree.fromstring(signed)
    return original, without_signature(original)


def xsw1(signed, version, new_id):  # type: ignore[no-untyped-def]
    original, stripped = _parts(signed)
    evil = make_evil(original, version, keep_signature=False, new_id=new_id)
    moved_signature = copy.deepcopy(signature_of(original))
    moved_signature.append(stripped)
    pieces = [tostring(evil), tostring(moved_signature)]
    return Wrapping(pieces, [signed], pieces)


def xsw2(signed, version, new_id):  # type: ignore[no-untyped-def]
    original, stripped = _parts(signed)
    evil = make_evil(original, version, keep_signature=False, new_id=new_id)
    pieces = [tostring(evil), tostring(stripped), tostring(signature_of(original))]
    return Wrapping(pieces, [signed], pieces)


def xsw3(signed, version, new_id):  # type: ignore[no-untyped-def]
    evil = tostring(make_evil(etree.fromstring(signed), version, keep_signature=False, new_id=new_id))
    return Wrapping([evil, signed], [signed], [evil])


def xsw3_after(signed, version, new_id):  # type: ignore[no-untyped-def]
    evil = tostring(make_evil(etree.fromstring(signed), version, keep_signature=False, new_id=new_id))
    return Wrapping([signed, evil], [signed], [evil])


def xsw4(signed, version, new_id):  # type: ignore[no-untyped-def]
    evil = make_evil(etree.fromstring(signed), version, keep_signature=False, new_id=new_id)
    evil.append(etree.fromstring(signed))
    return Wrapping([tostring(evil)], [signed], [tostring(evil)])


def xsw5(signed, version, new_id):  # type: ignore[no-untyped-def]
    original, stripped = _parts(signed)
    evil = tostring(make_evil(original, version, keep_signature=True, new_id=new_id))
    return Wrapping([evil, tostring(stripped)], [evil], [tostring(stripped)])


def xsw6(signed, version, new_id):  # type: ignore[no-untyped-def]
    original, stripped = _parts(signed)
    evil = make_evil(original, version, keep_signature=True, new_id=new_id)
    signature_of(evil).append(stripped)
    return Wrapping([tostring(evil)], [signed], [tostring(evil)])


def xsw7(signed, version, new_id):  # type: ignore[no-untyped-def]
    evil = make_evil(etree.fromstring(signed), version, keep_signature=False, new_id=new_id)
    extensions = etree.Element(qn(SAML2P, "Extensions"), nsmap={"samlp": SAML2P})
    extensions.append(evil)
    return Wrapping([tostring(extensions), signed], [signed], [tostring(extensions)])


def xsw8(signed, version, new_id):  # type: ignore[no-untyped-def]
    original, stripped = _parts(signed)
    evil = make_evil(original, version, keep_signature=True, new_id=new_id)
    etree.SubElement(signature_of(evil), qn(DS, "Object")).append(stripped)
    return Wrapping([tostring(evil)], [signed], [tostring(evil)])


def advice(signed, version, new_id):  # type: ignore[no-untyped-def]
    evil = make_evil(etree.fromstring(signed), version, keep_signature=False, new_id=new_id)
    holder = etree.Element(qn(version.namespace, "Advice"))
    holder.append(etree.fromstring(signed))
    conditions = evil.find(qn(version.namespace, "Conditions"))
    conditions.addnext(holder)  # where both schemas put Advice
    return Wrapping([tostring(evil)], [signed], [tostring(evil)])


def hidden(signed, version, new_id):  # type: ignore[no-untyped-def]
    evil = tostring(make_evil(etree.fromstring(signed), version, keep_signature=False, new_id=new_id))
    return Wrapping([evil, wrapper([signed])], [evil], [signed])


#: variant -> (builder, outcome with everything in the header, outcome with the moved part elsewhere).
VARIANTS: dict[str, tuple[Callable[..., Wrapping], str, str]] = {
    "XSW1": (xsw1, "wsse:FailedCheck", ADMITTED_AS_ALICE),
    "XSW2": (xsw2, "wsse:InvalidSecurity", ADMITTED_AS_ALICE),
    "XSW3": (xsw3, "wsse:InvalidSecurity", ADMITTED_AS_ALICE),
    "XSW3-after": (xsw3_after, "wsse:InvalidSecurity", ADMITTED_AS_ALICE),
    "XSW4": (xsw4, "wsse:FailedCheck", ADMITTED_AS_ALICE),
    "XSW5": (xsw5, "wsse:InvalidSecurity", "wsse:FailedCheck"),
    "XSW6": (xsw6, "wsse:FailedCheck", ADMITTED_AS_ALICE),
    "XSW7": (xsw7, ADMITTED_AS_ALICE, ADMITTED_AS_ALICE),
    "XSW8": (xsw8, "wsse:FailedCheck", ADMITTED_AS_ALICE),
    "Advice": (advice, "wsse:FailedCheck", ADMITTED_AS_ALICE),
    "Hidden": (hidden, "wsse:FailedCheck", "wsse:FailedCheck"),
}
PLACEMENTS = ["in-header", "body", "header-block", "foreign-actor-security"]


def placed(wrapping: Wrapping, placement: str, soap: str) -> bytes:
    if placement == "in-header":
        return envelope(wrapping.in_header, soap=soap)
    if placement == "body":
        return envelope(wrapping.left, soap=soap, body=wrapping.moved)
    if placement == "header-block":
        return envelope(wrapping.left, soap=soap, headers=wrapping.moved)
    assert placement == "foreign-actor-security"
    return envelope(wrapping.left, soap=soap, headers=[security_block(wrapping.moved, soap, actor=ANOTHER_NODE)])


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("evil_id", ["same-id", "fresh-id"])
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_signature_wrapping_never_admits_the_evil_subject(
    guarded, recorder, alice_tokens, soap, version, evil_id, placement, variant
):
    builder, in_header, elsewhere = VARIANTS[variant]
    what, signed = alice_tokens[version.name].what, alice_tokens[version.name].signed
    wrapping = builder(signed, version, None if evil_id == "same-id" else "_evil" + what.assertion_id[1:])
    body = placed(wrapping, placement, soap)
    assert b">admin<" in body  # the evil claim really travels in the request
    response = post(guarded, body, soap)
    expected = in_header if placement == "in-header" else elsewhere
    held = f' {version.id_attribute}="{what.assertion_id}"'.encode()
    if expected == ADMITTED_AS_ALICE and body.count(held) > 1:
        expected = "wsse:FailedCheck"  # the genuine ID held twice in the message: an ambiguous reference
    if response.status_int == 200:
        call = recorder.calls[0]
        assert call["REMOTE_USER"] != "admin", f"CRITICAL: {variant} admitted the evil subject"
        assert "admin" not in call["assertion"].roles, f"CRITICAL: {variant} admitted the evil role"
    if expected == ADMITTED_AS_ALICE:
        verified = admitted(response, recorder, "alice")
        assert verified.assertion_id == what.assertion_id
        assert verified.roles == ("everyone",)
        assert verified.attributes[EMAIL] == ("alice@example.org",)
    else:
        refused(response, soap, expected, recorder=recorder)


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("placement", PLACEMENTS[1:])
def test_genuine_token_with_a_harmless_neighbour_in_the_same_place_is_admitted(
    guarded, recorder, alice_tokens, soap, version, placement
):
    """Positive control for the envelope shapes above: the same placements, nothing evil."""
    what, signed = alice_tokens[version.name].what, alice_tokens[version.name].signed
    neighbour = wrapper([b"<note xmlns='urn:example:harmless'>hello</note>"])
    wrapping = Wrapping([signed], [signed], [neighbour])
    verified = admitted(post(guarded, placed(wrapping, placement, soap), soap), recorder, "alice")
    assert verified.assertion_id == what.assertion_id


@SOAP_VERSIONS
@SAML_VERSIONS
def test_evil_assertion_signed_by_the_attacker_with_the_genuine_one_hidden_is_refused(
    guarded, recorder, alice_tokens, rogue_key, clock, soap, version
):
    """The evil assertion carries a *valid* signature by the attacker's own key (and certificate in
    KeyInfo) while the genuine token hides in a header block: the rogue signature must not count."""
    signed = alice_tokens[version.name].signed
    evil_what = low_privilege(clock.now, subject="admin", attributes={ns.CLAIM_ROLE: ["admin"]})
    rogue_signed = sign(rogue_key, version, evil_what)
    body = envelope([rogue_signed], soap=soap, headers=[wrapper([signed])])
    refused(post(guarded, body, soap), soap, "wsse:FailedCheck", recorder=recorder)
