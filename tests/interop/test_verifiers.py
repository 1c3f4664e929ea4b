"""Our tokens, checked by verifiers that share no code with us.

Assertions issued by the in-process STS (through ``StsClient`` and the real
WSGI app, SAML 2.0 and 1.1) are handed, as the exact bytes the client cut out
of the RSTR, to:

* OpenSAML's ``samlsign`` (C++, xmltooling + Apache Santuario), in verify mode
  (no ``-s``) with ``-c <certificate>`` as the only credential: it must accept
  with the STS certificate, and refuse with another certificate and after any
  change to the signed content;
* Node's ``xml-crypto`` 6.3.2 through ``node/verify_xmlcrypto.js``, with the
  certificate *pinned* (``publicCert``, and ``getCertFromKeyInfo`` returning
  null so that the certificate in ``ds:KeyInfo`` is never used): it must accept
  with the STS certificate and refuse with a rogue one.

A missing tool fails the test: it never skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from _forge import content, sign
from _support import SERVICE_URL
from wstrust_wsgi import WSGITransport, ns, saml

NODE_DIR = Path(__file__).resolve().parent / "node"
VERIFY_XMLCRYPTO = NODE_DIR / "verify_xmlcrypto.js"
TOKEN_TYPES = pytest.mark.parametrize("token_type", ["2.0", "1.1"], ids=["saml2.0", "saml1.1"])


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the interop tests need it (Debian: opensaml-tools for "
                    f"samlsign, nodejs for node)")
    return path


# --------------------------------------------------------------------------- issuing


@dataclass(frozen=True)
class Issued:
    """One token as the STS sent it: the whole RSTR body and the assertion the client cut out of it."""

    rstr: bytes
    assertion: bytes
    assertion_id: str


class RecordingTransport:
    """The in-process WSGI transport, keeping every answer's bytes (no mock: the real STS answers)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self._inner = WSGITransport(app)
        self.answers: list[bytes] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        status, content_type, answer = self._inner(url, body, headers)
        self.answers.append(answer)
        return status, content_type, answer


@pytest.fixture
def issue(make_client, sts_app):  # type: ignore[no-untyped-def]
    def issue_token(token_type: str, soap_version: str = "1.1") -> Issued:
        transport = RecordingTransport(sts_app)
        token = make_client(transport=transport, soap_version=soap_version).request_token(
            SERVICE_URL, token_type=token_type
        )
        [rstr] = transport.answers
        return Issued(rstr, token.assertion, token.assertion_id)

    return issue_token


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def without_key_info(assertion: bytes) -> bytes:
    """The assertion with ds:KeyInfo removed (KeyInfo is not signed, so the signature stays valid)."""
    stripped, count = re.subn(rb"<ds:KeyInfo>.*?</ds:KeyInfo>", b"", assertion, flags=re.S)
    assert count == 1
    return stripped


def tampered(assertion: bytes) -> bytes:
    forged = assertion.replace(b">admin@example.org<", b">root@example.org<")
    assert forged != assertion
    return forged


# --------------------------------------------------------------------------- samlsign (OpenSAML C++)


