"""Our assertions and RSTR envelopes against the published schemas, with no network.

* SAML 2.0 and 1.1 assertions issued by the STS validate against the OASIS
  schemas Debian ships in opensaml-schemas (``saml-schema-assertion-2.0.xsd``,
  ``cs-sstc-schema-assertion-1.1.xsd``), loaded by ``lxml.etree.XMLSchema``; their
  remote imports (xmldsig, xenc) are answered by a resolver from the copies in
  xmltooling-schemas, and any other remote URL fails the test. The same files are
  checked again by ``xmllint --nonet --schema`` with ``data/schema-catalog.xml``.
* The SOAP 1.1 RSTR envelope validates against ``soap-envelope.xsd`` (its Body
  content is lax), in one schema set with the SAML schemas, so that libxml2's
  lax processing also validates the assertion nested in the (schema-less) wst:*
  elements.
* No WS-Trust XSD is to be had here (not in /usr/share/xml, not in any installed
  Debian package; no network), nor a SOAP 1.2 envelope schema: the RSTR's
  WS-Trust structure (1.3 and February 2005) is asserted element by element instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from lxml import etree

from _support import SERVICE_URL
from wstrust_wsgi import WSGITransport, ns, saml
from wstrust_wsgi._time import parse_datetime

OPENSAML = Path("/usr/share/xml/opensaml")
XMLTOOLING = Path("/usr/share/xml/xmltooling")
SAML2_XSD = OPENSAML / "saml-schema-assertion-2.0.xsd"
SAML11_XSD = OPENSAML / "cs-sstc-schema-assertion-1.1.xsd"
SOAP11_XSD = XMLTOOLING / "soap-envelope.xsd"
CATALOG = Path(__file__).resolve().parent / "data" / "schema-catalog.xml"
#: The remote schemaLocations the SAML schemas import, and the local copies that answer them.
LOCAL_COPIES = {
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": XMLTOOLING / "xmldsig-core-schema.xsd",
    "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd": XMLTOOLING / "xmldsig-core-schema.xsd",
    "http://www.w3.org/TR/2002/REC-xmlenc-core-20021210/xenc-schema.xsd": XMLTOOLING / "xenc-schema.xsd",
}
WST13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WST2005 = "http://schemas.xmlsoap.org/ws/2005/02/trust"
TOKEN_TYPES = pytest.mark.parametrize("token_type", ["2.0", "1.1"], ids=["saml2.0", "saml1.1"])


def require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: install the Debian packages opensaml-schemas and xmltooling-schemas")
    return path


class LocalSchemas(etree.Resolver):
    """Answers the known remote schema URLs from local files; any other remote URL fails the test."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def resolve(self, url, public_id, context):  # type: ignore[no-untyped-def]
        if url in LOCAL_COPIES:
            return self.resolve_filename(str(require(LOCAL_COPIES[url])), context)
        if urlparse(url).scheme in ("http", "https", "ftp"):
            self.refused.append(url)
            raise LookupError(f"schema {url} is not available locally (and the network is not used)")
        return None  # local files: libxml2 reads them itself


def load_schema(*locations: tuple[str, Path]) -> etree.XMLSchema:
    """One schema set importing each (namespace, file); remote imports resolved locally."""
    xs = "http://www.w3.org/2001/XMLSchema"
    wrapper = etree.Element(f"{{{xs}}}schema", nsmap={"xs": xs})
    for namespace, path in locations:
        etree.SubElement(wrapper, f"{{{xs}}}import", namespace=namespace, schemaLocation=require(path).as_uri())
    resolver = LocalSchemas()
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(resolver)
    document = etree.fromstring(etree.tostring(wrapper), parser, base_url=str(OPENSAML) + "/")
    schema = etree.XMLSchema(document)
    assert resolver.refused == []
    return schema


@pytest.fixture(scope="module")
def assertion_schemas() -> dict[str, etree.XMLSchema]:
    return {
        "2.0": load_schema((ns.SAML2, SAML2_XSD)),
        "1.1": load_schema((ns.SAML1, SAML11_XSD)),
    }


@pytest.fixture(scope="module")
def soap11_with_saml_schema() -> etree.XMLSchema:
    return load_schema((ns.SOAP11, SOAP11_XSD), (ns.SAML2, SAML2_XSD), (ns.SAML1, SAML11_XSD))


