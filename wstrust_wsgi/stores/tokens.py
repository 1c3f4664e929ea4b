"""The issued-token store: what the STS issued, so that Validate, Renew and Cancel can answer for it.

Every token the STS issues is recorded here (:class:`TokenRecord`: its full
ID, subject, relying party, token and key type, lifetime, the ``wst:Renewing``
flags asked at issue, its state) until its renewal window is over
(``keep_until``), then forgotten. The record is what makes the STS stricter
than its models (``../shared/notes/wstrust-breadth.md`` section 4): only a
token with a record can be renewed, its Renewing flags are the ones asked at
issue, a cancelled or already renewed token stays so in every worker and host
sharing the store, and the middleware's ``revocation_store=`` refuses it.

For a holder-of-key token the record also keeps what its renewal checks the
proof of possession with (schema version 8): a SymmetricKey token's proof key
**wrapped** (AES-GCM under a key derived from the STS's signing key, the
token's ID as associated data; :mod:`wstrust_wsgi.sts.lifecycle` wraps it, this
module keeps the text), so that a copy of the store alone yields no key that
could prove possession of a live token; a PublicKey token's certificate (not
secret). And the claims the requester asked with ``wst:Claims``, so that the
renewed token carries that subset again.

Records are keyed by the assertion's **full ID** (never a hash of it, and never
a short hash of the token: CXF keyed its cache by a 32-bit ``Arrays.hashCode``).
The ID is read from the token only after its signature by our key has been
verified, or used as a mere lookup key whose record must then match the
verified token.

An **encrypted** token (sent to a relying party with an encryption
certificate, :mod:`wstrust_wsgi.sts.encryption`) cannot be read back by the
STS, so its record also keeps the **SHA-256 of the encrypted element's
exclusive canonical form** (schema version 9: ``encrypted_sha256``, 64
lowercase hex digits, the full digest), and :meth:`IssuedTokenStore.find_encrypted`
looks the record up by it: an indexed column in SQL, a second Redis key
expiring with the record, a dict in memory. A token is found so only if its
bytes (canonicalized) are exactly those the STS produced for that record,
compared in full by the store; never a short hash (see :mod:`wstrust_wsgi.sts.lifecycle`).

The state moves once, from :data:`ISSUED` to :data:`RENEWED` or
:data:`CANCELLED`, by :meth:`IssuedTokenStore.transition`, atomically in every
backend, so two racing renewals of one token give one new token:

* :class:`MemoryTokenStore`: this process only (tests, one worker);
* :class:`RegistryTokenStore`: the registry's ``issued_tokens`` table (SQLite
  for one host's workers, PostgreSQL for several hosts);
* :class:`RedisTokenStore`: one Redis hash per token, expiring with it; the
  transition is one Lua script.

Every backend failure is :class:`~wstrust_wsgi.errors.StoreUnavailable`, so the
STS and the middleware refuse (fail closed).
"""

from __future__ import annotations

import itertools
import threading
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .._urls import redact_url
from ..errors import ConfigurationError, InvalidSecurityToken
from ._backends import RedisStore, RegistryTable

if TYPE_CHECKING:
    import redis

    from .sql import Registry

__all__ = ["CANCELLED", "ISSUED", "RENEWED", "IssuedTokenStore", "MemoryTokenStore", "RedisTokenStore",
           "RegistryTokenStore", "TokenRecord", "refuse_revoked", "token_store_from_url"]

#: The states of a record: live, retired by a renewal (a new token replaced it), cancelled.
ISSUED, RENEWED, CANCELLED = "issued", "renewed", "cancelled"
_STATES = (ISSUED, RENEWED, CANCELLED)
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class TokenRecord:
    """One issued token, as the STS recorded it."""

    #: The assertion's full ID (``ID`` in SAML 2.0, ``AssertionID`` in 1.1).
    assertion_id: str
    #: Who it was issued to (the NameID).
    subject: str
    #: The relying party's address: the token's one audience.
    relying_party: str
    #: ``"2.0"`` or ``"1.1"``.
    token_type: str
    #: The KeyType URI the token was issued with.
    key_type: str
    issued: datetime
    #: The token's NotOnOrAfter.
    expires: datetime
    #: ``wst:Renewing/@Allow`` as asked at issue (absent: True, as CXF).
    renew_allowed: bool = True
    #: ``wst:Renewing/@OK`` as asked at issue: may it be renewed after it expired (absent: False).
    renew_after_expiry: bool = False
    state: str = ISSUED
    #: What proves possession of a holder-of-key token's key at renewal (None: a bearer token, or a record
    #: made before schema version 8, which cannot renew a holder-of-key token): SymmetricKey, the proof key
    #: wrapped under a key derived from the STS's signing key (never in clear; base64 of nonce and
    #: ciphertext, see :mod:`wstrust_wsgi.sts.lifecycle`); PublicKey, the bound certificate (base64 DER).
    proof: str | None = field(default=None, repr=False)
    #: SymmetricKey: the SHA-256 thumbprint (hex) of the signing certificate whose key wrapped ``proof``.
    proof_wrapped_by: str | None = None
    #: The claims asked with ``wst:Claims`` at issue, as ``(URI, optional)`` pairs, applied again at renewal;
    #: None: none were asked (the relying party's usual claims go).
    claims: tuple[tuple[str, bool], ...] | None = None
    #: An encrypted token: the SHA-256 (64 lowercase hex digits) of the exclusive canonical form of the
    #: element sent in ``wst:RequestedSecurityToken`` (``saml2:EncryptedAssertion``, or ``xenc:EncryptedData``
    #: for SAML 1.1), by which a request holding that element finds this record; None: sent in clear.
    encrypted_sha256: str | None = None


