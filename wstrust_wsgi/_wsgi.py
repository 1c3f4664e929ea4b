"""WSGI plumbing shared by every app of the package: types, bounded body reads, the answers.

The types are the standard ones of PEP 3333 as typeshed spells them
(``_typeshed.wsgi``, which exists only for type checkers). Every refusal a
SOAP endpoint sends goes through :func:`fault_answer`, so the STS and the
middleware log and answer a fault the same way. This module sits just above
:mod:`wstrust_wsgi.soap` (it renders faults with it) and below the roles.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from webob import Request, Response

from . import ns, soap
from ._checks import describe
from ._log import RequestInfo
from .errors import MalformedMessage, RequestFailed, SoapFault

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:  # only type checkers know _typeshed; at run time the names are plain aliases
    StartResponse = Any
    WSGIApplication = Any
    WSGIEnvironment = dict[str, Any]



def read_body(request: Request, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` of the body; a larger body is refused before it is read.

    The body is put back into ``wsgi.input`` so a wrapped app can still read it.
    """
    return read_environ_body(request.environ, max_bytes)


def read_environ_body(environ: WSGIEnvironment, max_bytes: int) -> bytes:
    """:func:`read_body` on a bare environ (the middleware's request path makes no Request object)."""
    declared = environ.get("CONTENT_LENGTH")
    try:
        length: int | None = int(declared) if declared else None
    except ValueError:
        length = None  # as WebOb: an unreadable Content-Length counts as absent
    if length is not None and length < 0:
        length = None
    if length is not None and length > max_bytes:
        raise MalformedMessage(
            f"Content-Length {length} exceeds the limit of {max_bytes}", reason="The request body is too large."
        )
    stream = environ["wsgi.input"]
    data = stream.read(length if length is not None else max_bytes + 1)
    if len(data) > max_bytes:
        raise MalformedMessage(f"body exceeds the limit of {max_bytes}", reason="The request body is too large.")
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    return data


def plain(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """A short plain-text answer for what is not SOAP at all (405, 415)."""
    response = Response(status=status, content_type="text/plain", charset="utf-8", body=(text + "\n").encode())
    for name, value in headers:
        response.headers[name] = value
    return response


def soap_response(status: int, content_type: str, body: bytes) -> Response:
    """A SOAP answer: the body as it is, under the Content-Type given."""
    response = Response(status=status, body=body)
    response.headers["Content-Type"] = content_type
    return response


def fault_answer(version: soap.SoapVersion, error: Exception, log: logging.Logger, *,
                 trust_ns: str = ns.WST13, request: RequestInfo | None = None) -> Response:
    """The answer to a request refused with ``error``, logged on ``log``.

    A :class:`SoapFault` is answered as itself (its client-safe reason) and
    its precise cause is logged; any other exception is an internal error: the
    client gets ``RequestFailed`` and the log the traceback (call this from
    the ``except`` block). ``trust_ns`` binds the ``wst`` prefix of a WS-Trust fault;
    ``request`` (client and request id) ends the log line.
    """
    about, extra = (f" ({request})", request.extra) if request is not None else ("", None)
    if isinstance(error, SoapFault):
        log.warning("refused: %s: %s%s%s", type(error).__name__, error.detail, describe(error), about, extra=extra)
        fault = error
    else:  # never a traceback to the client
        log.exception("refused: internal error%s", about, extra=extra)
        fault = RequestFailed("internal error")
    return soap_response(*soap.fault_response(version, fault, trust_ns=trust_ns))


def mount(path: str, app: WSGIApplication, *, subpaths: Iterable[str] = (),
          host_paths: Iterable[str] = ()) -> WSGIApplication:
    """Serve ``app`` at exactly ``path`` (moved to SCRIPT_NAME) and at ``path`` + each of ``subpaths``
    (left in PATH_INFO, e.g. the STS's ``/health``); anything else is 404.

    Each of ``host_paths`` is served from the host's root (AD FS publishes its
    federation metadata there): SCRIPT_NAME becomes ``path``, as for the
    app's own requests, and PATH_INFO the whole host path.
    """
    path = "/" + path.strip("/")
    below = frozenset("/" + sub.strip("/") for sub in subpaths)
    roots = frozenset(host_paths)

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        asked = environ.get("PATH_INFO", "").rstrip("/")
        if asked in roots:
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + path
            environ["PATH_INFO"] = asked
            return app(environ, start_response)
        rest = asked[len(path):] if asked.startswith(path) and path != "/" else asked
        if asked != path and rest not in below:
            return plain(404, f"Nothing here; the endpoint is {path}.")(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + path
        environ["PATH_INFO"] = "" if asked == path else rest
        return app(environ, start_response)

    return dispatch
