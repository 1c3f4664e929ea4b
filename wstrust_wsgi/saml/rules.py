"""What a relying party accepts (:class:`ValidationPolicy`) and what it gets back (:class:`VerifiedAssertion`).

Also the checks that run on every request, a cached verification included:
the signed time window and the audience restrictions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from lxml import etree

from .. import ns
from .._checks import Trace
from ..errors import InvalidSecurityToken
from ..xmldsig import AlgorithmPolicy, Candidate, KeyResolver


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a verified assertion says, read only from the signed element.

    Stored by :class:`~wstrust_wsgi.RelyingPartyMiddleware` in
    ``environ["wstrust_wsgi.assertion"]``.
    """

    version: str
    assertion_id: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    not_before: datetime | None
    not_on_or_after: datetime
    issue_instant: datetime | None
    attributes: Mapping[str, tuple[str, ...]]
    #: The assertion as it stood in the message (serialized from the parsed request).
    raw: bytes
    #: The signed element: the verified copy of the assertion, its Signature removed
    #: (``etree.tostring(element, method="c14n", exclusive=True)`` gives the digested bytes).
    element: etree._Element = field(repr=False, compare=False)
    #: Whether the token arrived encrypted (``raw`` is then the decrypted assertion).
    encrypted: bool = False
    #: The subject confirmations the token offers: ``"bearer"``, ``"holder-of-key"`` (with a key).
    confirmations: frozenset[str] = frozenset({"bearer"})
    #: The confirmation this request satisfied: ``"bearer"``, or ``"holder-of-key"`` once the
    #: middleware has checked the proof signature; None until one is (a holder-of-key-only token).
    confirmation: str | None = "bearer"
    #: The kind of key the holder-of-key proof was made with (``"symmetric"``); None for bearer.
    proof_key: str | None = None

    @property
    def roles(self) -> tuple[str, ...]:
        return self.attributes.get(ns.CLAIM_ROLE, ())


@dataclass(frozen=True)
class ValidationPolicy:
    """How an assertion must look to be accepted.

    ``issuers`` and ``audiences`` are compared as exact strings: an audience
    differing in case, scheme or a trailing slash is a different audience.
    ``key_resolver`` chooses the keys that may verify a signature; by default
    every certificate of ``trusted_certs`` (never one carried in the message).
    """

    trusted_certs: tuple[x509.Certificate, ...]
    issuers: frozenset[str]
    audiences: frozenset[str]
    clock_skew: timedelta = timedelta(minutes=5)
    allow_sha1: bool = False
    #: Each certificate with its RSA key (None if not RSA) and validity, read once here:
    #: the validity properties decode ASN.1 times on every access.
    trusted: tuple[Candidate, ...] = field(init=False, repr=False, compare=False)
    key_resolver: KeyResolver | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        trusted = tuple(Candidate.of(cert) for cert in self.trusted_certs)
        object.__setattr__(self, "trusted", trusted)
        if self.key_resolver is None:
            object.__setattr__(self, "key_resolver", lambda signature: trusted)

    @property
    def algorithms(self) -> AlgorithmPolicy:
        """The allowed SignatureMethod and DigestMethod URIs: RSA with SHA-2, and SHA-1 if ``allow_sha1``."""
        return AlgorithmPolicy.default(allow_sha1=self.allow_sha1)

    def signature_methods(self) -> frozenset[str]:
        return self.algorithms.signature_methods

    def digests(self) -> frozenset[str]:
        return self.algorithms.digest_methods


def policy(
    *,
    trusted_certs: Iterable[x509.Certificate],
    issuers: Iterable[str],
    audiences: Iterable[str],
    clock_skew: timedelta = timedelta(minutes=5),
    allow_sha1: bool = False,
    key_resolver: KeyResolver | None = None,
) -> ValidationPolicy:
    """Build a :class:`ValidationPolicy` from iterables."""
    return ValidationPolicy(tuple(trusted_certs), frozenset(issuers), frozenset(audiences), clock_skew, allow_sha1,
                            key_resolver=key_resolver)


_EXPIRED_REASON = "The security token has expired or is not yet valid."


