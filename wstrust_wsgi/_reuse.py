"""Reading a request's token apart from its envelope, and recognising it when it comes back.

A typical protected request is 4 KB, most of it the assertion (3 to 6 KB with
its certificate). The full path parses the envelope, serializes the assertion
out of it and parses that copy again to verify it standalone: the token is
parsed twice on first sight, and once more on every reuse. :class:`SeenTokens`
parses it once, and not at all on reuse, without trusting anything it has not
proved.

1. **Cutting.** :meth:`SeenTokens.cut` takes the bytes ``W`` from the first
   assertion start tag to the first matching end tag, and replaces them with a
   short placeholder element in a namespace random to this process. ``W`` is
   kept only if, parsed alone with the hardened parser, it is one element that
   declares every namespace it uses (so no prefix, default namespace or entity
   from outside can change it): every prefix it uses is declared in it (else
   it does not parse alone), and if any of its start tags is unprefixed, its
   own root declares the default namespace (as AD FS writes SAML 2.0:
   ``<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion">``), so that
   every unprefixed element is in a namespace ``W`` itself names. Its
   InclusiveNamespaces prefixes (if any) must be declared on its own root,
   and the document must be UTF-8 XML 1.0. The middleware parses the small
   remainder with the same parser and runs every envelope check on it
   (structure, mustUnderstand, the one Security header, wsu:Timestamp).
2. **Standing for the token.** The cut request stands for the real one only
   if the placeholder is exactly once in it, is an element (not text inside a
   comment, CDATA section or processing instruction), is the one token in the
   Security header, has only whitespace after it, and its depth plus ``W``'s
   stays within the depth limit (:meth:`SeenTokens.stands_for`). Then the
   parser was outside markup, in the Security header's content, right before
   ``W``; ``W`` is one balanced element that parses alike in any content
   position; so the original request parses to the same tree with ``W``'s
   element where the placeholder is. One thing about the context still
   matters to the full path: it canonicalizes the token with every namespace
   declared around it, and c14n refuses a relative namespace URI in scope; the
   declarations in scope at the placeholder must pass that test too. The
   middleware then verifies ``W``'s standalone tree, which is the copy the
   full path would have made, and so reaches the full path's verdict.
3. **Recognising.** A verified ``W`` is remembered with its cache key; a
   later request whose first assertion start tag begins the same bytes is
   cut the same way (:meth:`SeenTokens.splice`) without parsing ``W`` at
   all, and the token's cache entry is re-checked as on any reuse: the
   certificate's validity, the time window, the audience (replay detection,
   when configured, runs after this in the middleware).

4. **The rest of the message.** Two caps hold for the message as a whole
   only: the token's ID must be held by no other element (the full path
   checks the whole envelope), which :func:`_unique_id` checks on the cut
   request once the token is verified, refusing (FailedCheck) as the full
   path would; and the element cap of the hardened parser, which each part
   meets alone, so :meth:`FastAdmission.admit` cuts only a request too
   short to hold more elements, or with no more ``<`` than the cap.
   Per-element caps (attributes, namespace declarations) hold for the
   whole when they hold for both parts.

Anything else (no match, a changed byte, the placeholder elsewhere, any fault
in the cut envelope) sends the request down the full path, which decides as
if this module did not exist.

5. **Encrypted tokens** (``saml2:EncryptedAssertion``, ``xenc:EncryptedData``)
   are cut, checked and recognised the same way: a first-seen one is
   decrypted and verified by the middleware's
   :class:`~wstrust_wsgi._encrypted.EncryptedTokens` (one fault for every
   refusal, as on the full path), and remembered under the hash of its exact
   bytes, so a reused one is found by a byte comparison and a cache lookup,
   never decrypted again.

The middleware enters here once, through :meth:`FastAdmission.admit`; the
envelope checks it runs on a cut request are the middleware's own (passed in),
so the paths share every check rather than repeat them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import cast
from xml.sax.saxutils import escape

from lxml import etree

from . import _xml, ns
from ._encrypted import EncryptedTokens, is_encrypted_token
from .errors import MalformedMessage, SoapFault
from .saml import (ValidationPolicy, VerificationCache, VerifiedAssertion, check_unique_id, verify_standalone,
                   version_of)

#: The middleware's envelope checks: parse, mustUnderstand, the one Security header
#: and its Timestamp; the Security element, or a SoapFault.
SecurityCheck = Callable[[bytes, "str | None", datetime], etree._Element]

#: The first start tag of a token: a SAML assertion (either version) or an encrypted one; any
#: ASCII prefix. A token whose start tag this does not find first is never cut: the full path serves it.
_START = re.compile(rb"<((?:[A-Za-z_][A-Za-z0-9._-]*:)?)(Assertion|EncryptedAssertion|EncryptedData)[\s>/]")
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
_INCLUSIVE = etree.XPath(
    "//ds:Signature//ec:InclusiveNamespaces/@PrefixList", namespaces={"ds": ns.DS, "ec": ns.ALG_EXC_C14N}
)


class _Learned:
    __slots__ = ("wire", "key", "fits_at", "encrypted")

    def __init__(self, wire: bytes, key: bytes, fits_at: int, encrypted: bool) -> None:
        self.wire = wire  # the exact bytes of the assertion element
        self.key = key  # its VerificationCache key
        self.fits_at = fits_at  # the deepest placeholder depth its own depth was found to fit under
        self.encrypted = encrypted  # an encrypted token (its cache entry is EncryptedTokens')


class Splice:
    """A request with a token's bytes replaced by the placeholder element.

    ``key`` is the cache key of a remembered token (:meth:`SeenTokens.splice`);
    ``wire`` and ``alone`` are the token's bytes and their standalone parse
    for one seen the first time (:meth:`SeenTokens.cut`).
    """

    __slots__ = ("body", "key", "fits_at", "wire", "alone", "encrypted")

    def __init__(self, body: bytes, key: bytes, fits_at: int, wire: bytes = b"",
                 alone: etree._Element | None = None, encrypted: bool = False) -> None:
        self.body = body
        self.key = key
        #: The deepest placeholder depth at which the token's own depth is known to
        #: fit the limit (0: not known yet; :meth:`SeenTokens.stands_for` finds out).
        self.fits_at = fits_at
        self.wire = wire
        self.alone = alone
        self.encrypted = encrypted


#: An unprefixed start tag (not a comment, CDATA section, PI or end tag). A token
#: without one has every element prefixed, so in a namespace whatever the
#: context; a token with one must declare the default namespace on its own root
#: (read from its parse, never from these bytes: an attribute value may hold the
#: text ``xmlns="..."``). A match inside a comment or CDATA section only makes
#: the check stricter.
_UNPREFIXED_TAG = re.compile(rb"<(?![?!/])[^\s/>:]*[\s/>]")


@lru_cache(maxsize=64)
def _closing(prefix: bytes, local: bytes = b"Assertion") -> re.Pattern[bytes]:
    """The end tag of a token start tag with ``prefix`` (``b"saml:"`` or empty) and ``local`` name."""
    return re.compile(b"</" + re.escape(prefix) + local + rb"\s*>")


@lru_cache(maxsize=1000)
def _context_ok(in_scope: frozenset[tuple[str | None, str]]) -> bool:
    """Whether the full path could canonicalize a token under these in-scope namespaces.

    The full path serializes the token with every namespace declared
    around it, and libxml2's c14n refuses a relative or unparsable
    namespace URI anywhere in scope (a FailedCheck there). The same
    declarations are canonicalized here on an empty element, once per
    distinct set (clients send the same envelope shape every time).
    """
    declarations = b"".join(
        b" xmlns" + (b":" + prefix.encode() if prefix else b"") + b'="'
        + escape(uri, _ATTRIBUTE_ENTITIES).encode() + b'"'
        for prefix, uri in in_scope
    )
    try:
        etree.tostring(_xml.parse(b"<x" + declarations + b"/>", max_namespaces=_xml.MAX_IN_SCOPE),
                       method="c14n", exclusive=True)
    except (MalformedMessage, etree.C14NError, ValueError):
        return False
    return True


def _unique_id(cut: bytes, security: etree._Element, assertion_id: str) -> None:
    """Refuse (FailedCheck) a cut request in which any element holds the token's ID (the token itself is not in it).

    The cut request is UTF-8 (:meth:`SeenTokens.cut` and :meth:`SeenTokens.splice`
    checked it), so without a reference (``&``) an attribute value equal to an
    ID free of whitespace (which attribute-value normalization could produce)
    has that ID's very bytes: their absence proves the ID unique without a
    search of the tree, on nearly every request.
    """
    if assertion_id.encode() not in cut and b"&" not in cut and _WHITESPACE(assertion_id) is None:
        return
    check_unique_id(security, assertion_id)


_WHITESPACE = re.compile(r"[ \t\r\n]").search


class SeenTokens:
    """The exact bytes of tokens verified before, by the bytes of their start tag.

    :param max_entries: how many tokens to remember; when full, the older half
        is forgotten (the full path still serves them). With 0, first-seen
        tokens are still cut (:meth:`cut`) but none is remembered.
    """

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        namespace = "urn:wstrust-wsgi:verified-token:" + secrets.token_hex(16)
        #: The placeholder's Clark name: unguessable, so no request can carry it.
        self.tag = _xml.qname(namespace, "t")
        self._mark = namespace.encode()
        self._placeholder = b'<t xmlns="' + self._mark + b'"/>'
        self._by_start: dict[bytes, _Learned] = {}
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
        if not _xml.is_utf8_xml10(body):
            return None
        spliced = body[:start] + self._placeholder + body[start + len(learned.wire):]
        if spliced.count(self._mark) != 1:
            return None
        return Splice(spliced, learned.key, learned.fits_at, encrypted=learned.encrypted)

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
        if depth > splice.fits_at:
            # the token (depth up to max_depth - depth + 1) must fit below the placeholder's parent
            if splice.alone is None or _xml._too_deep(splice.alone, max_depth - depth + 1):
                return False
            splice.fits_at = depth
        return _context_ok(frozenset(parent.nsmap.items()))

    def cut(self, body: bytes, max_depth: int, placeholder_depth: int = 4) -> Splice | None:
        """``body`` with its first assertion replaced by the placeholder and that assertion parsed alone, or None.

        The token is parsed with the depth it has left below a placeholder at
        ``placeholder_depth`` (Envelope, Header, Security, token: 4), so that
        one probe checks both its own depth and the request's.
        """
        match = _START.search(body)
        if match is None or not _xml.is_utf8_xml10(body):
            return None
        start = match.start()
        end = _closing(match.group(1), match.group(2)).search(body, start)
        if end is None:
            return None
        wire = body[start:end.end()]
        spliced = body[:start] + self._placeholder + body[end.end():]
        if spliced.count(self._mark) != 1:
            return None
        try:
            alone = _xml.parse(wire, max_depth=max_depth - placeholder_depth + 1)
        except MalformedMessage:
            return None  # e.g. a prefix declared outside it, a nested assertion cut short, too deep
        declared = alone.nsmap  # the root's own declarations: it was parsed alone
        if None not in declared and _UNPREFIXED_TAG.search(wire):
            return None  # an unprefixed element would take the default namespace of the context
        for prefix_list in cast(list[str], _INCLUSIVE(alone)):
            if any(p not in declared for p in str(prefix_list).split()):
                return None  # its c14n would read a declaration from outside
        return Splice(spliced, b"", placeholder_depth, wire, alone, encrypted=is_encrypted_token(alone))

    def remember(self, splice: Splice, key: bytes) -> None:
        """Remember a cut token that passed verification, under its cache key."""
        if self.max_entries < 1:
            return
        learned = _Learned(splice.wire, key, splice.fits_at, splice.encrypted)
        with self._lock:
            if len(self._by_start) >= self.max_entries:
                self._by_start = dict(list(self._by_start.items())[len(self._by_start) // 2:])
            self._by_start[splice.wire[:splice.wire.index(b">") + 1]] = learned


class FastAdmission:
    """The middleware's way in for a token cut out of its request (first seen) or recognised (reused).

    :param security: the middleware's envelope checks (the full path runs the same).
    :param policy: what a token must satisfy.
    :param verified: the verification cache (None: off; first-seen tokens are still cut).
    :param max_entries: how many token bytes to remember.
    :param encrypted: the middleware's encrypted tokens (None: it has no decryption keys).
    :param plain: whether plain tokens may be admitted (not under ``require_encryption``).
    """

    def __init__(self, *, security: SecurityCheck, policy: ValidationPolicy, verified: VerificationCache | None,
                 max_entries: int, encrypted: EncryptedTokens | None = None, plain: bool = True) -> None:
        self._security = security
        #: What a token must satisfy; the middleware replaces it when the STS's keys roll.
        self.policy = policy
        self._verified = verified
        self._encrypted = encrypted
        self._plain = plain
        self.seen = SeenTokens(max_entries=max_entries)

    def admit(self, body: bytes, content_type: str | None, now: datetime) -> VerifiedAssertion | None:
        """The verified assertion, or None: the full path decides.

        Once the cut request is proved to stand for the real one and its token
        is verified, a second holder of the token's ID in the rest of the
        message is refused here, as the full path refuses it (FailedCheck);
        every other fault is left to the full path.
        """
        if len(body) > 4 * _xml.DEFAULT_MAX_ELEMENTS and body.count(b"<") > _xml.DEFAULT_MAX_ELEMENTS:
            # each part is parsed under the element cap, the whole only here: an element takes
            # 4 bytes at least ("<a/>") and one "<", so a short body or few "<" prove the whole
            # within the cap; otherwise the full path counts the elements
            return None
        verified = self.reused(body, content_type, now) if self._verified is not None else None
        return verified if verified is not None else self.first_seen(body, content_type, now)

    def cut_security(self, splice: Splice, content_type: str | None, now: datetime) -> etree._Element | None:
        """The cut request's Security header if it passes every envelope check with the placeholder
        as its one token; None otherwise."""
        try:
            security = self._security(splice.body, content_type, now)
        except SoapFault:
            return None  # the full path gives the fault, from the real request
        tokens = [el for el in security if isinstance(el.tag, str)  # an encrypted token counts: one token in all
                  and (el.tag == self.seen.tag or version_of(el) is not None or is_encrypted_token(el))]
        if len(tokens) == 1 and self.seen.stands_for(tokens[0], splice, _xml.DEFAULT_MAX_DEPTH):
            return security
        return None

    def first_seen(self, body: bytes, content_type: str | None, now: datetime) -> VerifiedAssertion | None:
        """Verify a token cut out of the request; None: use the full path.

        The token's standalone parse is the copy the full path would verify,
        so a fault raised by its verification is the full path's verdict.
        """
        splice = self.seen.cut(body, _xml.DEFAULT_MAX_DEPTH)
        if splice is None or splice.alone is None:
            return None
        if splice.encrypted:
            if self._encrypted is None:
                return None
        elif not self._plain or version_of(splice.alone) is None:
            return None
        security = self.cut_security(splice, content_type, now)
        if security is None:
            return None
        if self._encrypted is not None and splice.encrypted:
            key = self._encrypted.key_of(splice.wire)
            verified = self._encrypted.verify(splice.alone, now, key=key)
            if self._verified is not None:
                self.seen.remember(splice, key)
        elif self._verified is None:
            verified = verify_standalone(splice.alone, splice.wire, self.policy, now=now)
        else:
            key = hashlib.sha256(splice.wire).digest()
            verified = verify_standalone(splice.alone, splice.wire, self.policy, now=now, cache=self._verified,
                                         key=key)
            self.seen.remember(splice, key)
        _unique_id(splice.body, security, verified.assertion_id)
        return verified

    def reused(self, body: bytes, content_type: str | None, now: datetime) -> VerifiedAssertion | None:
        """The verified assertion if the request carries a remembered token in its place; None otherwise.

        None (and any fault on the way) sends the request on to the other
        paths, which alone may refuse it.
        """
        assert self._verified is not None
        splice = self.seen.splice(body)
        if splice is None:
            return None
        security = self.cut_security(splice, content_type, now)
        if security is None:
            return None
        try:
            if splice.encrypted:
                verified = self._encrypted.cached(splice.key, now) if self._encrypted is not None else None
            else:
                verified = self._verified.get(splice.key, self.policy, now) if self._plain else None
        except SoapFault:
            return None
        if verified is not None:
            _unique_id(splice.body, security, verified.assertion_id)
        return verified
