"""Recognising, in a request's bytes, a token the middleware has already verified.

Clients reuse a bearer token for its lifetime, copying the assertion's bytes
into every request. The :class:`~wstrust_wsgi.saml.VerificationCache` already
spares the signature work on a reused token, but the whole envelope (mostly the
assertion: 3 to 6 KB of a typical request) is still parsed on every request.
:class:`SeenTokens` spares that parse too, without trusting anything it has
not proved:

1. **Learning.** When a token is admitted for the second time by the full
   path, :meth:`SeenTokens.learn` cuts its exact bytes ``W`` out of the
   request and keeps them only if ``W`` alone is a well-formed element (parsed
   with the hardened parser) that declares every namespace it uses, puts every
   element in a namespace, and canonicalizes (exclusive c14n) exactly like the
   element the full path verified. Such bytes mean the same thing in any
   context: no prefix, default namespace or entity from outside can change them.
   A signature whose c14n lists InclusiveNamespaces prefixes not declared on
   ``W``'s root is not learned (its digest could depend on the context).
2. **Splicing.** For a later request whose first assertion start tag begins
   bytes equal to a learned ``W``, :meth:`SeenTokens.splice` replaces those
   bytes with a short placeholder element in a namespace random to this
   process. The middleware parses the small result with the same hardened
   parser and runs every envelope check on it (structure, mustUnderstand, the
   one Security header, wsu:Timestamp).
3. **Admitting.** The spliced request stands for the real one only if the
   placeholder is exactly once in it, is an element (not text inside a comment,
   CDATA section or processing instruction), is the one token in the Security
   header, the document is UTF-8 XML 1.0, and the placeholder's depth plus
   ``W``'s depth stays within the depth limit. Then the parser was outside
   markup, in the Security header's content, right before ``W``; ``W`` is one
   balanced element that parses alike in any content position; so the
   original request parses to the same tree with the verified element where
   the placeholder is. The token's cache entry is then re-checked as on any
   reuse: the certificate's validity, the time window, the audience (replay
   detection, when configured, runs after this in the middleware).

Anything else (no match, a changed byte, the placeholder elsewhere, any fault)
sends the request down the full path, which decides as if this module did not
exist. So this path may only ever say yes where the full path says yes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from typing import cast
from xml.sax.saxutils import escape

from lxml import etree

from . import _xml, ns
from .errors import MalformedMessage

#: The first start tag of a SAML assertion (either version; any ASCII prefix). A
#: token whose start tag this does not find first is simply never learned.
_START = re.compile(rb"<((?:[A-Za-z_][A-Za-z0-9._-]*:)?)Assertion[\s>/]")
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
_INCLUSIVE = etree.XPath(
    "//ds:Signature//ec:InclusiveNamespaces/@PrefixList", namespaces={"ds": ns.DS, "ec": ns.ALG_EXC_C14N}
)


_DECLARATION = re.compile(
    rb"<\?xml\s+version\s*=\s*(['\"])1\.0\1(?:\s+encoding\s*=\s*(['\"])(?i:utf-?8)\2)?"
    rb"(?:\s+standalone\s*=\s*(['\"])(?:yes|no)\3)?\s*\?>"
)
_PROLOGS: dict[bytes, bool] = {}


def _plain_prolog(body: bytes) -> bool:
    """Whether ``body`` is UTF-8 XML 1.0: no declaration (and no byte-order mark), or one saying so.

    Then the token's bytes mean in the request what they meant alone. Clients
    send the same declaration every time, so the answer is remembered.
    """
    if not body.startswith(b"<?xml"):
        return body.startswith(b"<") and body[1:2] != b"\x00"
    end = body.find(b"?>", 0, 256)
    if end < 0:
        return False
    declaration = body[:end + 2]
    verdict = _PROLOGS.get(declaration)
    if verdict is None:
        verdict = _DECLARATION.fullmatch(declaration) is not None
        if len(_PROLOGS) >= 64:
            _PROLOGS.clear()
        _PROLOGS[declaration] = verdict
    return verdict


class _Learned:
    __slots__ = ("wire", "key", "depth")

    def __init__(self, wire: bytes, key: bytes, depth: int) -> None:
        self.wire = wire  # the exact bytes of the assertion element
        self.key = key  # its VerificationCache key
        self.depth = depth  # its own element depth (the assertion alone is 1)


class Splice:
    """A request with a learned token's bytes replaced by the placeholder element."""

    __slots__ = ("body", "key", "depth")

    def __init__(self, body: bytes, key: bytes, depth: int) -> None:
        self.body = body
        self.key = key
        self.depth = depth


def _depth(root: etree._Element) -> int:
    deepest, stack = 1, [(root, 1)]
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in element if isinstance(child.tag, str))
    return deepest


