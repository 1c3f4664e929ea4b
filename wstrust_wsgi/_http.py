"""WSGI plumbing shared by the STS and the middleware: bounded body reads and responses."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from webob import Request, Response

from .errors import MalformedMessage

Environ = dict[str, Any]


def read_body(request: Request, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` of the body; a larger body is refused before it is read.

    The body is put back into ``wsgi.input`` so a wrapped app can still read it.
    """
    return read_environ_body(request.environ, max_bytes)


def read_environ_body(environ: Environ, max_bytes: int) -> bytes:
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
    response = Response(status=status, body=body)
    response.headers["Content-Type"] = content_type
    return response


def mount(path: str, app: Any) -> Any:
    """Serve ``app`` at exactly ``path`` (moved to SCRIPT_NAME); anything else is 404."""
    path = "/" + path.strip("/")

    def dispatch(environ: Environ, start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") != path:
            return plain(404, f"Nothing here; the endpoint is {path}.")(environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + path
        environ["PATH_INFO"] = ""
        return app(environ, start_response)

    return dispatch
