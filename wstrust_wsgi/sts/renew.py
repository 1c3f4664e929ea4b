"""The Renew binding (WS-Trust 1.3 section 5): a fresh token in place of one we issued.

Stricter than the STSes the project follows (notes section 4.2: Rahas checks
neither the Renewing flags nor expiry, WSO2's renewed token loses its
audience, Rampart's is born expired). A token is renewed only when all hold:

* it is in ``wst:RenewTarget`` itself (a reference is not enough: its
  signature must be checked), signed by our key, with a record in the
  issued-token store, neither cancelled nor already renewed; an encrypted
  token (which the STS cannot decrypt) is in the target exactly as it was
  issued, and its record is found by the digest of those bytes, which proves
  we produced them (:mod:`.lifecycle`);
* the requester is its subject (authenticated now, holding an allowed role);
* a holder-of-key token: the request also proves possession of its key, a
  signature with it over the Body and a fresh Timestamp naming the token, as
  the middleware requires of a service call (:mod:`.possession`); the record
  must keep that key (wrapped) or certificate, so a record made before schema
  version 8 cannot renew one, and the relying party must still allow the key type;
* ``wst:Renewing Allow="false"`` was not asked at issue;
* it has not expired, or ``OK="true"`` was asked at issue and it expired less
  than the renewal window ago (30 minutes by default); an expired token is
  verified as of an instant it was valid at, everything else as for the
  middleware.

The new token keeps the subject and the relying party (its audience) and
carries the claims and roles the requester holds *now* (a revoked role is
not renewed), filtered by the relying party's claim list *now* and by the
claims asked with ``wst:Claims`` at issue (recorded: a required one no longer
held fails the renewal, an optional one is dropped); it keeps the key binding
(the same symmetric key encrypted for the party's current certificate, or
the same certificate); it gets a new ID and a fresh lifetime, and inherits
the Renewing flags. It is encrypted, as at issue, when the party has an
encryption certificate now, for that certificate; its record keeps its digest. The new token is signed first, then the old ID is retired
(state ``renewed``) atomically, so of two racing renewals one wins, and a
renewal that fails leaves the old token as it was.

The answer of a holder-of-key renewal carries no ``wst:RequestedProofToken``:
WS-Trust 1.3 section 5 keeps a renewed token's key semantics unchanged, and
CXF's renewer likewise re-issues with the same key and sends none; the client
already holds the key, which so never crosses the wire again.
"""

from __future__ import annotations

import logging

from .. import ns, wstrust
from ..errors import InvalidRequest, UnableToRenew
from ..saml import SAML2, SAML11
from ..stores import RelyingPartyStore, ReplayCache
from ..stores.tokens import CANCELLED, ISSUED, RENEWED
from ..wstrust.lifecycle import renewed_envelope
from ..wstrust.proof import key_type_uri
from .binding import TrustCall, uris
from .issue import IssueBinding
from .lifecycle import IssuedTokens
from .possession import kind_of, renewed_key_info

log = logging.getLogger("wstrust_wsgi.sts")

_VERSIONS = {SAML2.name: SAML2, SAML11.name: SAML11}


class RenewBinding:
    """Answers Renew requests (both WS-Trust versions) with a new token for the same subject and party."""

    request_types, actions = uris("Renew")

    def __init__(self, tokens: IssuedTokens, issue: IssueBinding, relying_parties: RelyingPartyStore,
                 nonces: ReplayCache | None = None) -> None:
        self._tokens = tokens
        self._nonces = nonces  # where a holder-of-key proof's SignatureValue is entered once
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
        self._tokens.check(call, target, record, at=at)
        party = self._parties.get(record.relying_party)
        if party is None:
            raise UnableToRenew(f"relying party {record.relying_party!r} is no longer registered",
                                reason="The token's relying party is no longer registered.")
        kind = kind_of(record)
        if kind is None:
            raise UnableToRenew(f"token {record.assertion_id} has the unknown KeyType {record.key_type!r}")
        if party.key_types is not None and kind not in party.key_types:
            raise UnableToRenew(f"key type {kind} is no longer allowed for {party.address!r}",
                                reason="The relying party no longer accepts this token's key type.")
        key_info, kept = None, None
        if kind != "bearer":
            if self._tokens.keeper is None:
                raise UnableToRenew("no signing keys to read a kept proof key with")
            kept = self._tokens.keeper.proven_key(call, record, self._nonces)
            key_info = renewed_key_info(kept, party, call)
        version = _VERSIONS[record.token_type]
        try:
            content, assertion = self._issue.reissue(call.principal, party, version, now=now, settings=settings,
                                                     claims=record.claims, proof_key_info=key_info)
        except InvalidRequest as exc:  # a required claim asked at issue that cannot be supplied now
            raise UnableToRenew(exc.detail, reason=exc.reason) from None
        if not self._tokens.store.transition(record.assertion_id, RENEWED, now=now):
            raise UnableToRenew(f"token {record.assertion_id} was renewed or cancelled meanwhile",
                                reason="The token has already been renewed.")
        self._tokens.record(content, record.token_type, record.key_type, record.renew_allowed,
                            record.renew_after_expiry, call, claims=record.claims,
                            encrypted=assertion if party.encrypts_tokens else None,
                            proof=self._tokens.kept_proof(content.assertion_id, kept if isinstance(kept, bytes)
                                                          else None, key_info))
        request = wstrust.TokenRequest(call.dialect, party.address, (ns.WSP12, ns.WSA10), None,
                                       key_type_uri(call.dialect, kind), None, call.rst.get("Context"))
        log.info("renewed: %stoken %s as %s for %r for %s (WS-Trust %s, valid until %s%s) (%s)",
                 "encrypted " if target.encrypted else "", record.assertion_id, content.assertion_id, call.principal.name, party.address, call.dialect.name,
                 content.not_on_or_after.isoformat(), f", holder-of-key ({kind}), possession proven"
                 if kind != "bearer" else "", call.request, extra=call.request.extra)
        return renewed_envelope(call.envelope.version, request, assertion, token_type=version.token_type,
                                profile=version, assertion_id=content.assertion_id, created=now,
                                expires=content.not_on_or_after, relates_to=call.relates_to)
