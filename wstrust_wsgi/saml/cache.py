"""Assertions that passed verification, kept for their lifetime so that a reused token skips the signature work."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from .rules import ValidationPolicy, VerifiedAssertion, Window, check_audiences


def _utc(now: datetime) -> datetime:
    """``now`` as aware UTC (a naive time is read as UTC, as the verifier reads it)."""
    return now.astimezone(timezone.utc) if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class _Entry:
    verified: VerifiedAssertion
    policy: ValidationPolicy
    cert_not_before: datetime
    cert_not_after: datetime
    window: Window
    restrictions: tuple[tuple[str, ...], ...]


class VerificationCache:
    """Assertions that passed verification, by the SHA-256 of their exact bytes, for their lifetime.

    Clients reuse a bearer token for its lifetime, so a relying party sees the
    same assertion bytes many times. Only assertions that passed every check
    enter; a hit is trusted only under the very :class:`ValidationPolicy`
    object it was verified under, and only while the certificate that verified
    it is valid; the time window (NotBefore, NotOnOrAfter, SubjectConfirmationData
    NotOnOrAfter, IssueInstant, with skew) and the audience are checked against
    ``now`` on every hit, and replay detection (done by the caller) is
    untouched. At most ``max_entries`` entries: when full, entries past their
    NotOnOrAfter plus skew at the ``now`` of the request that adds one go
    first, then the oldest half. A hit returns the same
    :class:`VerifiedAssertion` object (and the same ``element``) as the first
    request: treat it as read-only.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries: must be at least 1")
        self.max_entries = max_entries
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, policy: ValidationPolicy, now: datetime) -> VerifiedAssertion | None:
        """The cached result for ``key`` re-checked at ``now`` (raises as a first verification would), or None."""
        entry = self._entries.get(key)
        if entry is None or entry.policy is not policy:
            return None
        at = _utc(now)
        if not entry.cert_not_before <= at <= entry.cert_not_after:
            return None  # verify again, and fail as a first verification would
        entry.window.check(now, policy.clock_skew)
        check_audiences(entry.restrictions, policy)
        return entry.verified

    def put(self, key: bytes, entry: _Entry, now: datetime) -> None:
        """Remember ``entry``; ``now`` is the verifying request's time (the caller's clock), used to evict."""
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                at = _utc(now)
                live = {k: e for k, e in self._entries.items()
                        if e.window.not_on_or_after + e.policy.clock_skew > at}
                if len(live) >= self.max_entries:  # still full: forget the oldest half
                    live = dict(list(live.items())[len(live) // 2:])
                self._entries = live
            self._entries[key] = entry
