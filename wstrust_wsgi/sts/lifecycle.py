"""What Validate, Renew and Cancel share: the issued-token store, its policy, and checking a named token.

The STS records every token it issues (:meth:`IssuedTokens.record_issue`,
called by the Issue binding once the token is signed) in an
:class:`~wstrust_wsgi.stores.tokens.IssuedTokenStore`. A request naming a token
is then checked the way the relying-party middleware checks it, by the same
code (:func:`wstrust_wsgi.saml.verify_assertion`: one enveloped signature by
a trusted key, issuer, audience, time window, bearer confirmation; then the
ID unique in the message), with this STS's own signing certificate as the only
trusted key, its issuer, and the audience the record names; then against the
record (same ID, subject and end; its state).

The record of a holder-of-key token also keeps its key (:mod:`.possession`:
a symmetric key wrapped under a key derived from our signing key, a
PublicKey token's certificate), so that Renew can check a proof of possession
and bind the renewed token to the same key; and the claims asked with
``wst:Claims``, so that the renewed token carries that subset again.

This is stricter than the STSes the project follows (notes section 4): WSO2's
Validate accepts an unsigned stored token and Rahas verifies with the key the
token carries; here a token is ours only if our key signed it *and* we
recorded it.

**Encrypted tokens.** A token issued to a relying party with an encryption
certificate is encrypted for that party (:mod:`.encryption`); the STS cannot
decrypt it, so it cannot check its signature when a client sends it back. So
at issue the record keeps :func:`encrypted_digest` of the element sent in
``wst:RequestedSecurityToken``: the SHA-256 of its exclusive canonical form
(exclusive, so that the element re-embedded by a client in another envelope,
under other namespace declarations, canonicalizes to the same bytes). A target
holding an encrypted token is looked up by the same digest of the element
received. The lookup proves origin: the ciphertext, its encrypted key and its
algorithms are exactly what this STS produced for that record, and the signed
assertion inside is the one the record describes (its ID, subject, party and
lifetime come from the record, never from the request); changing one byte
that matters gives another digest, hence no record, the fault of a token we
never issued. Re-encrypting our signed assertion, or encrypting another
assertion, likewise gives bytes we never produced. The full 256-bit digest is
compared, by the store's own lookup (never a short hash: CXF keyed its cache by
a 32-bit one, notes section 4). Everything else (state, owner, Renewing flags,
expiry window, proof of possession, claims) is then checked as for a token in
clear.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cryptography import x509
from lxml import etree

from .. import _arguments, _xml, wstrust
from .._time import format_datetime, parse_datetime
from ..errors import ConfigurationError, InvalidRequest, InvalidSecurityToken, NotAuthorized
from ..keys import SigningKey
from ..model import Principal
from ..saml import AssertionContent, VerifiedAssertion, check_unique_id, policy, verify_assertion
from ..stores.tokens import IssuedTokenStore, TokenRecord
from ..wstrust.lifecycle import Target, read_target, renewing_of
from .binding import TrustCall
from .possession import ProofKeeper
from .proof import IssuedProof

log = logging.getLogger("wstrust_wsgi.sts")

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, init=False)
class TokenPolicy:
    """Who may Validate and Cancel, and how late an expired token may be renewed.

    :param renewal_window: how long after it expired a token issued with
        ``wst:Renewing OK="true"`` may still be renewed (30 minutes, as CXF's
        ``maxExpiry``); records are kept this long after their token expires.
    :param validators: the roles whose holders may Validate; None (the
        default): every authenticated requester (who already holds an allowed role).
    :param administrators: the roles whose holders may Cancel anyone's token;
        none by default: a token is cancelled by its own subject only.
    """

    renewal_window: timedelta = timedelta(minutes=30)
    validators: frozenset[str] | None = None
    administrators: frozenset[str] = field(default_factory=frozenset)

    def __init__(self, *, renewal_window: timedelta | float = timedelta(minutes=30),
                 validators: str | Iterable[str] | None = None, administrators: str | Iterable[str] = ()) -> None:
        object.__setattr__(self, "renewal_window", _arguments.duration(renewal_window, "renewal_window"))
        object.__setattr__(self, "validators", None if validators is None else frozenset(
            _arguments.strings(validators, "validators", allow_empty=True)))
        object.__setattr__(self, "administrators", frozenset(
            _arguments.strings(administrators, "administrators", allow_empty=True)))


class IssuedTokens:
    """The store, the policy and our signing certificates, which the lifecycle bindings share.

    ``certificates`` returns the STS's published signing certificates of the
    moment (next, primary, previous: :class:`~wstrust_wsgi.keys.KeySet`), so a
    token signed before a key rollover is still recognised as ours.
    """

    def __init__(self, store: IssuedTokenStore, certificates: Callable[[], tuple[x509.Certificate, ...]],
                 token_policy: TokenPolicy, signing_keys: Callable[[], tuple[SigningKey, ...]] | None = None) -> None:
        self.store = _arguments.having(store, "issued_tokens", "transition", "an issued-token store")
        self.policy = token_policy
        self.certificates = certificates
        #: Wraps a symmetric proof key for the record, under a key derived from our signing key
        #: (:mod:`.possession`); None: holder-of-key tokens are recorded without their proof.
        self.keeper = ProofKeeper(signing_keys) if signing_keys is not None else None

    def keep_until(self, expires: datetime, skew: timedelta) -> datetime:
        """How long a record is kept: past its token's end by the renewal window and the clock skew.

        The skew keeps it while a relying party may still admit the token; kept
        past the window, a late renewal is told it came too late.
        """
        return expires + self.policy.renewal_window + skew

    def record_issue(self, call: TrustCall, content: AssertionContent, token_type: str, key_type: str,
                     proof: IssuedProof | None = None, encrypted: bytes | None = None) -> None:
        """Record a token just signed for ``call`` (an Issue), with the ``wst:Renewing`` flags it asked for,
        its holder-of-key ``proof`` (kept wrapped, :mod:`.possession`), the claims it asked for, and, when
        it was ``encrypted`` (the element sent, as bytes), the digest it is found by."""
        allow, ok = renewing_of(call.rst, call.dialect)
        asked = wstrust.requested_claims(call.rst)
        claims = asked.claims if asked is not None and asked.known else None  # unknown dialect: the usual claims
        kept = self.kept_proof(content.assertion_id, proof.key.key if proof and proof.key else None,
                               proof.key_info if proof is not None else None)
        self.record(content, token_type, key_type, allow, ok, call, proof=kept, claims=claims, encrypted=encrypted)

    def kept_proof(self, assertion_id: str, secret: bytes | None,
                   key_info: etree._Element | None) -> tuple[str | None, str | None]:
        """What the record keeps of a holder-of-key token's key: (the wrapped symmetric ``secret`` or the
        certificate ``key_info`` binds, the thumbprint of the signing key that wrapped it) (:mod:`.possession`)."""
        return self.keeper.kept(assertion_id, secret, key_info) if self.keeper is not None else (None, None)

    def record(self, content: AssertionContent, token_type: str, key_type: str, allow: bool, ok: bool,
               call: TrustCall, *, proof: tuple[str | None, str | None] = (None, None),
               claims: tuple[tuple[str, bool], ...] | None = None, encrypted: bytes | None = None) -> None:
        """Record a token just signed (issued or renewed); ``encrypted``: the encrypted element sent, if it was."""
        digest = encrypted_digest(_xml.parse(encrypted)) if encrypted is not None else None
        record = TokenRecord(content.assertion_id, content.subject, content.audience, token_type, key_type,
                             _as_signed(content.issue_instant), _as_signed(content.not_on_or_after), allow, ok,
                             proof=proof[0], proof_wrapped_by=proof[1], claims=claims, encrypted_sha256=digest)
        self.store.record(record, keep_until=self.keep_until(record.expires, call.settings.clock_skew), now=call.now)

    def target(self, call: TrustCall, binding: str) -> tuple[Target, TokenRecord | None]:
        """The token the request names and its record (None: we never issued it, or forgot it).

        An encrypted token is found by :func:`encrypted_digest` of the element received; its target then
        carries the record's ID (or, with no record, a name of the digest for the log).
        """
        target = read_target(call.rst, call.dialect, binding)
        if not target.encrypted or target.element is None:
            return target, self.store.get(target.assertion_id, call.now)
        digest = encrypted_digest(target.element)
        find = getattr(self.store, "find_encrypted", None)
        if find is None:
            log.warning("issued-token store %r cannot find encrypted tokens (no find_encrypted())", self.store)
        record: TokenRecord | None = find(digest, call.now) if find is not None else None
        return replace(target, assertion_id=record.assertion_id if record is not None else
                       f"(encrypted, SHA-256 {digest})"), record

    def check(self, call: TrustCall, target: Target, record: TokenRecord, *, at: datetime) -> None:
        """That ``target``'s token is the one ``record`` describes, as of ``at``.

        A token in clear: :meth:`verify` (our signature, the middleware's checks, the record's ID, subject
        and end). An encrypted token: nothing more to check, its record was found by the digest of its
        exact bytes (:meth:`target`), which only this STS produced; its times are the record's. A
        reference: nothing here (judged on the record by the caller).
        """
        if target.element is not None and not target.encrypted:
            self.verify(call, target.element, record, at=at)

    def verify(self, call: TrustCall, element: etree._Element, record: TokenRecord, *,
               at: datetime) -> VerifiedAssertion:
        """The middleware's verification of ``element`` at ``at``, with our key only, then matched to ``record``."""
        settings = call.settings
        accepted = policy(trusted_certs=self.certificates(), issuers=[settings.issuer],
                          audiences=[record.relying_party], clock_skew=settings.clock_skew)
        verified = verify_assertion(element, accepted, now=at)
        check_unique_id(call.rst, verified.assertion_id, element)
        if (verified.assertion_id, verified.subject, verified.not_on_or_after) != (
                record.assertion_id, record.subject, record.expires):
            raise InvalidSecurityToken(f"token {verified.assertion_id} does not match the record of its ID",
                                       reason="The security token was not issued by this STS.")
        return verified

    @staticmethod
    def before_end(record: TokenRecord) -> datetime:
        """An instant the token was valid at: to verify an expired token as it was (Renew with OK, Cancel)."""
        return record.expires - _MICROSECOND

    def owner_or_administrator(self, principal: Principal, record: TokenRecord, what: str) -> None:
        """NotAuthorized unless ``principal`` is the token's subject (or, for Cancel, an administrator)."""
        if principal.name == record.subject:
            return
        if what == "cancel" and principal.roles & self.policy.administrators:
            return
        raise NotAuthorized(f"{principal.name!r} may not {what} token {record.assertion_id} of {record.subject!r}",
                            reason=f"The requester may not {what} this token.")


