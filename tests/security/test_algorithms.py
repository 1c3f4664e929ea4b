"""Algorithm downgrade: weak or unknown signature, digest and canonicalization methods, forbidden transforms.

Every token here is signed by the *trusted* STS key with a signature computed
by hand for exactly the algorithms it names (MD5, SHA-1, inclusive c14n, c14n
with comments ...), so it is cryptographically valid (xmlsec1 confirms it for the
algorithms xmlsec1 implements): only the algorithm policy may refuse it, and it
must, with ``wsse:UnsupportedAlgorithm``. SHA-1 is refused unless the middleware
was built with ``allow_sha1=True``; MD5, HMAC and everything unknown are refused
always. Controls: RSA-SHA256/512 with exclusive c14n are admitted.
"""

from __future__ import annotations

import pytest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    ALG_BASE64,
    ALG_C14N,
    ALG_C14N11,
    ALG_C14N_COMMENTS,
    ALG_EXC_C14N_COMMENTS,
    ALG_MD5,
    ALG_RSA_MD5,
    ALG_RSA_SHA512,
    ALG_SHA512,
    ALG_XPATH,
    ALG_XPATH_FILTER2,
    ALG_XSLT,
    SAML_VERSIONS,
    SOAP_VERSIONS,
    admitted,
    build,
    envelope,
    forge_signature,
    guard,
    key_info_x509,
    low_privilege,
    post,
    recorder,
    refused,
    sts_key,
    tostring,
)
from _support import xmlsec1_verify
from wstrust_wsgi import ns, saml

SHA256, SHA1 = ns.ALG_SHA256, ns.ALG_SHA1
RSA_SHA256, RSA_SHA1 = ns.ALG_RSA_SHA256, ns.ALG_RSA_SHA1
ENV, EXC = ns.ALG_ENVELOPED, ns.ALG_EXC_C14N
UNSUPPORTED = "wsse:UnsupportedAlgorithm"
ADMIT = "admitted"

