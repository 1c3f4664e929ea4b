"""xs:dateTime reading and writing, and the clock type.

Peers write times in several shapes: ``...:45Z``, ``...:45.003Z`` (AD FS),
seven fractional digits (.NET), ``+00:00`` (zeep). All are read; all times are
written as UTC with millisecond precision and a ``Z``, the shape every peer reads.
A time without a zone is refused: WS-Security and SAML require UTC, and
guessing a zone is how validity windows silently shift.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Clock = Callable[[], datetime]

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def utcnow() -> datetime:
    """The default clock: aware UTC now."""
    return datetime.now(timezone.utc)


@functools.lru_cache(maxsize=4096)
def parse_datetime(value: str) -> datetime:
    """Read an xs:dateTime with a zone; raise ValueError otherwise.

    Remembered per string: an assertion repeats its instants (IssueInstant,
    NotBefore, AuthnInstant; NotOnOrAfter twice), and tokens minted in the
    same millisecond share them. datetimes are immutable; errors are not kept.
    """
    match = _DATETIME.match(value.strip())
    if not match:
        raise ValueError(f"not an xs:dateTime with a time zone: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if fraction is None or len(fraction) <= 6:  # the usual shapes: let C read what the pattern allowed
        try:
            moment = datetime.fromisoformat(match.group(0))
            return moment if zone == "Z" else moment.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            raise ValueError(f"not a representable xs:dateTime: {value!r}") from None
    micro = int((fraction or "0").ljust(6, "0")[:6])
    if zone == "Z":
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
        return moment if tz is timezone.utc else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(f"not a representable xs:dateTime: {value!r}") from None


def format_datetime(moment: datetime) -> str:
    """Write an aware datetime as ``YYYY-MM-DDThh:mm:ss.fffZ`` in UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times must carry a zone")
    utc = moment.astimezone(timezone.utc) if moment.tzinfo is not timezone.utc else moment
    # isoformat is C and twice as fast as strftime; it writes the year with four digits
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
