"""Shared fixtures: key pairs, a settable clock, the STS and the protected echo service in-process.

Every assertion signed while a test runs is also verified, at the test's end,
by the independent ``xmlsec1`` command against the signing certificate (see
``_xmlsec1_checks_every_token``). A missing xmlsec1 fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from wstrust_wsgi import (
    MemoryUserStore,
    RelyingParty,
    RelyingPartyMiddleware,
    SigningKey,
    StsClient,
    TokenService,
    User,
    WSGITransport,
    generate_demo_key_pair,
)
from wstrust_wsgi import saml as saml_module
from demo_service.app import echo

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"
DATA = Path(__file__).resolve().parent / "data"

STS_URL = "http://127.0.0.1:8080/services/sts"
ISSUER = "http://127.0.0.1:8080/services/sts"
SERVICE_URL = "http://127.0.0.1:8081/services/echo"
OTHER_URL = "http://127.0.0.1:8082/services/other"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"


def vector(name: str) -> Path:
    """A file of ../shared/vectors, or its copy under tests/data."""
    for base in (VECTORS, DATA):
        if (base / name).exists():
            return base / name
    raise FileNotFoundError(name)


class FixedClock:
    """A clock tests can set and move."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass(frozen=True)
class KeyFiles:
    key: Path
    cert: Path

    def load(self) -> SigningKey:
        return SigningKey.from_files(self.key, self.cert)


@pytest.fixture(scope="session")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    for stem in ("sts", "rogue", "sts2"):
        generate_demo_key_pair(f"test {stem}", directory, stem)
    return directory


@pytest.fixture(scope="session")
def sts_keys(keydir: Path) -> KeyFiles:
    return KeyFiles(keydir / "sts.key", keydir / "sts.crt")


@pytest.fixture(scope="session")
def rogue_keys(keydir: Path) -> KeyFiles:
    """A key pair nobody trusts."""
    return KeyFiles(keydir / "rogue.key", keydir / "rogue.crt")


@pytest.fixture(scope="session")
def sts2_keys(keydir: Path) -> KeyFiles:
    """A second trusted key, for rollover tests."""
    return KeyFiles(keydir / "sts2.key", keydir / "sts2.crt")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(timezone.utc).replace(microsecond=0))


DEMO_USERS = [
    User("admin", "admin", roles=["admin"], claims={EMAIL: ["admin@example.org"]}),
    User("alice", "alice", roles=["everyone"], claims={EMAIL: ["alice@example.org"]}),
]


@pytest.fixture(scope="session")
def users() -> MemoryUserStore:
    return MemoryUserStore(DEMO_USERS)


@pytest.fixture
def sts_app(sts_keys: KeyFiles, users: MemoryUserStore, clock: FixedClock) -> TokenService:
    return TokenService(
        issuer=ISSUER,
        signing_key=sts_keys.load(),
        users=users,
        relying_parties=[RelyingParty(SERVICE_URL), RelyingParty(OTHER_URL, token_type="1.1")],
        clock=clock,
    )


@pytest.fixture
def service_app(sts_keys: KeyFiles, clock: FixedClock) -> RelyingPartyMiddleware:
    return RelyingPartyMiddleware(
        echo, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert], clock=clock
    )


@pytest.fixture
def make_client(sts_app: TokenService, clock: FixedClock):  # type: ignore[no-untyped-def]
    def make(username: str = "admin", password: str = "admin", **kwargs) -> StsClient:  # type: ignore[no-untyped-def]
        kwargs.setdefault("transport", WSGITransport(sts_app))
        kwargs.setdefault("clock", clock)
        return StsClient(STS_URL, username=username, password=password, **kwargs)

    return make


# ----------------------------------------------------------------- xmlsec1 on every token

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


@pytest.fixture(autouse=True)
def _xmlsec1_checks_every_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    issued: list[tuple[bytes, bytes]] = []
    original = saml_module.AssertionSigner.sign

    def recording_sign(self, version, content, **kwargs):  # type: ignore[no-untyped-def]
        signed = original(self, version, content, **kwargs)
        issued.append((signed, self._key.certificate_pem))
        return signed

    monkeypatch.setattr(saml_module.AssertionSigner, "sign", recording_sign)
    yield issued
    for index, (assertion, cert_pem) in enumerate(issued):
        cert = tmp_path / f"signer-{index}.crt"
        cert.write_bytes(cert_pem)
        result = xmlsec1_verify(assertion, cert, tmp_path)
        assert result.returncode == 0 and "\nOK\n" in result.stderr, (
            f"xmlsec1 rejected an issued token: {result.stdout}{result.stderr}"
        )
