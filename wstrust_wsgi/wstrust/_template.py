"""A serialized envelope with named holes, filled per message: how the STS writes its answers.

The fixed bytes are never written by hand (house style: no XML from string
formatting): they are lxml's own serialization of a tree holding
:meth:`EnvelopeTemplate.hole` where each variable value goes, so a template
cannot drift from the tree it was made from. Values are escaped exactly as
lxml escapes them, which ``tests/wstrust/test_wstrust.py`` checks against lxml for
every code point. Why the answer is a template at all: ``bench/README.md``.
"""

from __future__ import annotations

import re

#: Characters XML 1.0 cannot carry (section 2.2, ``Char``); lxml refuses them with this ValueError.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_XML_MESSAGE = "All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters"
#: U+E000 (private use) brackets a hole's name in a template's source; no fixed text of ours holds it.
_HOLE_MARK = "\ue000"
_HOLE = re.compile(_HOLE_MARK.encode() + rb"(\w+)" + _HOLE_MARK.encode())
#: How a template hole is filled.
_TEXT, _ATTRIBUTE, _RAW = 0, 1, 2


def _escape_text(value: str) -> bytes:
    """``value`` as lxml serializes element text: ``& < >`` and CR as references."""
    if _NOT_XML.search(value):
        raise ValueError(_NOT_XML_MESSAGE)
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;").encode("utf-8"))


def _escape_attribute(value: str) -> bytes:
    """``value`` as lxml serializes a double-quoted attribute: also ``"`` and TAB, LF, CR as references.

    The whitespace references matter: attribute-value normalization (XML 1.0
    section 3.3.3) would turn a literal TAB, LF or CR into a space.
    """
    if _NOT_XML.search(value):
        raise ValueError(_NOT_XML_MESSAGE)
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;").encode("utf-8"))


class EnvelopeTemplate:
    """A serialized envelope with named holes, filled per message.

    ``serialized`` is :func:`wstrust_wsgi.soap.envelope`'s output for a tree
    holding :meth:`hole` as each variable text or attribute value. Values are
    escaped exactly as lxml escapes them (text: ``& < >`` and CR; attributes:
    also ``"``, TAB, LF, CR), and a character XML cannot carry raises the
    ValueError lxml raises.

    A raw hole is a marker (such as a comment) replaced by bytes as they are:
    the signed assertion, whose bytes must never be re-serialized.
    """

    def __init__(self, serialized: bytes, *, raw: dict[str, bytes] | None = None) -> None:
        """``serialized``: an envelope holding :meth:`hole` values; ``raw``: name -> marker bytes in it."""
        raw = raw or {}
        for name, marker in raw.items():
            count = serialized.count(marker)
            if count != 1:
                raise ValueError(f"raw: marker {marker!r} must occur exactly once, not {count} times")
            serialized = serialized.replace(marker, self.hole(name).encode("utf-8"))
        pieces = _HOLE.split(serialized)
        fixed = pieces[0::2]
        names = [name.decode("ascii") for name in pieces[1::2]]
        self.head = fixed[0]
        self.steps: list[tuple[str, int, bytes]] = []
        for name, before, after in zip(names, fixed, fixed[1:]):
            # An attribute value never holds a literal < or > (both are escaped), so a hole
            # between > and < is a text; a text that looks like ="hole" is escaped as an
            # attribute, which only escapes more than needed.
            if name in raw:
                kind = _RAW
            elif before.endswith(b'="') and after.startswith(b'"'):
                kind = _ATTRIBUTE
            elif before.endswith(b">") and after.startswith(b"<"):
                kind = _TEXT
            else:  # a hole must be a whole text or a whole attribute value to know how to escape it
                raise ValueError(f"hole {name!r} is not a whole element text or attribute value")
            self.steps.append((name, kind, after))
        #: Names of the escaped (text and attribute) holes.
        self.names = frozenset(name for name, kind, _ in self.steps if kind != _RAW)
        self.raw_names = frozenset(raw)

    @staticmethod
    def hole(name: str) -> str:
        """The value to put in the source tree where ``name``'s value goes (``name``: letters, digits, _)."""
        return f"{_HOLE_MARK}{name}{_HOLE_MARK}"

    def render(self, values: dict[str, str], raw: dict[str, bytes] | None = None) -> bytes:
        """The envelope with each hole filled: ``values`` escaped, ``raw`` as they are."""
        parts = [self.head]
        append = parts.append
        for name, kind, after in self.steps:
            if kind == _TEXT:
                append(_escape_text(values[name]))
            elif kind == _ATTRIBUTE:
                append(_escape_attribute(values[name]))
            else:
                append((raw or {})[name])
            append(after)
        return b"".join(parts)