class RecordingTransport:
    """The in-process WSGI transport, keeping the bytes of every answer."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self._inner = WSGITransport(app)
        self.answers: list[bytes] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        status, content_type, answer = self._inner(url, body, headers)
        self.answers.append(answer)
        return status, content_type, answer


@pytest.fixture
def issue(make_client, sts_app):  # type: ignore[no-untyped-def]
    """Ask the real STS for a token; (the whole RSTR envelope, the assertion bytes the client cut out)."""

    def issue_token(token_type: str, *, soap_version: str = "1.1", trust_version: str = "1.3") -> tuple[bytes, bytes]:
        transport = RecordingTransport(sts_app)
        client = make_client(transport=transport, soap_version=soap_version, trust_version=trust_version)
        token = client.request_token(SERVICE_URL, token_type=token_type)
        [rstr] = transport.answers
        return rstr, token.assertion

    return issue_token


def errors(schema: etree.XMLSchema, document: bytes) -> list[str]:
    valid = schema.validate(etree.fromstring(document))
    messages = [f"{e.line}: {e.message}" for e in schema.error_log]
    assert valid is (messages == []), messages
    return messages


# --------------------------------------------------------------------------- assertions


@TOKEN_TYPES
def test_issued_assertion_is_valid_against_the_oasis_schema(issue, assertion_schemas, token_type):
    _, assertion = issue(token_type)
    assert errors(assertion_schemas[token_type], assertion) == []


@TOKEN_TYPES
def test_schema_check_is_live_a_misordered_assertion_is_invalid(issue, assertion_schemas, token_type):
    """Control: the loaded schema really constrains the content (Conditions moved to the end)."""
    _, assertion = issue(token_type)
    root = etree.fromstring(assertion)
    namespace = ns.SAML2 if token_type == "2.0" else ns.SAML1
    conditions = root.find(f"{{{namespace}}}Conditions")
    root.remove(conditions)
    root.append(conditions)
    messages = errors(assertion_schemas[token_type], etree.tostring(root))
    assert messages and any("Conditions" in m for m in messages), messages


@TOKEN_TYPES
def test_issued_assertion_is_valid_for_xmllint_with_a_local_catalog(issue, tmp_path, token_type):
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.fail("xmllint is not installed (Debian package libxml2-utils)")
    _, assertion = issue(token_type)
    path = tmp_path / "assertion.xml"
    path.write_bytes(assertion)
    schema = SAML2_XSD if token_type == "2.0" else SAML11_XSD
    result = subprocess.run(
        [xmllint, "--nonet", "--noout", "--schema", str(require(schema)), str(path)],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "XML_CATALOG_FILES": str(CATALOG)},
    )
    assert result.returncode == 0, result.stderr
    assert f"{path} validates" in result.stderr
    assert "failed to load" not in result.stderr.lower()


# --------------------------------------------------------------------------- RSTR envelopes


@TOKEN_TYPES
@pytest.mark.parametrize("trust_version", ["1.3", "2005"])
def test_soap11_rstr_envelope_is_valid_against_soap_envelope_xsd(issue, soap11_with_saml_schema, token_type, trust_version):
    rstr, _ = issue(token_type, trust_version=trust_version)
    assert etree.fromstring(rstr).tag == f"{{{ns.SOAP11}}}Envelope"
    assert errors(soap11_with_saml_schema, rstr) == []


def test_soap_envelope_schema_check_is_live_an_envelope_without_body_is_invalid(issue, soap11_with_saml_schema):
    rstr, _ = issue("2.0")
    root = etree.fromstring(rstr)
    root.remove(root.find(f"{{{ns.SOAP11}}}Body"))
    messages = errors(soap11_with_saml_schema, etree.tostring(root))
    assert messages and any("Body" in m for m in messages), messages


@TOKEN_TYPES
def test_lax_envelope_validation_reaches_the_assertion_inside_the_rstr(issue, soap11_with_saml_schema, token_type):
    """Lax Body content is still validated where a schema is known: a broken assertion deep in wst:* fails."""
    rstr, _ = issue(token_type)
    root = etree.fromstring(rstr)
    namespace = ns.SAML2 if token_type == "2.0" else ns.SAML1
    assertion = next(root.iter(f"{{{namespace}}}Assertion"))
    conditions = assertion.find(f"{{{namespace}}}Conditions")
    assertion.remove(conditions)
    assertion.append(conditions)
    messages = errors(soap11_with_saml_schema, etree.tostring(root))
    assert messages and any("Conditions" in m for m in messages), messages


def child(parent: etree._Element, namespace: str, local: str) -> etree._Element:
    found = parent.findall(f"{{{namespace}}}{local}")
    assert len(found) == 1, f"{parent.tag} has {len(found)} {local}"
    return found[0]


def exc_c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def element_children(parent: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in parent if isinstance(c.tag, str)]


@TOKEN_TYPES
@pytest.mark.parametrize("soap_version", ["1.1", "1.2"], ids=["soap1.1", "soap1.2"])
@pytest.mark.parametrize("trust_version", ["1.3", "2005"])
def test_rstr_has_the_ws_trust_structure(issue, clock, token_type, soap_version, trust_version):
    """What the WS-Trust schema would say (it cannot be had here), asserted by hand."""
    rstr_bytes, assertion = issue(token_type, soap_version=soap_version, trust_version=trust_version)
    envelope = etree.fromstring(rstr_bytes)
    env = ns.SOAP11 if soap_version == "1.1" else ns.SOAP12
    assert envelope.tag == f"{{{env}}}Envelope"
    assert element_children(envelope)[-1] == "Body"
    body = child(envelope, env, "Body")
    assert len(element_children(body)) == 1
    if trust_version == "1.3":
        wst = WST13
        collection = child(body, wst, "RequestSecurityTokenResponseCollection")
        assert element_children(collection) == ["RequestSecurityTokenResponse"]  # WS-Trust 1.3 section 4.3
        rstr = child(collection, wst, "RequestSecurityTokenResponse")
        issue_uri, bearer = f"{WST13}/Issue", f"{WST13}/Bearer"
    else:
        wst = WST2005
        rstr = child(body, wst, "RequestSecurityTokenResponse")
        issue_uri = f"{WST2005}/Issue"
        bearer = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"  # the 2005-era bearer KeyType
    version = saml.SAML2 if token_type == "2.0" else saml.SAML11
    names = element_children(rstr)
    assert names[:2] == ["TokenType", "RequestedSecurityToken"]
    assert {"RequestedAttachedReference", "RequestedUnattachedReference", "AppliesTo", "Lifetime",
            "RequestType", "KeyType"} <= set(names)
    assert len(names) == len(set(names))  # no element twice
    assert child(rstr, wst, "TokenType").text == version.token_type
    assert child(rstr, wst, "RequestType").text == issue_uri
    assert child(rstr, wst, "KeyType").text == bearer
    # RequestedSecurityToken: exactly the assertion, the same bytes the client cut out
    requested = child(rstr, wst, "RequestedSecurityToken")
    [token] = [c for c in requested if isinstance(c.tag, str)]
    assert token.tag == f"{{{version.namespace}}}Assertion"
    assert exc_c14n(token) == exc_c14n(etree.fromstring(assertion))
    assertion_id = token.get(version.id_attribute)
    # Attached and unattached references: a KeyIdentifier naming the assertion (SAML token profile 1.1, 3.4.3)
    for reference in ("RequestedAttachedReference", "RequestedUnattachedReference"):
        str_el = child(child(rstr, wst, reference), ns.WSSE, "SecurityTokenReference")
        assert str_el.get(f"{{{ns.WSSE11}}}TokenType") == version.profile_token_type
        key_identifier = child(str_el, ns.WSSE, "KeyIdentifier")
        assert key_identifier.get("ValueType") == version.key_identifier_value_type
        assert key_identifier.text == assertion_id
    # AppliesTo: the relying party's address
    applies = child(rstr, ns.WSP12, "AppliesTo")
    addresses = [a.text for a in applies.iter(f"{{{ns.WSA10}}}Address")]
    assert addresses == [SERVICE_URL]
    # Lifetime: wsu:Created / wsu:Expires, the assertion's validity window
    lifetime = child(rstr, wst, "Lifetime")
    assert element_children(lifetime) == ["Created", "Expires"]
    created = parse_datetime(child(lifetime, ns.WSU, "Created").text)
    expires = parse_datetime(child(lifetime, ns.WSU, "Expires").text)
    conditions = child(token, version.namespace, "Conditions")
    assert (created, expires) == (parse_datetime(conditions.get("NotBefore")), parse_datetime(conditions.get("NotOnOrAfter")))
    assert created == clock.now and (expires - created).total_seconds() == 300

