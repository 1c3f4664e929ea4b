"""The testing kit: call your own protected service from a test, with real tokens and no server.

::

    from wstrust_wsgi.testing import SoapTestApp, TokenFactory

    tokens = TokenFactory(audience="https://svc.example/soap", issuer="https://sts.example/sts")
    service = SoapTestApp(RelyingPartyMiddleware(app, audience=tokens.audience, issuer=tokens.issuer,
                                                 trusted_certs=tokens.trusted_certs))
    service.post_soap("/soap", b"<Ping xmlns='urn:example'/>", token=tokens.mint("alice", roles=["admin"]))

* :class:`TokenFactory` (:mod:`.tokens`): a throwaway key made once per
  process, signed SAML 2.0 and 1.1 tokens with any content, and the tokens a
  service must refuse (expired, not yet valid, wrong audience, wrong issuer,
  tampered, unsigned, untrusted).
* :func:`soap_request` (:mod:`.messages`): the body and headers a client posts.
* :class:`SoapTestApp` (:mod:`.testapp`): WebTest's ``TestApp`` with
  ``post_soap``; needs the ``test`` extra (WebTest), imported only when used.
* :class:`InProcessSts` (:mod:`.sts`): the real STS in-process, with real clients.
* :class:`SettableClock` (:mod:`.clock`).
* :mod:`.plugin`: the pytest fixtures ``wstrust_tokens``, ``wstrust_sts``,
  ``wstrust_client``, ``wstrust_clock`` (and the settings they share), loaded
  by pytest once the package is installed.

Nothing in the library imports this package (it is an entry point, tier 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clock import SettableClock
from .messages import SoapAnswer, SoapRequest, read_answer, soap_request
from .sts import DEFAULT_USERS, InProcessSts
from .tokens import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    DEFAULT_SUBJECT,
    WRONG_AUDIENCE,
    WRONG_ISSUER,
    TokenFactory,
    throwaway_key,
)

if TYPE_CHECKING:
    from .testapp import SoapResult, SoapTestApp

_NEEDS_WEBTEST = {"SoapResult", "SoapTestApp"}


def __getattr__(name: str) -> Any:
    """``SoapTestApp`` and ``SoapResult`` load WebTest on first use, so the rest works without it."""
    if name in _NEEDS_WEBTEST:
        from . import testapp  # raises ImportError naming the test extra when WebTest is missing

        return getattr(testapp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "DEFAULT_SUBJECT",
    "DEFAULT_USERS",
    "WRONG_AUDIENCE",
    "WRONG_ISSUER",
    "InProcessSts",
    "SettableClock",
    "SoapAnswer",
    "SoapRequest",
    "SoapResult",
    "SoapTestApp",
    "TokenFactory",
    "read_answer",
    "soap_request",
    "throwaway_key",
]