#: name -> (forge_signature options, outcome by default, outcome with allow_sha1=True)
CASES: dict[str, tuple[dict, str, str]] = {
    # controls
    "rsa-sha256-sha256": ({}, ADMIT, ADMIT),
    "rsa-sha512-sha512": ({"signature_method": ALG_RSA_SHA512, "digest_method": ALG_SHA512}, ADMIT, ADMIT),
    # SHA-1 downgrade
    "rsa-sha1-sha1": ({"signature_method": RSA_SHA1, "digest_method": SHA1}, UNSUPPORTED, ADMIT),
    "rsa-sha1-sha256": ({"signature_method": RSA_SHA1}, UNSUPPORTED, ADMIT),
    "rsa-sha256-sha1": ({"digest_method": SHA1}, UNSUPPORTED, ADMIT),
    # MD5: never
    "rsa-md5-md5": ({"signature_method": ALG_RSA_MD5, "digest_method": ALG_MD5}, UNSUPPORTED, UNSUPPORTED),
    "rsa-md5-sha256": ({"signature_method": ALG_RSA_MD5}, UNSUPPORTED, UNSUPPORTED),
    "rsa-sha256-md5": ({"digest_method": ALG_MD5}, UNSUPPORTED, UNSUPPORTED),
    # unknown or misspelt URIs (the signature itself is RSA-SHA256 over SHA-256)
    "signature-method-unknown": ({"signature_method": "urn:example:unknown"}, UNSUPPORTED, UNSUPPORTED),
    "signature-method-empty": ({"signature_method": ""}, UNSUPPORTED, UNSUPPORTED),
    "signature-method-dsig-namespace-rsa-sha256": (
        {"signature_method": "http://www.w3.org/2000/09/xmldsig#rsa-sha256"}, UNSUPPORTED, UNSUPPORTED),
    "signature-method-upper-case": ({"signature_method": RSA_SHA256.upper()}, UNSUPPORTED, UNSUPPORTED),
    "signature-method-trailing-space": ({"signature_method": RSA_SHA256 + " "}, UNSUPPORTED, UNSUPPORTED),
    "signature-method-ecdsa": (
        {"signature_method": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"}, UNSUPPORTED, UNSUPPORTED),
    "signature-method-dsa-sha1": (
        {"signature_method": "http://www.w3.org/2000/09/xmldsig#dsa-sha1"}, UNSUPPORTED, UNSUPPORTED),
    "digest-method-unknown": ({"digest_method": "urn:example:unknown"}, UNSUPPORTED, UNSUPPORTED),
    "digest-method-empty": ({"digest_method": ""}, UNSUPPORTED, UNSUPPORTED),
    "digest-method-sha256-in-dsig-namespace": (
        {"digest_method": "http://www.w3.org/2000/09/xmldsig#sha256"}, UNSUPPORTED, UNSUPPORTED),
    # canonicalization of SignedInfo
    "c14n-inclusive": ({"c14n_method": ALG_C14N}, UNSUPPORTED, UNSUPPORTED),
    "c14n-inclusive-with-comments": ({"c14n_method": ALG_C14N_COMMENTS}, UNSUPPORTED, UNSUPPORTED),
    "c14n-exclusive-with-comments": ({"c14n_method": ALG_EXC_C14N_COMMENTS}, UNSUPPORTED, UNSUPPORTED),
    "c14n-1.1": ({"c14n_method": ALG_C14N11}, UNSUPPORTED, UNSUPPORTED),
    "c14n-unknown": ({"c14n_method": "urn:example:unknown"}, UNSUPPORTED, UNSUPPORTED),
    # transforms of the Reference
    "transform-inclusive-c14n": ({"transforms": (ENV, ALG_C14N)}, UNSUPPORTED, UNSUPPORTED),
    "transform-inclusive-c14n-with-comments": ({"transforms": (ENV, ALG_C14N_COMMENTS)}, UNSUPPORTED, UNSUPPORTED),
    "transform-exclusive-c14n-with-comments": (
        {"transforms": (ENV, ALG_EXC_C14N_COMMENTS)}, UNSUPPORTED, UNSUPPORTED),
    "transform-c14n-1.1": ({"transforms": (ENV, ALG_C14N11)}, UNSUPPORTED, UNSUPPORTED),
    "transform-xslt": ({"transforms": (ENV, ALG_XSLT, EXC)}, UNSUPPORTED, UNSUPPORTED),
    "transform-xpath": ({"transforms": (ENV, ALG_XPATH, EXC)}, UNSUPPORTED, UNSUPPORTED),
    "transform-xpath-filter-2.0": ({"transforms": (ENV, ALG_XPATH_FILTER2, EXC)}, UNSUPPORTED, UNSUPPORTED),
    "transform-base64": ({"transforms": (ENV, ALG_BASE64)}, UNSUPPORTED, UNSUPPORTED),
    "transform-unknown": ({"transforms": (ENV, "urn:example:unknown")}, UNSUPPORTED, UNSUPPORTED),
    "transform-xpath-replacing-exclusive-c14n": ({"transforms": (ENV, ALG_XPATH)}, UNSUPPORTED, UNSUPPORTED),
    "transforms-three": ({"transforms": (ENV, EXC, EXC)}, UNSUPPORTED, UNSUPPORTED),
    "transforms-none": ({"transforms": ()}, UNSUPPORTED, UNSUPPORTED),
    "transforms-exclusive-only-not-enveloped": ({"transforms": (EXC,)}, UNSUPPORTED, UNSUPPORTED),
    # Without an explicit c14n transform XML-DSig canonicalizes with *inclusive* C14N 1.0
    # (signxml does too): the library's "enveloped + exclusive c14n only" rule must refuse these.
    "transform-enveloped-only-implicit-inclusive-c14n": ({"transforms": (ENV,)}, UNSUPPORTED, UNSUPPORTED),
    "transforms-enveloped-twice-implicit-inclusive-c14n": ({"transforms": (ENV, ENV)}, UNSUPPORTED, UNSUPPORTED),
}


def signed_with(version: saml.SamlVersion, options: dict, key, clock) -> bytes:  # type: ignore[no-untyped-def]
    root = build(version, low_privilege(clock.now))
    forge_signature(root, private_key=key.private_key, key_info=key_info_x509(key.certificate), **options)
    return tostring(root)


@SOAP_VERSIONS
@SAML_VERSIONS
@pytest.mark.parametrize("case", list(CASES))
def test_algorithm_policy_by_default(recorder, sts_key, sts_keys, clock, soap, version, case):
    options, outcome, _ = CASES[case]
    response = post(guard(recorder, sts_keys.cert, clock), envelope([signed_with(version, options, sts_key, clock)],
                                                                    soap=soap), soap)
    if outcome == ADMIT:
        admitted(response, recorder, "alice")
    else:
        refused(response, soap, outcome, recorder=recorder)


@SAML_VERSIONS
@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] != CASES[c][2] or "md5" in c])
def test_algorithm_policy_with_sha1_allowed(recorder, sts_key, sts_keys, clock, version, case):
    """allow_sha1 opens SHA-1 and nothing else: MD5 stays refused."""
    options, _, outcome = CASES[case]
    app = guard(recorder, sts_keys.cert, clock, allow_sha1=True)
    response = post(app, envelope([signed_with(version, options, sts_key, clock)]))
    if outcome == ADMIT:
        admitted(response, recorder, "alice")
    else:
        refused(response, "1.1", outcome, recorder=recorder)


XMLSEC1_CHECKED = [
    "rsa-sha1-sha1", "rsa-md5-md5", "rsa-sha256-md5", "c14n-inclusive", "c14n-inclusive-with-comments",
    "c14n-exclusive-with-comments", "transform-inclusive-c14n", "transform-exclusive-c14n-with-comments",
    "transform-xpath", "transform-xpath-filter-2.0", "transform-xslt",
    "transform-enveloped-only-implicit-inclusive-c14n",
]


@pytest.mark.parametrize("case", XMLSEC1_CHECKED)
def test_refused_signatures_are_genuinely_valid(sts_key, sts_keys, clock, tmp_path, case):
    """The refusals above come from the policy, not from broken forgeries: xmlsec1 accepts each one."""
    data = signed_with(saml.SAML2, CASES[case][0], sts_key, clock)
    result = xmlsec1_verify(data, sts_keys.cert, tmp_path)
    assert result.returncode == 0 and "OK" in result.stderr.splitlines(), result.stderr
    assert etree.fromstring(data).find(".//{*}SignatureValue").text
