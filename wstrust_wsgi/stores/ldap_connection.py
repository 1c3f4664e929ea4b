"""Connections to an LDAP directory: its servers, TLS, and the pool of search-account connections.

What :class:`~wstrust_wsgi.stores.ldap.LdapUserStore` needs to reach a
directory, apart from what it asks it: the configured URLs as servers, one
standard-library TLS context built at start-up, idle connections kept for
reuse, and closing a connection that may be broken.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ldap3

from ..errors import ConfigurationError

__all__ = ["ContextTls", "Endpoint", "Pool", "close", "describe", "endpoints", "is_loopback", "ssl_context"]


@dataclass(frozen=True)
class Endpoint:
    """One directory server, from one of the configured URLs."""

    url: str
    host: str
    port: int
    ssl: bool


class ContextTls(ldap3.Tls):  # type: ignore[misc]
    """ldap3's TLS settings, wrapping every socket with one standard-library SSLContext built at start-up.

    Why not ldap3's own ``wrap_socket``: ldap3 2.9 turns the context's host-name
    check off and checks the name itself with ``ssl.match_hostname``, which is
    deprecated since Python 3.7 and gone in 3.12, where ldap3 falls back to a
    copy from Python 3.4 that cannot match an IP address. Here OpenSSL checks
    both the chain and the name (DNS or IP subjectAltName) during the handshake.
    ``wrap_socket`` is the one method ldap3 calls, for ldaps:// and StartTLS alike.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(validate=context.verify_mode)
        self._context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket, server_side=False, do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


def ssl_context(ca_file: str | os.PathLike[str] | None, validate: bool) -> ssl.SSLContext:
    """The client context: the system's or ``ca_file``'s CAs, host-name check, Python's protocol floor."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=None if ca_file is None else str(ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"ca_file: {str(ca_file)!r} holds no usable PEM certificate ({exc})") from None
    if not validate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Pool:
    """Idle search-account connections, newest first; each is used by one thread at a time."""

    def __init__(self, size: int, max_idle: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._size = size
        self._max_idle = max_idle
        self._clock = clock
        self._idle: list[tuple[ldap3.Connection, float]] = []
        self._lock = threading.Lock()

    def take(self, open_new: Callable[[], ldap3.Connection]) -> tuple[ldap3.Connection, bool]:
        """An idle connection (reused: True) or a new one from ``open_new`` (reused: False)."""
        stale = []
        found = None
        with self._lock:
            now = self._clock()
            while self._idle and found is None:
                connection, since = self._idle.pop()
                if now - since > self._max_idle:
                    stale.append(connection)
                else:
                    found = connection
        for connection in stale:
            close(connection)
        if found is not None:
            return found, True
        return open_new(), False

    def give_back(self, connection: ldap3.Connection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append((connection, self._clock()))
                return
        close(connection)

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            close(connection)



def endpoints(urls: str | Sequence[str]) -> tuple[Endpoint, ...]:
    listed = [urls] if isinstance(urls, str) else list(urls)
    if not listed:
        raise ConfigurationError("urls: at least one ldap:// or ldaps:// URL is required")
    endpoints = []
    for url in listed:
        try:
            parts = urlsplit(url)
            port = parts.port
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"urls: {url!r} is not a URL ({exc})") from None
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ConfigurationError(f"urls: {url!r} must be ldap://host[:port] or ldaps://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(f"urls: {url!r}: only scheme, host and port are used; give the DNs "
                                     "as user_search_base / group_search_base, credentials as bind_dn / bind_password")
        secure = parts.scheme == "ldaps"
        endpoints.append(Endpoint(url, parts.hostname, port or (636 if secure else 389), secure))
    return tuple(endpoints)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def close(connection: ldap3.Connection) -> None:
    """Unbind and close the socket; a connection that is already broken is just dropped.

    ldap3 leaves the socket of a connection that failed to open unclosed (the
    connection counts as closed), so the socket is closed here too.
    """
    try:
        connection.unbind()
    except Exception:  # noqa: BLE001 - the unbind request could not be sent: close the socket anyway
        pass
    sock = getattr(connection, "socket", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
