"""SAML 2.0 and 1.1 bearer assertions: build, sign, verify, and read what was signed.

* :mod:`.versions`: the two versions as data (:class:`SamlVersion`).
* :mod:`.build`: :class:`AssertionContent` into an assertion element.
* :mod:`.sign`: :class:`AssertionSigner`, an enveloped signature by :mod:`wstrust_wsgi.xmldsig`.
* :mod:`.verify` and :mod:`.rules`: :func:`verify_assertion` under a
  :class:`ValidationPolicy`, returning a :class:`VerifiedAssertion` read only
  from the signed element.
* :mod:`.cache`: :class:`VerificationCache`, so a reused token skips the
  signature work only (its time window and audience are checked on every request).
"""

from __future__ import annotations

from .._time import format_datetime, parse_datetime
from .build import AssertionContent, build_saml2, build_saml11
from .cache import VerificationCache
from .rules import ValidationPolicy, VerifiedAssertion, policy
from .sign import AssertionSigner
from .verify import check_client_address, check_unique_id, unverified_claims, verify_assertion, verify_standalone
from .versions import SAML2, SAML11, SamlVersion, version_for_token_type, version_of

__all__ = [
    "SAML11", "SAML2", "AssertionContent", "AssertionSigner", "SamlVersion", "ValidationPolicy", "VerificationCache",
    "VerifiedAssertion", "build_saml11", "build_saml2", "check_client_address", "check_unique_id", "format_datetime",
    "parse_datetime", "policy", "unverified_claims", "verify_assertion", "verify_standalone", "version_for_token_type",
    "version_of",
]
