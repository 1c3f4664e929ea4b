"""A clock a test sets and moves, for every ``clock=`` parameter of the package.

The package takes its time from a ``clock`` callable (the middleware, the
STS, the client, the token factory), so a test runs the real code at the time
it chooses instead of mocking :mod:`datetime`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .._time import utcnow
from ..errors import ConfigurationError


class SettableClock:
    """A clock standing still at :attr:`now` until the test moves it.

    ::

        clock = SettableClock()                 # now, to the second
        app = RelyingPartyMiddleware(service, ..., clock=clock)
        clock.advance(minutes=10)               # the token minted before has expired
    """

    def __init__(self, now: datetime | None = None) -> None:
        self.now = _aware(now) if now is not None else utcnow().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def __repr__(self) -> str:
        return f"SettableClock({self.now.isoformat()})"

    def set(self, moment: datetime) -> None:
        """Stand at ``moment`` (an aware datetime: a naive one would shift every validity window)."""
        self.now = _aware(moment)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> None:
        """Move by ``delta`` or by :class:`~datetime.timedelta` keywords (``minutes=6``); negative moves back."""
        self.now += (delta or timedelta()) + timedelta(**kwargs)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ConfigurationError(f"SettableClock: {moment!r} has no time zone; give an aware datetime (UTC)")
    return moment
