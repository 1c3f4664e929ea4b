"""The one set of value rules (wstrust_wsgi.model), and that the registry and the deployment file apply them.

A value the rules refuse must be refused by every entry point that accepts
it: the command line (tested in test_cli_admin), the registry and the
deployment file (here), so that no value one of them stores can be refused or
misread by another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support import EMAIL, KeyFiles
from wstrust_wsgi import RelyingParty, User
from wstrust_wsgi.config import load_config
from wstrust_wsgi.errors import BadValue, ConfigurationError
from wstrust_wsgi.model import URN_RULE, PasswordProof, check_address, check_claim_uri, check_claim_value, check_name
from wstrust_wsgi.stores.ldap import LdapUserStore
from wstrust_wsgi.stores.memory import User as MemoryUser
from wstrust_wsgi.stores.sql import Registry
from wstrust_wsgi.wssecurity import UsernameToken

BAD_NAMES = ["", " bob", "bob ", "bo\nb", "bo\0b", "b" * 256]
GOOD_NAMES = ["bob", "Bob Smith", "b" * 255, "ünïcode"]
BAD_ADDRESSES = ["", "/services/echo", "svc.example/echo", "http:///echo", "urn:", "https://svc.example/a b",
                 "ftp://svc.example/echo", "https://svc.example:99999/x", "urn:nss-missing"]
GOOD_ADDRESSES = ["https://svc.example/echo", "http://127.0.0.1:8081/services/echo", "urn:example:service"]
BAD_CLAIMS = ["", "mail", "urn:", "http://example.org/a claim", "http://example.org/\tx"]
GOOD_CLAIMS = [EMAIL, "urn:test:claims:department"]
BAD_CLAIM_VALUES = ["a\tb", "line\nbreak", "nul\0"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry.open(f"sqlite://{tmp_path}/registry.db") as opened:
        opened.init_schema(issuer="https://sts.example/services/sts")
        opened.add_user("alice", "pw")
        yield opened


# ---------------------------------------------------------------------- the rules


def test_bad_values_are_bad_values_and_configuration_errors() -> None:
    for name in BAD_NAMES:
        with pytest.raises(BadValue):
            check_name(name, "user")
    for address in BAD_ADDRESSES:
        with pytest.raises(BadValue):
            check_address(address, "address")
    for claim in BAD_CLAIMS:
        with pytest.raises(BadValue):
            check_claim_uri(claim)
    for value in BAD_CLAIM_VALUES:
        with pytest.raises(BadValue):
            check_claim_value(value, EMAIL)
    assert issubclass(BadValue, ConfigurationError) and issubclass(BadValue, ValueError)


def test_good_values_pass_unchanged() -> None:
    assert [check_name(name, "user") for name in GOOD_NAMES] == GOOD_NAMES
    assert [check_address(address, "address") for address in GOOD_ADDRESSES] == GOOD_ADDRESSES
    assert [check_claim_uri(claim) for claim in GOOD_CLAIMS] == GOOD_CLAIMS
    assert check_claim_value("Ada Lovelace <ada@example.org>", EMAIL) == "Ada Lovelace <ada@example.org>"


@pytest.mark.parametrize("address", ["urn:foo", "urn:", "urn:nss-missing", "urn:-x:y", "urn:a_b:c",
                                     "urn:" + "n" * 33 + ":x", "urn:foo:", "/services/echo", "ftp://svc.example/"])
def test_every_refused_address_message_states_the_urn_rule_that_refused_it(address: str) -> None:
    """The URN rule and its message agree: the shape it states is the shape it accepts (issue 10, item 13)."""
    with pytest.raises(BadValue) as caught:
        check_address(address, "address")
    assert URN_RULE in str(caught.value)
    assert check_address("urn:example:service", "address")  # the message's example
    assert check_address("urn:" + "n" * 32 + ":x", "address")  # a letter or digit, then up to 31 more
    assert check_address("urn:0-a:x", "address")


def test_values_of_the_wrong_type_are_refused_not_crashed_on() -> None:
    for call in (lambda: check_name(5, "user"), lambda: check_address(None, "address"),  # type: ignore[arg-type]
                 lambda: check_claim_uri(b"urn:x:y"), lambda: check_claim_value(1, EMAIL)):  # type: ignore[arg-type]
        with pytest.raises(BadValue):
            call()


def test_user_lives_in_model_and_is_still_importable_from_memory() -> None:
    assert User is MemoryUser
    assert User.__module__ == "wstrust_wsgi.model"


def test_a_username_token_is_a_password_proof() -> None:
    token: PasswordProof = UsernameToken("bob", "pw", False, None, None, None)  # checked by mypy, structurally
    assert token.username == "bob" and not token.digest and not token.digest_matches("pw")


# ---------------------------------------------------------------------- the registry applies them


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_registry_refuses_the_names_the_rules_refuse(registry: Registry, name: str) -> None:
    with pytest.raises(ConfigurationError):
        registry.add_user(name, "pw")
    with pytest.raises(ConfigurationError):
        registry.add_role(name)
    with pytest.raises(ConfigurationError):
        registry.update_settings(allowed_roles=["admin", name])
    assert [user.name for user in registry.list_users()] == ["alice"] and registry.list_roles() == ["admin"]


def test_the_registry_accepts_the_names_the_rules_accept(registry: Registry) -> None:
    for name in GOOD_NAMES:
        registry.add_role(name)
        registry.add_user(name, "pw", roles=[name])
    assert sorted(registry.list_roles()) == sorted(["admin", *GOOD_NAMES])


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_the_registry_refuses_the_addresses_the_rules_refuse(registry: Registry, address: str) -> None:
    with pytest.raises(ConfigurationError):
        registry.add_relying_party(RelyingParty(address))
    assert registry.list_relying_parties() == []


def test_the_registry_accepts_the_addresses_the_rules_accept(registry: Registry) -> None:
    for address in GOOD_ADDRESSES:
        registry.add_relying_party(RelyingParty(address))
    assert [party.address for party in registry.list_relying_parties()] == sorted(GOOD_ADDRESSES)


@pytest.mark.parametrize("claim", BAD_CLAIMS)
def test_the_registry_refuses_the_claim_uris_the_rules_refuse(registry: Registry, claim: str) -> None:
    with pytest.raises(ConfigurationError):
        registry.set_claim("alice", claim, ["x"])
    with pytest.raises(ConfigurationError):
        registry.add_user("bob", "pw", claims={claim: ["x"]})
    with pytest.raises(ConfigurationError):
        registry.add_relying_party(RelyingParty("https://svc.example/echo", claims=frozenset({claim})))
    assert registry.get_user("alice").claims == {}  # type: ignore[union-attr]
    assert registry.get_user("bob") is None and registry.list_relying_parties() == []


@pytest.mark.parametrize("value", BAD_CLAIM_VALUES)
def test_the_registry_refuses_the_claim_values_the_rules_refuse(registry: Registry, value: str) -> None:
    with pytest.raises(ConfigurationError):
        registry.set_claim("alice", EMAIL, ["fine", value])
    assert registry.get_user("alice").claims == {}  # type: ignore[union-attr]


def test_rows_are_reached_by_name_even_if_a_rule_would_refuse_the_name(registry: Registry) -> None:
    # Removing or revoking only looks a row up: no rule may lock a stored row out of reach.
    with pytest.raises(Exception, match="unknown user"):
        registry.remove_user("b" * 300)


# ---------------------------------------------------------------------- the deployment file applies them


def _config(tmp_path: Path, keys: KeyFiles, ldap: dict[str, object]) -> Path:
    registry = tmp_path / "registry.db"
    registry.touch()
    table = {"urls": "ldap://127.0.0.1:389", "user_search_base": "ou=people,dc=example,dc=org",
             "group_search_base": "ou=groups,dc=example,dc=org", **ldap}

    def value(item: object) -> str:
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in item.items()) + " }"
        return json.dumps(item)

    text = (f'[keys]\nsigning_key = "{keys.key}"\nsigning_cert = "{keys.cert}"\n\n'
            f'[registry]\nurl = "sqlite://{registry}"\n\n[users]\nsource = "ldap"\n\n[ldap]\n'
            + "".join(f"{key} = {value(item)}\n" for key, item in table.items()))
    path = tmp_path / "sts.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


# The file strips blanks around every text value (its convention for all keys), so " admin" is "admin" there.
@pytest.mark.parametrize("role", [name for name in BAD_NAMES if name.strip() == name and name])
def test_the_deployment_file_refuses_the_roles_the_rules_refuse(tmp_path: Path, sts_keys: KeyFiles,
                                                                role: str) -> None:
    path = _config(tmp_path, sts_keys, {"group_to_role": {"sts-admins": role}})
    with pytest.raises(ConfigurationError, match=r"\[ldap\] group_to_role: the value for 'sts-admins': role name"):
        load_config(path)


@pytest.mark.parametrize("role", BAD_NAMES[1:])
def test_the_ldap_store_refuses_the_roles_the_rules_refuse(role: str) -> None:
    with pytest.raises(ConfigurationError, match="group_to_role"):
        LdapUserStore(urls="ldap://127.0.0.1:389", user_search_base="ou=people,dc=example,dc=org",
                      group_search_base="ou=groups,dc=example,dc=org", group_to_role={"sts-admins": role})


@pytest.mark.parametrize("claim", [claim for claim in BAD_CLAIMS if claim.strip() == claim and claim])
def test_the_deployment_file_refuses_the_claim_uris_the_rules_refuse(tmp_path: Path, sts_keys: KeyFiles,
                                                                     claim: str) -> None:
    path = _config(tmp_path, sts_keys, {"group_to_role": {"sts-admins": "admin"}, "attribute_to_claim": {"mail": claim}})
    with pytest.raises(ConfigurationError, match=r"\[ldap\] attribute_to_claim: the value for 'mail': claim"):
        load_config(path)
    with pytest.raises(ConfigurationError, match="attribute_to_claim"):
        LdapUserStore(urls="ldap://127.0.0.1:389", user_search_base="ou=people,dc=example,dc=org",
                      attribute_to_claim={"mail": claim})


def test_the_deployment_file_accepts_what_the_rules_accept(tmp_path: Path, sts_keys: KeyFiles) -> None:
    path = _config(tmp_path, sts_keys, {"group_to_role": {"sts-admins": "admin", "staff": "Staff Members"},
                                        "attribute_to_claim": {"mail": EMAIL}})
    config = load_config(path)
    assert config.ldap is not None and dict(config.ldap.group_to_role or {}) == {"sts-admins": "admin",
                                                                                 "staff": "Staff Members"}
