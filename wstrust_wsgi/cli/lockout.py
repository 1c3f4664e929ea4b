"""``wstrust-wsgi user unlock NAME``: lift a user's brute-force lockout (WSO2's "unlock account").

The counts live where ``[lockout] store`` says (:mod:`wstrust_wsgi.sts.lockout`):
the registry's table by default, which this command reaches through
``--registry``, or Redis, named with ``--store``. The user's two counts
(failures from unfamiliar and from familiar addresses) are deleted, so the
next attempt is judged afresh; the addresses the user signed in from stay
familiar. The name is not looked up in the registry: users from LDAP are
locked out too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..errors import BadValue, RegistryError, StoreUnavailable
from ..model import shown
from ..stores.lockout import RedisLockoutStore, lockout_store_from_url
from ..sts.lockout import user_keys
from .output import Result

if TYPE_CHECKING:
    from ..stores.sql import Registry

__all__ = ["unlock_user"]


def unlock_user(registry: Registry, name: str, store_url: str | None, now: datetime | None = None) -> Result:
    """Clear ``name``'s failure counts and locks in the store at ``store_url`` (default: the registry)."""
    if not name:
        raise BadValue("user name: must not be empty")
    moment = now if now is not None else datetime.now(timezone.utc)
    store = lockout_store_from_url(store_url or "registry", registry)
    try:
        gone = store.clear(user_keys(name), moment)
    except StoreUnavailable as exc:
        raise RegistryError(str(exc)) from exc
    finally:
        if isinstance(store, RedisLockoutStore):
            store.close()
    ends = sorted(entry.locked_until for entry in gone.values()
                  if entry.locked_until is not None and entry.locked(moment))
    failures = sum(entry.failures for entry in gone.values())
    data = {"user": name, "was_locked": bool(ends),
            "locked_until": ends[-1].isoformat(timespec="seconds") if ends else None, "failures_cleared": failures}
    if ends:
        text = f"Unlocked {shown(name)!r} (it was locked until {data['locked_until']})."
    else:
        text = f"{shown(name)!r} was not locked; {failures} recent failed authentication(s) cleared."
    return Result(data, text)
