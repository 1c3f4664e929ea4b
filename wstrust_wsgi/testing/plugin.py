"""The pytest plugin of the testing kit: fixtures for testing a service protected by wstrust-wsgi.

Registered under the ``pytest11`` entry point ``wstrust``, so pytest loads it
wherever the package is installed; ``-p no:wstrust`` turns it off. Every
fixture name starts with ``wstrust_`` so that it does not collide with a
project's own. Nothing here imports WebTest (only ``SoapTestApp`` needs it, and
it loads it when a test asks for it), so the plugin cannot break the test run of
a project that installed the package without the ``test`` extra.

Fixtures (``pytest --fixtures`` lists them with these docstrings):

=========================== ==============================================================
``wstrust_tokens``          a :class:`~wstrust_wsgi.testing.TokenFactory` for
                            ``wstrust_audience`` and ``wstrust_issuer``, on ``wstrust_clock``
``wstrust_sts``             an :class:`~wstrust_wsgi.testing.InProcessSts` with
                            ``wstrust_users`` and ``wstrust_relying_parties``, same key and clock
``wstrust_client``          a :class:`~wstrust_wsgi.StsClient` bound to ``wstrust_sts``, as its first user
``wstrust_clock``           a :class:`~wstrust_wsgi.testing.SettableClock` at the current second
``wstrust_audience``        settings, to override in your ``conftest.py``: the service's
``wstrust_issuer``          address and the STS's name (defaults: ``https://service.test/soap``,
``wstrust_users``           ``https://sts.test/services/sts``), the STS's users (``{"alice": "alice"}``)
``wstrust_relying_parties`` and relying parties (``[wstrust_audience]``)
=========================== ==============================================================

The token factory and the STS sign with the same throwaway key, so
``wstrust_tokens.trusted_certs`` admits the tokens of both.

PYTEST_DONT_REWRITE: this module holds no assert, and pytest is told so, since
``-p`` may name it after it was imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from ..client import StsClient
from ..model import RelyingParty
from .clock import SettableClock
from .sts import DEFAULT_USERS, InProcessSts
from .tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenFactory


@pytest.fixture
def wstrust_clock() -> SettableClock:
    """A clock standing at the current second until the test moves it (``advance(minutes=6)``, ``set(...)``).

    ``wstrust_tokens`` and ``wstrust_sts`` read it; give it to the middleware
    under test (``clock=wstrust_clock``) to move the service's time too.
    """
    return SettableClock()


@pytest.fixture
def wstrust_audience() -> str:
    """The service's endpoint address, the tokens' audience (override it in conftest.py)."""
    return DEFAULT_AUDIENCE


@pytest.fixture
def wstrust_issuer() -> str:
    """The issuer the tokens name and the in-process STS is (override it in conftest.py)."""
    return DEFAULT_ISSUER


@pytest.fixture
def wstrust_users() -> Mapping[str, Any]:
    """The in-process STS's users: name -> password or ``{"password", "roles", "claims"}`` (override it)."""
    return dict(DEFAULT_USERS)


@pytest.fixture
def wstrust_relying_parties(wstrust_audience: str) -> Iterable[str | RelyingParty]:
    """The in-process STS's relying parties: addresses or RelyingParty values (default: ``wstrust_audience``)."""
    return [wstrust_audience]


@pytest.fixture
def wstrust_tokens(wstrust_audience: str, wstrust_issuer: str, wstrust_clock: SettableClock) -> TokenFactory:
    """Mints tokens for the service under test, good (``mint``) and bad (``expired``, ``wrong_audience``, ...).

    Hand ``wstrust_tokens.trusted_certs`` to the middleware under test.
    """
    return TokenFactory(audience=wstrust_audience, issuer=wstrust_issuer, clock=wstrust_clock)


@pytest.fixture
def wstrust_sts(wstrust_users: Mapping[str, Any], wstrust_relying_parties: Iterable[str | RelyingParty],
                wstrust_issuer: str, wstrust_clock: SettableClock) -> InProcessSts:
    """The real STS in-process: ``wstrust_sts.client("alice").request_token(address)``, ``wstrust_sts.token()``."""
    return InProcessSts(users=wstrust_users, relying_parties=wstrust_relying_parties, issuer=wstrust_issuer,
                        clock=wstrust_clock)


@pytest.fixture
def wstrust_client(wstrust_sts: InProcessSts) -> StsClient:
    """A StsClient reaching ``wstrust_sts`` in-process as its first user: ``request_token(wstrust_audience)``."""
    return wstrust_sts.client()