@dataclass(frozen=True)
class Window:
    """The signed times an assertion is valid between, checked against ``now`` on every request."""

    not_before: datetime | None
    not_on_or_after: datetime
    #: SAML 2.0 SubjectConfirmationData NotOnOrAfter values.
    confirmation_limits: tuple[datetime, ...]
    issue_instant: datetime | None

    def check(self, now: datetime, skew: timedelta, trace: Trace | None = None) -> None:
        """Refuse (naming the check, its rule and the time) a window ``now`` is outside of, ``skew`` allowed."""
        if self.not_before is not None and now + skew < self.not_before:
            raise _outside("not-before", f"not valid before {self.not_before.isoformat()} (now {now.isoformat()})",
                           "NotBefore <= now + skew", self.not_before, now, skew)
        if trace is not None:
            _inside(trace, "not-before", "NotBefore <= now + skew", (self.not_before,), now, skew)
        if now - skew >= self.not_on_or_after:
            raise _outside("expiry", f"expired at {self.not_on_or_after.isoformat()} (now {now.isoformat()})",
                           "NotOnOrAfter > now - skew", self.not_on_or_after, now, skew)
        if trace is not None:
            _inside(trace, "expiry", "NotOnOrAfter > now - skew", (self.not_on_or_after,), now, skew)
        for limit in self.confirmation_limits:
            if now - skew >= limit:
                raise _outside("confirmation-expiry", f"subject confirmation expired at {limit.isoformat()}",
                               "NotOnOrAfter > now - skew (SubjectConfirmationData)", limit, now, skew)
        if trace is not None:
            _inside(trace, "confirmation-expiry", "NotOnOrAfter > now - skew (SubjectConfirmationData)",
                    self.confirmation_limits, now, skew)
        if self.issue_instant is not None and self.issue_instant > now + skew:
            raise _outside("issue-instant", f"IssueInstant {self.issue_instant.isoformat()} is in the future",
                           "IssueInstant <= now + skew", self.issue_instant, now, skew)
        if trace is not None:
            _inside(trace, "issue-instant", "IssueInstant <= now + skew", (self.issue_instant,), now, skew)


def _outside(check: str, detail: str, rule: str, value: datetime, now: datetime, skew: timedelta
             ) -> InvalidSecurityToken:
    """The refusal of a time check: its rule at ``now`` expected, the signed time found."""
    return InvalidSecurityToken(detail, reason=_EXPIRED_REASON, check=check, expected=f"{rule} ({_at(now, skew)})",
                                actual=f"{rule.split(' ')[0]} {value.isoformat()}")


def _inside(trace: Trace, check: str, rule: str, values: Sequence[datetime | None], now: datetime,
            skew: timedelta) -> None:
    """Record a passed time check with the signed times it read."""
    times = ", ".join(v.isoformat() for v in values if v is not None)
    trace.passed(check, f"{rule} ({_at(now, skew)})", times or "not present")


def _at(now: datetime, skew: timedelta) -> str:
    """The time a window was checked at, for a failure or a trace only (formatting costs on every request)."""
    return f"now {now.isoformat()}, clock skew {skew}"


def check_audiences(restrictions: Sequence[Sequence[str]], policy: ValidationPolicy,
                    trace: Trace | None = None) -> None:
    """Every AudienceRestriction must name one of the policy's audiences (SAML 2.0 core 2.5.1.4)."""
    if not restrictions or any(not r for r in restrictions):
        raise InvalidSecurityToken("assertion has no audience restriction", check="audience",
                                   expected=f"an AudienceRestriction naming one of {sorted(policy.audiences)!r}",
                                   actual=f"restrictions {[list(r) for r in restrictions]!r}")
    for restriction in restrictions:
        if not policy.audiences.intersection(restriction):
            raise InvalidSecurityToken(
                f"audiences {list(restriction)!r} do not include {sorted(policy.audiences)!r}",
                reason="The security token was not issued for this service.", check="audience",
                expected=f"one of {sorted(policy.audiences)!r}", actual=f"{list(restriction)!r}",
            )
    if trace is not None:
        trace.passed("audience", f"one of {sorted(policy.audiences)!r}", [list(r) for r in restrictions])
