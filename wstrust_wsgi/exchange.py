"""The messages to and from the STS and the service, shown to a person or saved for a ticket.

The WSO2 page this project follows ends with "Request and response messages to
and from the STS". This module gives the client the same view:

- :class:`RecordingTransport` wraps any client :data:`~wstrust_wsgi.client.Transport`
  and reports each HTTP exchange, as an :class:`Exchange`, to a callback. It
  hands the inner transport the very bytes object it was given: recording never
  changes what is sent.
- :func:`mask` returns a *copy* of a message with its secrets replaced by
  :data:`MASK`: the value of every ``Password`` (PasswordText and
  PasswordDigest alike) and ``Nonce``, every ``BinarySecret`` (client and
  server entropy, symmetric proof keys), everything inside ``Entropy`` and
  ``RequestedProofToken`` but the ``ComputedKey`` algorithm URI, private key
  elements, and any PEM private key block in a text. Tokens and signatures are
  shown as they are: they are meant to travel, and a support engineer needs
  them whole to check them.
- :func:`describe` renders an exchange for reading, always masked; the XML is
  indented unless ``indent=False``. :class:`MessageFiles` writes each message
  twice, the exact bytes and a masked copy beside them.

Indentation is for display only, never for anything sent or verified: it adds
whitespace text nodes inside the elements, and a signed assertion's digest is
computed over its canonical form, text nodes included. An indented assertion
fails verification; the exact bytes (``--raw``, or the saved ``.xml`` file)
are what a verifier must be given.

How secrets are found: the message is parsed with the hardened parser
(:mod:`wstrust_wsgi._xml`), the secret elements are masked in that tree (a new
object, the bytes are never touched) and the tree is serialized again (same
XML information set; comments, which the parser drops, are gone). A message the
hardened parser refuses (not XML, an HTML error page, a truncated or DTD-bearing
document) is shown as text, with the same rules applied to its characters: the
content of any tag named like a secret element up to the next ``<`` and any PEM
private key block are masked, and so is every secret value learnt from the
request of the same exchange or given by the caller (the client's password).
Those literal values are also replaced in a parsed document that is not a SOAP
envelope (an XHTML error page echoing the request) and inside a SOAP Fault (a
reason quoting the password), but not elsewhere in an envelope: there the
structure says where secrets are, and replacing a password that happens to
equal the user name would hide the user name, the NameID and the role too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from lxml import etree

from . import _xml, ns
from .client import Transport
from .errors import MalformedMessage, TransportError

#: What a secret value is replaced with.
MASK = "**masked**"

#: Elements whose text is a secret, in any namespace (WS-Security ``wsse:Password``
#: and ``wsse:Nonce``; WS-Trust ``wst:BinarySecret``; an application's own
#: ``Password`` is masked too).
SECRET_ELEMENTS = frozenset({"Password", "Nonce", "BinarySecret"})
#: Elements all of whose text is secret: key material (WS-Trust entropy and proof
#: tokens, XKMS key pairs, any ``PrivateKey``).
SECRET_SUBTREES = frozenset({"Entropy", "RequestedProofToken", "PrivateKey", "RSAKeyPair"})
#: Inside a secret subtree, what names an algorithm rather than holding a key.
_NOT_SECRET = frozenset({"ComputedKey"})

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_SECRET_NAMES = "|".join(sorted(SECRET_ELEMENTS | SECRET_SUBTREES))
#: In text that is not XML: a start tag named like a secret element (any prefix), and its text up to the next "<".
_SECRET_TAG_TEXT = re.compile(rf"(<(?:[\w.-]+:)?(?:{_SECRET_NAMES})\b[^>]*(?<!/)>)([^<]*)")


@dataclass(frozen=True)
class Exchange:
    """One HTTP request the client sent and what came back.

    ``request`` and ``response`` are the exact bytes (or a masked copy, when
    :attr:`masked` says so). ``status`` is None when no answer came (connection
    refused, timeout): the request is still reported, which is often what a
    support ticket needs.
    """

    method: str
    url: str
    #: The headers that say how to read the request: Content-Type, SOAPAction (SOAP 1.1).
    request_headers: dict[str, str]
    request: bytes
    status: int | None
    response_content_type: str
    response: bytes
    masked: bool = False
    #: Why no answer came, when ``status`` is None.
    error: str = ""

    def masked_copy(self, secrets: Iterable[str] = ()) -> Exchange:
        """This exchange with both messages masked (see :func:`mask`).

        Values masked in the request are also masked wherever they appear in a
        response that is not XML (a server echoing the request in an error page).
        """
        if self.masked:
            return self
        given = {s for s in secrets if s}
        learnt: set[str] = set()
        request = mask(self.request, secrets=given, learnt=learnt)
        response = mask(self.response, secrets=given | learnt)
        return replace(self, request=request, response=response, masked=True)


def _mask_tree(root: etree._Element, learnt: set[str]) -> None:
    """Replace the secret texts of ``root``'s tree in place (``root`` is a parsed copy)."""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element).localname
        if name in SECRET_SUBTREES:
            for inner in element.iter():
                if isinstance(inner.tag, str) and etree.QName(inner).localname not in _NOT_SECRET:
                    _mask_text(inner, learnt)
        elif name in SECRET_ELEMENTS:
            _mask_text(element, learnt)
        else:
            if element.text and "PRIVATE KEY" in element.text:
                element.text = _PEM_PRIVATE_KEY.sub(MASK, element.text)
            for key, value in element.attrib.items():
                if "PRIVATE KEY" in value:
                    element.set(key, _PEM_PRIVATE_KEY.sub(MASK, value))
        if element.tail and "PRIVATE KEY" in element.tail:
            element.tail = _PEM_PRIVATE_KEY.sub(MASK, element.tail)


