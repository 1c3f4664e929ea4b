"""Federation metadata: what we build, what we read, and the real AD FS document.

Independent checks beside our own reader: ``xmlsec1`` verifies the signature,
and the document validates against the OASIS SAML 2.0 metadata schema (Debian
opensaml-schemas) with the STS role's WS-Federation part declared by
``tests/data/schemas/ws-federation-sts-role.xsd``.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from lxml import etree

from _support.data import DATA, vector
from _support.keys import KeyFiles
from _support.xmlsec1 import XMLSEC1
from wstrust_wsgi import ns
from wstrust_wsgi.errors import MetadataError
from wstrust_wsgi.metadata import StsDescription, build_metadata, read_metadata
from wstrust_wsgi.xmldsig import certificate_base64

ISSUER = "https://sts.example/services/trust"
ENDPOINT = "https://sts.example/sts"
NOW = datetime.now(timezone.utc)
ADFS = "breadth/identitymodel-dotnet_adfs-v4-federationmetadata.xml"
ADFS_ISSUER = "http://fs.msidlab11.com/adfs/services/trust"
#: Inside the validity of the AD FS signing certificate (2017-01-23 to 2018-01-23).
ADFS_NOW = datetime(2017, 6, 1, tzinfo=timezone.utc)
OPENSAML = Path("/usr/share/xml/opensaml")
XMLTOOLING = Path("/usr/share/xml/xmltooling")
LOCAL_COPIES = {
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": XMLTOOLING / "xmldsig-core-schema.xsd",
    "http://www.w3.org/TR/2002/REC-xmlenc-core-20021210/xenc-schema.xsd": XMLTOOLING / "xenc-schema.xsd",
    "http://www.w3.org/2001/xml.xsd": XMLTOOLING / "xml.xsd",
}


def document(sts_keys: KeyFiles, *published: KeyFiles, signer: KeyFiles | None = None) -> bytes:
    certs = [k.load().certificate for k in (published or (sts_keys,))]
    description = StsDescription(ISSUER, certs, ENDPOINT, ENDPOINT + "/mex", claim_types=[ns.CLAIM_ROLE])
    return build_metadata(description, (signer or sts_keys).load())


def test_round_trip_publishes_every_signing_key(sts_keys: KeyFiles, sts2_keys: KeyFiles) -> None:
    data = document(sts_keys, sts_keys, sts2_keys)
    read = read_metadata(data, issuer=ISSUER, now=NOW, signing_certs=[sts_keys.load().certificate])
    assert [c.subject for c in read.signing_certificates] == [sts_keys.load().certificate.subject,
                                                             sts2_keys.load().certificate.subject]
    assert (read.entity_id, read.endpoint, read.mex) == (ISSUER, ENDPOINT, ENDPOINT + "/mex")
    assert read.signed_by == sts_keys.load().certificate


def test_shape_signature_first_only_signing_keys_in_the_sts_role(sts_keys: KeyFiles, sts2_keys: KeyFiles) -> None:
    root = etree.fromstring(document(sts_keys, sts_keys, sts2_keys))
    assert root.get("entityID") == ISSUER
    assert root[0].tag == f"{{{ns.DS}}}Signature"
    method = root.find(f".//{{{ns.DS}}}SignatureMethod").get("Algorithm")
    c14n = root.find(f".//{{{ns.DS}}}CanonicalizationMethod").get("Algorithm")
    assert (method, c14n) == (ns.ALG_RSA_SHA256, ns.ALG_EXC_C14N)
    keys = root.findall(f"{{{ns.MD}}}RoleDescriptor/{{{ns.MD}}}KeyDescriptor")
    assert [k.get("use") for k in keys] == ["signing", "signing"]
    assert root.find(f".//{{{ns.FED}}}TokenType").get("Uri") == ns.SAML20_TOKEN_PROFILE_TYPE


def test_same_content_same_bytes(sts_keys: KeyFiles) -> None:
    """Every worker and host serving the same keys serves the same document (one ETag)."""
    assert document(sts_keys) == document(sts_keys)


def test_signature_by_an_unknown_key_is_refused(sts_keys: KeyFiles, rogue_keys: KeyFiles) -> None:
    data = document(sts_keys, signer=rogue_keys)
    with pytest.raises(MetadataError, match="signature refused"):
        read_metadata(data, issuer=ISSUER, now=NOW, signing_certs=[sts_keys.load().certificate])


def test_tampered_metadata_is_refused(sts_keys: KeyFiles, rogue_keys: KeyFiles) -> None:
    """A rogue certificate slipped into a signed document breaks the digest."""
    data = document(sts_keys)
    ours = certificate_base64(sts_keys.load().certificate).replace("\n", "").encode()
    theirs = certificate_base64(rogue_keys.load().certificate).replace("\n", "").encode()
    at = data.index(b"<md:RoleDescriptor")  # after the Signature, whose KeyInfo is left as it was
    tampered = data[:at] + data[at:].replace(ours, theirs)
    assert tampered != data
    with pytest.raises(MetadataError, match="signature refused"):
        read_metadata(tampered, issuer=ISSUER, now=NOW, signing_certs=[sts_keys.load().certificate])


def test_wrong_entity_id_is_refused(sts_keys: KeyFiles) -> None:
    with pytest.raises(MetadataError, match="is not the configured issuer"):
        read_metadata(document(sts_keys), issuer="https://other.example/trust", now=NOW,
                      signing_certs=[sts_keys.load().certificate])


def test_unsigned_check_still_requires_the_entity_id_and_an_sts_role(sts_keys: KeyFiles) -> None:
    read = read_metadata(document(sts_keys), issuer=ISSUER, now=NOW)
    assert read.signed_by is None and len(read.signing_certificates) == 1
    with pytest.raises(MetadataError, match="not well-formed"):
        read_metadata(b"<md:EntityDescriptor", issuer=ISSUER, now=NOW)
    empty = f'<EntityDescriptor xmlns="{ns.MD}" entityID="{ISSUER}"/>'.encode()
    with pytest.raises(MetadataError, match="no signing certificate"):
        read_metadata(empty, issuer=ISSUER, now=NOW)


def test_reads_the_real_adfs_metadata() -> None:
    """AD FS: the STS role's signing key only; the ApplicationServiceType's encryption key is never one."""
    data = vector(ADFS).read_bytes()
    read = read_metadata(data, issuer=ADFS_ISSUER, now=ADFS_NOW)
    assert [c.subject.rfc4514_string() for c in read.signing_certificates] == ["CN=ADFS Signing - fs.msidlab11.com"]
    assert read.mex == "https://fs.msidlab11.com/adfs/services/trust/mex"
    assert read.endpoint is not None and read.endpoint.startswith("https://fs.msidlab11.com/adfs/services/trust/")


def test_verifies_the_real_adfs_signature_with_its_signing_certificate_pinned() -> None:
    data = vector(ADFS).read_bytes()
    pinned = read_metadata(data, issuer=ADFS_ISSUER, now=ADFS_NOW).signing_certificates
    read = read_metadata(data, issuer=ADFS_ISSUER, now=ADFS_NOW, signing_certs=pinned)
    assert read.signed_by == pinned[0]
    with pytest.raises(MetadataError, match="signature refused"):
        read_metadata(data.replace(b"fs.msidlab11.com AD FS", b"fs.msidlab11.com AD FX"), issuer=ADFS_ISSUER,
                      now=ADFS_NOW, signing_certs=pinned)


def test_xmlsec1_verifies_our_metadata_signature(sts_keys: KeyFiles, sts2_keys: KeyFiles, tmp_path: Path) -> None:
    if XMLSEC1 is None:
        pytest.fail("xmlsec1 is not installed (Debian package xmlsec1); .ci/run installs it")
    path = tmp_path / "metadata.xml"
    path.write_bytes(document(sts_keys, sts_keys, sts2_keys))
    for cert, expected in ((sts_keys.cert, 0), (sts2_keys.cert, 1)):
        result = subprocess.run([XMLSEC1, "--verify", "--pubkey-cert-pem", str(cert),
                                 "--id-attr:ID", f"{ns.MD}:EntityDescriptor", str(path)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == expected, result.stderr


class _LocalSchemas(etree.Resolver):
    """Remote schemaLocations answered by Debian's copies; any other remote URL fails the test."""

    def resolve(self, url, public_id, context):  # type: ignore[no-untyped-def]
        if url in LOCAL_COPIES:
            return self.resolve_filename(str(LOCAL_COPIES[url]), context)
        if url.startswith(("http:", "https:")):
            raise LookupError(f"schema {url} is not available locally")
        return None


def _metadata_schema() -> etree.XMLSchema:
    for path in (OPENSAML / "saml-schema-metadata-2.0.xsd", *LOCAL_COPIES.values()):
        if not path.is_file():
            pytest.fail(f"{path} is missing: install the Debian packages opensaml-schemas and xmltooling-schemas")
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_LocalSchemas())
    stub = DATA / "schemas" / "ws-federation-sts-role.xsd"
    return etree.XMLSchema(etree.parse(str(stub), parser))


def test_validates_against_the_oasis_metadata_schema(sts_keys: KeyFiles, sts2_keys: KeyFiles) -> None:
    schema = _metadata_schema()
    root = etree.fromstring(document(sts_keys, sts_keys, sts2_keys))
    assert schema.validate(root), schema.error_log
    root.find(f"{{{ns.MD}}}RoleDescriptor").insert(0, etree.Element(f"{{{ns.MD}}}Bogus"))
    assert not schema.validate(root)


def test_builder_refuses_an_empty_key_list(sts_keys: KeyFiles) -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_metadata(StsDescription(ISSUER, [], ENDPOINT), sts_keys.load())
