"""OASIS Web Services Security 1.0/1.1: the ``wsse:Security`` header and what it carries.

* :mod:`.header`: the one Security header for this endpoint, ``wsu:Timestamp``;
* :mod:`.username`: the UsernameToken Profile 1.1 (PasswordText, PasswordDigest);
* :mod:`.references`: SecurityTokenReference.

* :mod:`.signature`: message signatures with a proof key (WSS 1.1 section 8).
"""

from __future__ import annotations

from .header import Timestamp, build_timestamp, check_timestamp, read_timestamp, security_element, security_header
from .references import key_identifier_reference, names_token
from .signature import MessageProof, sign_message, verify_message, verify_token_proof
from .username import UsernameToken, build_username_token, read_username_token

__all__ = [
    "MessageProof",
    "Timestamp",
    "UsernameToken",
    "build_timestamp",
    "build_username_token",
    "check_timestamp",
    "key_identifier_reference",
    "names_token",
    "read_timestamp",
    "read_username_token",
    "security_element",
    "security_header",
    "sign_message",
    "verify_message",
    "verify_token_proof",
]