def _mask_text(element: etree._Element, learnt: set[str]) -> None:
    value = (element.text or "").strip()
    if value and value != MASK:  # an element inside a secret subtree is met twice
        learnt.add(value)
        element.text = MASK


def _replace_literals(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _mask_literals(elements: Iterable[etree._Element], secrets: Sequence[str]) -> None:
    """Replace the literal secret values in the texts and attributes of ``elements``."""
    for element in elements:
        if element.text:
            element.text = _replace_literals(element.text, secrets)
        if element.tail:
            element.tail = _replace_literals(element.tail, secrets)
        if isinstance(element.tag, str):
            for key, value in element.attrib.items():
                element.set(key, _replace_literals(value, secrets))


def _mask_plain(text: str, secrets: Sequence[str]) -> str:
    """Mask the text of a message that is not XML (see the module docstring)."""
    text = _PEM_PRIVATE_KEY.sub(MASK, text)
    text = _SECRET_TAG_TEXT.sub(lambda m: m.group(1) + (MASK if m.group(2).strip() else m.group(2)), text)
    return _replace_literals(text, secrets)


def _parsed(data: bytes) -> etree._Element | None:
    """The hardened parser's tree of ``data``, or None for what it refuses."""
    try:
        return _xml.parse(data)
    except MalformedMessage:
        return None


def mask(data: bytes, *, secrets: Iterable[str] = (), learnt: set[str] | None = None) -> bytes:
    """A copy of ``data`` with its secrets masked; ``data`` itself is bytes and stays as it is.

    :param secrets: literal values (e.g. the password) to mask in a message that is not XML, in XML
        that is not a SOAP envelope, and inside a SOAP Fault.
    :param learnt: if given, the secret values found in ``data`` are added to it.
    """
    learnt = learnt if learnt is not None else set()
    literal = sorted({s for s in secrets if s}, key=len, reverse=True)  # longest first: one may contain another
    root = _parsed(data) if data.strip() else None
    if root is None:
        return _mask_plain(data.decode("utf-8", "replace"), literal).encode("utf-8")
    _mask_tree(root, learnt)
    if literal:
        if root.tag not in _ENVELOPES:
            _mask_literals(root.iter(), literal)
        for fault in root.iter(*_FAULTS):
            _mask_literals(fault.iter(), literal)
    return etree.tostring(root, encoding="utf-8", xml_declaration=False)


_ENVELOPES = frozenset(_xml.qname(soap, "Envelope") for soap in (ns.SOAP11, ns.SOAP12))
_FAULTS = tuple(_xml.qname(soap, "Fault") for soap in (ns.SOAP11, ns.SOAP12))


def indented(data: bytes) -> str:
    """``data`` indented for reading when it is XML, else as text. For display only: see the module docstring."""
    root = _parsed(data) if data.strip() else None
    if root is None:
        return data.decode("utf-8", "replace")
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def describe(exchange: Exchange, *, indent: bool = True, secrets: Iterable[str] = ()) -> str:
    """An exchange for a person: request line, headers, envelope; then the status and the answer.

    Always masked. With ``indent=False`` the messages are shown as one line each
    (the masked copy's bytes).
    """
    shown = exchange.masked_copy(secrets)

    def body(data: bytes) -> str:
        if not data.strip():
            return "(empty body)"
        return indented(data) if indent else data.decode("utf-8", "replace")

    lines = [f">>> {shown.method} {shown.url}"]
    lines += [f"{name}: {value}" for name, value in shown.request_headers.items()]
    lines += ["", body(shown.request), ""]
    if shown.status is None:
        lines.append(f"<<< no answer from {shown.url}: {shown.error}")
    else:
        lines.append(f"<<< HTTP {shown.status} from {shown.url}")
        if shown.response_content_type:
            lines.append(f"Content-Type: {shown.response_content_type}")
        lines += ["", body(shown.response)]
    return "\n".join(lines).rstrip() + "\n"


#: The request headers an exchange keeps: the ones that say how to read the message.
SHOWN_HEADERS = ("Content-Type", "SOAPAction")


class RecordingTransport:
    """A transport that reports each exchange of the one it wraps to ``on_exchange``.

    :param transport: the transport that really sends (:class:`~wstrust_wsgi.client.UrllibTransport`,
        :class:`~wstrust_wsgi.client.WSGITransport`, ...).
    :param on_exchange: called once per exchange, after the answer came (or did not).
    :param masked: hand the callback masked copies instead of the exact bytes.
    :param secrets: literal values to mask besides the secret elements (see :func:`mask`).

    Usable wherever a transport is: ``StsClient(..., transport=RecordingTransport(...))``
    and ``call_service(..., transport=...)``. The method is always POST: a
    transport is only ever asked to POST a SOAP envelope.
    """

    def __init__(self, transport: Transport, on_exchange: Callable[[Exchange], object], *,
                 masked: bool = False, secrets: Iterable[str] = ()) -> None:
        self.transport = transport
        self.on_exchange = on_exchange
        self.masked = masked
        self.secrets = tuple(secrets)

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        kept = {name: headers[name] for name in SHOWN_HEADERS if name in headers}
        try:
            status, content_type, answer = self.transport(url, body, headers)
        except TransportError as exc:
            self._report(Exchange("POST", url, kept, body, None, "", b"", error=str(exc)))
            raise
        self._report(Exchange("POST", url, kept, body, status, content_type, answer))
        return status, content_type, answer

    def _report(self, exchange: Exchange) -> None:
        self.on_exchange(exchange.masked_copy(self.secrets) if self.masked else exchange)


@dataclass
class MessageFiles:
    """Writes each exchange as numbered files in ``directory``: exact bytes, and a masked copy beside them.

    ``01-request.xml`` is what was sent, byte for byte, ``01-request.masked.xml``
    the copy to attach to a ticket; ``02-response.xml`` and its masked copy
    follow, and so on. ``exchanges.txt`` lists each message's number, URL,
    status and headers. Numbering continues after the files already there, so
    two runs into one folder do not overwrite each other.
    """

    directory: Path
    secrets: Sequence[str] = ()
    _next: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)  # fails here, before anything is sent
        numbers = [int(p.name.split("-", 1)[0]) for p in self.directory.glob("[0-9]*-*.xml")
                   if p.name.split("-", 1)[0].isdigit()]
        self._next = max(numbers, default=0) + 1

    def __call__(self, exchange: Exchange) -> None:
        shown = exchange.masked_copy(self.secrets)
        index = []
        for kind, exact, masked in (("request", exchange.request, shown.request),
                                    ("response", exchange.response, shown.response)):
            if kind == "response" and exchange.status is None:
                index.append(f"{self._next:02d} no answer: {exchange.error}")
                self._next += 1
                continue
            stem = f"{self._next:02d}-{kind}"
            (self.directory / f"{stem}.xml").write_bytes(exact)
            (self.directory / f"{stem}.masked.xml").write_bytes(masked)
            if kind == "request":
                headers = "; ".join(f"{k}: {v}" for k, v in exchange.request_headers.items())
                index.append(f"{stem}.xml  {exchange.method} {exchange.url}  {headers}")
            else:
                index.append(f"{stem}.xml  HTTP {exchange.status}  Content-Type: {exchange.response_content_type}")
            self._next += 1
        with open(self.directory / "exchanges.txt", "a", encoding="utf-8") as listing:
            listing.write("\n".join(index) + "\n")


