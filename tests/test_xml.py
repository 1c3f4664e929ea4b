"""The hardened parser: no DTDs or entities, bounded size, depth and shape (attributes and namespace
declarations per element, elements per document), comments dropped; and the strict readers ``child``
(no duplicates) and ``text`` (leaves only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from _support import VECTORS
from wstrust_wsgi import _xml
from wstrust_wsgi.errors import MalformedMessage

PASSWD = Path("/etc/passwd")


def _passwd_marker() -> str:
    """A line start of /etc/passwd that cannot be in our documents by accident."""
    return PASSWD.read_text().splitlines()[0].split(":")[0] + ":x:"


def test_plain_document_is_parsed():
    root = _xml.parse(b'<?xml version="1.0" encoding="utf-8"?><a xmlns="urn:a"><b>hi</b></a>')
    assert root.tag == "{urn:a}a"
    assert _xml.text(_xml.child(root, "urn:a", "b")) == "hi"


def test_doctype_alone_is_refused():
    with pytest.raises(MalformedMessage):
        _xml.parse(b"<!DOCTYPE a><a>x</a>")


def test_internal_entity_is_refused():
    with pytest.raises(MalformedMessage):
        _xml.parse(b'<!DOCTYPE a [<!ENTITY who "admin">]><a>&who;</a>')


@pytest.mark.parametrize("url", [f"file://{PASSWD}", str(PASSWD)])
def test_external_entity_to_a_local_file_is_refused_and_not_read(url):
    data = f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "{url}">]><a>&xxe;</a>'.encode()
    with pytest.raises(MalformedMessage) as info:
        _xml.parse(data)
    marker = _passwd_marker()
    assert marker not in str(info.value)
    assert marker not in info.value.reason


def test_external_parameter_entity_is_refused():
    data = f'<!DOCTYPE a [<!ENTITY % p SYSTEM "file://{PASSWD}"> %p;]><a/>'.encode()
    with pytest.raises(MalformedMessage):
        _xml.parse(data)


def test_external_dtd_is_refused():
    with pytest.raises(MalformedMessage):
        _xml.parse(b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd"><a/>')


def test_billion_laughs_is_refused():
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    data = f"<!DOCTYPE a [{entities}]><a>&lol9;</a>".encode()
    with pytest.raises(MalformedMessage):
        _xml.parse(data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_doctype_in_a_wide_encoding_is_refused(encoding):
    """The byte-level DTD check cannot see these; the parsed document's doctype is checked too."""
    name = {"utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-32": "UTF-32"}[encoding]
    text = (f'<?xml version="1.0" encoding="{name}"?>'
            f'<!DOCTYPE a [<!ENTITY xxe SYSTEM "file://{PASSWD}">]><a>&xxe;</a>')
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = "\ufeff".encode("utf-16-le") + data
    with pytest.raises(MalformedMessage) as info:
        _xml.parse(data)
    assert _passwd_marker() not in str(info.value)


def test_utf16_document_without_doctype_is_parsed():
    root = _xml.parse('<?xml version="1.0" encoding="UTF-16"?><a>hé</a>'.encode("utf-16"))
    assert _xml.text(root) == "hé"


def test_undeclared_entity_reference_is_refused():
    with pytest.raises(MalformedMessage):
        _xml.parse(b"<a>&undeclared;</a>")


def test_predefined_and_character_references_are_read():
    root = _xml.parse(b"<a>&lt;ad&#109;in&amp;&gt;</a>")
    assert _xml.text(root) == "<admin&>"


def _nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_nesting_up_to_max_depth_is_parsed():
    assert _xml.parse(_nested(64)).tag == "a"
    assert _xml.parse(_nested(5), max_depth=5).tag == "a"


def test_nesting_deeper_than_max_depth_is_refused():
    with pytest.raises(MalformedMessage):
        _xml.parse(_nested(65))
    with pytest.raises(MalformedMessage):
        _xml.parse(_nested(6), max_depth=5)


def test_ten_thousand_deep_nesting_is_refused():
    with pytest.raises(MalformedMessage):
        _xml.parse(_nested(10_000))


def test_size_over_max_bytes_is_refused():
    data = b"<a>" + b"x" * 100 + b"</a>"
    assert _xml.parse(data, max_bytes=len(data)).tag == "a"
    with pytest.raises(MalformedMessage) as info:
        _xml.parse(data, max_bytes=len(data) - 1)
    assert "too large" in info.value.reason


