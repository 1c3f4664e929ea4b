"""Reference builders the fast envelope paths are proved against (oracles, never used in production).

:func:`response_envelope_from_tree` is the STS's answer made the plain way:
the RSTR tree (:func:`wstrust.build_response`) put in a :func:`soap.envelope`
with the reply's WS-Addressing headers, serialized per message, the token
spliced at the marker. :func:`wstrust.response_envelope`, which fills a
template per response shape, must give the same bytes for every input.
"""

from __future__ import annotations

from datetime import datetime

from wstrust_wsgi import soap, wstrust


def response_envelope_from_tree(
    soap_version: soap.SoapVersion,
    request: wstrust.TokenRequest,
    assertion: bytes,
    *,
    token_type: str,
    version: wstrust.TokenProfile,
    assertion_id: str,
    created: datetime,
    expires: datetime,
    relates_to: soap.RelatesTo | None = None,
) -> bytes:
    """The whole SOAP response, built as a tree and serialized: the reference for ``wstrust.response_envelope``."""
    top = wstrust.build_response(request, token_type=token_type, version=version, assertion_id=assertion_id,
                                 created=created, expires=expires)
    headers = relates_to.headers(request.dialect.issue_response_action) if relates_to is not None else []
    return soap.envelope(soap_version, top, headers).replace(wstrust.TOKEN_MARKER, assertion, 1)
