"""WS-Trust 1.3 and February 2005 on the wire: the versions as data, RST and RSTR.

* :mod:`.dialects`: each version's namespace, action, RequestType and KeyType
  URIs (:class:`Dialect`);
* :mod:`.messages`: reading a ``RequestSecurityToken``, writing the
  ``RequestSecurityTokenResponse`` around a token made elsewhere;
* :mod:`.proof`: proof keys of holder-of-key requests (KeyType, Entropy, KeySize, P_SHA1);
* :mod:`.delegation`: the client's ``OnBehalfOf`` and ``ActAs``;
* ``_template``: the envelope template the answer is written through.

Wire format only: no stores, no SAML (the token arrives as bytes, what its
references say as plain data), so the roles above (``sts``, ``client``) put
the pieces together.
"""

from __future__ import annotations

from .dialects import BINDINGS, DIALECTS, WSTRUST13, WSTRUST2005, Dialect, dialect_of
from .messages import (
    TOKEN_MARKER,
    TokenProfile,
    RequestedClaims,
    TokenRequest,
    build_response,
    delegation_of,
    parse_request,
    request_type_of,
    requested_claims,
    response_envelope,
)

__all__ = [
    "BINDINGS",
    "DIALECTS",
    "Dialect",
    "RequestedClaims",
    "TOKEN_MARKER",
    "TokenProfile",
    "TokenRequest",
    "WSTRUST13",
    "WSTRUST2005",
    "build_response",
    "delegation_of",
    "dialect_of",
    "parse_request",
    "request_type_of",
    "requested_claims",
    "response_envelope",
]