def test_default_max_bytes_is_one_mebibyte():
    padding = b" " * (_xml.DEFAULT_MAX_BYTES - len(b"<a></a>") + 1)
    with pytest.raises(MalformedMessage):
        _xml.parse(b"<a>" + padding + b"</a>")


@pytest.mark.parametrize("data", [b"", b"not xml", b"<a>", b"<a></b>", b"<a/><b/>", b"\xff\xfe\x00garbage"])
def test_malformed_xml_is_malformed_message(data):
    with pytest.raises(MalformedMessage):
        _xml.parse(data)


def test_comment_splitting_a_text_node_is_dropped():
    root = _xml.parse(b"<Username>ad<!---->min</Username>")
    assert _xml.text(root) == "admin"
    assert root.text == "admin"
    assert len(root) == 0


def test_comments_anywhere_are_removed():
    root = _xml.parse(b"<!-- before --><a><!-- inside --><b>x<!-- more -->y</b></a><!-- after -->")
    assert not any(isinstance(n, etree._Comment) for n in root.iter())
    assert _xml.text(root.find("b")) == "xy"


# ------------------------------------------------------------------ child / text


def test_child_finds_one_in_any_of_several_namespaces():
    root = _xml.parse(b'<r xmlns:a="urn:a" xmlns:b="urn:b"><b:x>1</b:x></r>')
    found = _xml.child(root, ("urn:a", "urn:b"), "x")
    assert found is not None and found.tag == "{urn:b}x"
    assert _xml.child(root, "urn:a", "x") is None


def test_child_refuses_duplicates():
    root = _xml.parse(b'<r xmlns:a="urn:a"><a:x>1</a:x><a:x>2</a:x></r>')
    with pytest.raises(MalformedMessage):
        _xml.child(root, "urn:a", "x")


def test_child_refuses_the_same_name_in_two_accepted_namespaces():
    root = _xml.parse(b'<r xmlns:a="urn:a" xmlns:b="urn:b"><a:x>1</a:x><b:x>2</b:x></r>')
    with pytest.raises(MalformedMessage):
        _xml.child(root, ("urn:a", "urn:b"), "x")


def test_child_with_the_empty_namespace_finds_unqualified_elements():
    """SOAP 1.1 ``faultcode`` / ``faultstring`` are unqualified; ``child(fault, "", ...)`` must find them."""
    root = _xml.parse(b'<r xmlns:a="urn:a"><faultcode>a:X</faultcode><a:faultcode>no</a:faultcode></r>')
    found = _xml.child(root, "", "faultcode")
    assert found is not None
    assert _xml.text(found) == "a:X"
    assert len(_xml.children(root, ("", "urn:a"), "faultcode")) == 2


def test_child_looks_at_direct_children_only():
    root = _xml.parse(b'<r xmlns:a="urn:a"><a:w><a:x>deep</a:x></a:w></r>')
    assert _xml.child(root, "urn:a", "x") is None


def test_children_lists_all_matches_in_order():
    root = _xml.parse(b'<r xmlns:a="urn:a"><a:x>1</a:x><a:y/><a:x>2</a:x></r>')
    assert [_xml.text(e) for e in _xml.children(root, "urn:a", "x")] == ["1", "2"]


def test_text_of_a_leaf_is_stripped():
    assert _xml.text(_xml.parse(b"<a>\n  admin \n</a>")) == "admin"


def test_text_of_none_is_empty():
    assert _xml.text(None) == ""


def test_text_refuses_an_element_with_element_children():
    root = _xml.parse(b"<Username>ad<b>mi</b>n</Username>")
    with pytest.raises(MalformedMessage):
        _xml.text(root)


def test_text_refuses_an_empty_child_element_too():
    with pytest.raises(MalformedMessage):
        _xml.text(_xml.parse(b"<a>admin<b/></a>"))


def test_qname_local_name_and_namespace():
    assert _xml.qname("urn:a", "x") == "{urn:a}x"
    element = _xml.parse(b'<p:x xmlns:p="urn:a"/>')
    assert _xml.local_name(element) == "x"
    assert _xml.namespace(element) == "urn:a"
    assert _xml.namespace(_xml.parse(b"<x/>")) == ""


def test_doctype_in_utf16_is_refused_before_parsing():
    """The pre-scan reads wide encodings too, so libxml2 never sees the DTD."""
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>'.encode("utf-16")
    with pytest.raises(MalformedMessage) as refused:
        _xml.parse(data)
    assert refused.value.reason == "DTDs are not allowed."
    assert "document type declaration or entity present" in refused.value.detail


