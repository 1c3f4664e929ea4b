"""Keys and certificates: loading, the sentences that name the bad file, the committed demo certs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from _support import ROOT
from wstrust_wsgi import ConfigurationError, SigningKey, WsTrustError, generate_demo_key_pair, load_certificate
from wstrust_wsgi.keys import load_certificates

DEMO_CERTS = ROOT / "certs"


def deployed(tmp_path: Path, source: Path, name: str) -> Path:
    """Copy a file to a realistic, nested deployment folder."""
    folder = tmp_path / "etc" / "wstrust-wsgi" / "production" / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copyfile(source, target)
    return target


def written(tmp_path: Path, name: str, content: bytes) -> Path:
    folder = tmp_path / "etc" / "wstrust-wsgi" / "production" / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    target.write_bytes(content)
    return target


# ----------------------------------------------------------------------------- SigningKey.from_files


def test_from_files_loads_a_matching_key_and_certificate(sts_keys):
    key = SigningKey.from_files(sts_keys.key, sts_keys.cert)
    assert isinstance(key.private_key, rsa.RSAPrivateKey)
    assert key.certificate.public_key().public_numbers() == key.private_key.public_key().public_numbers()
    assert key.certificate_pem == sts_keys.cert.read_bytes()


def test_from_files_accepts_string_paths(sts_keys):
    key = SigningKey.from_files(str(sts_keys.key), str(sts_keys.cert))
    assert key.certificate == x509.load_pem_x509_certificate(sts_keys.cert.read_bytes())


def test_from_files_with_a_missing_key_file_names_the_file(tmp_path, sts_keys):
    missing = tmp_path / "nowhere" / "sts.key"
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(missing, sts_keys.cert)
    assert str(missing) in str(caught.value)
    assert "cannot be read" in str(caught.value)


def test_from_files_with_a_missing_certificate_file_names_the_file(tmp_path, sts_keys):
    missing = tmp_path / "nowhere" / "sts.crt"
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(sts_keys.key, missing)
    assert str(missing) in str(caught.value)


def test_from_files_with_a_non_pem_key_file_names_the_file(tmp_path, sts_keys):
    not_pem = written(tmp_path, "sts.key", b"this is not a key\n")
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(not_pem, sts_keys.cert)
    assert str(not_pem) in str(caught.value)
    assert "PEM" in str(caught.value)


def test_from_files_with_a_certificate_given_as_the_key_names_the_key_file(tmp_path, sts_keys):
    swapped = deployed(tmp_path, sts_keys.cert, "sts.key")
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(swapped, sts_keys.cert)
    assert str(swapped) in str(caught.value)


def test_from_files_with_a_non_pem_certificate_file_names_the_whole_file_path(tmp_path, sts_keys):
    not_pem = written(tmp_path, "sts-signing.crt", b"-----BEGIN NONSENSE-----\nabc\n")
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(sts_keys.key, not_pem)
    assert str(not_pem) in str(caught.value)


def test_from_files_with_an_encrypted_key_names_the_file(tmp_path, sts_keys):
    private_key = SigningKey.from_files(sts_keys.key, sts_keys.cert).private_key
    encrypted = written(tmp_path, "encrypted.key", private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ))
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(encrypted, sts_keys.cert)
    assert str(encrypted) in str(caught.value)
    assert "unencrypted" in str(caught.value)


def test_from_files_with_an_ec_key_says_only_rsa_and_names_the_file(tmp_path, sts_keys):
    ec_key = written(tmp_path, "ec.key", ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(ec_key, sts_keys.cert)
    assert str(ec_key) in str(caught.value)
    assert "RSA" in str(caught.value)


def test_from_files_with_a_key_that_does_not_match_the_certificate_names_both_files(sts_keys, rogue_keys):
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(sts_keys.key, rogue_keys.cert)
    message = str(caught.value)
    assert str(rogue_keys.cert) in message
    assert str(sts_keys.key) in message
    assert "does not match" in message


def test_configuration_error_is_a_value_error_and_a_wstrust_error(tmp_path, sts_keys):
    with pytest.raises(ConfigurationError) as caught:
        SigningKey.from_files(tmp_path / "missing.key", sts_keys.cert)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, WsTrustError)


# ----------------------------------------------------------------------------- load_certificate(s)


def test_load_certificate_from_a_path_object(sts_keys):
    cert = load_certificate(sts_keys.cert)
    assert isinstance(cert, x509.Certificate)
    assert cert == x509.load_pem_x509_certificate(sts_keys.cert.read_bytes())


def test_load_certificate_from_a_string_path(sts_keys):
    assert load_certificate(str(sts_keys.cert)) == load_certificate(sts_keys.cert)


def test_load_certificate_from_pem_bytes(sts_keys):
    assert load_certificate(sts_keys.cert.read_bytes()) == load_certificate(sts_keys.cert)


def test_load_certificate_returns_a_certificate_object_unchanged(sts_keys):
    cert = x509.load_pem_x509_certificate(sts_keys.cert.read_bytes())
    assert load_certificate(cert) is cert


def test_load_certificate_from_bytes_that_are_not_pem_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as caught:
        load_certificate(b"definitely not a certificate")
    assert "not a PEM certificate" in str(caught.value)


def test_load_certificate_from_a_missing_path_names_the_path(tmp_path):
    missing = tmp_path / "trusted" / "sts.crt"
    with pytest.raises(ConfigurationError) as caught:
        load_certificate(missing)
    assert str(missing) in str(caught.value)


def test_load_certificate_from_a_non_pem_file_names_the_whole_file_path(tmp_path):
    not_pem = written(tmp_path, "trusted-sts.crt", b"not a certificate at all\n")
    with pytest.raises(ConfigurationError) as caught:
        load_certificate(not_pem)
    assert str(not_pem) in str(caught.value)


def test_load_certificates_of_nothing_is_a_configuration_error_naming_the_setting():
    with pytest.raises(ConfigurationError) as caught:
        load_certificates([])
    assert "trusted_certs" in str(caught.value)


def test_load_certificates_mixes_paths_bytes_and_objects_in_order(sts_keys, sts2_keys, rogue_keys):
    rogue = x509.load_pem_x509_certificate(rogue_keys.cert.read_bytes())
    certs = load_certificates([sts_keys.cert, sts2_keys.cert.read_bytes(), rogue])
    assert isinstance(certs, tuple)
    assert certs == (load_certificate(sts_keys.cert), load_certificate(sts2_keys.cert), rogue)


def test_load_certificates_accepts_a_generator():
    certs = load_certificates(p for p in [DEMO_CERTS / "sts.crt"])
    assert len(certs) == 1


# ----------------------------------------------------------------------------- demo key pairs


@pytest.mark.parametrize("stem", ["sts", "service", "client"])
def test_committed_demo_certificate_matches_its_key_and_says_demo_only(stem):
    key = SigningKey.from_files(DEMO_CERTS / f"{stem}.key", DEMO_CERTS / f"{stem}.crt")
    cert = key.certificate
    assert "DEMO ONLY" in cert.subject.rfc4514_string()
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)  # self-signed: raises if the signature is not its own
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 2048


def test_generate_demo_key_pair_writes_a_private_key_only_its_owner_can_read(tmp_path):
    generate_demo_key_pair("unit test", tmp_path / "out", "unit")
    assert (tmp_path / "out" / "unit.key").stat().st_mode & 0o077 == 0
    key = SigningKey.from_files(tmp_path / "out" / "unit.key", tmp_path / "out" / "unit.crt")
    assert "unit test" in key.certificate.subject.rfc4514_string()
    assert "DEMO ONLY" in key.certificate.subject.rfc4514_string()
