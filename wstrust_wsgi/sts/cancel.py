"""The Cancel binding (WS-Trust 1.3 section 6): this token may no longer be used.

The RST names the token in ``wst:CancelTarget`` (the token, or a reference to
it). Only a token with a record in the issued-token store can be cancelled,
and only by its subject or by a holder of one of the policy's administrator
roles (Rahas checks neither ownership nor anything else, notes section 4.3).
A token given itself must pass the middleware's verification with our key (as
of an instant it was valid at, so an expired one can be cancelled too); an
encrypted one, which the STS cannot read, must be exactly the bytes it issued:
its record is found by their digest (:mod:`.lifecycle`). The
record is marked ``cancelled`` in the shared store: Validate answers invalid
from then on, Renew refuses it, and a relying party whose middleware has
``revocation_store=`` refuses it. A relying party that consults neither still
admits a cancelled bearer token until it expires. Cancelling a cancelled
token answers ``RequestedTokenCancelled`` again.
"""

from __future__ import annotations

import logging

from ..errors import InvalidRequest
from ..stores.tokens import CANCELLED
from ..wstrust.lifecycle import cancelled_envelope
from .binding import TrustCall, uris
from .lifecycle import IssuedTokens, unknown

log = logging.getLogger("wstrust_wsgi.sts")


class CancelBinding:
    """Answers Cancel requests (both WS-Trust versions) with ``wst:RequestedTokenCancelled``."""

    request_types, actions = uris("Cancel")

    def __init__(self, tokens: IssuedTokens) -> None:
        self._tokens = tokens

    def answer(self, call: TrustCall) -> bytes:
        target, record = self._tokens.target(call, "Cancel")
        if record is None:
            raise unknown(target)
        self._tokens.check(call, target, record, at=min(call.now, self._tokens.before_end(record)))
        self._tokens.owner_or_administrator(call.principal, record, "cancel")
        if record.state != CANCELLED and not self._tokens.store.transition(record.assertion_id, CANCELLED,
                                                                           now=call.now):
            current = self._tokens.store.get(record.assertion_id, call.now)  # cancelled meanwhile is as good
            if current is None or current.state != CANCELLED:
                raise InvalidRequest(f"token {record.assertion_id} is no longer issued (renewed)",
                                     reason="The token has been renewed: cancel the token that replaced it.")
        log.info("cancelled: token %s of %r by %r (WS-Trust %s) (%s)", record.assertion_id, record.subject,
                 call.principal.name, call.dialect.name, call.request, extra=call.request.extra)
        return cancelled_envelope(call.envelope.version, call.dialect, context=call.rst.get("Context"),
                                  relates_to=call.relates_to)
