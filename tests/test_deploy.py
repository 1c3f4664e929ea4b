"""Deployment: the TOML file, the start-up checks, and the STS under real gunicorn.

* Parsing: a good file gives a typed config and a working app; every bad case
  is a ConfigurationError whose one-line message names the file, the table and
  the key.
* Start-up failures for real: gunicorn with a bad file exits non-zero and the
  sentence is the first thing it prints that is not an INFO line.
* The real thing: a SQLite registry made with the Registry API, gunicorn with
  TLS (a self-signed certificate for 127.0.0.1 the client trusts), a token
  over HTTPS, and the allow_plaintext_http warning in gunicorn's log.
* Replay protection as documented: with no [replay] table the workers share
  a SQLite nonce file (three gunicorn workers, one digest request sent 12
  times in a row and 20 at once: one token each); an explicit memory: under
  several workers is warned about at start-up.
* Logs: [sts] log_format = "json" and trusted_proxies under gunicorn, each
  line carrying the forwarded client and the request id.
* Two STS hosts (two gunicorns, two files) sharing one registry in a
  throwaway PostgreSQL: a relying party added through one is served by the
  other within 3 s.

Everything listens on 127.0.0.1 only; every process is stopped in a finally.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from webtest import TestApp

from _support import slapd
from _support import EMAIL, ROOT, KeyFiles, xmlsec1_verify
from _support.deployment import (
    ADMIN_PASSWORD, ISSUER, SERVICE, Gunicorn, Tables, free_port, init_registry, make_tls_pair, sqlite_url,
    toml_text, write_config, ldap_tables,
)
from _support.pg import PostgresServer
from wstrust_wsgi import ConfigurationError, RelyingParty, RemoteFault, StsClient, TransportError, UrllibTransport
from wstrust_wsgi import ns
from wstrust_wsgi.config import DeploymentConfig, load_config
from wstrust_wsgi.deploy import NONCE_FILE, StartupError, default_nonce_path, make_app
from wstrust_wsgi.stores import passwords
from wstrust_wsgi.stores.sql import Registry

REMOTE_PEER = "203.0.113.9"  # TEST-NET-3: only ever put into a WSGI environ, never contacted


def post_rst(app: Any, *, remote_addr: str, scheme: str = "http", username: str = "admin",
             password: str = ADMIN_PASSWORD) -> Any:
    """POST a PasswordText RST to an in-process app as if from ``remote_addr`` over ``scheme``."""
    client = StsClient("http://sts.invalid/services/sts", username=username, password=password)
    environ = {"wsgi.url_scheme": scheme, "REMOTE_ADDR": remote_addr}
    return TestApp(app, extra_environ=environ).post(
        "/services/sts", client.build_request(SERVICE), content_type="application/soap+xml; charset=utf-8",
        expect_errors=True)


def issued_assertion(response: Any) -> etree._Element | None:
    return etree.fromstring(response.body).find(f".//{{{ns.SAML2}}}Assertion")


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    """A SQLite registry initialised with the Registry API: admin (role admin), alice, one relying party."""
    path = tmp_path / "var" / "registry.db"
    path.parent.mkdir()
    init_registry(sqlite_url(path))
    return path


@pytest.fixture
def good(tmp_path: Path, sts_keys: KeyFiles) -> Tables:
    """A complete, valid file's tables; the registry file exists but is empty (parsing never opens it)."""
    registry = tmp_path / "empty-registry.db"
    registry.touch()
    return {
        "sts": {"path": "/services/sts", "log_level": "info"},
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry)},
        "replay": {"nonce_cache": "memory:"},
    }


# ---------------------------------------------------------------------- parsing: the good case


def test_a_good_file_gives_a_typed_frozen_config(tmp_path: Path, good: Tables, sts_keys: KeyFiles) -> None:
    good["sts"]["allow_plaintext_http"] = False
    config = load_config(write_config(tmp_path, good))
    assert isinstance(config, DeploymentConfig)
    assert config.source == str(tmp_path / "sts.toml")
    assert config.sts.path == "/services/sts" and config.sts.allow_plaintext_http is False
    assert config.keys.signing_key == sts_keys.key and config.keys.signing_cert == sts_keys.cert
    assert config.keys.loaded.certificate == sts_keys.load().certificate
    assert config.users == "registry" and config.ldap is None
    assert config.replay.nonce_cache == "memory:"
    with pytest.raises(AttributeError):
        config.sts = config.sts  # type: ignore[misc]


def test_defaults_and_relative_paths(tmp_path: Path, sts_keys: KeyFiles) -> None:
    """[sts] and [replay] may be left out; relative paths are relative to the file, not the cwd."""
    confdir = tmp_path / "etc"
    confdir.mkdir()
    (confdir / "k.pem").write_bytes(sts_keys.key.read_bytes())
    (confdir / "c.pem").write_bytes(sts_keys.cert.read_bytes())
    (tmp_path / "r.db").touch()
    path = write_config(confdir, {"keys": {"signing_key": "k.pem", "signing_cert": "c.pem"},
                                  "registry": {"url": sqlite_url(tmp_path / "r.db")}})
    config = load_config(path)
    assert config.keys.signing_key == confdir.resolve() / "k.pem"
    assert config.sts.path == "/services/sts" and config.sts.allow_plaintext_http is None
    assert config.sts.log_level == "info" and config.sts.log_format == "text" and config.sts.trusted_proxies == ()
    assert config.replay.nonce_cache is None  # deploy puts the nonces in a SQLite file (default_nonce_path)


def test_secrets_stay_out_of_repr(tmp_path: Path, good: Tables) -> None:
    good["registry"]["url"] = "postgresql://wstrust:pg-secret@127.0.0.1:5432/wstrust"
    config = load_config(write_config(tmp_path, good))
    assert "pg-secret" not in repr(config)
    assert config.registry.display_url == "postgresql://wstrust:***@127.0.0.1:5432/wstrust"