def token_text(assertion: bytes, *, indent: bool) -> str:
    """The issued token for a person: indented, or its exact bytes on one line (the form to verify)."""
    return indented(assertion) if indent else assertion.decode("utf-8", "replace")


# ----------------------------------------------------------------- the command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--show-messages``, ``--save-messages DIR`` and ``--raw`` for the ``client`` command."""
    parser.add_argument("--show-messages", action="store_true",
                        help="print each request and response (secrets masked, XML indented)")
    parser.add_argument("--save-messages", metavar="DIR",
                        help="write each message to DIR: the exact bytes, and a masked copy beside them")
    parser.add_argument("--raw", action="store_true",
                        help="print the token and messages as one line each instead of indented "
                             "(the token's exact bytes, the form a verifier needs)")


def transport_from_args(args: argparse.Namespace, transport: Transport, *, secrets: Sequence[str] = (),
                        out: TextIO | None = None) -> Transport:
    """``transport``, recording to the screen and/or files as the parsed ``args`` ask (else unchanged)."""
    sinks: list[Callable[[Exchange], object]] = []
    if getattr(args, "save_messages", None):
        sinks.append(MessageFiles(Path(args.save_messages), secrets))
    if getattr(args, "show_messages", False):
        indent = not getattr(args, "raw", False)

        def show(exchange: Exchange) -> None:
            print(describe(exchange, indent=indent, secrets=secrets), file=out or sys.stdout)

        sinks.append(show)
    if not sinks:
        return transport

    def report(exchange: Exchange) -> None:
        for sink in sinks:
            sink(exchange)

    return RecordingTransport(transport, report)


def token_text_from_args(args: argparse.Namespace, assertion: bytes, *, out: TextIO | None = None) -> str:
    """The token as the client prints it: indented on a terminal, one line with ``--raw`` or into a pipe."""
    stream = out or sys.stdout
    return token_text(assertion, indent=not getattr(args, "raw", False) and stream.isatty())


__all__ = [
    "MASK", "Exchange", "MessageFiles", "RecordingTransport", "add_arguments", "describe", "indented",
    "mask", "token_text", "token_text_from_args", "transport_from_args",
]
