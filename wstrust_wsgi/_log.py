"""Log lines an operator can act on: who asked, which request, and one line per record.

Every ``issued:``, ``refused:`` and ``admitted:`` line of the STS and the
middleware ends with the request it is about::

    refused: FailedAuthentication: nonce replayed by 'admin' (client 203.0.113.7, request 5f0c1a2b3d4e5f60)

* **client**: ``REMOTE_ADDR``, the peer of the TCP connection. A proxy's
  ``X-Forwarded-For`` is believed only when that peer is one of the configured
  ``trusted_proxies``; the header is then read from the right, skipping
  trusted proxies, and the first address that is not one is the client (the
  entries further left were written by the client itself and prove nothing).
  Without ``trusted_proxies`` the header is ignored, so nobody can put an
  address of their choice into the log.
* **request**: the ``X-Request-ID`` a trusted proxy sent (letters, digits and
  ``._:-``, at most 64), so the line matches the proxy's access log; otherwise
  16 random hex digits. The wrapped app finds it in
  ``environ["wstrust_wsgi.request_id"]`` to log under the same id.

:func:`configure_logging` makes these lines appear, with time, process, level
and logger name, or as one JSON object per line (:class:`JsonFormatter`) for log
shippers. This module sits at the base tier: it knows WSGI environs and the
standard :mod:`logging`, nothing of SOAP.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import ConfigurationError

__all__ = ["REQUEST_ID_KEY", "JsonFormatter", "RequestInfo", "TrustedProxies", "configure_logging"]

#: The environ key holding the request id the log lines of this request carry.
REQUEST_ID_KEY = "wstrust_wsgi.request_id"

#: The text format: gunicorn's own, plus the logger's name.
TEXT_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
TEXT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Who sent one request, and the id its log lines carry."""

    client: str
    request_id: str

    def __str__(self) -> str:
        return f"client {self.client}, request {self.request_id}"

    @property
    def extra(self) -> dict[str, str]:
        """The ``extra=`` of a log call: the same two values as record attributes (JSON fields)."""
        return {"client": self.client, "request_id": self.request_id}


#: For a log line made outside any request (a binding called directly).
UNKNOWN_REQUEST = RequestInfo("-", "-")


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` and ``X-Request-ID`` are believed.

    :param proxies: IP addresses or networks (``10.0.0.1``, ``10.0.0.0/8``,
        ``::1``); none (the default): every header is ignored and the client
        is ``REMOTE_ADDR``.
    :raises ConfigurationError: an entry that is not an address or network, naming it.
    """

    def __init__(self, proxies: Iterable[str] = ()) -> None:
        if isinstance(proxies, str):
            proxies = [proxies]
        networks: list[_Network] = []
        for entry in proxies:
            try:
                networks.append(ipaddress.ip_network(entry.strip() if isinstance(entry, str) else entry,
                                                     strict=False))
            except (TypeError, ValueError):
                raise ConfigurationError(f"trusted_proxies: {entry!r} is not an IP address or network "
                                         "(such as 10.0.0.1 or 10.0.0.0/8)") from None
        self.networks: tuple[_Network, ...] = tuple(networks)

    def request_info(self, environ: dict[str, Any]) -> RequestInfo:
        """The client and request id of this request; the id is also put into ``environ``."""
        peer = environ.get("REMOTE_ADDR") or "-"
        trusted = bool(self.networks) and self._trusted(_address(peer))
        client = self._forwarded_client(environ, peer) if trusted else peer
        request_id = environ.get(REQUEST_ID_KEY)
        if not isinstance(request_id, str):
            sent = environ.get("HTTP_X_REQUEST_ID", "") if trusted else ""
            request_id = sent if _REQUEST_ID.fullmatch(sent) else os.urandom(8).hex()
            environ[REQUEST_ID_KEY] = request_id
        return RequestInfo(client, request_id)

    def _trusted(self, address: _Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def _forwarded_client(self, environ: Mapping[str, Any], peer: str) -> str:
        # Right to left: each trusted hop vouches for the one before it. A hop that
        # is not an address ends the walk at the last proxy that reported it.
        hops = [hop.strip() for hop in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        client = peer
        for hop in reversed([hop for hop in hops if hop]):
            address = _address(hop)
            if address is None:
                break
            client = str(address)
            if not self._trusted(address):
                break
        return client


def _address(text: str) -> _Address | None:
    """An IP address as proxies write it: bare, ``[v6]``, ``[v6]:port`` or ``v4:port``."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``process``, ``message``, ...

    ``client`` and ``request_id`` are fields of their own when the line is
    about a request (and left out of ``message``); ``exception`` holds a
    traceback. Newlines inside values are escaped, so one record is one line.
    Usable from :func:`logging.config.dictConfig` as
    ``{"()": "wstrust_wsgi.JsonFormatter"}``.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": message,
        }
        client, request_id = getattr(record, "client", None), getattr(record, "request_id", None)
        if isinstance(client, str) and isinstance(request_id, str):
            entry["message"] = message.removesuffix(f" ({RequestInfo(client, request_id)})")
            entry["client"], entry["request_id"] = client, request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str | int = "info", *, json: bool = False) -> None:
    """Show the package's log lines (``issued:``, ``refused:``, ``admitted:``, start-up).

    Call it once where your WSGI app is built, when nothing else configures
    logging (with your own ``logging.config``, give the ``wstrust_wsgi`` logger
    a level and, for JSON, :class:`JsonFormatter` instead). It sets the level
    of the ``wstrust_wsgi`` logger and gives it one handler, replacing the one
    an earlier call gave:

    * under gunicorn, lines go where gunicorn's own error log goes (stderr, or
      ``--error-logfile``, reopened with it on USR1), written under its lock so
      lines never interleave; handlers that are not streams (syslog) get the
      records as they are;
    * elsewhere, to stderr.

    :param level: ``"debug"``, ``"info"`` (the default: every issued, refused
        and admitted line), ``"warning"`` or ``"error"``, or a number.
    :param json: one JSON object per line (:class:`JsonFormatter`) instead of text.
    """
    logger = logging.getLogger("wstrust_wsgi")
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    formatter = JsonFormatter() if json else logging.Formatter(TEXT_FORMAT, TEXT_DATE_FORMAT)
    targets = logging.getLogger("gunicorn.error").handlers
    handlers: list[logging.Handler] = []
    for target in targets:
        handlers.append(_Beside(target, formatter) if isinstance(target, logging.StreamHandler) else target)
    if not handlers:
        handlers.append(_Beside(None, formatter))
    for old in [h for h in logger.handlers if isinstance(h, _Beside) or h in targets]:
        logger.removeHandler(old)
    for handler in handlers:
        logger.addHandler(handler)


class _Beside(logging.Handler):
    """Writes with its own format to another handler's stream (or stderr), under that handler's lock.

    Reading the target's stream at each record keeps following it when gunicorn
    reopens its log file.
    """

    def __init__(self, target: logging.StreamHandler[Any] | None, formatter: logging.Formatter) -> None:
        super().__init__()
        self._target = target
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            if self._target is None:
                sys.stderr.write(line)
                sys.stderr.flush()
                return
            self._target.acquire()
            try:
                stream = self._target.stream
                if stream is not None:
                    stream.write(line)
                    stream.flush()
            finally:
                self._target.release()
        except Exception:
            self.handleError(record)
