"""The Renew binding (WS-Trust 1.3 section 5): a fresh token in place of one we issued.

Stricter than the STSes the project follows (notes section 4.2: Rahas checks
neither the Renewing flags nor expiry, WSO2's renewed token loses its
audience, Rampart's is born expired). A token is renewed only when all hold:

* it is in ``wst:RenewTarget`` itself (a reference is not enough: its
  signature must be checked), signed by our key, with a record in the
  issued-token store, neither cancelled nor already renewed;
* the requester is its subject (authenticated now, holding an allowed role);
* it is a bearer token (a holder-of-key token would need a proof of
  possession of its key, which this binding does not check yet);
* ``wst:Renewing Allow="false"`` was not asked at issue;
* it has not expired, or ``OK="true"`` was asked at issue and it expired less
  than the renewal window ago (30 minutes by default); an expired token is
  verified as of an instant it was valid at, everything else as for the
  middleware.

The new token keeps the subject and the relying party (its audience) and
carries the claims and roles the requester holds *now* (a revoked role is
not renewed), filtered by the relying party's claim list as at issue; it gets
a new ID and a fresh lifetime, and inherits the Renewing flags. The old ID is
retired (state ``renewed``) atomically first, so of two racing renewals one
wins.
"""

from __future__ import annotations

import logging

from .. import ns, wstrust
from ..errors import UnableToRenew
from ..saml import SAML2, SAML11
from ..stores import RelyingPartyStore
from ..stores.tokens import CANCELLED, ISSUED, RENEWED
from ..wstrust.lifecycle import renewed_envelope
from .binding import TrustCall, uris
from .issue import IssueBinding
from .lifecycle import IssuedTokens

log = logging.getLogger("wstrust_wsgi.sts")

_VERSIONS = {SAML2.name: SAML2, SAML11.name: SAML11}
#: The bearer KeyTypes of every WS-Trust version: any other key type (holder-of-key) needs a proof of possession.
_BEARER = frozenset(key_type for dialect in wstrust.DIALECTS.values() for key_type in dialect.bearer_key_types)


class RenewBinding:
    """Answers Renew requests (both WS-Trust versions) with a new token for the same subject and party."""

    request_types, actions = uris("Renew")

    def __init__(self, tokens: IssuedTokens, issue: IssueBinding, relying_parties: RelyingPartyStore) -> None:
        self._tokens = tokens
        self._issue = issue
        self._parties = relying_parties

    def answer(self, call: TrustCall) -> bytes:
        now, settings = call.now, call.settings
        target, record = self._tokens.target(call, "Renew")
        if target.element is None:
            raise UnableToRenew("RenewTarget holds a reference, not the token",
                                reason="wst:RenewTarget must hold the token itself.")
        if record is None:
            raise UnableToRenew(f"no record of token {target.assertion_id!r}",
                                reason="The token was not issued by this STS, or is no longer known.")
        if record.state != ISSUED:
            raise UnableToRenew(f"token {record.assertion_id} is {record.state}",
                                reason={CANCELLED: "The token has been cancelled.",
                                        RENEWED: "The token has already been renewed."}[record.state])
        self._tokens.owner_or_administrator(call.principal, record, "renew")
        if record.key_type not in _BEARER:
            raise UnableToRenew(f"token {record.assertion_id} has KeyType {record.key_type!r}: renewing it needs a "
                                "proof of possession, which this binding does not check yet",
                                reason="Only bearer tokens can be renewed.")
        if not record.renew_allowed:
            raise UnableToRenew(f"token {record.assertion_id} was issued with Renewing Allow=\"false\"",
                                reason="The token was issued as not renewable.")
        at = now
        if now - settings.clock_skew >= record.expires:
            if not record.renew_after_expiry:
                raise UnableToRenew(f"token {record.assertion_id} expired at {record.expires.isoformat()} and "
                                    "Renewing OK=\"true\" was not asked at issue",
                                    reason="The token has expired and was not issued as renewable after expiry.")
            if now > record.expires + self._tokens.policy.renewal_window:
                raise UnableToRenew(f"token {record.assertion_id} expired at {record.expires.isoformat()}, "
                                    "past the renewal window", reason="The token expired too long ago to be renewed.")
            at = self._tokens.before_end(record)
        self._tokens.verify(call, target.element, record, at=at)
        party = self._parties.get(record.relying_party)
        if party is None:
            raise UnableToRenew(f"relying party {record.relying_party!r} is no longer registered",
                                reason="The token's relying party is no longer registered.")
        if not self._tokens.store.transition(record.assertion_id, RENEWED, now=now):
            raise UnableToRenew(f"token {record.assertion_id} was renewed or cancelled meanwhile",
                                reason="The token has already been renewed.")
        version = _VERSIONS[record.token_type]
        content, assertion = self._issue.reissue(call.principal, party, version, now=now, settings=settings)
        self._tokens.record(content, record.token_type, record.key_type, record.renew_allowed,
                            record.renew_after_expiry, call)
        request = wstrust.TokenRequest(call.dialect, party.address, (ns.WSP12, ns.WSA10), None,
                                       call.dialect.bearer_key_types[0], None, call.rst.get("Context"))
        log.info("renewed: token %s as %s for %r for %s (WS-Trust %s, valid until %s) (%s)", record.assertion_id,
                 content.assertion_id, call.principal.name, party.address, call.dialect.name,
                 content.not_on_or_after.isoformat(), call.request, extra=call.request.extra)
        return renewed_envelope(call.envelope.version, request, assertion, token_type=version.token_type,
                                profile=version, assertion_id=content.assertion_id, created=now,
                                expires=content.not_on_or_after, relates_to=call.relates_to)
