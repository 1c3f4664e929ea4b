"""What a WS-Trust binding is to the STS: the request it receives, the contract it keeps.

WS-Trust 1.3 section 4 names the bindings (Issue, Renew, Cancel, Validate);
each is told apart by its ``wst:RequestType`` URI, one per WS-Trust version,
and comes with its own actions. The STS finds who is asking, then hands the
request to the binding registered for its RequestType.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lxml import etree

from .. import soap, wstrust
from .._log import UNKNOWN_REQUEST, RequestInfo
from ..model import Principal, StsSettings


@dataclass(frozen=True)
class TrustCall:
    """One authenticated WS-Trust request, as a binding receives it."""

    #: The parsed SOAP request (version, headers, action).
    envelope: soap.Envelope
    #: The ``wst:RequestSecurityToken`` element of the body.
    rst: etree._Element
    #: The WS-Trust version the request speaks; the answer speaks it too.
    dialect: wstrust.Dialect
    #: Who is asking, authenticated and holding an allowed role.
    principal: Principal
    #: The STS settings in force for this request.
    settings: StsSettings
    #: The STS clock's reading for this request.
    now: datetime
    #: The request's wsa:MessageID, which the reply's wsa:RelatesTo echoes (None: no addressing headers).
    relates_to: soap.RelatesTo | None
    #: The client's address and the request id, which the binding's log lines end with.
    request: RequestInfo = UNKNOWN_REQUEST
    #: Whether the request came over TLS, from a loopback peer or in-process (what
    #: :func:`~wstrust_wsgi.sts.authentication.protected_transport` says): PasswordText may cross it, and a
    #: proof key may be sent in clear over it.
    protected: bool = False


class Binding(Protocol):
    """Answers the requests of one or more RequestType URIs (typically one per WS-Trust version)."""

    #: The ``wst:RequestType`` URIs this binding answers.
    request_types: tuple[str, ...]
    #: The request actions (SOAPAction, Content-Type action or wsa:Action) it accepts.
    actions: tuple[str, ...]

    def answer(self, call: TrustCall) -> bytes:
        """The whole SOAP response envelope, or raise a :class:`~wstrust_wsgi.errors.SoapFault`."""
        ...


def uris(binding: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(RequestType URIs, actions) of a WS-Trust binding name (``"Validate"``) in every WS-Trust version."""
    dialects = list(wstrust.DIALECTS.values())
    return tuple(d.request_type(binding) for d in dialects), tuple(d.action(binding) for d in dialects)