def test_the_example_file_is_valid(tmp_path: Path, sts_keys: KeyFiles) -> None:
    """demo_sts/sts.example.toml, its paths pointed at real files, loads; so does its [ldap] block.

    The LDAP store accepts the block's options too: make_app builds it before
    it opens the registry, so the first error is the (empty) registry's.
    """
    text = (ROOT / "demo_sts" / "sts.example.toml").read_text()
    (tmp_path / "registry.db").touch()
    text = (text.replace("/etc/wstrust/signing/sts.key", str(sts_keys.key))
            .replace("/etc/wstrust/signing/sts.crt", str(sts_keys.cert))
            .replace("sqlite:///var/lib/wstrust/registry.db", sqlite_url(tmp_path / "registry.db"))
            .replace("sqlite:///var/lib/wstrust/nonces.db", sqlite_url(tmp_path / "nonces.db")))
    (tmp_path / "plain.toml").write_text(text)
    config = load_config(tmp_path / "plain.toml")
    assert config.users == "registry" and config.sts.path == "/services/sts"
    # the commented [ldap] block: uncomment it and switch the source
    (tmp_path / "bind-password").write_text("reader-secret\n")
    (tmp_path / "ca.pem").write_bytes(sts_keys.cert.read_bytes())
    ldap = re.sub(r"(?m)^# (?!#)", "", text.split("# [ldap]", 1)[1].split("[replay]", 1)[0])
    ldap = (ldap.replace("/etc/wstrust/ldap-bind-password", str(tmp_path / "bind-password"))
            .replace("/etc/ssl/certs/example-ldap-ca.pem", str(tmp_path / "ca.pem")))
    with_ldap = text.replace('source = "registry"', 'source = "ldap"') + "\n[ldap]" + ldap
    (tmp_path / "ldap.toml").write_text(with_ldap)
    config = load_config(tmp_path / "ldap.toml")
    assert config.users == "ldap" and config.ldap is not None
    assert config.ldap.bind_password == "reader-secret"
    assert config.ldap.urls == ("ldaps://ldap1.example.org", "ldaps://ldap2.example.org")
    with pytest.raises(StartupError, match=r"ldap\.toml: \[registry\] url: .* is not initialised"):
        make_app(tmp_path / "ldap.toml")


# ---------------------------------------------------------------------- parsing: every bad case


def _encrypted_key(directory: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "encrypted.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pass")))
    return str(path)


