"""The Issue binding (WS-Trust 1.3 section 4.1): a signed SAML token for a registered relying party.

The RST names the relying party by endpoint address in ``wsp:AppliesTo``,
which becomes the token's audience; the TokenType (or the party's own
setting) picks SAML 2.0 or 1.1; the lifetime is the party's (or the STS
default), shortened by the request's ``wst:Lifetime/wsu:Expires`` when that
comes sooner. The answer is the RSTR (in a Collection for WS-Trust 1.3) with
the signed assertion, its references, AppliesTo and Lifetime. A SymmetricKey
or PublicKey request gets a holder-of-key token and its proof key
(:mod:`.proof`). For a party with an encryption certificate the signed
assertion is then encrypted for it (:mod:`.encryption`); the references still
name the assertion's ID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from lxml import etree

from .. import ns, wstrust
from ..errors import InvalidRequest
from ..model import Principal, RelyingParty, StsSettings
from ..saml import SAML2, SAML11, AssertionContent, AssertionSigner, SamlVersion, version_for_token_type
from ..stores import RelyingPartyStore
from ..wstrust.proof import with_proof
from .binding import TrustCall, uris
from .encryption import encrypt_token
from .signing import KeyFollower
from .proof import IssuedProof, issue_proof

log = logging.getLogger("wstrust_wsgi.sts")

_SAML_BY_NAME = {SAML2.name: SAML2, SAML11.name: SAML11}


class IssueBinding:
    """Answers Issue requests (both WS-Trust versions) with a signed SAML bearer token.

    :param signer: signs the assertions (a :class:`~.signing.KeyFollower` signs with the current primary key).
    :param relying_parties: the registered relying parties, by address.
    :param role_claim: the attribute name roles are released under.
    :param record: called with each token once signed (the call, its content, ``"2.0"``/``"1.1"``, its
        KeyType, its holder-of-key proof or None, the encrypted token sent or None), to record it in the
        issued-token store (:mod:`.lifecycle`).
    :param delegation: resolves OnBehalfOf and ActAs into (subject, actor) (:mod:`.delegation`); None: refused.
    :param default_applies_to: the relying party of a request without AppliesTo; None: such a request is refused.
    """

    request_types, actions = uris("Issue")

    def __init__(self, *, signer: AssertionSigner | KeyFollower, relying_parties: RelyingPartyStore, role_claim: str,
                 record: Callable[[TrustCall, AssertionContent, str, str, IssuedProof | None, bytes | None], None]
                 | None = None,
                 delegation: Callable[[TrustCall, RelyingParty], tuple[Principal, str | None]] | None = None,
                 default_applies_to: str | None = None) -> None:
        self._default_applies_to = default_applies_to
        self._record = record
        self._delegation = delegation
        self._signer = signer
        self._parties = relying_parties
        self._role_claim = role_claim

    def answer(self, call: TrustCall) -> bytes:
        now, settings, principal = call.now, call.settings, call.principal
        request = wstrust.parse_request(call.rst)
        party = self._relying_party(request)
        principal, actor = self._delegation(call, party) if self._delegation is not None else _no_delegation(call)
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
            attributes=self._attributes(principal, party, wstrust.requested_claims(call.rst), actor),
            actors=(actor,) if actor is not None else (),
            proof_key_info=proof.key_info if proof is not None else None,
        )
        assertion = self._signer.sign(version, content, algorithm=settings.signature_algorithm)
        if party.encrypts_tokens:  # sign, then encrypt exactly the signed bytes
            assertion = encrypt_token(version, assertion, party, now)
        if self._record is not None:
            self._record(call, content, version.name, request.key_type or request.dialect.bearer_key_types[0], proof,
                         assertion if party.encrypts_tokens else None)
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
            "issued: SAML %s token %s%s to %r for %s (WS-Trust %s, SOAP %s, valid until %s%s) (%s)",
            version.name, content.assertion_id,
            f" encrypted ({party.encryption}, {party.key_transport})" if party.encrypts_tokens else "",
            principal.name, party.address,
            request.dialect.name, call.envelope.version.name, content.not_on_or_after.isoformat(),
            f", holder-of-key of {proof.described}" if proof else "", call.request,
            extra=call.request.extra,
        )
        return answer

    def _relying_party(self, request: wstrust.TokenRequest) -> RelyingParty:
        address = request.applies_to or self._default_applies_to  # AppliesTo is optional (WS-Trust 1.3 4.1)
        if address is None:
            raise InvalidRequest("no wsp:AppliesTo", reason="wsp:AppliesTo naming the relying party is required.")
        party = self._parties.get(address)
        if party is None:
            raise InvalidRequest(f"AppliesTo {address!r} is not a registered relying party",
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

    def _attributes(self, principal: Principal, party: RelyingParty, requested: wstrust.RequestedClaims | None = None,
                    actor: str | None = None) -> dict[str, tuple[str, ...]]:
        attributes = {
            claim: values for claim, values in principal.claims.items()
            if party.claims is None or claim in party.claims
        }
        if principal.roles:
            attributes[self._role_claim] = tuple(sorted(principal.roles))
        released = attributes if requested is None else _released(attributes, requested, principal, party)
        return released if actor is None else {**released, ns.CLAIM_ACTOR: (actor,)}

    def reissue(self, principal: Principal, party: RelyingParty, version: SamlVersion, *, now: datetime,
                settings: StsSettings, claims: tuple[tuple[str, bool], ...] | None = None,
                proof_key_info: etree._Element | None = None) -> tuple[AssertionContent, bytes]:
        """A new signed token for ``party`` with the claims ``principal`` holds now: what Renew hands back.

        ``claims``: the ``(URI, optional)`` pairs asked at issue, applied again (a required one no longer
        held is InvalidRequest); ``proof_key_info``: the holder-of-key KeyInfo the token keeps.
        """
        requested = None if claims is None else wstrust.RequestedClaims(ns.CLAIMS_IDENTITY, claims)
        content = AssertionContent(issuer=settings.issuer, subject=principal.name, audience=party.address,
                                   issue_instant=now, not_before=now,
                                   not_on_or_after=now + (party.lifetime or settings.default_lifetime),
                                   attributes=self._attributes(principal, party, requested),
                                   proof_key_info=proof_key_info)
        assertion = self._signer.sign(version, content, algorithm=settings.signature_algorithm)
        if party.encrypts_tokens:  # a renewed token is as confidential as the first one
            assertion = encrypt_token(version, assertion, party, now)
        return content, assertion


def _no_delegation(call: TrustCall) -> tuple[Principal, None]:
    """Refuse OnBehalfOf and ActAs: no delegation policy allows them (as CXF, with no handler configured).

    Never ignored silently, as Rahas ignores a 1.4 ActAs in a 1.3 request: the
    client would take a token of its own for one naming someone else.
    """
    asked = wstrust.delegation_of(call.rst)
    if asked is not None:
        raise InvalidRequest(f"{asked[0]} asked by {call.principal.name!r}; no delegation policy allows it",
                             reason=f"{asked[0]} is not allowed: no delegation policy permits it.")
    return call.principal, None


def _released(attributes: dict[str, tuple[str, ...]], requested: wstrust.RequestedClaims, principal: Principal,
              party: RelyingParty) -> dict[str, tuple[str, ...]]:
    """The claims asked for in ``wst:Claims`` among those the party may get and the user holds.

    A required claim that cannot be supplied is refused, naming it; so is an
    unknown dialect with a required claim (one whose claims are all optional
    is ignored, and the party's usual claims go).
    """
    if not requested.known:
        required = [uri for uri, optional in requested.claims if not optional]
        if required:
            raise InvalidRequest(f"claims dialect {requested.dialect!r} unknown, required claims {required}",
                                 reason=f"The claims dialect {requested.dialect} is not supported.")
        return attributes
    released = {}
    for uri, optional in requested.claims:
        if uri in attributes:
            released[uri] = attributes[uri]
        elif not optional:
            if party.claims is not None and uri not in party.claims:
                raise InvalidRequest(f"required claim {uri!r} is not released to {party.address}",
                                     reason=f"The required claim {uri} is not released to this relying party.")
            raise InvalidRequest(f"required claim {uri!r} is not held by {principal.name!r}",
                                 reason=f"The required claim {uri} cannot be supplied for this user.")
    return released
