"""The Issue binding (WS-Trust 1.3 section 4.1): a signed SAML token for a registered relying party.

The RST names the relying party by endpoint address in ``wsp:AppliesTo``,
which becomes the token's audience; the TokenType (or the party's own
setting) picks SAML 2.0 or 1.1; the lifetime is the party's (or the STS
default), shortened by the request's ``wst:Lifetime/wsu:Expires`` when that
comes sooner. The answer is the RSTR (in a Collection for WS-Trust 1.3) with
the signed assertion, its references, AppliesTo and Lifetime. A SymmetricKey
request gets a holder-of-key token and its proof key (:mod:`.proof`).
"""

from __future__ import annotations

import logging

from .. import wstrust
from ..errors import InvalidRequest
from ..model import Principal, RelyingParty
from ..saml import SAML2, SAML11, AssertionContent, AssertionSigner, SamlVersion, version_for_token_type
from ..stores import RelyingPartyStore
from ..wstrust.proof import with_proof
from .binding import TrustCall, uris
from .proof import issue_proof

log = logging.getLogger("wstrust_wsgi.sts")

_SAML_BY_NAME = {SAML2.name: SAML2, SAML11.name: SAML11}


class IssueBinding:
    """Answers Issue requests (both WS-Trust versions) with a signed SAML bearer token.

    :param signer: signs the assertions.
    :param relying_parties: the registered relying parties, by address.
    :param role_claim: the attribute name roles are released under.
    """

    request_types, actions = uris("Issue")

    def __init__(self, *, signer: AssertionSigner, relying_parties: RelyingPartyStore, role_claim: str) -> None:
        self._signer = signer
        self._parties = relying_parties
        self._role_claim = role_claim

    def answer(self, call: TrustCall) -> bytes:
        now, settings, principal = call.now, call.settings, call.principal
        request = wstrust.parse_request(call.rst)
        party = self._relying_party(request)
        version = self._saml_version(request, party)
        proof = issue_proof(call, party)
        lifetime = party.lifetime or settings.default_lifetime
        if request.lifetime_expires is not None and now < request.lifetime_expires < now + lifetime:
            lifetime = request.lifetime_expires - now
        content = AssertionContent(
            issuer=settings.issuer,
            subject=principal.name,
            audience=party.address,
            issue_instant=now,
            not_before=now,
            not_on_or_after=now + lifetime,
            attributes=self._attributes(principal, party),
            proof_key_info=proof.key_info if proof is not None else None,
        )
        assertion = self._signer.sign(version, content, algorithm=settings.signature_algorithm)
        answer = wstrust.response_envelope(
            call.envelope.version,
            request,
            assertion,
            token_type=request.token_type or version.token_type,
            version=version,
            assertion_id=content.assertion_id,
            created=now,
            expires=content.not_on_or_after,
            relates_to=call.relates_to,
        )
        if proof is not None and proof.key is not None:
            answer = with_proof(answer, request.dialect, proof.key)
        log.info(
            "issued: SAML %s token %s to %r for %s (WS-Trust %s, SOAP %s, valid until %s%s) (%s)",
            version.name, content.assertion_id, principal.name, party.address,
            request.dialect.name, call.envelope.version.name, content.not_on_or_after.isoformat(),
            f", holder-of-key of {proof.described}" if proof else "", call.request,
            extra=call.request.extra,
        )
        return answer

    def _relying_party(self, request: wstrust.TokenRequest) -> RelyingParty:
        if request.applies_to is None:
            raise InvalidRequest("no wsp:AppliesTo", reason="wsp:AppliesTo naming the relying party is required.")
        party = self._parties.get(request.applies_to)
        if party is None:
            raise InvalidRequest(f"AppliesTo {request.applies_to!r} is not a registered relying party",
                                 reason="The AppliesTo address is not a registered relying party.")
        return party

    @staticmethod
    def _saml_version(request: wstrust.TokenRequest, party: RelyingParty) -> SamlVersion:
        if request.token_type is None:
            return _SAML_BY_NAME[party.token_type]
        version = version_for_token_type(request.token_type)
        if version is None:
            raise InvalidRequest(f"TokenType {request.token_type!r} not supported",
                                 reason="Only SAML 2.0 and SAML 1.1 tokens are issued.")
        return version

    def _attributes(self, principal: Principal, party: RelyingParty) -> dict[str, tuple[str, ...]]:
        attributes = {
            claim: values for claim, values in principal.claims.items()
            if party.claims is None or claim in party.claims
        }
        if principal.roles:
            attributes[self._role_claim] = tuple(sorted(principal.roles))
        return attributes
