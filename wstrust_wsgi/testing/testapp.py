""":class:`SoapTestApp`: WebTest's ``TestApp`` with a ``post_soap`` method for services that want a token.

WebTest is a test extra (``pip install 'wstrust-wsgi[test]'``); this module is
the only part of the kit that needs it, and importing it without WebTest
fails with one sentence saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from ..client import IssuedToken
from ..errors import RemoteFault
from .messages import describe_fault, read_answer, soap_request

try:
    import webtest
except ImportError as missing:  # the message a user sees instead of a bare ModuleNotFoundError
    raise ImportError(
        "wstrust_wsgi.testing.SoapTestApp needs WebTest, which is a test extra: "
        "pip install 'wstrust-wsgi[test]' (or pip install webtest)", name=missing.name,
    ) from missing

#: Where the package logs why it refused a request (the middleware, the STS).
_PACKAGE_LOGGER = "wstrust_wsgi"


@dataclass(frozen=True)
class SoapResult:
    """What :meth:`SoapTestApp.post_soap` got back.

    For a SOAP answer exactly one of :attr:`body` and :attr:`fault` is set.
    """

    #: WebTest's response (status, headers, body).
    response: Any
    #: The answer's Body's first element (the operation's result), unless it is a fault.
    body: etree._Element | None
    #: The fault as a client reads it: ``local_code`` (``InvalidSecurityToken``), ``code``, ``reason``.
    fault: RemoteFault | None
    #: What the package logged while answering, at WARNING and above: the precise reason of a
    #: refusal that the client's short fault reason leaves out (``refused: InvalidSecurityToken: ...``).
    server_log: tuple[str, ...] = field(default=())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def _server_log() -> Iterator[list[str]]:
    """The package's log lines written meanwhile (the records still reach every other handler)."""
    handler = _Collect()
    logger = logging.getLogger(_PACKAGE_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


class SoapTestApp(webtest.TestApp):  # type: ignore[misc]  # webtest ships no type hints
    """A WebTest ``TestApp`` (every ``get``/``post``/... still there) that also posts SOAP with a token.

    ::

        service = SoapTestApp(protected_app)
        result = service.post_soap("/soap", b"<Ping xmlns='urn:example'/>", token=tokens.mint("alice"))
        assert result.body.tag == "{urn:example}PingResponse"
        refused = service.post_soap("/soap", b"<Ping xmlns='urn:example'/>", token=tokens.expired(),
                                    expect_fault="MessageExpired")

    Like WebTest's own status check, :meth:`post_soap` fails the test itself
    when the answer is not the one expected, with the fault, its HTTP status
    and the server's log lines (the precise reason) in the message.
    """

    def post_soap(
        self,
        path: str,
        payload: etree._Element | bytes | str,
        *,
        token: IssuedToken | bytes | None = None,
        soap_version: str = "1.1",
        action: str = "",
        headers: Mapping[str, str] | None = None,
        expect_fault: bool | str = False,
        extra_environ: Mapping[str, str] | None = None,
    ) -> SoapResult:
        """POST ``payload`` in a SOAP envelope (see :func:`~wstrust_wsgi.testing.soap_request`) to ``path``.

        :param expect_fault: False (the default): a fault or a non-SOAP answer
            fails the test. True: anything but a fault fails it. A fault code
            (``"InvalidSecurityToken"``, compared with the fault's local code):
            any other answer fails it.
        :raises AssertionError: the answer was not the one expected; the message
            says what came back and what the server logged.
        """
        __tracebackhide__ = True  # pytest: the failure is the test's line, not the kit's
        request = soap_request(token, payload, soap_version=soap_version, action=action)
        sent = dict(request.headers)
        content_type = sent.pop("Content-Type")
        sent.update(headers or {})
        with _server_log() as log:
            response = self.post(path, params=request.body, headers=sent, content_type=content_type,
                                 expect_errors=True, extra_environ=dict(extra_environ or {}))
        answer = read_answer(response.status_int, response.headers.get("Content-Type", ""), response.body)
        result = SoapResult(response, answer.body, answer.fault, tuple(log))
        failure = _unexpected(path, result, answer.problem, expect_fault)
        if failure is not None:
            raise AssertionError(failure)
        return result


def _unexpected(path: str, result: SoapResult, problem: str | None, expect_fault: bool | str) -> str | None:
    """Why ``result`` is not what the test expected, in a few lines; None when it is."""
    if expect_fault is False and result.body is not None:
        return None
    if expect_fault is not False and result.fault is not None:
        if expect_fault is True or result.fault.local_code == expect_fault:
            return None
    wanted = ("a result" if expect_fault is False else "a SOAP fault" if expect_fault is True
              else f"the fault {expect_fault}")
    if result.fault is not None:
        got = f"a SOAP fault\n  fault:      {describe_fault(result.fault)}"
    elif result.body is not None:
        text = etree.tostring(result.body, encoding="unicode")
        got = f"a result (HTTP {result.response.status_int})\n  body:       {text[:300]}"
    else:
        got = f"something that is not SOAP\n  answer:     {problem}"
    lines = [f"POST {path}: expected {wanted}, the service answered {got}"]
    if result.server_log:
        lines.append("  server log: " + "\n              ".join(result.server_log))
    else:
        lines.append("  server log: (nothing at WARNING or above from wstrust_wsgi)")
    return "\n".join(lines)
