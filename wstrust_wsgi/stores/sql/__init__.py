"""The registry: users, roles, relying parties and STS settings in SQLite or PostgreSQL.

A :class:`Registry` is at once the :class:`~wstrust_wsgi.stores.UserStore`, the
:class:`~wstrust_wsgi.stores.RelyingPartyStore` and the
:class:`~wstrust_wsgi.stores.SettingsStore` of a
:class:`~wstrust_wsgi.sts.TokenService`, and what the ``wstrust-wsgi`` command
changes. Open it by URL::

    Registry.open("sqlite:///var/lib/wstrust/registry.db")   # the embedded default
    Registry.open("postgresql://sts@db.example/wstrust")      # several STS hosts

The package, one concern per module:

=================  ==============================================================
:mod:`.registry`   :class:`Registry` and :class:`UserInfo`: what is stored, read and changed
:mod:`.parties`    the ``relying_parties`` table: a RelyingParty as one row, and back
:mod:`.checks`     what the registry accepts (the rules of :mod:`wstrust_wsgi.model`)
:mod:`.schema`     the tables and their migrations, schema versions
:mod:`.db`         SQLite and PostgreSQL: dialects, drivers, connections, transactions
=================  ==============================================================

**Nothing is cached.** The STS reads users and relying parties on every
request (one indexed lookup each) and the settings about once a second, so a
change made with the CLI reaches every running worker at its next request,
without a restart. A :class:`~wstrust_wsgi.stores.cache.CachedUserStore` in
front of the registry (what :mod:`wstrust_wsgi.deploy` builds) keeps that
promise: it skips only the KDF of a repeated successful password check, and
still reads the user's row, roles and claims per request
(:meth:`Registry.password_record`).

**Storage of secrets.** A password is stored as a salted scrypt hash
(:func:`~wstrust_wsgi.stores.passwords.hash_password`, memory-hard, 16 MiB per
check), never in clear, with the KDF parameters beside it so that a future
change of parameters is detected instead of locking everybody out silently.
The one exception is opt-in and per user: ``digest_secret=True`` keeps the
plaintext password as well, because WS-Security's PasswordDigest
(SHA-1(nonce + created + password)) can only be checked by a server that knows
the password. Users without it cannot use PasswordDigest at all. A new SQLite
file is created readable by its owner only (0600). Password checks (scrypt,
~70 ms) run outside any transaction, so no reader holds a snapshot long
enough to starve SQLite's WAL checkpoints.

How every operation runs as one transaction, and why there is no ORM, is
told in :mod:`.db`; schema versions in :mod:`.schema`.
"""

from __future__ import annotations

from .registry import Registry, UserInfo

__all__ = ["Registry", "UserInfo"]
