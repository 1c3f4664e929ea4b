"""Certificates registered to users (schema version 7), in SQLite and PostgreSQL, the CLI that manages them,
and an STS on the registry admitting an X.509-signed request for the user they are registered to."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import ISSUER, SERVICE_URL, STS_URL, FixedClock, KeyFiles
from _support.pg import registry_url
from wstrust_wsgi import RelyingParty, SigningKey, StsClient, TokenService, WSGITransport
from wstrust_wsgi.cli import main
from wstrust_wsgi.errors import RegistryError, RemoteFault
from wstrust_wsgi.model import certificate_fingerprint
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.sql.certificates import RegistryUserCertificates

KEY = SigningKey.generate("carol")
OTHER = SigningKey.generate("carol")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return registry_url(request.param, request, tmp_path)


@pytest.fixture
def registry(url: str) -> Iterator[Registry]:
    with Registry.open(url) as opened:
        opened.init_schema(issuer=ISSUER)
        opened.add_user("carol", "a long password", roles=["admin"])
        opened.add_user("dave", "another password")
        yield opened


def test_a_certificate_finds_its_user_by_sha256_only(registry: Registry) -> None:
    certificates = RegistryUserCertificates(registry)
    fingerprint = certificates.add("carol", KEY.certificate_pem)
    assert fingerprint == certificate_fingerprint(KEY.certificate).hex()
    principal = registry.user_by_certificate(bytes.fromhex(fingerprint))
    assert principal is not None and (principal.name, principal.roles) == ("carol", frozenset({"admin"}))
    assert registry.user_by_certificate(certificate_fingerprint(OTHER.certificate)) is None  # same subject
    assert certificates.certificates("carol") == [(fingerprint, KEY.certificate_pem)]


def test_a_certificate_is_registered_to_one_user_only(registry: Registry) -> None:
    certificates = RegistryUserCertificates(registry)
    certificates.add("carol", KEY.certificate_pem)
    with pytest.raises(RegistryError, match="already registered to 'carol'"):
        certificates.add("dave", KEY.certificate_pem)
    with pytest.raises(RegistryError, match="unknown user"):
        certificates.add("nobody", OTHER.certificate_pem)


def test_removing_by_fingerprint_or_all_and_with_the_user(registry: Registry) -> None:
    certificates = RegistryUserCertificates(registry)
    first = certificates.add("carol", KEY.certificate_pem)
    second = certificates.add("carol", OTHER.certificate_pem)
    with pytest.raises(RegistryError, match="no certificate"):
        certificates.remove("dave", first)
    assert certificates.remove("carol", ":".join(first[i:i + 2].upper() for i in range(0, 64, 2))) == [first]
    assert registry.user_by_certificate(bytes.fromhex(first)) is None
    assert certificates.remove("carol") == [second]
    certificates.add("dave", KEY.certificate_pem)
    registry.remove_user("dave")
    assert registry.user_by_certificate(certificate_fingerprint(KEY.certificate)) is None


def cli(url: str, *args: str) -> Any:
    return main([*args, "--registry", url, "--json"])


def test_the_cli_adds_lists_and_removes(url: str, registry: Registry, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pem = tmp_path / "carol.pem"
    pem.write_bytes(KEY.certificate_pem)
    assert cli(url, "user", "cert", "add", "carol", str(pem)) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["sha256"] == certificate_fingerprint(KEY.certificate).hex() and "CN=carol" in added["subject"]
    assert cli(url, "user", "cert", "list", "carol") == 0
    assert [row["sha256"] for row in json.loads(capsys.readouterr().out)] == [added["sha256"]]
    assert cli(url, "user", "cert", "add", "dave", str(pem)) == 1  # one user per certificate
    assert "already registered" in capsys.readouterr().err
    assert cli(url, "user", "cert", "remove", "carol", added["sha256"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [added["sha256"]]
    assert cli(url, "user", "cert", "list", "carol") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_the_cli_refuses_an_expired_certificate(url: str, registry: Registry, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    old = SigningKey.generate("old", valid_from=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=60), days=30)
    pem = tmp_path / "old.pem"
    pem.write_bytes(old.certificate_pem)
    assert cli(url, "user", "cert", "add", "carol", str(pem)) == 2
    assert "expired" in capsys.readouterr().err


def test_an_sts_on_the_registry_admits_the_registered_certificate(registry: Registry, sts_keys: KeyFiles,
                                                                 clock: FixedClock) -> None:
    RegistryUserCertificates(registry).add("carol", KEY.certificate_pem)
    sts = TokenService(issuer=ISSUER, signing_key=sts_keys.load(), users=registry, clock=clock,
                       relying_parties=[RelyingParty(SERVICE_URL)])

    def ask(key: SigningKey) -> bytes:
        return StsClient(STS_URL, client_cert=key, transport=WSGITransport(sts), clock=clock,
                         soap_version="1.1", trust_version="2005").request_token(SERVICE_URL).assertion

    assert b">carol<" in ask(KEY)
    with pytest.raises(RemoteFault, match="not accepted"):
        ask(OTHER)