def _ec_key_and_cert(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .sign(key, hashes.SHA256()))
    (directory / "ec.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (directory / "ec.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(directory / "ec.key"), str(directory / "ec.crt")


def _set(table: str, key: str, value: Any) -> Callable[[Tables, Path, KeyFiles], None]:
    def change(tables: Tables, _tmp: Path, _rogue: KeyFiles) -> None:
        tables.setdefault(table, {})[key] = value
    return change


def _file(table: str, key: str, make: Callable[[Path], Path]) -> Callable[[Tables, Path, KeyFiles], None]:
    def change(tables: Tables, tmp: Path, _rogue: KeyFiles) -> None:
        tables[table][key] = str(make(tmp))
    return change


def _text_file(name: str, text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_text(text)
        return tmp / name
    return make


def _directory(tmp: Path) -> Path:
    (tmp / "a-directory").mkdir()
    return tmp / "a-directory"


def _mismatched_cert(tables: Tables, _tmp: Path, rogue: KeyFiles) -> None:
    tables["keys"]["signing_cert"] = str(rogue.cert)


def _encrypted(tables: Tables, tmp: Path, _rogue: KeyFiles) -> None:
    tables["keys"]["signing_key"] = _encrypted_key(tmp)


def _ec(tables: Tables, tmp: Path, _rogue: KeyFiles) -> None:
    tables["keys"]["signing_key"], tables["keys"]["signing_cert"] = _ec_key_and_cert(tmp)


def _drop(table: str, key: str | None = None) -> Callable[[Tables, Path, KeyFiles], None]:
    def change(tables: Tables, _tmp: Path, _rogue: KeyFiles) -> None:
        if key is None:
            del tables[table]
        else:
            del tables[table][key]
    return change


def _ldap(**values: Any) -> Callable[[Tables, Path, KeyFiles], None]:
    def change(tables: Tables, _tmp: Path, _rogue: KeyFiles) -> None:
        tables["users"] = {"source": "ldap"}
        tables["ldap"] = {"urls": "ldap://127.0.0.1:389", "bind_dn": "cn=reader,dc=example,dc=org",
                          "bind_password": "pw", "user_search_base": "ou=people,dc=example,dc=org", **values}
    return change


# (id, change to the good tables, "[table] key" the message must name, a phrase it must hold)
BAD_CASES: list[tuple[str, Callable[[Tables, Path, KeyFiles], None], str, str]] = [
    ("missing key file", _set("keys", "signing_key", "/nonexistent/sts.key"),
     "[keys] signing_key", "/nonexistent/sts.key cannot be read (No such file or directory)"),
    ("key is a directory", _file("keys", "signing_key", _directory),
     "[keys] signing_key", "cannot be read (Is a directory)"),
    ("key not PEM", _file("keys", "signing_key", _text_file("garbage.key", "not a key\n")),
     "[keys] signing_key", "is not a PEM private key"),
    ("key encrypted", _encrypted, "[keys] signing_key", "is encrypted"),
    ("key not RSA", _ec, "[keys] signing_key", "is not an RSA key"),
    ("missing cert file", _set("keys", "signing_cert", "/nonexistent/sts.crt"),
     "[keys] signing_cert", "cannot be read (No such file or directory)"),
    ("cert not PEM", _file("keys", "signing_cert", _text_file("garbage.crt", "-----BEGIN nothing\n")),
     "[keys] signing_cert", "is not a PEM certificate"),
    ("key and cert mismatch", _mismatched_cert, "[keys] signing_cert", "does not match signing_key"),
    ("no signing_key", _drop("keys", "signing_key"), "[keys] signing_key", "missing"),
    ("no [keys]", _drop("keys"), "[keys]", "is missing"),
    ("no [registry]", _drop("registry"), "[registry]", "is missing"),
    ("registry URL scheme", _set("registry", "url", "mysql://db.example.org/wstrust"),
     "[registry] url", "is not sqlite:///absolute/path.db or postgresql://"),
    ("registry URL two slashes", _set("registry", "url", "sqlite://registry.db"),
     "[registry] url", "is not sqlite:///absolute/path.db"),
    ("registry URL four slashes", _set("registry", "url", "sqlite:////var/lib/wstrust/registry.db"),
     "[registry] url", "has four slashes"),
    ("registry URL relative", _set("registry", "url", "sqlite:///./registry.db"),
     "[registry] url", "is relative to the current folder"),
    ("registry URL bad port", _set("registry", "url", "postgresql://u@127.0.0.1:99999/db"),
     "[registry] url", "is not a valid PostgreSQL URL"),
    ("registry URL no database", _set("registry", "url", "postgresql://u@127.0.0.1:5432"),
     "[registry] url", "names no database"),
    ("registry file in a missing directory", _set("registry", "url", "sqlite:///nonexistent-dir/registry.db"),
     "[registry] url", "the directory /nonexistent-dir does not exist"),
    ("registry file missing", lambda t, tmp, _r: t["registry"].update(url=sqlite_url(tmp / "none.db")),
     "[registry] url", "does not exist; initialise the registry first"),
    ("unknown key (typo)", _set("keys", "signing_kye", "/x"), "[keys] signing_kye",
     "unknown setting (did you mean signing_key?)"),
    ("unknown key in [sts]", _set("sts", "issuer", ISSUER), "[sts] issuer", "unknown setting"),
    ("unknown table", _set("registy", "url", "x"), "[registy]", "is not a known table (did you mean registry?)"),
    ("bool as string", _set("sts", "allow_plaintext_http", "yes"),
     "[sts] allow_plaintext_http", "must be true or false, not a string ('yes')"),
    ("bool as integer", _set("sts", "allow_plaintext_http", 1),
     "[sts] allow_plaintext_http", "must be true or false, not an integer (1)"),
    ("path as integer", _set("sts", "path", 8443), "[sts] path", "must be a string, not an integer (8443)"),
    ("path not absolute", _set("sts", "path", "services/sts"), "[sts] path", "must be a URL path below /"),
    ("path is the root", _set("sts", "path", "/"), "[sts] path", "must be a URL path below /"),
    ("log level", _set("sts", "log_level", "verbose"), "[sts] log_level", "'verbose' is not one of"),
    ("public URL without scheme", _set("sts", "public_url", "sts.example.org/services/sts"), "[sts] public_url",
     "the URL 'sts.example.org/services/sts': must be an http(s) URL such as https://sts.example.org/services/sts"),
    ("public URL with a query", _set("sts", "public_url", "https://sts.example.org/sts?wsdl"), "[sts] public_url",
     "must have no user, query or fragment"),
    ("public URL without host", _set("sts", "public_url", "https:///services/sts"), "[sts] public_url",
     "must be an absolute URL"),
    ("url as list", _set("registry", "url", ["sqlite:///a.db"]), "[registry] url", "must be a string, not a list"),
    ("empty nonce cache", _set("replay", "nonce_cache", " "), "[replay] nonce_cache", "must not be empty"),
    ("users source", _set("users", "source", "nis"), "[users] source", "'nis' is not one of 'registry', 'ldap'"),
    ("ldap without source", lambda t, _tmp, _r: t.update(ldap={"urls": "ldap://127.0.0.1"}),
     "[ldap]", 'is set but [users] source is "registry"'),
    ("ldap source without [ldap]", _set("users", "source", "ldap"), "[ldap]", "is missing"),
    ("ldap URL typo", _ldap(url="ldap://127.0.0.1"), "[ldap] url", "unknown setting (did you mean urls?)"),
    ("ldap URLs empty list", _ldap(urls=[]), "[ldap] urls", "must be a string or a list of non-empty strings"),
    ("ldap timeout as string", _ldap(connect_timeout="3"), "[ldap] connect_timeout",
     "must be a number of seconds, not a string ('3')"),
    ("ldap timeout zero", _ldap(connect_timeout=0), "[ldap] connect_timeout", "must be more than 0 seconds"),
    ("ldap receive timeout fraction", _ldap(receive_timeout=2.5), "[ldap] receive_timeout",
     "must be a whole number of seconds, not a number (2.5)"),
    ("ldap both passwords", _ldap(bind_password_file="/etc/x"), "[ldap] bind_password_file",
     "give bind_password or bind_password_file, not both"),
    ("ldap password file missing", _ldap(bind_password=None, bind_password_file="/nonexistent/pw"),
     "[ldap] bind_password_file", "/nonexistent/pw cannot be read (No such file or directory)"),
    ("ldap group_to_role not a table", _ldap(group_to_role=["admins"]), "[ldap] group_to_role",
     "must be a table of strings"),
    ("ldap claim not a string", _ldap(attribute_to_claim={"mail": 5}), "[ldap] attribute_to_claim",
     "the value for 'mail' must be a non-empty string"),
    ("password cache ttl as string", _set("users", "password_cache_ttl", "120"), "[users] password_cache_ttl",
     "must be a number of seconds (0 turns it off), not a string ('120')"),
    ("password cache ttl as boolean", _set("users", "password_cache_ttl", False), "[users] password_cache_ttl",
     "must be a number of seconds (0 turns it off), not a boolean (False)"),
    ("password cache ttl negative", _set("users", "password_cache_ttl", -1), "[users] password_cache_ttl",
     "must be from 0 (off) to 900 seconds, not -1"),
    ("password cache ttl too long", _set("users", "password_cache_ttl", 3600), "[users] password_cache_ttl",
     "must be from 0 (off) to 900 seconds, not 3600"),
    ("password cache ttl typo", _set("users", "password_cache", 60), "[users] password_cache",
     "unknown setting (did you mean password_cache_ttl?)"),
    ("password cache with ldap", lambda t, tmp, r: (_ldap()(t, tmp, r), t["users"].update(password_cache_ttl=60)),
     "[users] password_cache_ttl", 'must be 0 or left out with source = "ldap", not 60'),
]


@pytest.mark.parametrize(("change", "where", "phrase"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_each_bad_value_is_one_sentence_naming_file_table_and_key(
    tmp_path: Path, good: Tables, rogue_keys: KeyFiles, change: Callable[[Tables, Path, KeyFiles], None],
    where: str, phrase: str,
) -> None:
    change(good, tmp_path, rogue_keys)
    for table in good.values():  # _ldap(bind_password=None) removes a key
        for key in [k for k, v in table.items() if v is None]:
            del table[key]
    path = write_config(tmp_path, good)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {where}"), message
    assert phrase in message, message
    assert "\n" not in message
    # make_app says the same, as the exception gunicorn prints cleanly
    with pytest.raises(StartupError, match=re.escape(message)):
        make_app(path)


@pytest.mark.parametrize(("given", "ttl"), [
    (None, dt.timedelta(minutes=2)), (0, dt.timedelta(0)), (0.5, dt.timedelta(milliseconds=500)),
    (900, dt.timedelta(minutes=15)),
])
def test_the_password_cache_ttl(tmp_path: Path, good: Tables, given: float | None, ttl: dt.timedelta) -> None:
    if given is not None:
        good["users"] = {"password_cache_ttl": given}
    assert load_config(write_config(tmp_path, good)).password_cache_ttl == ttl
    _ldap()(good, tmp_path, None)  # type: ignore[arg-type]
    if given is not None:
        good["users"]["password_cache_ttl"] = 0
    assert load_config(write_config(tmp_path, good)).password_cache_ttl == dt.timedelta(0)  # LDAP: never cached


def test_a_password_in_a_wrongly_typed_value_is_not_echoed(tmp_path: Path, good: Tables) -> None:
    _ldap(bind_password=123456789)(good, tmp_path, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as caught:
        load_config(write_config(tmp_path, good))
    assert "[ldap] bind_password: must be a string, not an integer" in str(caught.value)
    assert "123456789" not in str(caught.value)


def test_file_level_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"sts\.toml: the configuration file cannot be read "
                                                 r"\(No such file or directory\)"):
        load_config(tmp_path / "sts.toml")
    (tmp_path / "broken.toml").write_text("[keys\nsigning_key = 1\n")
    with pytest.raises(ConfigurationError, match=r"broken\.toml: not valid TOML \("):
        load_config(tmp_path / "broken.toml")
    (tmp_path / "flat.toml").write_text('keys = "sts.key"\n')
    with pytest.raises(ConfigurationError, match=r"flat\.toml: keys must be a table \(\[keys\]\), not a string"):
        load_config(tmp_path / "flat.toml")


@pytest.mark.parametrize(("now", "phrase"), [
    (dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc), "expired on"),
    (dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), "is not valid before"),
])
def test_a_signing_certificate_not_valid_now_is_refused(tmp_path: Path, good: Tables, now: dt.datetime,
                                                       phrase: str) -> None:
    path = write_config(tmp_path, good)
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(str(path))}: \[keys\] signing_cert: .*{phrase}"):
        load_config(path, now=now)


def test_warnings_for_a_readable_key_and_a_certificate_about_to_expire(tmp_path: Path, good: Tables,
                                                                       sts_keys: KeyFiles) -> None:
    key = tmp_path / "open.key"
    key.write_bytes(sts_keys.key.read_bytes())
    key.chmod(0o644)
    good["keys"]["signing_key"] = str(key)
    cert = x509.load_pem_x509_certificate(sts_keys.cert.read_bytes())
    config = load_config(write_config(tmp_path, good), now=cert.not_valid_after_utc - dt.timedelta(days=3))
    assert any("[keys] signing_key" in w and "mode 0644" in w for w in config.warnings), config.warnings
    assert any("[keys] signing_cert" in w and "expires on" in w for w in config.warnings), config.warnings


def test_a_warning_for_a_password_in_a_file_others_can_read(tmp_path: Path, good: Tables) -> None:
    good["registry"]["url"] = "postgresql://wstrust:pg-secret@127.0.0.1:5432/wstrust"
    path = write_config(tmp_path, good)
    path.chmod(0o644)
    warnings = load_config(path).warnings
    assert any("holds a password ([registry] url)" in w and "mode 0644" in w for w in warnings), warnings
    assert not any("pg-secret" in w for w in warnings)
    path.chmod(0o600)
    assert not any("holds a password" in w for w in load_config(path).warnings)


def test_no_file_named_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WSTRUST_CONFIG", raising=False)
    with pytest.raises(StartupError, match="no configuration file: .* or set WSTRUST_CONFIG"):
        make_app()


# ---------------------------------------------------------------------- the app, in-process


def test_a_good_file_gives_the_mounted_app(tmp_path: Path, good: Tables, registry_file: Path) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    app = make_app(write_config(tmp_path, good))
    response = post_rst(app, remote_addr="127.0.0.1")
    assert response.status_int == 200, response.body
    assertion = issued_assertion(response)
    assert assertion is not None
    assert assertion.findtext(f"{{{ns.SAML2}}}Issuer") == ISSUER  # the issuer comes from the registry
    assert TestApp(app).get("/elsewhere", expect_errors=True).status_int == 404


def test_make_app_reads_wstrust_config(tmp_path: Path, good: Tables, registry_file: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    monkeypatch.setenv("WSTRUST_CONFIG", str(write_config(tmp_path, good)))
    assert post_rst(make_app(), remote_addr="::1").status_int == 200


def test_plaintext_http_from_a_remote_peer_is_refused(tmp_path: Path, good: Tables, registry_file: Path) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    app = make_app(write_config(tmp_path, good))
    refused = post_rst(app, remote_addr=REMOTE_PEER)
    assert refused.status_int == 400
    assert b"FailedAuthentication" in refused.body and b"HTTPS" in refused.body
    assert issued_assertion(refused) is None
    assert post_rst(app, remote_addr=REMOTE_PEER, scheme="https").status_int == 200


def test_allow_plaintext_http_in_the_file_overrides_the_registry_for_this_host(
    tmp_path: Path, good: Tables, registry_file: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    caplog.set_level(logging.WARNING, logger="wstrust_wsgi")
    good["sts"]["allow_plaintext_http"] = True
    opened = make_app(write_config(tmp_path, good, "open.toml"))
    assert "ALLOWED" in caplog.text
    assert post_rst(opened, remote_addr=REMOTE_PEER).status_int == 200
    # the registry allows it, this host's file says no
    registry = Registry.open(sqlite_url(registry_file))
    try:
        registry.update_settings(allow_plaintext_http=True)
    finally:
        registry.close()
    good["sts"]["allow_plaintext_http"] = False
    closed = make_app(write_config(tmp_path, good, "closed.toml"))
    assert post_rst(closed, remote_addr=REMOTE_PEER).status_int == 400
    del good["sts"]["allow_plaintext_http"]  # no override: the registry's setting
    assert post_rst(make_app(write_config(tmp_path, good, "default.toml")), remote_addr=REMOTE_PEER).status_int == 200


@pytest.mark.parametrize(("ttl", "cached"), [(None, True), (30, True), (0, False)],
                         ids=["default", "30 s", "off"])
def test_the_app_remembers_successful_password_checks_unless_the_ttl_is_0(
    tmp_path: Path, good: Tables, registry_file: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, ttl: int | None, cached: bool,
) -> None:
    """The registry's scrypt check runs once for three good requests when cached, three times when not.

    A password changed by ``wstrust-wsgi user passwd`` in another process, and a
    revoked role, count at the very next request either way.
    """
    good["registry"]["url"] = url = sqlite_url(registry_file)
    if ttl is not None:
        good["users"] = {"password_cache_ttl": ttl}
    caplog.set_level(logging.INFO, logger="wstrust_wsgi.deploy")
    app = make_app(write_config(tmp_path, good))
    assert ("password cache off" in caplog.text) is not cached
    kdf_runs: list[str] = []
    real = passwords.hash_password

    def counting(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
        kdf_runs.append(password)
        return real(password, salt)

    monkeypatch.setattr(passwords, "hash_password", counting)
    for _ in range(3):
        assert post_rst(app, remote_addr="127.0.0.1").status_int == 200
    assert kdf_runs.count(ADMIN_PASSWORD) == (1 if cached else 3)
    assert post_rst(app, remote_addr="127.0.0.1", password="wrong").status_int == 400
    assert kdf_runs.count("wrong") == 1

    changed = subprocess.run(
        [sys.executable, "-m", "wstrust_wsgi", "user", "passwd", "admin", "--password-stdin", "--registry", url],
        input="admin-n3w\n", capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("WSTRUST_")})
    assert changed.returncode == 0, changed.stderr
    kdf_runs.clear()
    refused = post_rst(app, remote_addr="127.0.0.1")
    assert refused.status_int == 400 and b"FailedAuthentication" in refused.body
    assert kdf_runs == [ADMIN_PASSWORD]  # checked against the new hash, not answered from the cache
    for _ in range(2):
        assert post_rst(app, remote_addr="127.0.0.1", password="admin-n3w").status_int == 200

    registry = Registry.open(url)
    try:
        registry.add_role("token-users")  # admin keeps a role, so the refusal is about "admin" itself
        registry.grant_role("admin", "token-users")
        registry.revoke_role("admin", "admin")
    finally:
        registry.close()
    kdf_runs.clear()
    refused = post_rst(app, remote_addr="127.0.0.1", password="admin-n3w")
    assert refused.status_int == 400 and b"RequestFailed" in refused.body
    assert kdf_runs.count("admin-n3w") == (0 if cached else 1)  # the cache still saved the KDF, not the role


# ---------------------------------------------------------------------- stores that do not answer


def test_an_unreachable_postgresql_registry_fails_at_start_up(tmp_path: Path, good: Tables) -> None:
    port = free_port()
    good["registry"]["url"] = f"postgresql://wstrust:pg-secret@127.0.0.1:{port}/wstrust?connect_timeout=3"
    path = write_config(tmp_path, good)
    with pytest.raises(StartupError) as caught:
        make_app(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: [registry] url: ") and f"127.0.0.1:{port}" in message, message
    assert "pg-secret" not in message and "\n" not in message


def test_an_uninitialised_sqlite_registry_fails_at_start_up(tmp_path: Path, good: Tables) -> None:
    path = write_config(tmp_path, good)  # the registry file exists but is empty
    with pytest.raises(StartupError, match=rf"^{re.escape(str(path))}: \[registry\] url: .*sqlite:///.* is not "
                                           r"initialised"):
        make_app(path)


@pytest.mark.parametrize(("url", "phrase"), [
    ("redis://127.0.0.1:{port}/0", "does not answer"),
    ("memcached://127.0.0.1:{port}", "is not usable"),
    ("sqlite:///nonexistent-dir/nonces.db", "is not usable"),
])
def test_a_bad_or_unreachable_nonce_cache_fails_at_start_up(tmp_path: Path, good: Tables, registry_file: Path,
                                                            url: str, phrase: str) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    good["replay"]["nonce_cache"] = url.format(port=free_port())
    path = write_config(tmp_path, good)
    with pytest.raises(StartupError, match=rf"^{re.escape(str(path))}: \[replay\] nonce_cache: .*{phrase}"):
        make_app(path)


# ---------------------------------------------------------------------- users from LDAP


@pytest.fixture(scope="module")
def directory() -> Iterator[slapd.Slapd]:
    """The seeded throwaway slapd of tests/_support/slapd.py (admin in cn=sts-admins)."""
    with slapd.Slapd() as server:
        yield server


def test_users_from_ldap(tmp_path: Path, good: Tables, registry_file: Path, directory: slapd.Slapd) -> None:
    app = make_app(write_config(tmp_path, ldap_tables(good, registry_file, tmp_path, directory.url)))
    response = post_rst(app, remote_addr="127.0.0.1", password=slapd.PASSWORDS["admin"])
    assert response.status_int == 200, response.body
    assertion = issued_assertion(response)
    assert assertion is not None and b"admin@example.org" in etree.tostring(assertion)
    # the registry's own admin does not count: users come from the directory only
    assert post_rst(app, remote_addr="127.0.0.1", password=ADMIN_PASSWORD).status_int == 400


def test_an_unreachable_directory_fails_at_start_up(tmp_path: Path, good: Tables, registry_file: Path) -> None:
    url = f"ldap://127.0.0.1:{free_port()}"
    path = write_config(tmp_path, ldap_tables(good, registry_file, tmp_path, url))
    with pytest.raises(StartupError) as caught:
        make_app(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: [ldap] urls: {url}: the start-up lookup failed ("), message
    assert "\n" not in message


def test_a_refused_search_account_fails_at_start_up(tmp_path: Path, good: Tables, registry_file: Path,
                                                    directory: slapd.Slapd) -> None:
    tables = ldap_tables(good, registry_file, tmp_path, directory.url)
    del tables["ldap"]["bind_password_file"]
    tables["ldap"]["bind_password"] = "not-the-password"
    path = write_config(tmp_path, tables)
    with pytest.raises(StartupError, match=rf"^{re.escape(str(path))}: \[ldap\] urls: .*start-up lookup failed "
                                           r"\(.*refused the search account"):
        make_app(path)


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"urls": "http://ldap.example.org"}, "[ldap] urls: 'http://ldap.example.org' must be ldap://host[:port]"),
    ({"user_filter": "(uid={username}"}, "[ldap] user_filter: "),
    ({"user_dn_template": "uid={username},ou=people,dc=example,dc=org"},
     "[ldap] give exactly one of user_dn_template (direct bind) and user_search_base (search)"),
    ({"group_to_role": {}}, "[ldap] group_search_base is set but group_to_role maps no group to a role"),
])
def test_ldap_options_the_store_refuses_are_named_before_anything_is_contacted(
    tmp_path: Path, good: Tables, changes: dict[str, Any], phrase: str,
) -> None:
    """Neither the (empty, uninitialised) registry nor the (absent) directory is asked anything."""
    unreachable = f"ldap://127.0.0.1:{free_port()}"
    path = write_config(tmp_path, ldap_tables(good, None, tmp_path, unreachable, **changes))
    with pytest.raises(StartupError) as caught:
        make_app(path)
    assert str(caught.value).startswith(f"{path}: {phrase}"), str(caught.value)


# ---------------------------------------------------------------------- gunicorn: start-up failures


@pytest.mark.parametrize("preload", [False, True], ids=["worker", "preload"])
@pytest.mark.parametrize("problem", ["missing key", "registry down"])
def test_gunicorn_with_a_bad_file_exits_and_prints_the_sentence_first(tmp_path: Path, good: Tables,
                                                                      preload: bool, problem: str) -> None:
    if problem == "missing key":
        good["keys"]["signing_key"] = "/etc/wstrust/missing.key"
        start, detail = "bad.toml: [keys] signing_key: ", "/etc/wstrust/missing.key cannot be read (No such file or directory)"
    else:
        port = free_port()
        good["registry"]["url"] = f"postgresql://wstrust@127.0.0.1:{port}/wstrust?connect_timeout=3"
        start, detail = "bad.toml: [registry] url: ", f"127.0.0.1:{port}"
    write_config(tmp_path, good, "bad.toml")
    server = Gunicorn('wstrust_wsgi.deploy:make_app("bad.toml")', port=free_port(), cwd=tmp_path,
                      log=tmp_path / "gunicorn.log", args=("--preload",) if preload else ())
    try:
        code = server.wait_exit()
    finally:
        server.stop()
    output = server.text()
    assert code == (1 if preload else 4), output  # 4: gunicorn's "App failed to load"
    assert "Traceback" not in output, output
    first = next(line for line in output.splitlines() if line.strip() and "[INFO]" not in line)
    sentence = first.removeprefix("Error: ")  # --preload: gunicorn's own prefix
    assert sentence.startswith(start) and detail in sentence, output


#: README's production command, after the app and --bind (which :class:`Gunicorn` adds).
README_OPTIONS = ("--worker-class", "gthread", "--workers", "2", "--threads", "8")


@pytest.mark.parametrize("problem", ["missing key", "registry down", "no such table"])
def test_the_readme_command_with_a_bad_file_says_its_sentence_once_without_a_traceback(
        tmp_path: Path, good: Tables, problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, item 12: with two workers (no --preload) each worker fails; the sentence is printed once.

    Before, every worker printed it, and a second worker exiting with code 4
    while the master stopped made the master raise HaltServer inside its own
    handler: two chained tracebacks, in most runs. Five runs each, as the
    failure was a race.
    """
    if problem == "missing key":
        good["keys"]["signing_key"] = "/etc/wstrust/missing.key"
        start = "bad.toml: [keys] signing_key: /etc/wstrust/missing.key cannot be read"
    elif problem == "registry down":
        good["registry"]["url"] = f"postgresql://wstrust@127.0.0.1:{free_port()}/wstrust?connect_timeout=3"
        start = "bad.toml: [registry] url: "
    else:  # the file is fine; the registry it names is not initialised (found only when a worker opens it)
        start = "bad.toml: [registry] url: "
    write_config(tmp_path, good, "bad.toml")
    tls_key, tls_cert = make_tls_pair(tmp_path)
    markers = tmp_path / "tmp"  # where the workers leave the marker of the first failure (the temporary folder)
    markers.mkdir()
    monkeypatch.setenv("TMPDIR", str(markers))
    for attempt in range(5):
        log = tmp_path / f"gunicorn-{attempt}.log"
        server = Gunicorn('wstrust_wsgi.deploy:make_app("bad.toml")', port=free_port(), cwd=tmp_path, log=log,
                          args=("--certfile", str(tls_cert), "--keyfile", str(tls_key), *README_OPTIONS))
        try:
            code = server.wait_exit()
        finally:
            server.stop()
        output = server.text()
        assert code == 4, output  # gunicorn's "App failed to load"
        assert "Traceback" not in output, output
        said = [line for line in output.splitlines() if line.startswith(start)]
        assert len(said) == 1, output
    left = list(markers.glob("wstrust-wsgi-*-gunicorn-*.failed"))
    assert left and all(marker.stat().st_mode & 0o777 == 0o600 for marker in left)


# ---------------------------------------------------------------------- gunicorn: the real thing
# ---------------------------------------------------------------------- gunicorn: the real thing


def test_over_tls_with_a_sqlite_registry(tmp_path: Path, registry_file: Path, sts_keys: KeyFiles,
                                         rogue_keys: KeyFiles) -> None:
    tls_key, tls_cert = make_tls_pair(tmp_path)
    config = write_config(tmp_path, {
        "sts": {"path": "/services/sts", "allow_plaintext_http": True},
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry_file)},
        "replay": {"nonce_cache": sqlite_url(tmp_path / "var" / "nonces.db")},
    })
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log",
                      args=("--certfile", str(tls_cert), "--keyfile", str(tls_key),
                            "--worker-class", "gthread", "--workers", "2", "--threads", "4"))
    url = f"https://127.0.0.1:{port}/services/sts"
    try:
        server.wait_started(workers=2)
        trusted = UrllibTransport(cafile=str(tls_cert), timeout=10)
        token = StsClient(url, username="admin", password=ADMIN_PASSWORD, transport=trusted).request_token(SERVICE)
        assert token.applies_to == SERVICE
        verified = xmlsec1_verify(token.assertion, sts_keys.cert, tmp_path)
        assert verified.returncode == 0, verified.stderr
        assert xmlsec1_verify(token.assertion, rogue_keys.cert, tmp_path).returncode != 0
        with pytest.raises(RemoteFault) as refused:  # a good password without the admin role
            StsClient(url, username="alice", password="alice-pw", transport=trusted).request_token(SERVICE)
        assert refused.value.local_code == "RequestFailed"
        with pytest.raises(TransportError):  # the system store does not trust the self-signed certificate
            StsClient(url, username="admin", password=ADMIN_PASSWORD,
                      transport=UrllibTransport(timeout=10)).request_token(SERVICE)
    finally:
        server.stop()
    log = server.text()
    assert "PasswordText over plain HTTP from non-loopback peers is ALLOWED" in log, log
    assert "issued: SAML 2.0 token" in log and "'admin'" in log, log
    assert "refused: NotAuthorized" in log, log


# ---------------------------------------------------------------------- replay protection under the documented deployment


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One POST on a new connection (urllib sends Connection: close): status and body, faults included."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def worker_pids(access_log: Path) -> set[str]:
    """The pids of the workers that answered, from an access log written as ``%(p)s``."""
    return set(access_log.read_text().split()) if access_log.exists() else set()


def at_once(count: int, send: Callable[[], int]) -> list[int]:
    """``count`` calls of ``send`` released together from as many threads."""
    barrier = threading.Barrier(count, timeout=30)

    def go() -> int:
        barrier.wait()
        return send()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return [future.result(timeout=120) for future in [pool.submit(go) for _ in range(count)]]


def test_the_default_nonce_file_is_beside_a_sqlite_registry_else_in_the_state_directory(
    tmp_path: Path, good: Tables, sts_keys: KeyFiles,
) -> None:
    beside = load_config(write_config(tmp_path, {k: v for k, v in good.items() if k != "replay"}))
    assert default_nonce_path(beside, {}) == tmp_path / NONCE_FILE  # good's registry is tmp_path/empty-registry.db
    good["registry"]["url"] = "postgresql://wstrust@db.example.org/wstrust"
    del good["replay"]
    remote = load_config(write_config(tmp_path, good))
    assert default_nonce_path(remote, {"STATE_DIRECTORY": "/var/lib/wstrust:/var/lib/other"}) \
        == Path("/var/lib/wstrust") / NONCE_FILE  # systemd's StateDirectory=
    assert default_nonce_path(remote, {"XDG_STATE_HOME": "/srv/state"}) == Path("/srv/state/wstrust-wsgi") / NONCE_FILE
    assert default_nonce_path(remote, {}) == Path.home() / ".local/state/wstrust-wsgi" / NONCE_FILE


def test_without_a_replay_table_apps_of_one_host_share_the_nonces_in_a_file_beside_the_registry(
    tmp_path: Path, good: Tables, registry_file: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Two apps from one file stand for two workers: a digest request answered by one is refused by the other."""
    registry = Registry.open(sqlite_url(registry_file))
    try:
        registry.add_user("digester", "digest-pw", roles=["admin"], digest_secret=True)
    finally:
        registry.close()
    good["registry"]["url"] = sqlite_url(registry_file)
    del good["replay"]
    caplog.set_level(logging.INFO, logger="wstrust_wsgi")
    path = write_config(tmp_path, good)
    first, second = make_app(path), make_app(path)
    nonces = registry_file.parent / NONCE_FILE
    assert nonces.is_file() and f"digest nonces in sqlite://{nonces} (the default" in caplog.text
    assert "gunicorn workers" not in caplog.text and "nonce_cache left out" not in caplog.text  # no PostgreSQL
    client = StsClient("http://sts.invalid/services/sts", username="digester", password="digest-pw", digest=True)
    body = client.build_request(SERVICE)
    headers = {"Content-Type": client.soap.content_type(client.dialect.issue_action)}
    answers = [TestApp(app, extra_environ={"REMOTE_ADDR": REMOTE_PEER}).post(
        "/services/sts", body, headers=headers, expect_errors=True) for app in (first, second)]
    assert answers[0].status_int == 200 and issued_assertion(answers[0]) is not None
    assert b"FailedAuthentication" in answers[1].body and "nonce replayed" in caplog.text


def test_without_a_replay_table_three_gunicorn_workers_issue_one_token_per_digest_nonce(
    tmp_path: Path, registry_file: Path, sts_keys: KeyFiles,
) -> None:
    """The README's deployment with no [replay]: one digest request sent 12 times in a row, then 20 at once, gives
    one token; a fresh one sent 20 at once gives one too. Before, each worker had its own memory: up to 3 tokens."""
    registry = Registry.open(sqlite_url(registry_file))
    try:
        registry.add_user("digester", "digest-pw", roles=["admin"], digest_secret=True)
    finally:
        registry.close()
    config = write_config(tmp_path, {
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry_file)},
    })
    port, access = free_port(), tmp_path / "access.log"
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log",
                      args=("--worker-class", "sync", "--workers", "3", "--timeout", "60",
                            "--access-logfile", str(access), "--access-logformat", "%(p)s"))
    url = f"http://127.0.0.1:{port}/services/sts"
    client = StsClient(url, username="digester", password="digest-pw", digest=True)
    headers = {"Content-Type": client.soap.content_type(client.dialect.issue_action)}
    try:
        server.wait_started(workers=3)
        body = client.build_request(SERVICE)
        in_a_row = [post_raw(url, body, headers)[0] for _ in range(12)]
        same_at_once = at_once(20, lambda: post_raw(url, body, headers)[0])
        fresh = client.build_request(SERVICE)  # a new nonce: the race itself must give one token
        fresh_at_once = at_once(20, lambda: post_raw(url, fresh, headers)[0])
    finally:
        server.stop()
    log = server.text()
    assert in_a_row.count(200) == 1 and in_a_row[0] == 200, (in_a_row, log)
    assert same_at_once.count(200) == 0, (same_at_once, log)
    assert fresh_at_once.count(200) == 1, (fresh_at_once, log)
    assert log.count("issued: SAML") == 2 and log.count("nonce replayed") == 11 + 20 + 19, log
    assert len(worker_pids(access)) >= 2, "every request went to one worker: the test proved nothing"
    assert f"digest nonces in sqlite://{registry_file.parent / NONCE_FILE}" in log, log  # named at start-up


