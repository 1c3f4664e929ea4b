"""saml.py: building, signing and verifying SAML 2.0 and 1.1 bearer assertions.

Every check runs the real signer and verifier. Forgeries are made the way an
attacker would: sign with another key, or edit bytes / elements after signing.
Real AD FS and WIF output from tests/data/vectors is verified too.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod

from _forge import (
    ADFS_AUDIENCE,
    ADFS_ISSUER,
    ADFS_SUBJECT,
    ADFS_UPN,
    ADFS_VECTOR,
    DS,
    content,
    qn,
    sign,
    sign_with,
    vector_assertion,
)
from _support import EMAIL, ISSUER, OTHER_URL, SERVICE_URL
from wstrust_wsgi import ns, saml
from wstrust_wsgi.errors import FailedCheck, InvalidSecurityToken, UnsupportedAlgorithm
from wstrust_wsgi.testing import TokenFactory

VERSIONS = pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["saml2.0", "saml1.1"])
ALG_XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
ALG_XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"


@pytest.fixture(scope="module")
def sts_key(sts_keys):
    return sts_keys.load()


@pytest.fixture(scope="module")
def rogue_key(rogue_keys):
    return rogue_keys.load()


@pytest.fixture(scope="module")
def sts2_key(sts2_keys):
    return sts2_keys.load()


@pytest.fixture
def now(clock):
    return clock.now


@pytest.fixture
def trusted(sts_key):
    """The policy a relying party of the demo STS uses."""
    return saml.policy(trusted_certs=[sts_key.certificate], issuers=[ISSUER], audiences=[SERVICE_URL])


def verify(data: bytes | etree._Element, policy: saml.ValidationPolicy, now: datetime) -> saml.VerifiedAssertion:
    """Verify assertion bytes as they arrive in a message (comments kept: the library must cope)."""
    element = etree.fromstring(data) if isinstance(data, bytes) else data
    return saml.verify_assertion(element, policy, now=now)


def signature_of(root: etree._Element) -> etree._Element:
    return root.find(qn(DS, "Signature"))


def reference_of(root: etree._Element) -> etree._Element:
    return root.find(f"{qn(DS, 'Signature')}/{qn(DS, 'SignedInfo')}/{qn(DS, 'Reference')}")


def subject_element(root: etree._Element, version: saml.SamlVersion) -> etree._Element:
    local = "NameID" if version is saml.SAML2 else "NameIdentifier"
    return next(root.iter(qn(version.namespace, local)))


# --------------------------------------------------------------------------- accepted


@VERSIONS
def test_signed_assertion_verifies_and_returns_signed_claims(version, sts_key, trusted, now):
    what = content(now)
    verified = verify(sign(sts_key, version, what), trusted, now)
    assert verified.version == version.name
    assert verified.assertion_id == what.assertion_id
    assert verified.subject == "admin"
    assert verified.issuer == ISSUER
    assert verified.audiences == (SERVICE_URL,)
    assert dict(verified.attributes) == {EMAIL: ("admin@example.org",), ns.CLAIM_ROLE: ("admin",)}
    assert verified.roles == ("admin",)
    assert verified.not_before == what.not_before
    assert verified.not_on_or_after == what.not_on_or_after
    assert verified.issue_instant == what.issue_instant
    assert verified.element.tag == qn(version.namespace, "Assertion")
    assert verified.element.find(f".//{qn(DS, 'Signature')}") is None  # the signed element, signature removed


def test_saml2_signature_sits_right_after_issuer(sts_key, now):
    root = etree.fromstring(sign(sts_key, saml.SAML2, content(now)))
    tags = [etree.QName(child).localname for child in root]
    assert tags[:3] == ["Issuer", "Signature", "Subject"]


def test_saml11_signature_is_the_last_child(sts_key, now):
    root = etree.fromstring(sign(sts_key, saml.SAML11, content(now)))
    assert root[-1].tag == qn(DS, "Signature")
    assert root.get("Issuer") == ISSUER and root.get("MajorVersion") == "1" and root.get("MinorVersion") == "1"


def test_tokens_are_serialized_as_ad_fs_serializes_them(sts_key, now):
    """SAML 2.0 in the default namespace declared on the assertion, SAML 1.1 with its ``saml:`` prefix:
    clients in the field cut the token out by a text match (npm wstrust-client: ``<Assertion `` to
    ``</Assertion>``), and each form declares on its root every namespace its elements use."""
    saml2 = sign(sts_key, saml.SAML2, content(now))
    assert saml2.startswith(b'<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ID="_')
    assert saml2.endswith(b"</Assertion>") and b"saml2:" not in saml2
    assert b"<Issuer>" + ISSUER.encode() + b"</Issuer><ds:Signature xmlns:ds=" in saml2
    saml11 = sign(sts_key, saml.SAML11, content(now))
    assert saml11.startswith(b'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" ')
    assert saml11.endswith(b"</ds:Signature></saml:Assertion>")
    for token in (saml2, saml11):  # self-contained: the same tree and canonical form wherever it stands
        alone = etree.fromstring(token)
        inside = etree.fromstring(b'<x:w xmlns:x="urn:x" xmlns="urn:other">' + token + b"</x:w>")[0]
        assert etree.tostring(inside, method="c14n", exclusive=True) == etree.tostring(
            alone, method="c14n", exclusive=True)
        assert [e.tag for e in alone.iter()] == [e.tag for e in inside.iter()]


@VERSIONS
def test_signature_uses_one_reference_rsa_sha256_sha256_and_exclusive_c14n(version, sts_key, now):
    what = content(now)
    root = etree.fromstring(sign(sts_key, version, what))
    signed_info = signature_of(root).find(qn(DS, "SignedInfo"))
    references = signed_info.findall(qn(DS, "Reference"))
    assert [r.get("URI") for r in references] == ["#" + what.assertion_id]
    assert root.get(version.id_attribute) == what.assertion_id
    assert signed_info.find(qn(DS, "CanonicalizationMethod")).get("Algorithm") == ns.ALG_EXC_C14N
    assert signed_info.find(qn(DS, "SignatureMethod")).get("Algorithm") == ns.ALG_RSA_SHA256
    assert references[0].find(qn(DS, "DigestMethod")).get("Algorithm") == ns.ALG_SHA256
    transforms = [t.get("Algorithm") for t in references[0].iter(qn(DS, "Transform"))]
    assert transforms == [ns.ALG_ENVELOPED, ns.ALG_EXC_C14N]


def test_builders_write_subject_audience_and_times(now):
    what = content(now)
    s2 = saml.build_saml2(what)
    assert s2.findtext(f"{qn(ns.SAML2, 'Subject')}/{qn(ns.SAML2, 'NameID')}") == "admin"
    assert s2.findtext(f".//{qn(ns.SAML2, 'Audience')}") == SERVICE_URL
    conditions = s2.find(qn(ns.SAML2, "Conditions"))
    assert saml.parse_datetime(conditions.get("NotOnOrAfter")) == what.not_on_or_after
    s1 = saml.build_saml11(what)
    assert {e.text for e in s1.iter(qn(ns.SAML1, "NameIdentifier"))} == {"admin"}
    assert s1.findtext(f".//{qn(ns.SAML1, 'AudienceRestrictionCondition')}/{qn(ns.SAML1, 'Audience')}") == SERVICE_URL
    assert s1.get("AssertionID") == what.assertion_id


def test_rollover_policy_accepts_tokens_from_either_trusted_key(sts_key, sts2_key, now):
    both = saml.policy(
        trusted_certs=[sts_key.certificate, sts2_key.certificate], issuers=[ISSUER], audiences=[SERVICE_URL]
    )
    for key in (sts_key, sts2_key):
        for version in (saml.SAML2, saml.SAML11):
            assert verify(sign(key, version, content(now)), both, now).subject == "admin"


def test_token_from_rolled_in_key_is_refused_until_its_cert_is_trusted(sts2_key, trusted, now):
    with pytest.raises(FailedCheck):
        verify(sign(sts2_key, saml.SAML2, content(now)), trusted, now)


@VERSIONS
def test_sha1_is_accepted_only_when_allowed(version, sts_key, now):
    data = sign_with(sts_key, version, content(now), signature=SignatureMethod.RSA_SHA1, digest=DigestAlgorithm.SHA1)
    lenient = saml.policy(
        trusted_certs=[sts_key.certificate], issuers=[ISSUER], audiences=[SERVICE_URL], allow_sha1=True
    )
    assert verify(data, lenient, now).subject == "admin"


@VERSIONS
def test_trusted_issuer_and_audience_sets_accept_any_member(version, sts_key, now):
    several = saml.policy(
        trusted_certs=[sts_key.certificate], issuers=["urn:other-sts", ISSUER], audiences=[OTHER_URL, SERVICE_URL]
    )
    assert verify(sign(sts_key, version, content(now)), several, now).audiences == (SERVICE_URL,)


# --------------------------------------------------------------------------- comment injection


@VERSIONS
def test_comment_inside_subject_never_truncates_it(version, sts_key, trusted, now):
    """CVE-2017-11427 family: exclusive c14n does not sign comments, so a comment inserted after
    signing leaves the signature valid; the subject must be the whole text, not the part before it."""
    data = sign(sts_key, version, content(now, subject="admin@evil"))
    forged = data.replace(b">admin@evil<", b">adm<!---->in@evil<")
    assert forged != data
    naive = subject_element(etree.fromstring(forged), version)
    assert naive.text == "adm"  # what a reader of .text alone would take
    verified = verify(forged, trusted, now)
    assert verified.subject == "admin@evil"


@VERSIONS
def test_comment_inside_attribute_value_never_truncates_it(version, sts_key, trusted, now):
    data = sign(sts_key, version, content(now))
    forged = data.replace(b">admin@example.org<", b">admin<!-- -->@example.org<")
    assert forged != data
    assert verify(forged, trusted, now).attributes[EMAIL] == ("admin@example.org",)


# --------------------------------------------------------------------------- tampering and trust


@VERSIONS
def test_attribute_value_changed_after_signing_fails_check(version, sts_key, trusted, now):
    data = sign(sts_key, version, content(now))
    forged = data.replace(b">admin@example.org<", b">alice@example.org<")
    assert forged != data
    with pytest.raises(FailedCheck):
        verify(forged, trusted, now)


@VERSIONS
def test_nameid_changed_after_signing_fails_check(version, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now, subject="alice")))
    for name in root.iter(qn(version.namespace, "NameID" if version is saml.SAML2 else "NameIdentifier")):
        name.text = "admin"
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
def test_unsigned_assertion_fails_check(version, trusted, now):
    with pytest.raises(FailedCheck):
        kit = TokenFactory(issuer=ISSUER, audience=SERVICE_URL, clock=lambda: now)
        verify(kit.unsigned("admin", version=version.name).assertion, trusted, now)


@VERSIONS
def test_trust_comes_from_configuration_not_key_info(version, sts_key, trusted, now):
    """A trusted token stays valid without KeyInfo: the verifier never needed the embedded cert."""
    root = etree.fromstring(sign(sts_key, version, content(now)))
    signature = signature_of(root)
    signature.remove(signature.find(qn(DS, "KeyInfo")))
    assert verify(root, trusted, now).subject == "admin"


@VERSIONS
def test_rogue_signed_assertion_without_key_info_fails_check(version, rogue_key, trusted, now):
    root = etree.fromstring(sign(rogue_key, version, content(now)))
    signature = signature_of(root)
    signature.remove(signature.find(qn(DS, "KeyInfo")))
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
def test_rogue_signed_assertion_carrying_its_own_cert_fails_check(version, rogue_key, trusted, now):
    data = sign(rogue_key, version, content(now))
    rogue_cert_b64 = b"".join(rogue_key.certificate_pem.splitlines()[1:-1])
    embedded = b"".join(etree.fromstring(data).findtext(f".//{qn(DS, 'X509Certificate')}").encode().split())
    assert embedded == rogue_cert_b64  # the signer embeds its certificate in KeyInfo
    with pytest.raises(FailedCheck):
        verify(data, trusted, now)


@VERSIONS
def test_rogue_signed_assertion_carrying_the_trusted_cert_fails_check(version, sts_key, rogue_key, trusted, now):
    root = etree.fromstring(sign(rogue_key, version, content(now)))
    trusted_b64 = b"".join(sts_key.certificate_pem.splitlines()[1:-1]).decode()
    root.find(f".//{qn(DS, 'X509Certificate')}").text = trusted_b64
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
def test_untrusted_issuer_is_an_invalid_token(version, sts_key, trusted, now):
    data = sign(sts_key, version, content(now, issuer="http://127.0.0.1:8080/services/sts/"))
    with pytest.raises(InvalidSecurityToken):
        verify(data, trusted, now)


@VERSIONS
@pytest.mark.parametrize(
    "audience",
    [OTHER_URL, SERVICE_URL + "/", SERVICE_URL.replace("/echo", "/Echo"), SERVICE_URL.upper(), "https" + SERVICE_URL[4:]],
    ids=["other-service", "trailing-slash", "path-case", "upper-case", "other-scheme"],
)
def test_audience_must_match_exactly(version, audience, sts_key, trusted, now):
    data = sign(sts_key, version, content(now, audience=audience))
    with pytest.raises(InvalidSecurityToken):
        verify(data, trusted, now)


# --------------------------------------------------------------------------- validity window

_MS = timedelta(milliseconds=1)
_SKEW = timedelta(minutes=5)
_LIFE = timedelta(minutes=5)


@VERSIONS
@pytest.mark.parametrize(
    ("offset", "skew", "accepted"),
    [
        (timedelta(0), _SKEW, True),
        (_LIFE + _SKEW - _MS, _SKEW, True),  # last moment of NotOnOrAfter + skew
        (_LIFE + _SKEW, _SKEW, False),  # NotOnOrAfter is exclusive
        (_LIFE + _SKEW + timedelta(seconds=1), _SKEW, False),
        (timedelta(hours=2), _SKEW, False),
        (-_SKEW, _SKEW, True),  # earliest moment NotBefore - skew
        (-_SKEW - _MS, _SKEW, False),
        (timedelta(hours=-2), _SKEW, False),
        (_LIFE - _MS, timedelta(0), True),
        (_LIFE, timedelta(0), False),
        (timedelta(0), timedelta(0), True),
        (-_MS, timedelta(0), False),
    ],
    ids=[
        "issued-now", "expiry-edge-within-skew", "expiry-edge-plus-skew", "expired", "long-expired",
        "not-before-edge-within-skew", "not-yet-valid-edge", "not-yet-valid",
        "no-skew-last-moment", "no-skew-expired", "no-skew-not-before", "no-skew-not-yet-valid",
    ],
)
def test_validity_window_with_clock_skew(version, offset, skew, accepted, sts_key, now):
    data = sign(sts_key, version, content(now))
    policy = saml.policy(
        trusted_certs=[sts_key.certificate], issuers=[ISSUER], audiences=[SERVICE_URL], clock_skew=skew
    )
    if accepted:
        assert verify(data, policy, now + offset).subject == "admin"
    else:
        with pytest.raises(InvalidSecurityToken):
            verify(data, policy, now + offset)


def test_saml2_subject_confirmation_expiry_is_checked(sts_key, trusted, now):
    """SubjectConfirmationData NotOnOrAfter is signed data too: a shorter one ends the token earlier."""
    what = content(now, not_on_or_after=now + timedelta(hours=1))
    root = saml.build_saml2(what)
    data_el = next(root.iter(qn(ns.SAML2, "SubjectConfirmationData")))
    data_el.set("NotOnOrAfter", saml.format_datetime(now + timedelta(minutes=1)))
    signed = sign_with(sts_key, saml.SAML2, what, root=root)
    assert verify(signed, trusted, now).subject == "admin"
    with pytest.raises(InvalidSecurityToken):
        verify(signed, trusted, now + timedelta(minutes=7))


# --------------------------------------------------------------------------- signature shape


@VERSIONS
@pytest.mark.parametrize("uri", ["", "#_elsewhere"], ids=["whole-document", "other-element"])
def test_reference_pointing_elsewhere_fails_check(version, uri, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now)))
    statement = root.find(qn(version.namespace, "AttributeStatement"))
    statement.set("ID", "_elsewhere")
    reference_of(root).set("URI", uri)
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
def test_two_references_fail_check(version, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now)))
    reference = reference_of(root)
    reference.addnext(copy.deepcopy(reference))
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
@pytest.mark.parametrize("attribute", ["ID", "AssertionID", "Id"])
def test_duplicate_id_inside_assertion_fails_check(version, attribute, sts_key, trusted, now):
    """An element inside the assertion carrying the assertion's own ID is how signature wrapping starts."""
    what = content(now)
    root = etree.fromstring(sign(sts_key, version, what))
    decoy = etree.SubElement(root, qn("urn:example:decoy", "Decoy"))
    decoy.set(attribute, what.assertion_id)
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
def test_second_signature_fails_check(version, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now)))
    subject = next(root.iter(qn(version.namespace, "Subject")))
    subject.append(copy.deepcopy(signature_of(root)))
    with pytest.raises(FailedCheck):
        verify(root, trusted, now)


