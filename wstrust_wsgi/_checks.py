"""The checks a relying party makes on a request, by name and in order, and a record of them.

:class:`~wstrust_wsgi.RelyingPartyMiddleware` refuses a request at the first
check that fails: the fault it raises names that check (``fault.check``) and
carries what the check expected and what it found (``fault.expected``,
``fault.actual``), which go to the server log only (the client's fault stays
short, so that it is no oracle). The same verification code, handed a
:class:`Trace`, also records every check that passed with its values: that is
what ``wstrust-wsgi diagnose`` prints. There is one implementation of each
check; the trace is only written to when one is given (``None`` on the
request path, so recording costs a comparison there), and a fault's values are
formatted only when it is raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["pass", "fail", "not run", "skipped"]


@dataclass(frozen=True)
class Check:
    """One named check: ``name`` is what the log and ``--json`` say, ``title`` what a person reads."""

    name: str
    title: str


#: Every check, in the order the middleware makes them (the token's own checks in the order of
#: wstrust_wsgi.saml.verify; decryption only for an encrypted token; the proof only for a holder-of-key
#: token; client-address, revocation and replay only when configured).
CHECKS: tuple[Check, ...] = (
    Check("envelope", "the request is a well-formed SOAP envelope of the announced version"),
    Check("must-understand", "every mustUnderstand header for this node is understood"),
    Check("security-header", "one wsse:Security header"),
    Check("timestamp", "wsu:Timestamp (if any) is current"),
    Check("one-token", "exactly one SAML assertion in wsse:Security"),
    Check("decryption", "an encrypted token decrypts with a configured key"),
    Check("signed", "the assertion is signed"),
    Check("algorithms", "canonicalization, transforms, signature and digest methods are allowed"),
    Check("signature-shape", "one enveloped signature over the assertion's own unique ID"),
    Check("digest", "the digest of the assertion matches its Reference"),
    Check("certificate-validity", "a trusted certificate is valid now"),
    Check("signing-key", "the signature verifies with a trusted certificate"),
    Check("assertion-shape", "the assertion's structure is unambiguous"),
    Check("issuer", "the issuer is trusted"),
    Check("subject", "the subject is not empty"),
    Check("confirmation", "the subject confirmation is bearer, or holder-of-key with a key"),
    Check("conditions", "Conditions with NotOnOrAfter are present"),
    Check("audience", "every AudienceRestriction names this service"),
    Check("bearer-data", "bearer SubjectConfirmationData as SAML 2.0 profiles require"),
    Check("not-before", "NotBefore has passed (with the clock skew)"),
    Check("expiry", "NotOnOrAfter has not passed (with the clock skew)"),
    Check("confirmation-expiry", "SubjectConfirmationData NotOnOrAfter has not passed"),
    Check("issue-instant", "IssueInstant is not in the future"),
    Check("unique-id", "no other element of the message holds the assertion's ID"),
    Check("proof", "a holder-of-key token is proven by a signature with its key"),
    Check("client-address", "the bearer Address is the client's address"),
    Check("revocation", "the token was not cancelled (or renewed) at the STS"),
    Check("replay", "the assertion was not used before"),
)
BY_NAME = {check.name: check for check in CHECKS}


@dataclass
class Step:
    """What one check found: its verdict, what it expected and what it found."""

    check: str
    verdict: Verdict
    expected: str = ""
    actual: str = ""
    #: The precise cause of a failure (the fault's log detail), or why a check was skipped.
    detail: str = ""


@dataclass
class Trace:
    """The checks a verification passed, in order, then (if it failed) the one that failed.

    Hand one to the verification functions (``trace=``); they call
    :meth:`passed` after each check they complete. The caller records the
    fault, if any, with :meth:`failed`.
    """

    steps: list[Step] = field(default_factory=list)
    #: The fault that ended the verification, if one did.
    fault: Exception | None = None

    def passed(self, check: str, expected: object = "", actual: object = "") -> None:
        self.steps.append(Step(check, "pass", str(expected), str(actual)))

    def skipped(self, check: str, why: str) -> None:
        self.steps.append(Step(check, "skipped", detail=why))

    def failed(self, fault: Exception) -> Step:
        """Record ``fault`` as the failure of the check it names (or of the next check, if it names none)."""
        self.fault = fault
        name = getattr(fault, "check", "") or self._next()
        step = Step(name, "fail", _text(getattr(fault, "expected", None)), _text(getattr(fault, "actual", None)),
                    str(getattr(fault, "detail", fault)))
        self.steps.append(step)
        return step

    def _next(self) -> str:
        done = {s.check for s in self.steps}
        last = max((i for i, c in enumerate(CHECKS) if c.name in done), default=-1)
        return CHECKS[last + 1].name if last + 1 < len(CHECKS) else CHECKS[-1].name

    @property
    def failure(self) -> Step | None:
        return next((s for s in self.steps if s.verdict == "fail"), None)

    def ordered(self) -> list[Step]:
        """Every check of :data:`CHECKS` once, in order: its recorded step, or "not run"."""
        found = {s.check: s for s in self.steps}
        return [found.get(c.name) or Step(c.name, "not run") for c in CHECKS]


def record(trace: Trace | None, check: str, expected: str, actual: str) -> None:
    """``trace.passed(...)`` when there is a trace: for constant values (format nothing on the request path)."""
    if trace is not None:
        trace.passed(check, expected, actual)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def describe(fault: Exception) -> str:
    """The log's account of a fault's check: `` [check=audience expected='…' actual='…']``; empty for a fault
    that names no check or no values (its detail says it all)."""
    name = getattr(fault, "check", "")
    if not name or (getattr(fault, "expected", None) is None and getattr(fault, "actual", None) is None):
        return ""
    return f" [check={name} expected={_text(getattr(fault, 'expected', None))!r} " \
           f"actual={_text(getattr(fault, 'actual', None))!r}]"
