"""The only place where untrusted XML is parsed.

The parser refuses what has no business in a SOAP message and has a history of
attacks: a DTD (entity expansion, billion laughs, XXE to files or URLs), network
access, oversized input, deep nesting, and a shape no client sends (too many
attributes or namespace declarations on one element, too many elements): every
later step, from a lookup to canonicalization, costs in proportion to these,
so they are bounded here, before anything else reads the tree. Comments are dropped while parsing so
that a comment can never split a text node (the CVE-2017-11427 family: ``ad<!---->min``
is read as ``admin``, the same text the signature covered under exclusive c14n,
which does not sign comments).
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from .errors import MalformedMessage

#: Default cap on a request body (bytes). RSTs and SOAP calls carrying one
#: assertion are a few kilobytes; a megabyte leaves room for real payloads.
DEFAULT_MAX_BYTES = 1024 * 1024
#: Default cap on element nesting. SOAP + WS-Security + SAML stays below 20.
DEFAULT_MAX_DEPTH = 64
#: Default caps on the shape of a message. The real messages in tests/data/vectors/ (RSTs, RSTRs,
#: protected requests, faults, metadata and WSDL of AD FS, WIF, MSAL, ADAL, zeep, CXF, Rampart,
#: PicketLink) reach at most 5 attributes and 17 namespace declarations on one element, and 599
#: elements in one document (AD FS metadata; a request or response stays below 160).
DEFAULT_MAX_ATTRIBUTES = 64
#: Namespace declarations on one element (``xmlns`` and ``xmlns:p`` attributes, redundant ones too).
DEFAULT_MAX_NAMESPACES = 64
#: Elements in one document: about one per 21 bytes of a 1 MiB body.
DEFAULT_MAX_ELEMENTS = 50_000
#: The most namespaces in scope at one element of a document within the default caps: what a
#: standalone copy of a subtree (lxml writes every namespace in scope on its root) may declare.
MAX_IN_SCOPE = DEFAULT_MAX_DEPTH * DEFAULT_MAX_NAMESPACES

_local = threading.local()
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DOCTYPE_TEXT = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_WIDE_ENCODINGS = (  # byte-order marks and the zero-byte patterns of "<?" (XML 1.0 appendix F)
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
    (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
)


class _NothingResolver(etree.Resolver):
    """Answers every external reference (DTD, entity, XInclude) with nothing.

    load_dtd=False and no_network=True do not stop libxml2 from opening a local
    file named by an external DTD subset in every case; this resolver makes sure
    no file and no URL is ever read.
    """

    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]
        return self.resolve_string("", context, base_url=None)


def _declares_doctype(data: bytes) -> bool:
    if _DOCTYPE.search(data):
        return True
    if data[:1] == b"<" and data[1:2] != b"\x00":
        return False  # ASCII-compatible from the first byte: the search above saw every character
    for mark, codec in _WIDE_ENCODINGS:
        if data.startswith(mark):
            return bool(_DOCTYPE_TEXT.search(data.decode(codec, errors="ignore")))
    return False


_DEPTH_PROBES: dict[int, etree.XPath] = {}


def _too_deep(root: etree._Element, max_depth: int) -> bool:
    """Whether any element lies deeper than ``max_depth`` (the root is at depth 1).

    One XPath location path of ``max_depth + 1`` child steps, evaluated in C:
    a walk in Python costs more than the parse itself. libxml2 refuses anything
    deeper than 256 levels while parsing (no XML_PARSE_HUGE), so this probe
    never runs on a pathological tree.
    """
    probe = _DEPTH_PROBES.get(max_depth)
    if probe is None:
        probe = _DEPTH_PROBES[max_depth] = etree.XPath("boolean(" + "/*" * (max_depth + 1) + ")")
    return bool(probe(root))


_COUNT_ELEMENTS = etree.XPath("count(//*)")
_MANY_ATTRIBUTES = etree.XPath("boolean(//*[count(@*) > $most])")


def _declarations_over(root: etree._Element, most: int) -> bool:
    """Whether any element carries more than ``most`` namespace declarations.

    The XPath data model has no node for a declaration (only the namespaces
    in scope, which libxml2 collects per element at a quadratic cost), so the
    declarations are counted from lxml's walk, which reports each one of an
    element (``start-ns``) just before the element itself (``start``).
    """
    run = 0
    for event, _ in etree.iterwalk(root, events=("start-ns", "start")):
        if event == "start":
            run = 0
        else:
            run += 1
            if run > most:
                return True
    return False


def _check_shape(root: etree._Element, data: bytes, *, byte_counts: bool, less_thans: int, max_attributes: int,
                 max_namespaces: int, max_elements: int) -> None:
    """Refuse a tree over the caps on elements, attributes and namespace declarations per element.

    In a document read as UTF-8 (``byte_counts``) each element has its own
    ``<``, each attribute its ``=`` and each declaration the bytes ``xmlns``,
    so counts of those bytes bound the three measures from above: the tree
    is walked only for a count over its cap, which no real message reaches.
    The element count goes first, so that the other walks are bounded by it.
    """
    if (not byte_counts or less_thans > max_elements) and _COUNT_ELEMENTS(root) > max_elements:
        raise MalformedMessage(f"more than {max_elements} elements",
                               reason="The request has too many elements.")
    if (not byte_counts or data.count(b"=") > max_attributes) and _MANY_ATTRIBUTES(root, most=max_attributes):
        raise MalformedMessage(f"an element has more than {max_attributes} attributes",
                               reason="The request has too many attributes on one element.")
    if (not byte_counts or data.count(b"xmlns") > max_namespaces) and _declarations_over(root, max_namespaces):
        raise MalformedMessage(f"an element has more than {max_namespaces} namespace declarations",
                               reason="The request has too many namespace declarations on one element.")


def _parser(*, utf8: bool = False) -> etree.XMLParser:
    """The hardened parser of this thread; with ``utf8``, the one without the resolver.

    The resolver costs about 6 us a parse. It is left out only for a document
    :func:`_is_utf8` proved to be UTF-8: then the byte scan for ``<!DOCTYPE`` /
    ``<!ENTITY`` sees every character, so a document that passed it declares
    nothing that could name a file or URL. A document in another encoding (one
    where the scan could miss a declaration, e.g. UTF-7) keeps the resolver.
    """
    # lxml parser objects must not be shared between threads (gthread workers).
    name = "utf8_parser" if utf8 else "parser"
    parser = getattr(_local, name, None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            collect_ids=False,
        )
        if not utf8:
            parser.resolvers.add(_NothingResolver())
        setattr(_local, name, parser)
    return parser


_DECLARED_ENCODING = re.compile(rb"<\?xml[^>]*?\sencoding\s*=\s*[\"']([^\"']*)[\"']")


def _declaration(data: bytes) -> tuple[bool, bool]:
    """Whether libxml2 reads ``data`` as UTF-8 (no UTF-16/32 marks, no other encoding declared),
    and whether it is XML 1.0 (no declaration, or one saying so)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.startswith(b"<"):
        return False, False  # a wide encoding, or leading junk the parser refuses anyway
    if not data.startswith(b"<?xml"):
        return data[1:2] != b"\x00", True
    end = data.find(b"?>")
    if end < 0:
        return False, False
    declaration = data[:end]
    verdict = _DECLARATIONS.get(declaration)
    if verdict is None:  # clients send the same declaration every time: read each one once
        encoding = _DECLARED_ENCODING.match(declaration)
        version = _DECLARED_VERSION.match(declaration)
        verdict = (encoding is None or encoding.group(1).lower() in (b"utf-8", b"utf8"),
                   version is not None and version.group(1) == b"1.0")
        if len(_DECLARATIONS) >= 64:
            _DECLARATIONS.clear()
        _DECLARATIONS[declaration] = verdict
    return verdict


