"""What the stores kept in the SQL registry or in Redis share: how they run a call and how a failure reads.

A store in a registry table runs each call as one registry transaction (its
connections per thread, retries, fork safety: :mod:`.sql.db`); a Redis store
connects as the replay cache does (:func:`.replay.connect_redis`). Either way a
backend failure is :class:`~wstrust_wsgi.errors.StoreUnavailable` naming the
store, and the STS or the middleware refuses the request (fails closed).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, StoreUnavailable
from .replay import connect_redis, describe_error

if TYPE_CHECKING:
    import redis

    from .sql import Registry

#: What the peer is told when a store cannot answer; the cause goes to the log only.
UNAVAILABLE_REASON = "The request cannot be checked right now; try again later."


class RegistryTable:
    """A store in one table of the registry; every ``purge_every`` writes it may delete ``purge_batch`` dead rows."""

    _table = ""

    def __init__(self, registry: Registry, *, purge_every: int = 64, purge_batch: int = 256) -> None:
        from .sql.db import Kind  # the SQL package is imported only by those who use it

        self._db = registry.database
        self._kind = Kind
        self._calls = itertools.count(1)
        self._purge_every, self._purge_batch = purge_every, purge_batch

    def _purge_now(self) -> bool:
        return next(self._calls) % self._purge_every == 0

    def _run(self, kind: Any, work: Any) -> Any:
        try:
            return self._db.run(kind, work)
        except self._db.driver.errors as exc:
            raise StoreUnavailable(f"{self._table} table of registry {self._db.describe()} unavailable: "
                                   f"{describe_error(exc)}", reason=UNAVAILABLE_REASON) from exc


class RedisStore:
    """A store in Redis under ``prefix``; ``script``, when given, is registered once (a Lua script)."""

    #: The class name (in configuration messages) and the store as failures name it.
    _owner = ""
    _what = ""

    def __init__(self, url_or_client: str | redis.Redis, *, prefix: str, socket_timeout: float,
                 script: str | None = None) -> None:
        self._client, self._errors = connect_redis(url_or_client, socket_timeout=socket_timeout, owner=self._owner)
        if not isinstance(prefix, str):
            raise ConfigurationError(f"{self._owner} prefix: must be a string, not {prefix!r}")
        self.prefix = prefix
        self._script = self._client.register_script(script) if script is not None else None

    @property
    def client(self) -> redis.Redis:
        """The redis-py client in use."""
        return self._client  # type: ignore[no-any-return]

    def _call(self, what: Any) -> Any:
        try:
            return what()
        except self._errors as exc:
            raise StoreUnavailable(f"{self._what} unavailable: {describe_error(exc)}",
                                   reason=UNAVAILABLE_REASON) from exc

    def close(self) -> None:
        """Close the client's connections; later calls reconnect."""
        self._client.close()
