"""A clock the tests set and move, passed where the package takes ``clock=``.

It is the testing kit's :class:`~wstrust_wsgi.testing.SettableClock`, so that
the kit users get is the one the whole suite runs on.
"""

from __future__ import annotations

from wstrust_wsgi.testing import SettableClock as FixedClock

__all__ = ["FixedClock"]
