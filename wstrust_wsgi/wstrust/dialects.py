"""The WS-Trust versions as data: namespace, action and RequestType URIs, bearer KeyTypes.

WS-Trust 1.3 (http://docs.oasis-open.org/ws-sx/ws-trust/200512/ws-trust-1.3-os.html)
and the February 2005 submission (http://schemas.xmlsoap.org/ws/2005/02/trust)
differ in data only, so each is one frozen :class:`Dialect`; an answer always
uses the request's dialect. WS-Trust 1.4 keeps the 1.3 namespace for the core
messages and adds its own (``ns.WST14``) for new elements; its bearer KeyType
is already accepted by the 1.3 dialect, and its further values land here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .. import _xml, ns

#: The bindings of WS-Trust 1.3 section 4 (and of the 2005 submission); each names
#: a RequestType URI and an action, ``<namespace>/<binding>`` and ``<namespace>/RST/<binding>``.
BINDINGS = ("Issue", "Renew", "Cancel", "Validate")


@dataclass(frozen=True)
class Dialect:
    """One WS-Trust version's wire facts."""

    name: str
    namespace: str
    issue_action: str
    issue_response_action: str
    request_type_issue: str
    bearer_key_types: tuple[str, ...]
    #: Whether answers are wrapped in a RequestSecurityTokenResponseCollection (1.3) or not (2005).
    collection: bool

    def action(self, binding: str) -> str:
        """The request action of a binding (``Issue``, ``Renew``, ...), e.g. ``.../RST/Validate``."""
        return f"{self.namespace}/RST/{binding}"

    def request_type(self, binding: str) -> str:
        """The RequestType URI of a binding (WS-Trust 1.3 section 3.1), e.g. ``.../200512/Validate``."""
        return f"{self.namespace}/{binding}"


WSTRUST13 = Dialect(
    "1.3", ns.WST13,
    issue_action=f"{ns.WST13}/RST/Issue",
    issue_response_action=f"{ns.WST13}/RSTRC/IssueFinal",
    request_type_issue=f"{ns.WST13}/Issue",
    bearer_key_types=(f"{ns.WST13}/Bearer", ns.WST14_BEARER),
    collection=True,
)
WSTRUST2005 = Dialect(
    "2005", ns.WST2005,
    issue_action=f"{ns.WST2005}/RST/Issue",
    issue_response_action=f"{ns.WST2005}/RSTR/Issue",
    request_type_issue=f"{ns.WST2005}/Issue",
    bearer_key_types=(ns.WST2005_NO_PROOF_KEY, f"{ns.WST13}/Bearer"),
    collection=False,
)
#: Every dialect by its namespace.
DIALECTS = {d.namespace: d for d in (WSTRUST13, WSTRUST2005)}


def dialect_of(element: etree._Element) -> Dialect | None:
    """The dialect of a ``RequestSecurityToken`` element; None for any other element."""
    if not isinstance(element.tag, str) or _xml.local_name(element) != "RequestSecurityToken":
        return None
    return DIALECTS.get(_xml.namespace(element))
