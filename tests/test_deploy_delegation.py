"""The deployment file's delegation settings: ``[sts] default_applies_to`` and ``[delegation] trusted_issuers``.

Before these, only Python could set ``TokenService(default_applies_to=)`` (the
relying party of a request without AppliesTo, which pyVmomi never sends) and
``DelegationPolicy(trusted_issuers=)`` (other STSs whose SAML tokens are
accepted in OnBehalfOf and ActAs).

* Each value read, paths relative to the file, several certificates in one file.
* Each bad value refused in one sentence naming the file, the table and the key;
  at start-up, a ``default_applies_to`` the registry does not know and a trusted
  issuer bearing the STS's own name; ``wstrust-wsgi check`` says both.
* A real gunicorn STS from such a file: a request without AppliesTo gets a token
  for the default party, a SAML token of the trusted issuer is accepted as
  OnBehalfOf under the registry's rule, one of an untrusted issuer is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from _support import ROOT, KeyFiles
from _support.deployment import (
    ADMIN_PASSWORD, ISSUER, SERVICE, Gunicorn, Tables, free_port, init_registry, sqlite_url, write_config,
)
from wstrust_wsgi import ConfigurationError, RemoteFault, SigningKey, StsClient, UrllibTransport, ns
from wstrust_wsgi.cli import main
from wstrust_wsgi.client import parse_response
from wstrust_wsgi.config import load_config
from wstrust_wsgi.deploy import StartupError, make_app
from wstrust_wsgi.saml import SAML2, AssertionContent, AssertionSigner
from wstrust_wsgi.stores.delegation import DelegationRule
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.stores.sql.delegation import RegistryDelegationRules

OTHER_STS = "urn:example:other-sts"


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    """A registry as ``init_registry`` leaves it (admin, alice, the relying party SERVICE)."""
    url = sqlite_url(tmp_path / "registry.db")
    init_registry(url)
    return url


@pytest.fixture
def tables(registry_url: str, sts_keys: KeyFiles) -> Tables:
    return {"sts": {"path": "/services/sts"},
            "keys": {"signing_key": str(sts_keys.key), "signing_cert": str(sts_keys.cert)},
            "registry": {"url": registry_url}, "replay": {"nonce_cache": "memory:"}}


def certificate_file(path: Path, *pairs: SigningKey) -> Path:
    path.write_bytes(b"".join(pair.certificate_pem for pair in pairs))
    return path


# ---------------------------------------------------------------------- read


def test_both_settings_are_read_with_paths_relative_to_the_file(tmp_path: Path, tables: Tables,
                                                               sts2_keys: KeyFiles) -> None:
    old, new = (SigningKey.generate(f"other STS, {age} key", days=365) for age in ("old", "new"))
    (tmp_path / "etc").mkdir()
    certificate_file(tmp_path / "etc" / "other.pem", old, new)  # a rollover: both keys in one file
    tables["sts"]["default_applies_to"] = SERVICE
    tables["delegation"] = {"trusted_issuers": {OTHER_STS: "other.pem", "https://idp.example/": str(sts2_keys.cert)}}
    config = load_config(write_config(tmp_path / "etc", tables))
    assert config.sts.default_applies_to == SERVICE
    assert dict(config.delegation.trusted_issuers) == {OTHER_STS: (tmp_path / "etc").resolve() / "other.pem",
                                                       "https://idp.example/": sts2_keys.cert}
    assert config.delegation.certificates[OTHER_STS] == (old.certificate, new.certificate)
    assert config.delegation.certificates["https://idp.example/"] == (sts2_keys.load().certificate,)
    assert config.warnings == ()


def test_left_out_neither_is_set(tmp_path: Path, tables: Tables) -> None:
    config = load_config(write_config(tmp_path, tables))
    assert config.sts.default_applies_to is None and not config.delegation.trusted_issuers
    assert not config.delegation.certificates


def test_a_trusted_issuer_certificate_about_to_expire_is_a_warning(tmp_path: Path, tables: Tables) -> None:
    soon = SigningKey.generate("other STS", days=10)
    tables["delegation"] = {"trusted_issuers": {OTHER_STS: str(certificate_file(tmp_path / "soon.pem", soon))}}
    config = load_config(write_config(tmp_path, tables))
    [warning] = config.warnings
    assert warning.startswith(f"{tmp_path / 'sts.toml'}: [delegation] trusted_issuers: {tmp_path / 'soon.pem'} "
                              "expires on "), warning


# ---------------------------------------------------------------------- refused


def _not_pem(tmp: Path) -> str:
    (tmp / "junk.pem").write_text("not a certificate\n")
    return str(tmp / "junk.pem")


def _dated(days: int, start: int) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        pair = SigningKey.generate("dated", days=days,
                                   valid_from=datetime.now(timezone.utc) + timedelta(days=start))
        return str(certificate_file(tmp / "dated.pem", pair))
    return make


def _issuers(value: Any) -> Callable[[Path], dict[str, Any]]:
    return lambda tmp: {"trusted_issuers": value(tmp) if callable(value) else value}


BAD: list[tuple[str, str, Any, str, str]] = [
    ("applies_to not a string", "sts", {"default_applies_to": 5}, "[sts] default_applies_to",
     "must be a string, not an integer (5)"),
    ("applies_to empty", "sts", {"default_applies_to": " "}, "[sts] default_applies_to", "must not be empty"),
    ("applies_to relative", "sts", {"default_applies_to": "svc.example.org/soap"}, "[sts] default_applies_to",
     "'svc.example.org/soap' must be an http(s) URL such as https://svc.example.org/soap"),
    ("applies_to a URN", "sts", {"default_applies_to": "urn:example:svc"}, "[sts] default_applies_to",
     "must be an http(s) URL"),
    ("applies_to without host", "sts", {"default_applies_to": "https:///soap"}, "[sts] default_applies_to",
     "the address 'https:///soap': must be an absolute URL"),
    ("applies_to with blanks", "sts", {"default_applies_to": "https://svc.example.org/my soap"},
     "[sts] default_applies_to", "must be an absolute URL or a URN, without blanks"),
    ("applies_to misspelt", "sts", {"default_applies_to_": SERVICE}, "[sts] default_applies_to_",
     "unknown setting (did you mean default_applies_to?)"),
    ("issuers not a table", "delegation", _issuers("other.pem"), "[delegation] trusted_issuers",
     "must be a table of strings (name = \"value\"), not a string"),
    ("issuer path not a string", "delegation", _issuers({OTHER_STS: 1}), "[delegation] trusted_issuers",
     f"the value for '{OTHER_STS}' must be a non-empty string, not an integer (1)"),
    ("issuer name with blanks", "delegation", _issuers(lambda tmp: {f" {OTHER_STS}": _not_pem(tmp)}),
     "[delegation] trusted_issuers", f"the issuer name ' {OTHER_STS}' must be the token's Issuer exactly"),
    ("issuer file missing", "delegation", _issuers({OTHER_STS: "/nonexistent/other.pem"}),
     "[delegation] trusted_issuers", "/nonexistent/other.pem cannot be read (No such file or directory)"),
    ("issuer file not PEM", "delegation", _issuers(lambda tmp: {OTHER_STS: _not_pem(tmp)}),
     "[delegation] trusted_issuers", "junk.pem is not a PEM certificate"),
    ("issuer certificate expired", "delegation", _issuers(lambda tmp: {OTHER_STS: _dated(1, -10)(tmp)}),
     "[delegation] trusted_issuers", f"expired on {(datetime.now(timezone.utc) - timedelta(days=9)):%Y-%m-%d}; "
                                     f"OnBehalfOf and ActAs tokens of '{OTHER_STS}' would be refused"),
    ("issuer certificate not yet valid", "delegation", _issuers(lambda tmp: {OTHER_STS: _dated(30, 2)(tmp)}),
     "[delegation] trusted_issuers", "dated.pem is not valid before"),
    ("delegation key misspelt", "delegation", {"trusted_issuer": {}}, "[delegation] trusted_issuer",
     "unknown setting (did you mean trusted_issuers?); [delegation] takes trusted_issuers"),
    ("delegation rules are not here", "delegation", {"rules": []}, "[delegation] rules", "unknown setting"),
]


@pytest.mark.parametrize(("table", "values", "where", "phrase"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_each_bad_value_is_one_sentence_naming_file_table_and_key(tmp_path: Path, tables: Tables, table: str,
                                                                 values: Any, where: str, phrase: str) -> None:
    tables.setdefault(table, {}).update(values(tmp_path) if callable(values) else values)
    path = write_config(tmp_path, tables)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {where}: ") and phrase in message and "\n" not in message, message
    with pytest.raises(StartupError, match=re.escape(message)):
        make_app(path)


def test_an_unregistered_default_applies_to_stops_the_start(tmp_path: Path, tables: Tables,
                                                            registry_url: str) -> None:
    tables["sts"]["default_applies_to"] = "https://unknown.example.org/soap"
    path = write_config(tmp_path, tables)
    assert load_config(path).sts.default_applies_to == "https://unknown.example.org/soap"  # the file is fine...
    with pytest.raises(StartupError) as caught:  # ...but the registry does not know that party
        make_app(path)
    assert str(caught.value) == (
        f"{path}: [sts] default_applies_to: https://unknown.example.org/soap is not a relying party registered in "
        f"{registry_url}; register it (wstrust-wsgi rp add https://unknown.example.org/soap) or correct it")


def test_a_trusted_issuer_named_as_this_sts_stops_the_start(tmp_path: Path, tables: Tables,
                                                            sts2_keys: KeyFiles) -> None:
    tables["delegation"] = {"trusted_issuers": {ISSUER: str(sts2_keys.cert)}}
    path = write_config(tmp_path, tables)
    with pytest.raises(StartupError, match=re.escape(
            f"{path}: [delegation] trusted_issuers: '{ISSUER}' is this STS's own issuer name")):
        make_app(path)


def test_check_prints_the_delegation_settings_and_fails_an_unknown_party(
        tmp_path: Path, tables: Tables, sts2_keys: KeyFiles, capsys: pytest.CaptureFixture[str]) -> None:
    tables["sts"]["default_applies_to"] = SERVICE
    tables["delegation"] = {"trusted_issuers": {OTHER_STS: str(sts2_keys.cert)}}
    path = write_config(tmp_path, tables)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.split()[1] == "delegation"]
    until = sts2_keys.load().certificate.not_valid_after_utc
    assert line == (f"ok   delegation requests without AppliesTo get tokens for {SERVICE}; OnBehalfOf/ActAs SAML "
                    f"tokens of '{OTHER_STS}' trusted (1 certificate(s) from {sts2_keys.cert}, valid until "
                    f"{until:%Y-%m-%d})"), out
    tables["sts"]["default_applies_to"] = "https://unknown.example.org/soap"
    write_config(tmp_path, tables)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.split()[1] == "delegation"]
    assert line.startswith("FAIL delegation") and "[sts] default_applies_to: https://unknown.example.org/soap is " \
        "not a relying party registered in" in line, out
    del tables["sts"]["default_applies_to"], tables["delegation"]
    write_config(tmp_path, tables)
    assert main(["check", str(path)]) == 0
    assert "delegation" not in capsys.readouterr().out  # nothing set, nothing said


def test_the_example_files_delegation_settings_are_valid(tmp_path: Path, sts_keys: KeyFiles,
                                                         sts2_keys: KeyFiles, registry_url: str) -> None:
    """demo_sts/sts.example.toml's commented default_applies_to and [delegation], uncommented, load."""
    text = (ROOT / "demo_sts" / "sts.example.toml").read_text()
    text = (text.replace("/etc/wstrust/signing/sts.key", str(sts_keys.key))
            .replace("/etc/wstrust/signing/sts.crt", str(sts_keys.cert))
            .replace("sqlite:///var/lib/wstrust/registry.db", registry_url)
            .replace("sqlite:///var/lib/wstrust/nonces.db", sqlite_url(tmp_path / "nonces.db")))
    text = re.sub(r"(?m)^# (default_applies_to = |\[delegation\]|trusted_issuers = )", r"\1", text)
    (tmp_path / "delegation").mkdir()
    (tmp_path / "delegation" / "other-sts.crt").write_bytes(sts2_keys.cert.read_bytes())
    (tmp_path / "sts.toml").write_text(text.replace("/etc/wstrust/delegation/", f"{tmp_path}/delegation/"))
    config = load_config(tmp_path / "sts.toml")
    assert config.sts.default_applies_to == "https://svc.example.org/soap"
    assert list(config.delegation.trusted_issuers) == ["https://other-sts.example.org/services/sts"]


