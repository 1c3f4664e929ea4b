"""Who is asking: the STS's UsernameToken authentication and role check.

The STS is secured the way WSO2 Identity Server's and AD FS ``usernamemixed``
are: a ``wsse:UsernameToken`` (UsernameToken Profile 1.1) in the request's
``wsse:Security`` header, checked against the user store, and only users
holding an allowed role get an answer. The rules, in order:

* one ``wsse:Security`` header for this endpoint; its ``wsu:Timestamp``, if
  any, within the clock skew;
* a UsernameToken; PasswordText only over HTTPS, from a loopback peer or
  in-process, unless the settings allow plain HTTP;
* a Created (PasswordDigest always has one) not in the future and not older
  than the digest window;
* no lockout of the user or the client address (:mod:`.lockout`): a locked
  attempt gets the wrong-password fault, after a password check that cannot
  succeed; then the password (a failure is counted);
* the nonce, by its decoded bytes whatever the Created beside it, seen once
  within the digest window (plus skew) from its first use; then a success
  clears the user's failure counts;
* a role among the allowed ones (when any are configured).

A Security header carrying an X.509 BinarySecurityToken is authenticated by
its signature instead (:mod:`.certificate`, AD FS ``certificatemixed``), and
then the same role check applies.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import secrets
from datetime import datetime, timedelta

from webob import Request

from .. import soap, wssecurity
from ..errors import FailedAuthentication, InvalidSecurity, NotAuthorized
from ..model import Principal, StsSettings
from ..stores import ReplayCache, UserStore
from .certificate import certificate_principal, has_certificate_token
from .lockout import Lockout


class UsernameAuthentication:
    """Authenticates an STS request by its UsernameToken and checks the principal's roles.

    :param users: where passwords are checked.
    :param nonces: replay cache for PasswordDigest nonces.
    :param digest_window: how old a UsernameToken's Created may be.
    :param lockout: counts failures and refuses locked users and addresses (None: no lockout).
    """

    def __init__(self, *, users: UserStore, nonces: ReplayCache, digest_window: timedelta,
                 lockout: Lockout | None = None) -> None:
        self._users = users
        self._nonces = nonces
        self._digest_window = digest_window
        self._lockout = lockout

    def principal(self, envelope: soap.Envelope, http: Request, now: datetime, settings: StsSettings,
                  client: str | None = None) -> Principal:
        """The authenticated principal holding an allowed role, or a fault.

        ``client`` is the caller's address as the log lines give it (behind
        trusted proxies, the forwarded one); lockout counts failures by it.
        None: the connection's own peer.
        """
        principal = self._authenticate(envelope, http, now, settings, client)
        allowed = settings.allowed_roles
        if allowed and not (principal.roles & allowed):
            raise NotAuthorized(
                f"user {principal.name!r} holds roles {sorted(principal.roles)}, none of {sorted(allowed)}"
            )
        return principal

    def _authenticate(self, envelope: soap.Envelope, http: Request, now: datetime, settings: StsSettings,
                      client: str | None) -> Principal:
        skew = settings.clock_skew
        address = client if client and client != "-" else (http.remote_addr or "")
        security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
        if security is None:
            raise InvalidSecurity("no wsse:Security header", reason="A wsse:Security header with a UsernameToken is required.")
        if has_certificate_token(security, envelope):
            return certificate_principal(envelope, security, users=self._users, nonces=self._nonces, now=now,
                                         skew=skew, window=self._digest_window, address=address,
                                         lockout=self._lockout)
        timestamp = wssecurity.read_timestamp(security)
        if timestamp is not None:
            wssecurity.check_timestamp(timestamp, now=now, skew=skew)
        token = wssecurity.read_username_token(security)
        if token is None:
            raise FailedAuthentication("no wsse:UsernameToken in the Security header",
                                       reason="A wsse:UsernameToken is required.")
        return self.check(token, secure=protected_transport(http), now=now, settings=settings, address=address,
                          peer=http.remote_addr)

    def check(self, token: wssecurity.UsernameToken, *, secure: bool, now: datetime, settings: StsSettings,
              address: str, peer: str | None = None) -> Principal:
        """The principal whose password ``token`` proves, by every rule above but the roles (or a fault).

        Also what checks a UsernameToken carried in ``wst:OnBehalfOf`` or
        ``ActAs`` (:mod:`.delegation`); ``secure``: the request came over HTTPS,
        from loopback or in-process.
        """
        skew = settings.clock_skew
        if not token.digest and not settings.allow_plaintext_http and not secure:
            raise FailedAuthentication(
                f"PasswordText from {peer} over plain HTTP refused (allow_plaintext_http is off)",
                reason="PasswordText requires HTTPS; use HTTPS or PasswordDigest.",
            )
        if token.created is not None:
            if token.created > now + skew:
                raise FailedAuthentication(f"UsernameToken Created {token.created_text} is in the future")
            if token.created < now - self._digest_window - skew:
                raise FailedAuthentication(f"UsernameToken Created {token.created_text} is older than the window")
        lockout = self._lockout
        attempt = lockout.check(token.username, address, now) if lockout is not None else None
        refused = attempt.refused if attempt is not None else None
        # Locked: the same work and the same fault as a wrong password, whatever was sent.
        principal = self._users.authenticate(_cannot_match(token) if refused else token)
        if lockout is not None and attempt is not None and (refused or principal is None):
            lockout.failed(attempt, now)
        if refused:
            raise FailedAuthentication(f"{refused}: {token.username!r} from {address or 'in-process'} "
                                       "refused as a wrong password is")
        if principal is None:
            raise FailedAuthentication(f"wrong password or unknown user {token.username!r}")
        if token.nonce is not None and token.created is not None:
            # Keyed on the decoded nonce alone and kept from receipt, as WSS4J does: a
            # Created-based expiry would free a nonce sent with an old Created for
            # reuse with a fresh Created (and a recomputed digest) inside the window.
            # now + window + 2 skew also outlives every Created this token could carry.
            expires = now + self._digest_window + 2 * skew
            if not self._nonces.add(f"ut:{token.nonce.hex()}", expires=expires, now=now):
                raise FailedAuthentication(f"nonce replayed by {token.username!r}")
        if lockout is not None and attempt is not None:
            lockout.succeeded(attempt, now)
        return principal


def _cannot_match(token: wssecurity.UsernameToken) -> wssecurity.UsernameToken:
    """The token with a random password (or digest) of the same kind: checked like a wrong one."""
    guess = base64.b64encode(secrets.token_bytes(20)).decode() if token.digest else secrets.token_urlsafe(16)
    return dataclasses.replace(token, password=guess)


def protected_transport(http: Request) -> bool:
    """HTTPS, a loopback peer, or no network peer at all (an in-process call)."""
    if http.scheme == "https":
        return True
    peer = http.remote_addr
    if not peer:
        return True
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
