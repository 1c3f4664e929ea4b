"""OnBehalfOf and ActAs (WS-Trust 1.3 section 4.1 and 1.4 section 9.1): a token for someone the requester represents.

The RST carries the represented identity's token in ``wst:OnBehalfOf`` or
``ActAs`` (1.4's element, also read inside a 1.3 or 2005 request, where Rahas
ignores it). It is accepted only when all hold (stricter than the anchors,
notes section 6):

* it is a ``wsse:UsernameToken`` whose password checks against the user store
  (every rule of the requester's own UsernameToken: PasswordText only over
  HTTPS, Created window, nonce once, lockout; a token without a password is
  refused, as CXF leaves it INVALID), or a SAML assertion verified as the
  middleware verifies one: signed by this STS's key under its issuer name, or
  by a trusted issuer's certificate under that issuer's name, unexpired, and
  for this STS (its issuer name) or the target relying party as audience;
  a token of ours cancelled or renewed is refused;
* a rule of the :class:`DelegationPolicy` lets the requester act so for that
  subject towards that relying party (none does by default).

OnBehalfOf issues the token to the represented subject (its roles and claims:
the user's now for a UsernameToken, the signed attributes for a SAML token).
ActAs keeps the requester as subject and records the actor: an actor
attribute (``ns.CLAIM_ACTOR``) in both SAML versions and, in SAML 2.0, a
DelegationRestriction condition with a ``del:Delegate`` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from cryptography import x509
from lxml import etree

from .. import _xml, ns, wssecurity, wstrust
from ..errors import ConfigurationError, FailedAuthentication, InvalidRequest, NotAuthorized
from ..keys import CertificateSource, load_certificates
from ..model import Principal, RelyingParty
from ..saml import check_unique_id, policy, verify_assertion, version_of
from ..stores.delegation import DelegationRule, DelegationRules, MemoryDelegationRules
from ..stores.tokens import refuse_revoked
from .authentication import UsernameAuthentication
from .binding import TrustCall
from .lifecycle import IssuedTokens

log = logging.getLogger("wstrust_wsgi.sts")


class DelegationPolicy:
    """Who may act for whom: rules (in code, or a store such as the registry's, read per request).

    :param rules: :class:`~wstrust_wsgi.stores.delegation.DelegationRule`
        values, or a store of them (``RegistryDelegationRules(registry)``); none
        by default: every OnBehalfOf and ActAs is refused.
    :param trusted_issuers: issuer name -> its certificate (or several, for a
        key rollover), for SAML tokens issued by another STS (this STS's own
        are always trusted).
    """

    def __init__(self, rules: Iterable[DelegationRule] | DelegationRules = (), *,
                 trusted_issuers: Mapping[str, CertificateSource | Iterable[CertificateSource]] | None = None,
                 ) -> None:
        if callable(getattr(rules, "delegation_rules", None)):
            self._rules: DelegationRules = rules  # type: ignore[assignment]
        else:
            given = tuple(rules)  # type: ignore[arg-type]
            if not all(isinstance(rule, DelegationRule) for rule in given):
                raise ConfigurationError("rules: must be DelegationRule values or a store of them")
            self._rules = MemoryDelegationRules(given)
        self.trusted_issuers = MappingProxyType({name: load_certificates(cert)
                                                 for name, cert in (trusted_issuers or {}).items()})

    def allows(self, kind: str, requester: str, subject: str, relying_party: str) -> bool:
        return any(rule.allows(kind, requester, subject, relying_party) for rule in self._rules.delegation_rules())


class Delegation:
    """Resolves an RST's OnBehalfOf or ActAs into (the token's principal, the actor), for the Issue binding."""

    def __init__(self, delegation_policy: DelegationPolicy, authentication: UsernameAuthentication,
                 certificates: Callable[[], tuple[x509.Certificate, ...]], tokens: IssuedTokens | None) -> None:
        self._policy = delegation_policy
        self._authentication = authentication
        self._certificates = certificates  # ours as published now: they follow a key rollover
        self._tokens = tokens

    def resolve(self, call: TrustCall, party: RelyingParty) -> tuple[Principal, str | None]:
        """The subject the token is issued to, and the actor (ActAs) or None; the requester's own when none asked."""
        asked = wstrust.delegation_of(call.rst)
        if asked is None:
            return call.principal, None
        kind, token = asked
        if token is None:
            raise InvalidRequest(f"{kind} holds no token", reason=f"{kind} must carry a token.")
        represented = self._represented(call, party, kind, token)
        if not self._policy.allows(kind, call.principal.name, represented.name, party.address):
            raise NotAuthorized(f"{call.principal.name!r} may not use {kind} for {represented.name!r} towards "
                                f"{party.address}: no delegation rule allows it",
                                reason=f"The requester may not use {kind} for this subject and relying party.")
        log.info("delegation: %r %s %r for %s (%s)", call.principal.name, kind, represented.name, party.address,
                 call.request, extra=call.request.extra)
        if kind == "OnBehalfOf":
            return represented, None
        return call.principal, represented.name

    def _represented(self, call: TrustCall, party: RelyingParty, kind: str, token: etree._Element) -> Principal:
        if token.tag == _xml.qname(ns.WSSE, "UsernameToken"):
            parent = token.getparent()
            assert parent is not None
            username = wssecurity.read_username_token(parent)
            assert username is not None
            if not username.password:
                raise FailedAuthentication(f"{kind} UsernameToken of {username.username!r} has no password")
            return self._authentication.check(username, secure=call.protected, now=call.now, settings=call.settings,
                                              address=call.request.client)
        version = version_of(token)
        if version is None:
            raise InvalidRequest(f"{kind} holds {token.tag}", reason=f"{kind} must carry a UsernameToken or a SAML "
                                                                     "assertion.")
        issuer = (_xml.text(token.find(_xml.qname(ns.SAML2, "Issuer")), strip=False) if version.name == "2.0"
                  else token.get("Issuer", ""))
        settings = call.settings
        certificates = (self._certificates() if issuer == settings.issuer
                        else self._policy.trusted_issuers.get(issuer, ()))
        if not certificates:
            raise FailedAuthentication(f"{kind} token from untrusted issuer {issuer!r}",
                                       reason=f"The {kind} token's issuer is not trusted.")
        accepted = policy(trusted_certs=certificates, issuers=[issuer], audiences=[settings.issuer, party.address],
                          clock_skew=settings.clock_skew)
        verified = verify_assertion(token, accepted, now=call.now)
        check_unique_id(call.rst, verified.assertion_id, token)
        if self._tokens is not None and issuer == settings.issuer:
            refuse_revoked(self._tokens.store, verified.assertion_id, call.now)
        claims = {uri: values for uri, values in verified.attributes.items() if uri not in (ns.CLAIM_ROLE,
                                                                                            ns.CLAIM_ACTOR)}
        return Principal(verified.subject, frozenset(verified.roles), claims)