# --------------------------------------------------------------------------- shape caps


def _attributes(count: int, *, prefix: str = "a", value: str = "1") -> str:
    return "".join(f' {prefix}{i}="{value}"' for i in range(count))


def _declarations(count: int) -> str:
    return "".join(f' xmlns:p{i}="urn:p{i}"' for i in range(count))


ENCODINGS = pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])


def _encoded(text: str, encoding: str) -> bytes:
    return (f'<?xml version="1.0" encoding="{encoding}"?>' + text).encode(encoding)


@ENCODINGS
def test_attributes_up_to_the_cap_on_one_element_are_parsed(encoding):
    root = _xml.parse(_encoded(f"<a{_attributes(_xml.DEFAULT_MAX_ATTRIBUTES)}/>", encoding))
    assert len(root.attrib) == 64


@ENCODINGS
@pytest.mark.parametrize("count", [65, 20_000])
def test_more_attributes_on_one_element_are_refused(encoding, count):
    with pytest.raises(MalformedMessage) as info:
        _xml.parse(_encoded(f"<a><b{_attributes(count)}/></a>", encoding))
    assert info.value.reason == "The request has too many attributes on one element."


@ENCODINGS
def test_namespace_declarations_up_to_the_cap_on_one_element_are_parsed(encoding):
    root = _xml.parse(_encoded(f"<a{_declarations(_xml.DEFAULT_MAX_NAMESPACES)}/>", encoding))
    assert len(root.nsmap) == 64


@ENCODINGS
@pytest.mark.parametrize("count", [65, 20_000])
def test_more_namespace_declarations_on_one_element_are_refused(encoding, count):
    with pytest.raises(MalformedMessage) as info:
        _xml.parse(_encoded(f"<a><b{_declarations(count)}/></a>", encoding))
    assert info.value.reason == "The request has too many namespace declarations on one element."


def test_redundant_declarations_count_too():
    declarations = _declarations(40)
    _xml.parse(f"<a{declarations}><b{declarations}/></a>".encode())  # 40 on each: within the cap
    with pytest.raises(MalformedMessage):
        _xml.parse(f"<a{declarations}><b{declarations}{_declarations(70)[len(declarations):]}/></a>".encode())


@ENCODINGS
def test_elements_up_to_the_cap_are_parsed(encoding):
    root = _xml.parse(_encoded("<a>" + "<b/>" * (_xml.DEFAULT_MAX_ELEMENTS - 1) + "</a>", encoding))
    assert len(root) == _xml.DEFAULT_MAX_ELEMENTS - 1


@ENCODINGS
def test_more_elements_are_refused(encoding):
    with pytest.raises(MalformedMessage) as info:
        _xml.parse(_encoded("<a>" + "<b/>" * _xml.DEFAULT_MAX_ELEMENTS + "</a>", encoding))
    assert info.value.reason == "The request has too many elements."


def test_the_caps_are_parameters():
    with pytest.raises(MalformedMessage):
        _xml.parse(b'<a x="1" y="2"/>', max_attributes=1)
    with pytest.raises(MalformedMessage):
        _xml.parse(b'<a xmlns="urn:a" xmlns:b="urn:b"/>', max_namespaces=1)
    with pytest.raises(MalformedMessage):
        _xml.parse(b"<a><b/></a>", max_elements=1)


def test_byte_counts_over_the_caps_alone_refuse_nothing():
    """Text, comments and many elements each within the caps: the byte counts that spare the walk are
    over every cap, and the exact count admits the document."""
    many = _xml.DEFAULT_MAX_ATTRIBUTES * 3
    data = ("<a>" + "x=" * many + " xmlns " * many + "<!--" + "<c/>" * _xml.DEFAULT_MAX_ELEMENTS + "-->"
            + "".join(f'<b xmlns:q="urn:q{i}"{_attributes(3)}/>' for i in range(many)) + "</a>").encode()
    root = _xml.parse(data)
    assert len(root) == many


def test_every_real_message_is_within_the_caps():
    """The captured real messages (RSTs, RSTRs, faults, requests, metadata, WSDL) all parse."""
    files = [p for p in VECTORS.rglob("*") if p.suffix in (".xml", ".tmpl")]
    parsed = []
    for path in files:
        try:
            _xml.parse(path.read_bytes(), max_bytes=1 << 20)
        except MalformedMessage as exc:
            assert "too many" not in exc.reason, (path.name, exc.detail)
        else:
            parsed.append(path.name)
    assert len(parsed) > 30
