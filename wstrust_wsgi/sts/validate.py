"""The Validate binding (WS-Trust 1.3 section 7): is this token one of ours, and still good?

The RST names the token in ``wst:ValidateTarget`` (the token, or a reference
to it) and asks for TokenType ``.../RSTR/Status`` (or none); the answer is
``wst:Status`` with Code valid or invalid and a Reason. A token is valid when
the middleware's own verification passes with our signing key, our issuer and
the audience recorded at issue, and its record says it is neither cancelled
nor renewed. A token given by reference only is judged on its record (no
signature to check: the record was written by us); so is an encrypted token,
whose record is found by the digest of its exact bytes (:mod:`.lifecycle`):
one we did not produce has none, and is invalid. An invalid token is an
answer, not a fault; a malformed request, a requester not allowed to
validate, or a store that cannot answer are faults.
"""

from __future__ import annotations

import logging

from .. import _xml
from ..errors import InvalidRequest, NotAuthorized, SecurityFault
from ..stores.tokens import ISSUED
from ..wstrust.lifecycle import status_envelope, status_token_type
from .binding import TrustCall, uris
from .lifecycle import IssuedTokens

log = logging.getLogger("wstrust_wsgi.sts")

_VALID = "The token is valid."
_STATES = {"cancelled": "The token has been cancelled.", "renewed": "The token has been renewed and replaced."}


class ValidateBinding:
    """Answers Validate requests (both WS-Trust versions) with a ``wst:Status``."""

    request_types, actions = uris("Validate")

    def __init__(self, tokens: IssuedTokens) -> None:
        self._tokens = tokens

    def answer(self, call: TrustCall) -> bytes:
        allowed = self._tokens.policy.validators
        if allowed is not None and not call.principal.roles & allowed:
            raise NotAuthorized(f"{call.principal.name!r} holds none of the validator roles {sorted(allowed)}",
                                reason="The requester may not validate tokens.")
        t = call.dialect.namespace
        token_type = _xml.text(_xml.child(call.rst, t, "TokenType")) or None
        if token_type is not None and token_type != status_token_type(call.dialect):
            raise InvalidRequest(f"Validate for TokenType {token_type!r}",
                                 reason=f"Only the status TokenType ({status_token_type(call.dialect)}) is answered.")
        target, record = self._tokens.target(call, "Validate")
        valid, reason, detail = True, _VALID, "valid"
        try:
            if record is None:
                raise InvalidRequest("no record", reason="The token was not issued by this STS, or is no longer known.")
            if target.element is not None and not target.encrypted:
                self._tokens.verify(call, target.element, record, at=call.now)
            elif call.now - call.settings.clock_skew >= record.expires:
                raise SecurityFault("expired", reason="The security token has expired.")
            if record.state != ISSUED:
                raise InvalidRequest(f"state {record.state}", reason=_STATES[record.state])
        except (SecurityFault, InvalidRequest) as refused:
            valid, reason, detail = False, refused.reason, f"invalid: {refused.detail}"
        log.info("validated: token %r for %r: %s (WS-Trust %s) (%s)", target.assertion_id, call.principal.name,
                 detail, call.dialect.name, call.request, extra=call.request.extra)
        return status_envelope(call.envelope.version, call.dialect, valid=valid, reason=reason,
                               context=call.rst.get("Context"), relates_to=call.relates_to)