def samlsign_verify(assertion: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    """``samlsign -c CERT -f FILE``: verify mode (no -s), the certificate as the only credential.

    samlsign resolves -c and -f relative to /etc/opensaml, so both paths are absolute.
    """
    return subprocess.run(
        [tool("samlsign"), "-c", str(cert.resolve()), "-f", str(assertion.resolve())],
        capture_output=True, text=True, timeout=30,
    )


@TOKEN_TYPES
def test_samlsign_accepts_our_assertion_with_the_sts_certificate(issue, sts_keys, tmp_path, token_type):
    issued = issue(token_type)
    result = samlsign_verify(write(tmp_path, "token.xml", issued.assertion), sts_keys.cert)
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr


@TOKEN_TYPES
def test_samlsign_accepts_our_assertion_without_key_info(issue, sts_keys, tmp_path, token_type):
    """The signature does not depend on the KeyInfo we add: a verifier with the certificate needs nothing else."""
    issued = issue(token_type)
    result = samlsign_verify(write(tmp_path, "token.xml", without_key_info(issued.assertion)), sts_keys.cert)
    assert result.returncode == 0, result.stderr


@TOKEN_TYPES
@pytest.mark.parametrize("key_info", ["as-issued", "stripped"])
def test_samlsign_rejects_our_assertion_with_another_certificate(issue, rogue_keys, tmp_path, token_type, key_info):
    issued = issue(token_type)
    data = issued.assertion if key_info == "as-issued" else without_key_info(issued.assertion)
    result = samlsign_verify(write(tmp_path, "token.xml", data), rogue_keys.cert)
    assert result.returncode != 0
    # with KeyInfo naming the STS cert, the rogue cert does not even match; without it, the value fails
    assert "CredentialResolver did not supply" in result.stderr, result.stderr


@TOKEN_TYPES
def test_samlsign_rejects_our_assertion_after_tampering(issue, sts_keys, tmp_path, token_type):
    issued = issue(token_type)
    result = samlsign_verify(write(tmp_path, "token.xml", tampered(issued.assertion)), sts_keys.cert)
    assert result.returncode != 0
    assert "did not supply a successful verification key" in result.stderr, result.stderr


# --------------------------------------------------------------------------- xml-crypto (Node)


def xmlcrypto_verify(assertion: Path, pinned_cert: Path) -> dict:  # type: ignore[type-arg]
    """Run verify_xmlcrypto.js; its JSON verdict (exit 0 = valid, 1 = invalid, anything else fails the test)."""
    result = subprocess.run(
        [tool("node"), str(VERIFY_XMLCRYPTO), str(assertion), str(pinned_cert)],
        capture_output=True, text=True, timeout=30, cwd=NODE_DIR,
    )
    assert result.returncode in (0, 1), f"verify_xmlcrypto.js crashed: {result.stdout}{result.stderr}"
    verdict = json.loads(result.stdout)
    assert verdict["valid"] is (result.returncode == 0)
    return verdict


def signed_reference(verdict: dict) -> etree._Element:  # type: ignore[type-arg]
    [reference] = verdict["signedReferences"]
    return etree.fromstring(reference.encode("utf-8"))


@TOKEN_TYPES
def test_xmlcrypto_with_pinned_sts_certificate_accepts_our_assertion(issue, sts_keys, tmp_path, token_type):
    issued = issue(token_type)
    verdict = xmlcrypto_verify(write(tmp_path, "token.xml", issued.assertion), sts_keys.cert)
    assert verdict["valid"], verdict["error"]
    assert verdict["rootId"] == issued.assertion_id
    assert verdict["referenceUris"] == ["#" + issued.assertion_id]
    # what xml-crypto says it verified is the whole assertion, subject and claims included
    signed = signed_reference(verdict)
    version = saml.SAML2 if token_type == "2.0" else saml.SAML11
    assert signed.tag == f"{{{version.namespace}}}Assertion"
    assert signed.get(version.id_attribute) == issued.assertion_id
    names = [el.text for el in signed.iter(f"{{{version.namespace}}}NameID", f"{{{version.namespace}}}NameIdentifier")]
    assert names and set(names) == {"admin"}
    assert "admin@example.org" in [el.text for el in signed.iter(f"{{{version.namespace}}}AttributeValue")]


@TOKEN_TYPES
def test_xmlcrypto_with_pinned_rogue_certificate_rejects_our_assertion(issue, rogue_keys, tmp_path, token_type):
    """KeyInfo carries the genuine STS certificate; a verifier pinned to another one must still refuse."""
    issued = issue(token_type)
    verdict = xmlcrypto_verify(write(tmp_path, "token.xml", issued.assertion), rogue_keys.cert)
    assert not verdict["valid"]
    assert verdict["error"].startswith("invalid signature: the signature value")
    assert verdict["signedReferences"] == []


@TOKEN_TYPES
def test_xmlcrypto_rejects_our_assertion_after_tampering(issue, sts_keys, tmp_path, token_type):
    issued = issue(token_type)
    verdict = xmlcrypto_verify(write(tmp_path, "token.xml", tampered(issued.assertion)), sts_keys.cert)
    assert not verdict["valid"]
    assert verdict["signedReferences"] == []


@pytest.mark.parametrize("version", [saml.SAML2, saml.SAML11], ids=["saml2.0", "saml1.1"])
def test_xmlcrypto_pinned_to_sts_ignores_a_rogue_certificate_in_key_info(rogue_keys, sts_keys, clock, tmp_path, version):
    """An attacker signs with their own key and ships their own certificate: the pin wins."""
    forged = sign(rogue_keys.load(), version, content(clock.now))
    verdict = xmlcrypto_verify(write(tmp_path, "forged.xml", forged), sts_keys.cert)
    assert not verdict["valid"]
    # and the same bytes are fine for a verifier pinned to the attacker's certificate: the test is sound
    assert xmlcrypto_verify(write(tmp_path, "forged.xml", forged), rogue_keys.cert)["valid"]


# --------------------------------------------------------------------------- the RSTR's assertion, as bytes


def cut_assertion(rstr: bytes, version: saml.SamlVersion) -> bytes:
    """The assertion's bytes located by hand in the RSTR (independently of the client's expat offsets)."""
    prefix = b"" if version is saml.SAML2 else b"saml:"  # SAML 2.0 in the default namespace, as AD FS writes it
    start = rstr.index(b"<" + prefix + b"Assertion ")
    end_tag = b"</" + prefix + b"Assertion>"
    end = rstr.index(end_tag, start) + len(end_tag)
    assert rstr.count(end_tag) == 1
    return rstr[start:end]


@TOKEN_TYPES
@pytest.mark.parametrize("soap_version", ["1.1", "1.2"], ids=["soap1.1", "soap1.2"])
def test_assertion_cut_out_of_the_rstr_verifies_in_samlsign_and_xmlcrypto(
    issue, sts_keys, rogue_keys, tmp_path, token_type, soap_version
):
    issued = issue(token_type, soap_version)
    version = saml.SAML2 if token_type == "2.0" else saml.SAML11
    cut = cut_assertion(issued.rstr, version)
    assert cut == issued.assertion  # the client hands on exactly the bytes the STS sent
    # the cut-out bytes stand alone: every namespace they use is declared inside them
    standalone = etree.fromstring(cut)
    assert standalone.get(version.id_attribute) == issued.assertion_id
    # the RSTR's own references name the same assertion
    rstr = etree.fromstring(issued.rstr)
    identifiers = {el.text for el in rstr.iter(f"{{{ns.WSSE}}}KeyIdentifier")}
    assert identifiers == {issued.assertion_id}
    path = write(tmp_path, "cut.xml", cut)
    assert samlsign_verify(path, sts_keys.cert).returncode == 0
    assert samlsign_verify(path, rogue_keys.cert).returncode != 0
    assert xmlcrypto_verify(path, sts_keys.cert)["valid"]
    assert not xmlcrypto_verify(path, rogue_keys.cert)["valid"]

