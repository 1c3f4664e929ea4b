"""W3C XML Signature (XML-DSig 1.1): an algorithm registry, signing, verifying, key resolution.

Knows no SAML and no SOAP: callers say which element is signed, by which ID
attribute, under which algorithms, with which keys. The profile is the one
interoperable peers use: exclusive c14n, one SignatureMethod from
:data:`ALGORITHMS` (RSA PKCS#1 v1.5 or HMAC), enveloped or detached (by ID)
References. https://www.w3.org/TR/xmldsig-core1/
"""

from __future__ import annotations

from .algorithms import (
    ALGORITHMS,
    BY_SETTING,
    Algorithm,
    AlgorithmPolicy,
    HmacKey,
    for_setting,
    setting_names,
)
from .sign import Signer, canonical, certificate_base64
from .verify import (
    Candidate,
    KeyResolver,
    Parts,
    Verified,
    enveloped_shape,
    id_holders,
    shared_secrets,
    thumbprints,
    trusted_certificates,
    verify_detached,
    verify_enveloped,
)

__all__ = [
    "ALGORITHMS", "BY_SETTING", "Algorithm", "AlgorithmPolicy", "Candidate", "HmacKey", "KeyResolver", "Parts",
    "Signer", "Verified", "canonical", "certificate_base64", "enveloped_shape", "for_setting", "id_holders",
    "setting_names",
    "shared_secrets", "thumbprints", "trusted_certificates", "verify_detached", "verify_enveloped",
]