def test_an_explicit_memory_nonce_cache_under_several_workers_logs_a_warning(
    tmp_path: Path, good: Tables, registry_file: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    good["replay"]["nonce_cache"] = "memory:"
    config = write_config(tmp_path, good)
    caplog.set_level(logging.INFO, logger="wstrust_wsgi")
    make_app(config)  # in-process: no gunicorn, no workers to warn about
    assert "gunicorn workers" not in caplog.text
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=free_port(), cwd=tmp_path,
                      log=tmp_path / "gunicorn.log", args=("--worker-class", "gthread", "--workers", "2"))
    try:
        server.wait_started(workers=2)
    finally:
        server.stop()
    log = server.text()
    warning = f'{config}: [replay] nonce_cache = "memory:" with 2 gunicorn workers: each worker remembers only'
    assert log.count(warning) == 2, log  # once per worker, each building its own app
    assert "[WARNING] wstrust_wsgi.deploy: " + warning in log, log


# ---------------------------------------------------------------------- log lines an operator can act on


def test_bad_log_settings_are_refused_at_start_up(tmp_path: Path, good: Tables, registry_file: Path) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    good["sts"]["trusted_proxies"] = ["10.0.0.0/8", "proxy.example.org"]
    path = write_config(tmp_path, good)
    with pytest.raises(StartupError, match=rf"^{re.escape(str(path))}: \[sts\] trusted_proxies: 'proxy.example.org' "
                                           r"is not an IP address or network"):
        make_app(path)
    good["sts"]["trusted_proxies"] = "10.0.0.1"
    good["sts"]["log_format"] = "xml"
    with pytest.raises(ConfigurationError, match=r"\[sts\] log_format: 'xml' is not one of 'text', 'json'"):
        load_config(write_config(tmp_path, good))