class IssuedTokenStore(Protocol):
    """Records of issued tokens by full ID, kept until ``keep_until`` (the end of the renewal window)."""

    def record(self, token: TokenRecord, *, keep_until: datetime, now: datetime) -> None:
        """Keep ``token`` until ``keep_until``."""

    def get(self, assertion_id: str, now: datetime) -> TokenRecord | None:
        """The record of exactly ``assertion_id``, if one is kept at ``now``."""

    def transition(self, assertion_id: str, state: str, *, now: datetime) -> bool:
        """Move the record from :data:`ISSUED` to ``state``, atomically; False if it was not ISSUED (or is gone)."""

    def find_encrypted(self, digest: str, now: datetime) -> TokenRecord | None:
        """The record whose :attr:`~TokenRecord.encrypted_sha256` is exactly ``digest``, if one is kept at ``now``."""


def _is_digest(digest: str) -> bool:
    """A full SHA-256 in lowercase hex: anything else finds nothing (never a prefix, never a short hash)."""
    return isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _check_state(state: str) -> None:
    if state not in (RENEWED, CANCELLED):
        raise ValueError(f"state: a record moves to {RENEWED!r} or {CANCELLED!r}, not {state!r}")


class MemoryTokenStore:
    """Records in this process's memory: one worker's view only (share the registry or Redis for several).

    At most ``max_entries``: when full, records past their window are dropped,
    then the oldest down to 90%.
    """

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"MemoryTokenStore max_entries: must be >= 1, not {max_entries!r}")
        self._records: dict[str, tuple[TokenRecord, datetime]] = {}
        self._digests: dict[str, str] = {}  # encrypted_sha256 -> full ID
        self._lock = threading.Lock()
        self._max = max_entries

    def record(self, token: TokenRecord, *, keep_until: datetime, now: datetime) -> None:
        with self._lock:
            if len(self._records) >= self._max:
                self._records = {k: v for k, v in self._records.items() if v[1] > now}
                for oldest in list(itertools.islice(self._records, max(0, len(self._records) - self._max * 9 // 10))):
                    del self._records[oldest]
                self._digests = {d: i for d, i in self._digests.items() if i in self._records}
            self._records[token.assertion_id] = (token, keep_until)
            if token.encrypted_sha256 is not None:
                self._digests[token.encrypted_sha256] = token.assertion_id

    def get(self, assertion_id: str, now: datetime) -> TokenRecord | None:
        with self._lock:
            found = self._records.get(assertion_id)
        return found[0] if found is not None and found[1] > now else None

    def find_encrypted(self, digest: str, now: datetime) -> TokenRecord | None:
        with self._lock:
            assertion_id = self._digests.get(digest) if _is_digest(digest) else None
            found = self._records.get(assertion_id) if assertion_id is not None else None
        if found is None or found[1] <= now or found[0].encrypted_sha256 != digest:
            return None
        return found[0]

    def transition(self, assertion_id: str, state: str, *, now: datetime) -> bool:
        _check_state(state)
        with self._lock:
            found = self._records.get(assertion_id)
            if found is None or found[1] <= now or found[0].state != ISSUED:
                return False
            self._records[assertion_id] = (replace(found[0], state=state), found[1])
            return True


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def _moment(us: Any) -> datetime:
    return _EPOCH + int(us) * _US


_COLUMNS = ("id, subject, relying_party, token_type, key_type, issued_us, expires_us, renew_allowed, "
            "renew_after_expiry, state, proof, proof_wrapped_by, claims, encrypted_sha256")


def _claims_text(claims: tuple[tuple[str, bool], ...] | None) -> str | None:
    """The requested claims as stored: a JSON array of ``[URI, optional]`` (None: none asked)."""
    return None if claims is None else json.dumps([[uri, optional] for uri, optional in claims])


def _claims_of(text: str | None) -> tuple[tuple[str, bool], ...] | None:
    return None if text is None else tuple((str(uri), bool(optional)) for uri, optional in json.loads(text))


def _from_row(row: Any) -> TokenRecord:
    return TokenRecord(row[0], row[1], row[2], row[3], row[4], _moment(row[5]), _moment(row[6]),
                       bool(row[7]), bool(row[8]), row[9], row[10], row[11], _claims_of(row[12]), row[13])


class RegistryTokenStore(RegistryTable):
    """Records in the registry's ``issued_tokens`` table (schema version 5; the proof and claims columns 8;
    ``encrypted_sha256``, indexed, 9), one transaction per call.

    SQLite shares them between the workers of a host, PostgreSQL between
    hosts. Times are whole microseconds since the epoch from the caller's
    clock. Every ``purge_every`` records, at most ``purge_batch`` rows past
    their window are deleted.
    """

    _table = "issued_tokens"

    def record(self, token: TokenRecord, *, keep_until: datetime, now: datetime) -> None:
        purge = self._purge_now()
        values = (token.assertion_id, token.subject, token.relying_party, token.token_type, token.key_type,
                  _us(token.issued), _us(token.expires), token.renew_allowed, token.renew_after_expiry,
                  token.state, token.proof, token.proof_wrapped_by, _claims_text(token.claims),
                  token.encrypted_sha256, _us(keep_until))

        def work(tx: Any) -> None:
            if purge:
                tx.execute("DELETE FROM issued_tokens WHERE id IN (SELECT id FROM issued_tokens "
                           "WHERE keep_until_us <= ? LIMIT ?)", (_us(now), self._purge_batch))
            marks = ", ".join("?" for _ in values)
            tx.execute(f"INSERT INTO issued_tokens ({_COLUMNS}, keep_until_us) VALUES ({marks})", values)

        self._run(self._kind.WRITE, work)

    def get(self, assertion_id: str, now: datetime) -> TokenRecord | None:
        row = self._run(self._kind.READ, lambda tx: tx.one(
            f"SELECT {_COLUMNS} FROM issued_tokens WHERE id = ? AND keep_until_us > ?", (assertion_id, _us(now))))
        return None if row is None else _from_row(row)

    def find_encrypted(self, digest: str, now: datetime) -> TokenRecord | None:
        if not _is_digest(digest):
            return None
        row = self._run(self._kind.READ, lambda tx: tx.one(
            f"SELECT {_COLUMNS} FROM issued_tokens WHERE encrypted_sha256 = ? AND keep_until_us > ?",
            (digest, _us(now))))
        return None if row is None else _from_row(row)

    def transition(self, assertion_id: str, state: str, *, now: datetime) -> bool:
        _check_state(state)
        changed = self._run(self._kind.WRITE, lambda tx: tx.execute(
            "UPDATE issued_tokens SET state = ? WHERE id = ? AND state = ? AND keep_until_us > ?",
            (state, assertion_id, ISSUED, _us(now))).rowcount)
        return bool(changed == 1)


# KEYS[1]: the record; ARGV[1]: the new state, ARGV[2]: now (us). Moves a kept record from 'issued' only.
_TRANSITION = """
local kept = tonumber(redis.call('HGET', KEYS[1], 'keep_until_us') or '0')
if kept > tonumber(ARGV[2]) and redis.call('HGET', KEYS[1], 'state') == 'issued' then
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  return 1
end
return 0
"""
_FIELDS = ("subject", "relying_party", "token_type", "key_type", "issued_us", "expires_us", "renew_allowed",
           "renew_after_expiry", "state", "proof", "proof_wrapped_by", "claims", "encrypted_sha256", "keep_until_us")


class RedisTokenStore(RedisStore):
    """Records in Redis, one hash per token under ``<prefix><full ID>``, expiring at ``keep_until``.

    An encrypted token's record has a second key, ``<digest_prefix><SHA-256 hex>``
    (by default ``prefix`` with ``-digest:`` for its last ``:``), a hash whose
    ``id`` field names the record, written in the same transaction and expiring
    with it. With the default prefixes no ID can name it; and were one to (a
    custom prefix), that hash read as a record has no ``keep_until_us``, so finds nothing.

    ``keep_until`` is also kept in the hash and compared with the caller's
    clock, so a record ends at the same moment in every backend.

    Connections, timeouts and retries are those of the other Redis stores
    (:func:`~wstrust_wsgi.stores.replay.connect_redis`). The time to live is
    ``keep_until - now`` measured by Redis from the caller's clock reading.
    """

    _what = "Redis token store"
    _owner = "RedisTokenStore"

    def __init__(self, url_or_client: str | redis.Redis, *, prefix: str = "wstrust:token:",
                 socket_timeout: float = 1.0, digest_prefix: str | None = None) -> None:
        super().__init__(url_or_client, prefix=prefix, socket_timeout=socket_timeout, script=_TRANSITION)
        if digest_prefix is not None and not isinstance(digest_prefix, str):
            raise ConfigurationError(f"RedisTokenStore digest_prefix: must be a string, not {digest_prefix!r}")
        self.digest_prefix = digest_prefix if digest_prefix is not None else (
            prefix[:-1] + "-digest:" if prefix.endswith(":") else prefix + "-digest:")

    def record(self, token: TokenRecord, *, keep_until: datetime, now: datetime) -> None:
        mapping = {"subject": token.subject, "relying_party": token.relying_party, "token_type": token.token_type,
                   "key_type": token.key_type, "issued_us": _us(token.issued), "expires_us": _us(token.expires),
                   "renew_allowed": int(token.renew_allowed), "renew_after_expiry": int(token.renew_after_expiry),
                   "state": token.state, "keep_until_us": _us(keep_until),
                   **{name: value for name, value in (("proof", token.proof),
                                                      ("proof_wrapped_by", token.proof_wrapped_by),
                                                      ("claims", _claims_text(token.claims)),
                                                      ("encrypted_sha256", token.encrypted_sha256))
                      if value is not None}}
        ttl = max(1, -(-(keep_until - now) // timedelta(milliseconds=1)))
        key = self.prefix + token.assertion_id

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(key).hset(key, mapping=mapping).pexpire(key, ttl)
            if token.encrypted_sha256 is not None:
                pipe.hset(self.digest_prefix + token.encrypted_sha256, "id", token.assertion_id)
                pipe.pexpire(self.digest_prefix + token.encrypted_sha256, ttl)
            pipe.execute()

        self._call(write)

    def get(self, assertion_id: str, now: datetime) -> TokenRecord | None:
        values = self._call(lambda: self._client.hmget(self.prefix + assertion_id, _FIELDS))
        if values[-1] is None or int(values[-1]) <= _us(now):  # Redis's clock need not be the caller's
            return None
        text = [v.decode() if isinstance(v, bytes) else v for v in values]
        return TokenRecord(assertion_id, text[0], text[1], text[2], text[3], _moment(text[4]), _moment(text[5]),
                           text[6] == "1", text[7] == "1", text[8], text[9], text[10], _claims_of(text[11]),
                           text[12])

    def find_encrypted(self, digest: str, now: datetime) -> TokenRecord | None:
        if not _is_digest(digest):
            return None
        named = self._call(lambda: self._client.hget(self.digest_prefix + digest, "id"))
        record = self.get(named.decode() if isinstance(named, bytes) else named, now) if named is not None else None
        return record if record is not None and record.encrypted_sha256 == digest else None

    def transition(self, assertion_id: str, state: str, *, now: datetime) -> bool:
        _check_state(state)
        script = self._script
        assert script is not None
        return bool(self._call(lambda: script(keys=[self.prefix + assertion_id], args=[state, _us(now)])) == 1)


def refuse_revoked(store: IssuedTokenStore, assertion_id: str, now: datetime) -> None:
    """What the middleware's ``revocation_store=`` does: refuse a token recorded as cancelled or renewed.

    A token without a record passes (another issuer's, or one issued before
    the store was kept); the signature, time window and audience were checked
    already. A store that cannot answer raises StoreUnavailable (fail closed).
    """
    record = store.get(assertion_id, now)
    if record is not None and record.state != ISSUED:
        raise InvalidSecurityToken(f"assertion {assertion_id} is {record.state} in the revocation store",
                                   reason="The security token has been cancelled." if record.state == CANCELLED
                                   else "The security token has been renewed and replaced.",
                                   check="revocation", expected="issued (neither cancelled nor renewed)",
                                   actual=record.state)


def token_store_from_url(url: str, registry: Registry | None = None) -> IssuedTokenStore:
    """``memory:`` (this process), ``registry`` (the registry's table) or ``redis://host:port/db``.

    :raises ConfigurationError: any other value, or ``registry`` without one.
    """
    value = url.strip() if isinstance(url, str) else ""
    if value.lower() == "memory:":
        return MemoryTokenStore()
    if value.lower() == "registry":
        if registry is None:
            raise ConfigurationError("token store: \"registry\" needs a SQL registry")
        return RegistryTokenStore(registry)
    if value.lower().startswith(("redis://", "rediss://", "unix://")):
        return RedisTokenStore(value)
    raise ConfigurationError(f"token store: {redact_url(str(url))!r} is not \"memory:\", \"registry\" or "
                             "redis://host:port/db")
