"""What ``wstrust-wsgi diagnose`` prints: the token read for a person, the checks, the verdict, the fixes.

The checks and their values come from the middleware's own verification
(:class:`~wstrust_wsgi._checks.Trace`); this module only shows them, adds
the token's summary (read without verification, by the verifier's own readers,
:func:`wstrust_wsgi.saml.unverified_claims`) and, for a failed check, one
line of likely cause and fix.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from lxml import etree

from .. import _xml, ns
from .._checks import BY_NAME, Step, Trace
from ..errors import SoapFault, WsTrustError
from ..saml import ValidationPolicy, VerifiedAssertion, unverified_claims
from ..xmldsig import ALGORITHMS, thumbprints

_DS = {local: _xml.qname(ns.DS, local) for local in ("Signature", "SignatureMethod", "DigestMethod",
                                                      "X509Certificate")}
_MARK = {"pass": "ok", "fail": "FAIL", "not run": "-", "skipped": "skip"}


@dataclass
class Report:
    """Everything diagnose found, ready to print."""

    kind: str
    at: datetime
    policy: ValidationPolicy
    token: etree._Element | None
    encrypted: bool
    trace: Trace
    verified: VerifiedAssertion | None
    notes: list[str] = field(default_factory=list)

    @property
    def admitted(self) -> bool:
        return self.verified is not None


# ------------------------------------------------------------------ the token, read for a person


def summary(token: etree._Element | None, encrypted: bool, now: datetime) -> dict[str, Any]:
    """The token's fields (not verified: for reading only) and its signature's algorithm and certificate."""
    data: dict[str, Any] = {"encrypted": encrypted}
    if token is None:
        data["error"] = "no token could be read"
        return data
    try:
        claims = unverified_claims(token)
    except WsTrustError as exc:
        data["error"] = f"the token could not be read: {getattr(exc, 'detail', exc)}"
        return data
    times = {name: claims[name] for name in ("not_before", "not_on_or_after", "issue_instant")}
    data.update({
        "version": claims["version"], "id": claims["id"], "issuer": claims["issuer"], "subject": claims["subject"],
        "audiences": claims["audiences"],
        **{name: _iso(value) for name, value in times.items()},
        "validity": _relative(times["not_before"], times["not_on_or_after"], now),  # type: ignore[arg-type]
        "attributes": {k: list(v) for k, v in claims["attributes"].items()},  # type: ignore[attr-defined]
        "confirmation": [_confirmation(m) for m in claims["confirmation"]],  # type: ignore[attr-defined]
    })
    data.update(_signature(token))
    return data


def _iso(value: object) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _span(delta: timedelta) -> str:
    seconds = abs(int(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _relative(not_before: datetime | None, not_on_or_after: datetime | None, now: datetime) -> str:
    """Where ``now`` (the real now, not ``--at``) lies in the window, in words."""
    if not_on_or_after is None:
        return "no NotOnOrAfter"
    if not_before is not None and now < not_before:
        return f"starts in {_span(not_before - now)}"
    if now >= not_on_or_after:
        return f"expired {_span(now - not_on_or_after)} ago"
    return f"valid for another {_span(not_on_or_after - now)}"


def _confirmation(method: str) -> str:
    return "bearer" if method in (ns.SAML2_BEARER, ns.SAML1_BEARER) else method


def _signature(token: etree._Element) -> dict[str, Any]:
    signature = token.find(_DS["Signature"])
    if signature is None:
        return {"signature": None}
    method = next(signature.iter(_DS["SignatureMethod"]), None)
    digest = next(signature.iter(_DS["DigestMethod"]), None)
    data: dict[str, Any] = {
        "signature": _algorithm(method.get("Algorithm") if method is not None else None),
        "digest": _algorithm(digest.get("Algorithm") if digest is not None else None),
        "certificate": None,
    }
    carried = next(signature.iter(_DS["X509Certificate"]), None)
    if carried is not None:
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode("".join((carried.text or "").split())))
        except ValueError as exc:
            data["certificate"] = {"error": f"unreadable: {exc}"}
        else:
            sha1, sha256 = thumbprints(cert)
            data["certificate"] = {"subject": cert.subject.rfc4514_string(), "sha1": sha1, "sha256": sha256,
                                   "not_before": _iso(cert.not_valid_before_utc),
                                   "not_after": _iso(cert.not_valid_after_utc)}
    return data


def _algorithm(uri: str | None) -> str | None:
    if uri is None:
        return None
    known = ALGORITHMS.get(uri)
    name = known.setting or known.hash.name if known is not None else "unknown"
    return f"{name} ({uri})"


# ------------------------------------------------------------------ likely cause and fix


def hint(step: Step, report: Report, token: dict[str, Any]) -> str:
    """One line: the likely cause of a failed check and what to do about it."""
    name, policy = step.check, report.policy
    skew = _span(policy.clock_skew)
    if name == "audience":
        audiences = token.get("audiences") or []
        close = [a for a in audiences for b in policy.audiences
                 if a != b and a.rstrip("/").lower() == b.rstrip("/").lower()]
        if close:
            return (f"the addresses differ only by a trailing slash or case ({close[0]!r}): audiences are compared "
                    f"exactly; register the exact address the STS writes, or request the token for "
                    f"{sorted(policy.audiences)[0]!r}")
        return (f"the token was issued for {audiences!r}: request it with AppliesTo set to this service's address, "
                f"or add that address to the service's audience if it is this service")
    if name == "issuer":
        return (f"the token names issuer {token.get('issuer')!r}: if you trust that STS, configure exactly that "
                f"name (compared exactly, trailing slash included)")
    if name == "signing-key":
        cert = token.get("certificate") or {}
        if cert.get("sha1"):
            return (f"no trusted certificate verifies the signature: the STS may have rolled its key; the token is "
                    f"signed by {cert['subject']!r} (SHA-1 {cert['sha1']}, SHA-256 {cert['sha256']}); if that is "
                    f"your STS's new certificate, add it to trusted_certs (several may be trusted during rollover)")
        return ("no trusted certificate verifies the signature and the token names no certificate: compare the "
                "STS's current signing certificate (its metadata) with trusted_certs; the STS may have rolled its key")
    if name == "certificate-validity":
        return "the trusted signing certificate is outside its validity: get the STS's current certificate and trust it"
    if name in ("expiry", "confirmation-expiry"):
        ended = token.get("not_on_or_after")
        ago = f"expired {_span(report.at - _parse(ended))} ago" if ended else "expired"
        return (f"{ago} with a {skew} clock skew: request a new token; if it was just issued, compare the clocks "
                f"of the STS and this host (NTP)")
    if name in ("not-before", "issue-instant"):
        return (f"the token starts in the future even with a {skew} clock skew: the STS's clock runs ahead of "
                f"this host's; compare the clocks (NTP)")
    if name == "timestamp":
        return f"the message's wsu:Timestamp is outside now +/- {skew}: compare the client's clock with this host's"
    if name == "digest":
        return ("the token was altered after signing, or pretty-printed, re-indented or re-encoded on the way: "
                "send the exact bytes the STS issued")
    if name == "signed":
        return "the token carries no signature: only tokens signed by a trusted STS are admitted"
    if name == "algorithms":
        if "sha1" in step.actual.lower():
            return ("the STS signs with SHA-1: switch it to SHA-256 (AD FS: the relying party trust's secure hash "
                    "algorithm), or accept SHA-1 knowingly with allow_sha1=True / --allow-sha1")
        return "an algorithm outside the allowed set: configure the STS to sign with rsa-sha256 and exclusive c14n"
    if name == "signature-shape":
        return ("the signature does not cover exactly this assertion by its own ID: the token was rebuilt or "
                "wrapped (an XML Signature Wrapping attempt looks like this); send it as issued")
    if name == "unique-id":
        return "another element of the message holds the token's ID (signature wrapping?): send the token once"
    if name == "decryption":
        return ("the token is encrypted for another certificate, or with an algorithm not allowed: give the key of "
                "the certificate the STS encrypts for this service")
    if name == "confirmation":
        return "only bearer tokens are admitted: request a bearer token (KeyType Bearer)"
    if name in ("one-token", "security-header"):
        return "put exactly one SAML assertion in one wsse:Security header"
    if name in ("envelope", "must-understand"):
        return "the request is not a SOAP message this service reads: send it with the Content-Type of its version"
    return "the token is malformed for a relying party: take it up with the STS that issued it"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------------ output


def fault_of(report: Report) -> dict[str, str] | None:
    """The fault the middleware would answer: code and client-visible reason (and the log's detail)."""
    fault = report.trace.fault
    if fault is None:
        return None
    if not isinstance(fault, SoapFault):
        return {"code": "wst:RequestFailed", "reason": "internal error", "detail": repr(fault)}
    return {"code": f"{fault.family}:{fault.code}", "reason": fault.reason, "detail": fault.detail}


def _checks(report: Report, token: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for step in report.trace.ordered():
        row = {"check": step.check, "title": BY_NAME[step.check].title, "verdict": step.verdict,
               "expected": step.expected, "actual": step.actual, "detail": step.detail}
        if step.verdict == "fail":
            row["hint"] = hint(step, report, token)
        rows.append(row)
    return rows


def render_json(report: Report, *, now: datetime) -> str:
    """The report for scripts; the token's ``validity`` is relative to ``now`` (the checks ran at ``at``)."""
    token = summary(report.token, report.encrypted, now)
    data = {
        "admitted": report.admitted,
        "input": report.kind,
        "at": _iso(report.at),
        "clock_skew_seconds": report.policy.clock_skew.total_seconds(),
        "token": token,
        "checks": _checks(report, token),
        "fault": fault_of(report),
        "subject": report.verified.subject if report.verified is not None else None,
        "notes": report.notes,
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def render_text(report: Report, *, now: datetime) -> str:
    """The report for a person; the token's validity is relative to ``now`` (the checks ran at ``report.at``)."""
    token = summary(report.token, report.encrypted, now)
    lines = ["Token (read without verification)"]
    cert = token.get("certificate") or {}
    shown = [
        ("version", token.get("version") and f"SAML {token['version']}"), ("ID", token.get("id")),
        ("issuer", token.get("issuer")), ("subject", token.get("subject")),
        ("audiences", ", ".join(token.get("audiences") or []) or None),
        ("valid", token.get("not_on_or_after") and
         f"{token.get('not_before') or '-'} to {token['not_on_or_after']} UTC ({token['validity']})"),
        ("issued", token.get("issue_instant")),
        *[("attribute", f"{name} = {', '.join(values)}") for name, values in (token.get("attributes") or {}).items()],
        ("signature", token.get("signature") or ("none" if "signature" in token else None)),
        ("digest", token.get("digest")),
        ("signing cert", cert.get("subject") or cert.get("error")),
        ("  SHA-1", cert.get("sha1")), ("  SHA-256", cert.get("sha256")),
        ("  valid", cert.get("not_after") and f"{cert['not_before']} to {cert['not_after']}"),
        ("confirmation", ", ".join(token.get("confirmation") or []) or None),
        ("encrypted", "yes" if report.encrypted else "no"),
        ("problem", token.get("error")),
    ]
    lines += [f"  {label:<14} {value}" for label, value in shown if value]
    lines += ["", f"Checks, in the middleware's order (as of {_iso(report.at)}, clock skew {report.policy.clock_skew})"]
    for row in _checks(report, token):
        lines.append(f"  {_MARK[row['verdict']]:<4}  {row['check']:<20} {row['title']}")
        if row["verdict"] == "pass" and (row["expected"] or row["actual"]):
            lines.append(f"{'':<28}{row['actual'] or row['expected']}")
        elif row["verdict"] == "fail":
            lines += [f"{'':<28}expected: {row['expected'] or '-'}", f"{'':<28}actual:   {row['actual'] or '-'}",
                      f"{'':<28}detail:   {row['detail']}", f"{'':<28}fix:      {row['hint']}"]
        elif row["verdict"] == "skipped":
            lines.append(f"{'':<28}{row['detail']}")
    lines.append("")
    for note in report.notes:
        lines.append(f"note: {note}")
    fault = fault_of(report)
    if fault is None:
        subject = report.verified.subject if report.verified is not None else ""
        lines.append(f"Verdict: ADMITTED (REMOTE_USER would be {subject!r})")
    else:
        lines.append(f"Verdict: REFUSED with {fault['code']}: \"{fault['reason']}\"")
    return "\n".join(lines)