def test_json_log_lines_under_gunicorn_carry_the_forwarded_client_and_the_request_id(
    tmp_path: Path, good: Tables, registry_file: Path,
) -> None:
    good["registry"]["url"] = sqlite_url(registry_file)
    good["sts"].update(log_format="json", trusted_proxies=["127.0.0.1", "10.1.0.0/16"])
    config = write_config(tmp_path, good)
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log", args=("--worker-class", "gthread", "--threads", "2"))
    url = f"http://127.0.0.1:{port}/services/sts"
    client = StsClient(url, username="admin", password=ADMIN_PASSWORD)
    headers = {"Content-Type": client.soap.content_type(client.dialect.issue_action)}
    try:
        server.wait_started()
        # the client, then a proxy of ours at 10.1.2.3, then the one at 127.0.0.1 that connects
        forwarded = {**headers, "X-Forwarded-For": "192.0.2.1, 198.51.100.23, 10.1.2.3", "X-Request-ID": "edge-42"}
        assert post_raw(url, client.build_request(SERVICE), forwarded)[0] == 200
        wrong = StsClient(url, username="admin", password="wrong").build_request(SERVICE)
        assert post_raw(url, wrong, {**headers, "X-Forwarded-For": "203.0.113.5"})[0] != 200
    finally:
        server.stop()
    lines = [line for line in server.text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all(r["logger"].startswith("wstrust_wsgi") for r in records), server.text()
    issued = next(r for r in records if r["message"].startswith("issued: SAML 2.0 token"))
    assert (issued["client"], issued["request_id"], issued["level"]) == ("198.51.100.23", "edge-42", "INFO")
    assert "client" not in issued["message"] and issued["time"].endswith("+00:00")
    refused = next(r for r in records if r["message"].startswith("refused: FailedAuthentication"))
    assert refused["client"] == "203.0.113.5" and re.fullmatch(r"[0-9a-f]{16}", refused["request_id"]), refused
    assert any(r["message"].startswith("STS at /services/sts") for r in records)


# ---------------------------------------------------------------------- several hosts, one PostgreSQL registry


def test_two_hosts_share_one_postgresql_registry(tmp_path: Path, sts_keys: KeyFiles) -> None:
    added = "https://added-later.example.org/soap"
    postgres = PostgresServer()
    servers: list[Gunicorn] = []
    try:
        url = postgres.create_database("wstrust")
        init_registry(url)
        for host in ("a", "b"):
            config = write_config(tmp_path, {
                "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
                "registry": {"url": url},
            }, f"host-{host}.toml")
            servers.append(Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=free_port(), cwd=tmp_path,
                                    log=tmp_path / f"host-{host}.log",
                                    args=("--worker-class", "gthread", "--threads", "4")))
        for server in servers:
            server.wait_started()
        host_a, host_b = (StsClient(f"http://127.0.0.1:{s.port}/services/sts", username="admin",
                                    password=ADMIN_PASSWORD) for s in servers)
        assert host_b.request_token(SERVICE).applies_to == SERVICE
        with pytest.raises(RemoteFault) as unknown:
            host_b.request_token(added)
        assert unknown.value.local_code == "InvalidRequest"

        registry = Registry.open(load_config(tmp_path / "host-a.toml").registry.url)  # host A's registry
        try:
            registry.add_relying_party(RelyingParty(added, token_type="1.1"))
        finally:
            registry.close()
        deadline = time.monotonic() + 3.0
        while True:
            try:
                token = host_b.request_token(added)
                break
            except RemoteFault:
                assert time.monotonic() < deadline, "host B did not serve the new relying party within 3 s"
                time.sleep(0.1)
        assert token.applies_to == added and token.token_type == "urn:oasis:names:tc:SAML:1.0:assertion"
        assert host_a.request_token(added).applies_to == added
    finally:
        for server in servers:
            server.stop()
        postgres.stop()
    for server in servers:
        assert "issued: SAML" in server.text(), server.text()


# ---------------------------------------------------------------------- behind a proxy: [sts] public_url


def test_behind_a_proxy_the_wsdl_advertises_the_public_url(tmp_path: Path, registry_file: Path,
                                                          sts_keys: KeyFiles) -> None:
    """gunicorn sees the proxy's request (its inner Host, plain HTTP); ?wsdl names the public address."""
    public = "https://sts.example.org/services/sts"
    config = write_config(tmp_path, {
        "sts": {"path": "/services/sts", "public_url": public},
        "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
        "registry": {"url": sqlite_url(registry_file)},
    })
    assert load_config(config).sts.public_url == public
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{config}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log")
    try:
        server.wait_started()
        for host in (f"127.0.0.1:{port}", "sts-internal:8000"):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", "/services/sts?wsdl", headers={"Host": host})
                response = connection.getresponse()
                status, body = response.status, response.read()
            finally:
                connection.close()
            assert status == 200, body
            document = etree.fromstring(body)
            locations = {a.get("location") for a in document.iter(
                "{http://schemas.xmlsoap.org/wsdl/soap/}address", "{http://schemas.xmlsoap.org/wsdl/soap12/}address")}
            assert locations == {public}, (host, locations)
    finally:
        server.stop()
