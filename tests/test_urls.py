"""_urls: the one sqlite:/// reader that the registry, the replay cache and the deployment file share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _support import KeyFiles
from wstrust_wsgi._urls import redact_url, sqlite_path
from wstrust_wsgi.config import load_config
from wstrust_wsgi.errors import BadValue, ConfigurationError
from wstrust_wsgi.stores.replay import replay_cache_from_url
from wstrust_wsgi.stores.sql import Registry

GOOD = [
    ("sqlite:///var/lib/wstrust/registry.db", "/var/lib/wstrust/registry.db"),
    ("SQLite:///var/lib/wstrust/registry.db", "/var/lib/wstrust/registry.db"),
    ("sqlite:///tmp/replay%20cache.db", "/tmp/replay cache.db"),
    ("sqlite:///tmp/with space.db", "/tmp/with space.db"),
]
BAD = [
    ("sqlite://relative.db", "three slashes"),
    ("sqlite:relative.db", "three slashes"),
    ("sqlite:///", "folder"),
    ("sqlite:///var/lib/", "folder"),
    ("sqlite:////var/lib/wstrust/registry.db", "four slashes"),
    ("sqlite:///./registry.db", "relative to the current folder"),
    ("sqlite:///../registry.db", "relative to the current folder"),
    ("sqlite:///var/./lib/registry.db", "normal"),
    ("sqlite:///var/../lib/registry.db", "normal"),
    ("sqlite:///var//lib/registry.db", "normal"),
    ("sqlite:///tmp/x%00.db", "normal"),
    ("sqlite:///tmp/x.db?mode=ro", "query"),
    ("sqlite:///tmp/x.db?", "query"),
    ("sqlite:///tmp/x.db#frag", "fragment"),
    ("sqlite:///:memory:", "in-memory"),
    ("sqlite:///tmp/:memory:", "in-memory"),
    ("postgresql://db.example/wstrust", "three slashes"),
]


@pytest.mark.parametrize(("url", "path"), GOOD)
def test_the_path_of_a_good_url(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(("url", "rule"), BAD)
def test_a_bad_url_is_refused_naming_it_and_the_rule(url: str, rule: str) -> None:
    with pytest.raises(BadValue, match=rule) as refused:
        sqlite_path(url)
    assert repr(url) in str(refused.value)


@pytest.mark.parametrize(("url", "rule"), [(url, rule) for url, rule in BAD if url.startswith("sqlite")])
def test_the_registry_and_the_replay_cache_refuse_the_same_urls_for_the_same_reason(url: str, rule: str) -> None:
    with pytest.raises(ConfigurationError, match=rule):
        Registry.open(url)
    with pytest.raises(ConfigurationError, match=rule):
        replay_cache_from_url(url)


@pytest.mark.parametrize(("url", "rule"), [(url, rule) for url, rule in BAD if url.startswith("sqlite")])
def test_the_deployment_file_refuses_the_same_urls(tmp_path: Path, sts_keys: KeyFiles, url: str, rule: str) -> None:
    path = tmp_path / "sts.toml"
    path.write_text(f'[keys]\nsigning_key = "{sts_keys.key}"\nsigning_cert = "{sts_keys.cert}"\n\n'
                    f"[registry]\nurl = {json.dumps(url)}\n")
    with pytest.raises(ConfigurationError, match=rf"\[registry\] url: .*{rule}"):
        load_config(path)


def test_every_reader_finds_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/shared%20store.db"
    with Registry.open(url) as registry:
        assert str(tmp_path / "shared store.db") in repr(registry)
    assert (tmp_path / "shared store.db").is_file()
    cache = replay_cache_from_url(f"sqlite://{tmp_path}/replay%20cache.db")
    assert cache.path == tmp_path / "replay cache.db"  # type: ignore[attr-defined]


def test_redact_url_leaves_sqlite_urls_alone() -> None:
    assert redact_url("sqlite:///var/lib/wstrust/registry.db") == "sqlite:///var/lib/wstrust/registry.db"