class SeenTokens:
    """The exact bytes of tokens verified before, by the bytes of their start tag.

    :param max_entries: how many tokens to remember; when full, the older half
        is forgotten (the full path still serves them).
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        namespace = "urn:wstrust-wsgi:verified-token:" + secrets.token_hex(16)
        #: The placeholder's Clark name: unguessable, so no request can carry it.
        self.tag = _xml.qname(namespace, "t")
        self._mark = namespace.encode()
        self._placeholder = b'<t xmlns="' + self._mark + b'"/>'
        self._by_start: dict[bytes, _Learned] = {}
        self._contexts: dict[frozenset[tuple[str | None, str]], bool] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_start)

    def splice(self, body: bytes) -> Splice | None:
        """``body`` with a learned token replaced by the placeholder, or None."""
        match = _START.search(body)
        if match is None:
            return None
        start = match.start()
        end_of_tag = body.find(b">", start)
        learned = self._by_start.get(body[start:end_of_tag + 1])
        if learned is None or not body.startswith(learned.wire, start):
            return None
        if not _plain_prolog(body):
            return None
        spliced = body[:start] + self._placeholder + body[start + len(learned.wire):]
        if spliced.count(self._mark) != 1:
            return None
        return Splice(spliced, learned.key, learned.depth)

    def stands_for(self, placeholder: etree._Element, splice: Splice, max_depth: int) -> bool:
        """Whether ``placeholder`` (found in the parsed splice) proves the original request's shape.

        The caller has found it as the one token of the Security header
        (:meth:`splice` checked the document is UTF-8 XML 1.0); this checks
        the text after it, the depth budget and the namespaces in scope.
        """
        if placeholder.tag != self.tag or len(placeholder) or placeholder.text:
            return False
        if placeholder.tail and placeholder.tail.strip(" \t\r\n"):
            return False  # the full path serializes the token with its tail: text there makes it refuse
        parent = placeholder.getparent()
        if parent is None:
            return False
        depth, above = 2, parent.getparent()
        while above is not None:
            depth, above = depth + 1, above.getparent()
        if depth - 1 + splice.depth > max_depth:
            return False
        return self._context_ok(parent.nsmap)

    def _context_ok(self, in_scope: dict[str | None, str]) -> bool:
        """Whether the full path could canonicalize a token under these in-scope namespaces.

        The full path serializes the token with every namespace declared
        around it, and libxml2's c14n refuses a relative or unparsable
        namespace URI anywhere in scope (a FailedCheck there). The same
        declarations are canonicalized here on an empty element, once per
        distinct set (clients send the same envelope shape every time).
        """
        key = frozenset(in_scope.items())
        verdict = self._contexts.get(key)
        if verdict is None:
            declarations = b"".join(
                b" xmlns" + (b":" + prefix.encode() if prefix else b"") + b'="'
                + escape(uri, _ATTRIBUTE_ENTITIES).encode() + b'"'
                for prefix, uri in in_scope.items()
            )
            try:
                etree.tostring(_xml.parse(b"<x" + declarations + b"/>"), method="c14n", exclusive=True)
                verdict = True
            except (MalformedMessage, etree.C14NError, ValueError):
                verdict = False
            if len(self._contexts) >= 1000:
                self._contexts.clear()
            self._contexts[key] = verdict
        return verdict

    def learn(self, body: bytes, element: etree._Element, raw: bytes, max_depth: int) -> bool:
        """Remember the exact bytes of ``element`` (verified, parsed from ``body``) if they are self-contained.

        ``raw`` is the serialization the full path verified (its cache key is
        its SHA-256). Returns whether the token was learned.
        """
        match = _START.search(body)
        if match is None:
            return False
        start = match.start()
        closing = re.compile(b"</" + re.escape(match.group(1)) + rb"Assertion\s*>")
        end = closing.search(body, start)
        if end is None:
            return False
        wire = body[start:end.end()]
        try:
            alone = _xml.parse(wire, max_depth=max_depth)
        except MalformedMessage:
            return False  # e.g. a prefix declared outside it, or a nested assertion cut short
        if any(not isinstance(e.tag, str) or not e.tag.startswith("{") for e in alone.iter(etree.Element)):
            return False  # an element in no namespace would change meaning under a default namespace
        for prefix_list in cast(list[str], _INCLUSIVE(alone)):
            if any(p and p not in (alone.nsmap or {}) for p in str(prefix_list).split()):
                return False
        try:
            same = (etree.tostring(alone, method="c14n", exclusive=True)
                    == etree.tostring(element, method="c14n", exclusive=True))
        except etree.C14NError:
            return False
        if not same:
            return False
        learned = _Learned(wire, hashlib.sha256(raw).digest(), _depth(alone))
        with self._lock:
            if len(self._by_start) >= self.max_entries:
                self._by_start = dict(list(self._by_start.items())[len(self._by_start) // 2:])
            self._by_start[wire[:wire.index(b">") + 1]] = learned
        return True