def encrypted_digest(element: etree._Element) -> str:
    """The SHA-256 (lowercase hex, all 64 digits) of ``element``'s exclusive canonical form, without comments.

    What an encrypted token's record keeps and is found by. Exclusive c14n
    renders only the namespaces the element itself uses, so the element the STS
    sent and the same element re-embedded by a client in another envelope give
    the same bytes; whitespace inside it is kept, so any change to it does not.
    """
    return hashlib.sha256(etree.tostring(element, method="c14n", exclusive=True, with_comments=False)).hexdigest()


def _as_signed(moment: datetime) -> datetime:
    """``moment`` as the token carries it (the wire format keeps milliseconds), so the record matches the token."""
    return parse_datetime(format_datetime(moment))


def unknown(target: Target) -> InvalidRequest:
    """The fault for a token with no record: never issued here, or forgotten after its window."""
    return InvalidRequest(f"no record of token {target.assertion_id!r}",
                          reason="The token was not issued by this STS, or is no longer known.")


#: The keys of the deployment file's ``[tokens]`` table.
SETTINGS = ("enabled", "store", "renewal_window", "validators", "administrators")


def settings_from_table(values: Mapping[str, object], where: str = "") -> tuple[TokenPolicy, str] | None:
    """``[tokens]``: the policy and the store URL when ``enabled = true`` (off by default), else None.

    The store is ``registry`` (the default: the registry's ``issued_tokens``
    table), ``redis://host:port/db`` or ``memory:``; ``renewal_window`` whole
    seconds; ``validators`` and ``administrators`` lists of roles. Called by
    :func:`wstrust_wsgi.config.load_config`, which refuses unknown keys first.

    :raises ConfigurationError: ``<where><key>: <problem>``.
    """
    enabled, store = values.get("enabled", False), values.get("store", "registry")
    window, validators, administrators = (values.get(key) for key in SETTINGS[2:])
    try:
        if not isinstance(enabled, bool):
            raise ConfigurationError(f"enabled: must be true or false, not {enabled!r}")
        if not isinstance(store, str) or not store.strip():
            raise ConfigurationError(f'store: must be "registry", "memory:" or a redis:// URL, not {store!r}')
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
            raise ConfigurationError(f"renewal_window: must be a whole number of seconds >= 0, not {window!r}")
        for key, roles in (("validators", validators), ("administrators", administrators)):
            if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
                raise ConfigurationError(f"{key}: must be a list of role names, not {roles!r}")
        policy = TokenPolicy(renewal_window=timedelta(minutes=30) if window is None else timedelta(seconds=window),
                             validators=validators, administrators=administrators or ())  # type: ignore[arg-type]
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}{exc}") from None
    return (policy, store.strip()) if enabled else None
