"""Health answers for load balancers and orchestrators: 200 when every store answers, 503 when one does not.

The STS answers ``GET <its URL>/health`` and the middleware answers the path
given as ``health_path``, with a small JSON body::

    {"status": "ok", "checks": {"settings": "ok", "relying_parties": "ok", "nonce_cache": "ok"}}
    {"status": "unavailable", "checks": {"settings": "ok", "relying_parties": "ok", "nonce_cache": "failed"}}

The endpoint needs no authentication, so the body holds only the names of the
checks and ``ok``/``failed``: never a URL, host, user, message or exception
text. The cause of a failure goes to the log of the role that answered.

Each check asks the store the question a request would (a replay cache
records a random key for one second, so a cache that can be read but not
written fails). The result is kept for ``ttl`` (1 s), so a flood of probes
costs at most one round of questions per second per process, and the lock
makes concurrent probes wait for that one round instead of each asking.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from webob import Response

from ._time import Clock
from .stores import ReplayCache

#: Where the deployed STS answers, below its own path.
HEALTH_PATH = "/health"

#: A check: returns when the store answered, raises when it did not.
Probe = Callable[[], object]


def replay_probe(cache: ReplayCache, clock: Clock) -> Probe:
    """Record a random key for one second: the write every request needs, not only a read."""

    def probe() -> None:
        now = clock()
        cache.add(f"health:{secrets.token_hex(8)}", expires=now + timedelta(seconds=1), now=now)

    return probe


class Health:
    """Runs named probes (at most once per ``ttl``) and answers 200 or 503 with their outcome."""

    def __init__(self, probes: Mapping[str, Probe], log: logging.Logger, *, ttl: float = 1.0) -> None:
        self._probes = dict(probes)
        self._log = log
        self._ttl = ttl
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, str]] | None = None

    def results(self) -> dict[str, str]:
        """Each check's name and ``ok`` or ``failed``, from the last round if it is recent enough."""
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last[0] < self._ttl:
                return last[1]
            results: dict[str, str] = {}
            for name, probe in self._probes.items():
                try:
                    probe()
                    results[name] = "ok"
                except Exception as exc:  # any failure is "failed"; the body never carries its text
                    self._log.warning("health: %s failed: %s: %s", name, type(exc).__name__, exc)
                    results[name] = "failed"
            self._last = (time.monotonic(), results)
            return results

    def response(self) -> Response:
        """200 with ``{"status": "ok", ...}`` when every check passed, else 503 ``"unavailable"``."""
        results = self.results()
        healthy = all(value == "ok" for value in results.values())
        body = json.dumps({"status": "ok" if healthy else "unavailable", "checks": results}, sort_keys=True)
        response = Response(status=200 if healthy else 503, content_type="application/json", charset="utf-8",
                            body=(body + "\n").encode())
        response.headers["Cache-Control"] = "no-store"
        return response
