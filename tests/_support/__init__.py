"""Helpers the tests share, imported as ``from _support import ...`` (``tests/`` is on ``sys.path``).

``conftest.py`` holds only fixtures, and they call into these modules; a test
module never imports ``conftest``. Modules: ``data`` (where the files the tests
read live), ``clock``, ``keys``, ``apps`` (the in-process STS, echo service and
client, with the demo's addresses), ``xmlsec1`` (the independent verifier run
on every token), and the throwaway servers ``pg`` and ``slapd`` (imported by
name, since only a few tests need them).
"""

from .apps import (
    DEMO_USERS,
    EMAIL,
    ISSUER,
    OTHER_URL,
    SERVICE_URL,
    STS_URL,
    client_factory,
    demo_users,
    echo_service,
    token_service,
)
from .clock import FixedClock
from .data import DATA, ROOT, VECTORS, vector
from .keys import KEY_STEMS, KeyFiles, key_files, make_key_pairs
from .xmlsec1 import XMLSEC1, assert_xmlsec1_accepts, xmlsec1_verify

__all__ = [
    "DATA",
    "DEMO_USERS",
    "EMAIL",
    "ISSUER",
    "KEY_STEMS",
    "OTHER_URL",
    "ROOT",
    "SERVICE_URL",
    "STS_URL",
    "VECTORS",
    "XMLSEC1",
    "FixedClock",
    "KeyFiles",
    "assert_xmlsec1_accepts",
    "client_factory",
    "demo_users",
    "echo_service",
    "key_files",
    "make_key_pairs",
    "token_service",
    "vector",
    "xmlsec1_verify",
]
