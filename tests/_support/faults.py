"""What a VersionMismatch answer must look like, for the tests of every endpoint that can send one."""

from __future__ import annotations

from lxml import etree

from wstrust_wsgi import ns


def _q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def assert_version_mismatch(status: int, content_type: str, body: bytes) -> None:
    """SOAP 1.2 part 1 appendix A: a SOAP 1.1 VersionMismatch fault over the SOAP 1.1 binding
    (text/xml, HTTP 500), whatever the request announced, with an Upgrade header block listing the
    envelopes we read, in order of preference (section 5.4.7)."""
    assert status == 500
    assert content_type.split(";")[0].strip() == "text/xml", content_type
    root = etree.fromstring(body)
    assert root.tag == _q(ns.SOAP11, "Envelope")
    header, fault_body = root
    assert header.tag == _q(ns.SOAP11, "Header") and fault_body.tag == _q(ns.SOAP11, "Body")
    (upgrade,) = header
    assert upgrade.tag == _q(ns.SOAP12, "Upgrade") and upgrade.get(_q(ns.SOAP11, "mustUnderstand")) is None
    supported = []
    for element in upgrade:
        assert element.tag == _q(ns.SOAP12, "SupportedEnvelope")
        prefix, _, local = element.get("qname").partition(":")
        supported.append(_q(element.nsmap[prefix], local))
    assert supported == [_q(ns.SOAP12, "Envelope"), _q(ns.SOAP11, "Envelope")]
    (fault,) = fault_body
    assert fault.tag == _q(ns.SOAP11, "Fault")
    code = fault.findtext("faultcode")
    prefix, _, local = code.partition(":")
    assert (fault.nsmap.get(prefix), local) == (ns.SOAP11, "VersionMismatch"), code
    assert fault.findtext("faultstring")
    assert b"Traceback" not in body