# ---------------------------------------------------------------------- the real thing


def without_applies_to(client: StsClient) -> bytes:
    """The client's RST with its wsp:AppliesTo taken out, as pyVmomi sends one."""
    envelope = etree.fromstring(client.build_request(SERVICE))
    [applies] = envelope.iter(f"{{{ns.WSP12}}}AppliesTo")
    applies.getparent().remove(applies)
    return etree.tostring(envelope)


def foreign_token(issuer: str, keys: KeyFiles, audience: str) -> bytes:
    """A SAML 2.0 token of ``issuer`` for "bob", signed with ``keys``, as another STS issues one."""
    now = datetime.now(timezone.utc)
    return AssertionSigner(keys.load()).sign(SAML2, AssertionContent(
        issuer=issuer, subject="bob", audience=audience, issue_instant=now, not_before=now - timedelta(seconds=5),
        not_on_or_after=now + timedelta(minutes=5)))


def test_gunicorn_from_the_file_issues_without_applies_to_and_trusts_the_other_issuer(
        tmp_path: Path, tables: Tables, registry_url: str, sts2_keys: KeyFiles, rogue_keys: KeyFiles) -> None:
    with Registry.open(registry_url) as registry:  # the admin may ask OnBehalfOf bob for the service
        RegistryDelegationRules(registry).add(DelegationRule("admin", "bob", SERVICE, "OnBehalfOf"))
    tables["sts"]["default_applies_to"] = SERVICE
    tables["delegation"] = {"trusted_issuers": {OTHER_STS: str(sts2_keys.cert)}}
    path = write_config(tmp_path, tables)
    port = free_port()
    server = Gunicorn(f'wstrust_wsgi.deploy:make_app("{path}")', port=port, cwd=tmp_path,
                      log=tmp_path / "gunicorn.log")
    try:
        server.wait_started()
        url = f"http://127.0.0.1:{port}/services/sts"
        admin = StsClient(url, username="admin", password=ADMIN_PASSWORD)
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{admin.dialect.issue_action}"'}
        status, _, body = UrllibTransport()(url, without_applies_to(admin), headers)
        token = parse_response(body, status=status)
        assertion = etree.fromstring(token.assertion)
        assert assertion.findtext(f".//{{{ns.SAML2}}}Audience") == SERVICE
        assert assertion.findtext(f".//{{{ns.SAML2}}}NameID") == "admin"

        delegated = admin.request_token(SERVICE, on_behalf_of=foreign_token(OTHER_STS, sts2_keys, ISSUER))
        assert etree.fromstring(delegated.assertion).findtext(f".//{{{ns.SAML2}}}NameID") == "bob"
        for issuer, keys, code in (("urn:example:unknown-sts", sts2_keys, "FailedAuthentication"),  # not in the file
                                   (OTHER_STS, rogue_keys, "FailedCheck")):  # its name, another key
            with pytest.raises(RemoteFault) as refused:
                admin.request_token(SERVICE, on_behalf_of=foreign_token(issuer, keys, ISSUER))
            assert refused.value.local_code == code, refused.value
        log = server.text()
        assert (f"requests without AppliesTo get tokens for {SERVICE}; OnBehalfOf/ActAs SAML tokens of "
                f"'{OTHER_STS}' trusted (1 certificate(s) from {sts2_keys.cert}") in log, log
        assert "delegation: 'admin' OnBehalfOf 'bob' for " + SERVICE in log, log
        assert "untrusted issuer 'urn:example:unknown-sts'" in log, log
    finally:
        server.stop()
