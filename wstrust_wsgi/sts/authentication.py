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
* the password; then the nonce, by its decoded bytes whatever the Created
  beside it, seen once within the digest window (plus skew) from its first use;
* a role among the allowed ones (when any are configured).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from webob import Request

from .. import soap, wssecurity
from ..errors import FailedAuthentication, InvalidSecurity, NotAuthorized
from ..model import Principal, StsSettings
from ..stores import ReplayCache, UserStore


class UsernameAuthentication:
    """Authenticates an STS request by its UsernameToken and checks the principal's roles.

    :param users: where passwords are checked.
    :param nonces: replay cache for PasswordDigest nonces.
    :param digest_window: how old a UsernameToken's Created may be.
    """

    def __init__(self, *, users: UserStore, nonces: ReplayCache, digest_window: timedelta) -> None:
        self._users = users
        self._nonces = nonces
        self._digest_window = digest_window

    def principal(self, envelope: soap.Envelope, http: Request, now: datetime, settings: StsSettings) -> Principal:
        """The authenticated principal holding an allowed role, or a fault."""
        principal = self._authenticate(envelope, http, now, settings)
        allowed = settings.allowed_roles
        if allowed and not (principal.roles & allowed):
            raise NotAuthorized(
                f"user {principal.name!r} holds roles {sorted(principal.roles)}, none of {sorted(allowed)}"
            )
        return principal

    def _authenticate(self, envelope: soap.Envelope, http: Request, now: datetime, settings: StsSettings) -> Principal:
        skew = settings.clock_skew
        security = wssecurity.security_header(envelope.header_blocks(), envelope.version.namespace)
        if security is None:
            raise InvalidSecurity("no wsse:Security header", reason="A wsse:Security header with a UsernameToken is required.")
        timestamp = wssecurity.read_timestamp(security)
        if timestamp is not None:
            wssecurity.check_timestamp(timestamp, now=now, skew=skew)
        token = wssecurity.read_username_token(security)
        if token is None:
            raise FailedAuthentication("no wsse:UsernameToken in the Security header",
                                       reason="A wsse:UsernameToken is required.")
        if not token.digest and not settings.allow_plaintext_http and not protected_transport(http):
            raise FailedAuthentication(
                f"PasswordText from {http.remote_addr} over plain HTTP refused (allow_plaintext_http is off)",
                reason="PasswordText requires HTTPS; use HTTPS or PasswordDigest.",
            )
        if token.created is not None:
            if token.created > now + skew:
                raise FailedAuthentication(f"UsernameToken Created {token.created_text} is in the future")
            if token.created < now - self._digest_window - skew:
                raise FailedAuthentication(f"UsernameToken Created {token.created_text} is older than the window")
        principal = self._users.authenticate(token)
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
        return principal


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