@VERSIONS
@pytest.mark.parametrize("algorithm", [ALG_XPATH, ALG_XSLT], ids=["xpath", "xslt"])
def test_extra_transform_is_an_unsupported_algorithm(version, algorithm, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now)))
    transforms = reference_of(root).find(qn(DS, "Transforms"))
    extra = etree.SubElement(transforms, qn(DS, "Transform"), Algorithm=algorithm)
    if algorithm == ALG_XPATH:
        etree.SubElement(extra, qn(DS, "XPath")).text = "not(ancestor-or-self::*)"
    with pytest.raises(UnsupportedAlgorithm):
        verify(root, trusted, now)


@VERSIONS
def test_transform_replaced_by_xpath_is_an_unsupported_algorithm(version, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now)))
    c14n = reference_of(root).find(qn(DS, "Transforms"))[1]
    c14n.set("Algorithm", ALG_XPATH)
    with pytest.raises(UnsupportedAlgorithm):
        verify(root, trusted, now)


@VERSIONS
@pytest.mark.parametrize(
    "c14n",
    [ns.ALG_EXC_C14N + "WithComments", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"],
    ids=["exclusive-with-comments", "inclusive"],
)
def test_other_canonicalization_is_an_unsupported_algorithm(version, c14n, sts_key, trusted, now):
    root = etree.fromstring(sign(sts_key, version, content(now)))
    signature_of(root).find(f"{qn(DS, 'SignedInfo')}/{qn(DS, 'CanonicalizationMethod')}").set("Algorithm", c14n)
    with pytest.raises(UnsupportedAlgorithm):
        verify(root, trusted, now)


@VERSIONS
def test_hmac_signature_method_is_an_unsupported_algorithm(version, sts_key, trusted, now):
    """HMAC keyed with the public certificate is the classic key-confusion forgery."""
    root = etree.fromstring(sign(sts_key, version, content(now)))
    method = signature_of(root).find(f"{qn(DS, 'SignedInfo')}/{qn(DS, 'SignatureMethod')}")
    method.set("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256")
    with pytest.raises(UnsupportedAlgorithm):
        verify(root, trusted, now)


@VERSIONS
def test_rsa_sha1_refused_when_sha1_not_allowed(version, sts_key, trusted, now):
    data = sign_with(sts_key, version, content(now), signature=SignatureMethod.RSA_SHA1, digest=DigestAlgorithm.SHA1)
    with pytest.raises(UnsupportedAlgorithm):
        verify(data, trusted, now)


@VERSIONS
def test_sha1_digest_refused_when_sha1_not_allowed(version, sts_key, trusted, now):
    data = sign_with(
        sts_key, version, content(now), signature=SignatureMethod.RSA_SHA256, digest=DigestAlgorithm.SHA1
    )
    with pytest.raises(UnsupportedAlgorithm):
        verify(data, trusted, now)


def test_element_that_is_not_an_assertion_is_an_invalid_token(trusted, now):
    with pytest.raises(InvalidSecurityToken):
        saml.verify_assertion(etree.fromstring(b"<Assertion xmlns='urn:not-saml'/>"), trusted, now=now)


# --------------------------------------------------------------------------- real third-party vectors

ADFS_NOW = datetime(2014, 1, 27, 8, 30, tzinfo=timezone.utc)


def adfs_policy(cert, *, allow_sha1=True):
    return saml.policy(trusted_certs=[cert], issuers=[ADFS_ISSUER], audiences=[ADFS_AUDIENCE], allow_sha1=allow_sha1)


def test_adfs_saml11_assertion_verifies_with_its_configured_cert():
    assertion, cert = vector_assertion(ADFS_VECTOR)
    verified = saml.verify_assertion(assertion, adfs_policy(cert), now=ADFS_NOW)
    assert verified.version == "1.1"
    assert verified.subject == ADFS_SUBJECT
    assert verified.issuer == ADFS_ISSUER
    assert verified.audiences == (ADFS_AUDIENCE,)
    assert verified.assertion_id == "_bf137f90-7dd7-4668-8a39-8bf55eb52017"
    assert verified.attributes[ADFS_UPN] == ("frizzo@naturalcauses.com",)
    assert verified.not_on_or_after == datetime(2014, 1, 27, 9, 15, 45, 3000, tzinfo=timezone.utc)


def test_adfs_rsa_sha1_assertion_refused_when_sha1_not_allowed():
    assertion, cert = vector_assertion(ADFS_VECTOR)
    with pytest.raises(UnsupportedAlgorithm):
        saml.verify_assertion(assertion, adfs_policy(cert, allow_sha1=False), now=ADFS_NOW)


def test_adfs_assertion_expired_after_its_window():
    assertion, cert = vector_assertion(ADFS_VECTOR)
    with pytest.raises(InvalidSecurityToken):
        saml.verify_assertion(assertion, adfs_policy(cert), now=datetime(2014, 1, 27, 10, 0, tzinfo=timezone.utc))


def test_adfs_assertion_refused_with_another_trusted_cert(sts_key):
    assertion, _ = vector_assertion(ADFS_VECTOR)
    with pytest.raises(FailedCheck):
        saml.verify_assertion(assertion, adfs_policy(sts_key.certificate), now=ADFS_NOW)


def test_adfs_assertion_with_upn_edited_fails_check():
    assertion, cert = vector_assertion(ADFS_VECTOR)
    next(v for v in assertion.iter(qn(ns.SAML1, "AttributeValue"))).text = "admin@naturalcauses.com"
    with pytest.raises(FailedCheck):
        saml.verify_assertion(assertion, adfs_policy(cert), now=ADFS_NOW)


def test_wif_assertion_refused_because_its_trusted_cert_had_expired():
    """The passport-wsfed-saml2 vector is signature-valid (rsa-sha256), but its signing certificate
    expired on 2013-09-19 and the assertion is from 2015. We check the validity period of the
    configured trusted certificate at verification time (signxml's verification_time = now), with
    no switch to turn that off, so the token is refused."""
    assertion, cert = vector_assertion("passport-wsfed-saml2_rstrc_wstrust13_saml11_rsasha256_signed.xml")
    assert cert.not_valid_after_utc < datetime(2015, 7, 23, tzinfo=timezone.utc)
    policy = saml.policy(
        trusted_certs=[cert], issuers=["http://dev.pms.baxon.net/sts/"], audiences=["http://dev.pms.baxon.net/"]
    )
    with pytest.raises(FailedCheck) as caught:
        saml.verify_assertion(assertion, policy, now=datetime(2015, 7, 23, 16, 0, tzinfo=timezone.utc))
    assert "expired" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "now"),
    [
        ("adal-node_adfs_rstr_wstrust2005_saml11.xml", datetime(2015, 7, 31, 5, 50, tzinfo=timezone.utc)),
        ("msal-python_adfs_rstr_saml11_bearer.xml", datetime(2013, 11, 15, 3, 10, tzinfo=timezone.utc)),
    ],
    ids=["adal-node-wstrust2005", "msal-python"],
)
def test_pretty_printed_adfs_assertions_fail_check_with_their_own_cert(name, now):
    """Both were re-indented after AD FS signed them, so their signed content no longer matches."""
    assertion, cert = vector_assertion(name)
    ns1 = ns.SAML1
    audience = assertion.findtext(f".//{qn(ns1, 'Audience')}").strip()
    conditions = assertion.find(qn(ns1, "Conditions"))
    assert saml.parse_datetime(conditions.get("NotBefore")) <= now < saml.parse_datetime(conditions.get("NotOnOrAfter"))
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    policy = saml.policy(
        trusted_certs=[cert], issuers=[assertion.get("Issuer")], audiences=[audience], allow_sha1=True
    )
    with pytest.raises(FailedCheck):
        saml.verify_assertion(assertion, policy, now=now)


def test_the_model_names_exactly_the_saml_versions():
    """model.TOKEN_TYPES (tier 0, used by the registry, the CLI and the config) cannot import saml."""
    from wstrust_wsgi.model import TOKEN_TYPES

    assert TOKEN_TYPES == tuple(version.name for version in (saml.SAML2, saml.SAML11))
