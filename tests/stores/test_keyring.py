"""Signing keys in the registry (SQLite and PostgreSQL), as the STS reads them: states, promotion, retirement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from _support.pg import registry_url

from wstrust_wsgi.errors import KeyPairError, RegistryError
from wstrust_wsgi.keys import SigningKey
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.sql.keyring import SigningKeys
from wstrust_wsgi.sts.keyring import RegistryKeys, passphrase_from_environment

PASS = b"correct horse battery staple"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Registry]:
    with Registry.open(registry_url(request.param, request, tmp_path)) as opened:
        opened.init_schema(issuer="https://sts.example/sts")
        yield opened


def store(keys: SigningKeys, key: SigningKey, now: datetime = NOW) -> None:
    pem = key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.BestAvailableEncryption(PASS))
    keys.add_next(fingerprint=key.certificate.fingerprint(hashes.SHA256()).hex(), key_pem=pem, cert_pem=key.certificate_pem, not_after=key.certificate.not_valid_after_utc, now=now)


def test_states_roll_next_primary_previous(registry: Registry) -> None:
    one, two = SigningKey.generate("one"), SigningKey.generate("two")
    fallback = SigningKey.generate("file")
    keys, source = SigningKeys(registry), RegistryKeys(registry, passphrase=PASS, fallback=fallback)
    assert source.signing_keys().primary is fallback  # nothing rolled yet: the deployment file's key
    store(keys, one)
    assert source.signing_keys().published == (fallback.certificate, one.certificate)
    with pytest.raises(RegistryError, match="a next key is already published"):
        store(keys, two)
    keys.promote(now=NOW)
    assert source.signing_keys().primary.certificate == one.certificate
    store(keys, two, NOW + timedelta(days=1))
    primary, previous = keys.promote(now=NOW + timedelta(days=2))
    assert previous is not None and previous.state == "previous" and previous.changed == NOW + timedelta(days=2)
    current = source.signing_keys()
    assert current.primary.certificate == two.certificate
    assert set(current.published) == {one.certificate, two.certificate}
    assert [r.state for r in keys.list()] == ["primary", "previous"]
    [gone] = keys.retire()
    assert gone.fingerprint == previous.fingerprint
    assert source.signing_keys().published == (two.certificate,)
    with pytest.raises(RegistryError, match="no previous key"):
        keys.retire()
    with pytest.raises(RegistryError, match="no next key"):
        keys.promote(now=NOW)


def test_private_keys_are_stored_encrypted_and_need_the_passphrase(registry: Registry) -> None:
    keys = SigningKeys(registry)
    store(keys, SigningKey.generate("one"))
    keys.promote(now=NOW)
    [record] = keys.list()
    assert record.key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(KeyPairError, match="passphrase"):
        RegistryKeys(registry, passphrase=None).signing_keys()
    with pytest.raises(KeyPairError, match="passphrase is wrong"):
        RegistryKeys(registry, passphrase=b"wrong").signing_keys()


def test_passphrase_from_a_file_before_the_environment(tmp_path: Any) -> None:
    path = tmp_path / "pass"
    path.write_bytes(b"from-file\n")
    assert passphrase_from_environment({"WSTRUST_KEY_PASSPHRASE_FILE": str(path),
                                        "WSTRUST_KEY_PASSPHRASE": "from-env"}) == b"from-file"
    assert passphrase_from_environment({"WSTRUST_KEY_PASSPHRASE": "from-env"}) == b"from-env"
    assert passphrase_from_environment({}) is None


def test_the_next_and_previous_key_pairs_are_held_beside_the_primary(registry: Registry) -> None:
    """What the STS wrapped under a former primary's key (a renewable token's proof key) it can still read:
    the key set holds the other key pairs the passphrase opens, and leaves out one it does not."""
    one, two, three = SigningKey.generate("one"), SigningKey.generate("two"), SigningKey.generate("three")
    keys, source = SigningKeys(registry), RegistryKeys(registry, passphrase=PASS)
    store(keys, one)
    keys.promote(now=NOW)
    store(keys, two)
    keys.promote(now=NOW + timedelta(days=1))
    current = source.signing_keys()
    assert [k.certificate for k in current.held] == [two.certificate, one.certificate]  # the primary first
    pem = three.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"another passphrase"))
    keys.add_next(fingerprint=three.certificate.fingerprint(hashes.SHA256()).hex(), key_pem=pem,
                  cert_pem=three.certificate_pem, not_after=three.certificate.not_valid_after_utc, now=NOW)
    current = source.signing_keys()  # the next key does not open: published, not held, and no outage
    assert three.certificate in current.published
    assert {k.certificate for k in current.held} == {one.certificate, two.certificate}
