"""The public surface: the exact names re-exported from the package root, and the typing marker.

Changing what users can import is a deliberate act: it must change this list too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
from pathlib import Path

import wstrust_wsgi

PUBLIC_API = [
    "CachedUserStore",
    "ConfigurationError",
    "DelegationPolicy",
    "DelegationRule",
    "ENVIRON_KEY",
    "Exchange",
    "IssuedToken",
    "JsonFormatter",
    "LegacyCbcKey",
    "LockoutPolicy",
    "MemoryLockoutStore",
    "MemoryRelyingPartyStore",
    "MemoryReplayCache",
    "MemoryTokenStore",
    "MemoryUserStore",
    "Principal",
    "RecordingTransport",
    "RedisLockoutStore",
    "RedisReplayCache",
    "RedisTokenStore",
    "RegistryLockoutStore",
    "RegistryTokenStore",
    "RelyingParty",
    "RelyingPartyMiddleware",
    "RemoteFault",
    "SQLiteReplayCache",
    "SecurityWarning",
    "SigningKey",
    "SoapFault",
    "StsClient",
    "StsSettings",
    "TokenPolicy",
    "TokenRecord",
    "TokenService",
    "TransportError",
    "UrllibTransport",
    "User",
    "VerificationCache",
    "VerifiedAssertion",
    "WSGITransport",
    "WsTrustError",
    "__version__",
    "call_service",
    "configure_logging",
    "generate_demo_key_pair",
    "get_assertion",
    "load_certificate",
    "parse_response",
    "replay_cache_from_url",
    "token_store_from_url",
]


def test_all_is_pinned_to_the_public_api():
    assert wstrust_wsgi.__all__ == PUBLIC_API


def test_all_is_sorted():
    assert wstrust_wsgi.__all__ == sorted(wstrust_wsgi.__all__)


def test_all_has_no_duplicates():
    assert len(set(wstrust_wsgi.__all__)) == len(wstrust_wsgi.__all__)


def test_every_name_in_all_is_importable_from_the_package_root():
    fresh = importlib.import_module("wstrust_wsgi")
    for name in fresh.__all__:
        namespace: dict[str, object] = {}
        exec(f"from wstrust_wsgi import {name}", namespace)  # noqa: S102 - what users write
        assert name in namespace, name


def test_star_import_brings_exactly_the_names_in_all():
    namespace: dict[str, object] = {}
    exec("from wstrust_wsgi import *", namespace)  # noqa: S102 - the star import is what users do
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(wstrust_wsgi.__all__)


def test_public_classes_say_they_belong_to_the_package():
    for name in wstrust_wsgi.__all__:
        value = getattr(wstrust_wsgi, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__.startswith("wstrust_wsgi"), name


def test_version_matches_the_installed_distribution():
    assert wstrust_wsgi.__version__ == importlib.metadata.version("wstrust-wsgi")


def test_py_typed_ships_in_the_package_folder():
    marker = Path(wstrust_wsgi.__file__).parent / "py.typed"
    assert marker.is_file()
    assert importlib.resources.files("wstrust_wsgi").joinpath("py.typed").is_file()
