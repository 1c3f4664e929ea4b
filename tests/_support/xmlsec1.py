"""The independent ``xmlsec1`` command as a second verifier of every token the tests see signed.

A token our verifier accepts but xmlsec1 rejects (or the reverse) is a bug in
one of them; running it on each issued assertion catches a signer that only
agrees with itself. A missing xmlsec1 fails the test rather than skipping it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from wstrust_wsgi import saml as saml_module

XMLSEC1 = shutil.which("xmlsec1")


def xmlsec1_verify(assertion: bytes, cert: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``xmlsec1 --verify`` on one assertion with only ``cert`` as the key."""
    if XMLSEC1 is None:
        pytest.fail("xmlsec1 is not installed (Debian package xmlsec1); .ci/run installs it")
    root = etree.fromstring(assertion)
    version = saml_module.version_of(root)
    assert version is not None
    path = workdir / f"{root.get(version.id_attribute)}.xml"
    path.write_bytes(assertion)
    return subprocess.run(
        [XMLSEC1, "--verify", "--pubkey-cert-pem", str(cert),
         f"--id-attr:{version.id_attribute}", f"{version.namespace}:Assertion", str(path)],
        capture_output=True, text=True, timeout=30,
    )


def assert_xmlsec1_accepts(issued: list[tuple[bytes, bytes]], workdir: Path) -> None:
    """Fail unless xmlsec1 verifies each ``(assertion, signer certificate PEM)`` pair."""
    for index, (assertion, cert_pem) in enumerate(issued):
        cert = workdir / f"signer-{index}.crt"
        cert.write_bytes(cert_pem)
        result = xmlsec1_verify(assertion, cert, workdir)
        assert result.returncode == 0 and "\nOK\n" in result.stderr, (
            f"xmlsec1 rejected an issued token: {result.stdout}{result.stderr}"
        )