_DECLARATIONS: dict[bytes, tuple[bool, bool]] = {}
_DECLARED_VERSION = re.compile(rb"<\?xml\s+version\s*=\s*[\"']([^\"']*)[\"']")


def _is_utf8(data: bytes) -> bool:
    """Whether libxml2 will read ``data`` as UTF-8: no UTF-16/32 marks, no other encoding declared."""
    return _declaration(data)[0]


def is_utf8_xml10(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 XML 1.0, so that a run of its bytes means what it means alone."""
    utf8, xml10 = _declaration(data)
    return utf8 and xml10


def parse(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES,
    max_namespaces: int = DEFAULT_MAX_NAMESPACES,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> etree._Element:
    """Parse untrusted bytes into an element, or raise :class:`MalformedMessage`.

    ``max_depth`` bounds nesting, ``max_attributes`` and ``max_namespaces``
    the attributes and namespace declarations of each element, and
    ``max_elements`` the elements of the document.
    """
    if len(data) > max_bytes:
        raise MalformedMessage(
            f"body of {len(data)} bytes exceeds the limit of {max_bytes}",
            reason="The request body is too large.",
        )
    if _declares_doctype(data):
        raise MalformedMessage("document type declaration or entity present", reason="DTDs are not allowed.")
    utf8 = _is_utf8(data)
    try:
        root = etree.fromstring(data, parser=_parser(utf8=utf8))
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedMessage(f"XML syntax error: {exc}") from None
    if not utf8:  # in UTF-8 the scan above saw every character; elsewhere ask the parser too
        docinfo = root.getroottree().docinfo
        # libxml2 makes an internal subset node for any DOCTYPE, even one with only an external id
        if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise MalformedMessage("document type declaration present", reason="DTDs are not allowed.")
    # No entity reference can remain: with no DTD (refused above) an entity other
    # than the five predefined ones is a well-formedness error libxml2 raises on.
    # An element at depth d has d - 1 ancestors, each with a start and an end tag, and
    # its own start tag: 2d - 1 "<" at least. So few "<" prove the depth without a probe
    # (in UTF-8 only: elsewhere a "<" need not be the byte 0x3C).
    less_thans = data.count(b"<")
    if (not utf8 or less_thans > 2 * max_depth) and _too_deep(root, max_depth):
        raise MalformedMessage(
            f"element nesting deeper than {max_depth}", reason="The request is nested too deeply."
        )
    _check_shape(root, data, byte_counts=utf8, less_thans=less_thans, max_attributes=max_attributes,
                 max_namespaces=max_namespaces, max_elements=max_elements)
    return root


def qname(ns: str, local: str) -> str:
    """Clark notation ``{ns}local``; an unqualified name for the empty namespace (lxml's own form)."""
    return f"{{{ns}}}{local}" if ns else local


def children(parent: etree._Element, ns: str | tuple[str, ...], local: str) -> list[etree._Element]:
    """Direct element children named ``local`` in any of the namespaces ``ns``."""
    # iterchildren filters by tag in C; comments and processing instructions never match a name
    if isinstance(ns, str):
        return list(parent.iterchildren(qname(ns, local)))
    return list(parent.iterchildren(*[qname(n, local) for n in ns]))


def child(parent: etree._Element, ns: str | tuple[str, ...], local: str) -> etree._Element | None:
    """The single direct child named ``local``; None if absent.

    Two or more are refused: a duplicated element is how wrapping attacks and
    parser differentials start, and no profile we implement allows it.
    """
    if isinstance(ns, str):
        return only(parent, qname(ns, local))
    found = children(parent, ns, local)
    if len(found) > 1:
        raise MalformedMessage(f"{len(found)} {local} elements where at most one is allowed")
    return found[0] if found else None


def only(parent: etree._Element, tag: str) -> etree._Element | None:
    """:func:`child` for a Clark name computed once (the request path's form)."""
    found = list(parent.iterchildren(tag))
    if len(found) > 1:
        raise MalformedMessage(f"{len(found)} {etree.QName(tag).localname} elements where at most one is allowed")
    return found[0] if found else None


def text(element: etree._Element | None, *, strip: bool = True) -> str:
    """The whole text of a leaf element, stripped; child elements are refused.

    Reading ``element.text`` alone is how comment-truncation bugs happen; here a
    leaf's text is one node (comments were removed at parse) and an element with
    element children is not a leaf.
    """
    if element is None:
        return ""
    if len(element) == 0:  # no child node of any kind: .text is the whole text
        value = element.text or ""
    else:
        if any(isinstance(c.tag, str) for c in element):
            raise MalformedMessage(f"{element.tag} must contain text only")
        value = "".join(str(t) for t in element.itertext())
    return value.strip() if strip else value


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def namespace(element: etree._Element) -> str:
    return etree.QName(element).namespace or ""
