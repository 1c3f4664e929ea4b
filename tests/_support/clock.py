"""A clock the tests set and move, passed where the package takes ``clock=``."""

from __future__ import annotations

from datetime import datetime, timedelta


class FixedClock:
    """A clock tests can set and move."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)
