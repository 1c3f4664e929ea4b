"""Constructor arguments of the three things users build: what a person means is taken, a mistake is named.

Issue 10, item 11: ``RelyingPartyMiddleware(trusted_certs="sts.crt")`` must
take one path as ``audience`` takes one string, and ``clock_skew=300`` must be
taken as seconds; the class behind them is every keyword argument of
:class:`RelyingPartyMiddleware`, :class:`TokenService` and :class:`StsClient`
(and :class:`UrllibTransport`, which the client command builds): one value
where several are expected is one value (never its characters), a number
where a ``timedelta`` is expected is seconds, and anything else is a
:class:`ConfigurationError` at construction whose message starts with the
argument's name, never a ``TypeError`` at the first request.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from _support import ISSUER, OTHER_URL, SERVICE_URL, STS_URL, FixedClock, KeyFiles, demo_users
from demo_service.app import echo
from wstrust_wsgi import (
    ConfigurationError,
    MemoryReplayCache,
    RelyingParty,
    RelyingPartyMiddleware,
    RemoteFault,
    StsClient,
    TokenService,
    UrllibTransport,
    WSGITransport,
    call_service,
)
from wstrust_wsgi.cli import echo_payload

# ----------------------------------------------------------------------------- the middleware


def guarded(keys: KeyFiles, clock: FixedClock, /, **overrides: Any) -> RelyingPartyMiddleware:
    settings: dict[str, Any] = {"audience": SERVICE_URL, "issuer": ISSUER, "trusted_certs": [keys.cert],
                                "clock": clock}
    settings.update(overrides)
    return RelyingPartyMiddleware(echo, **settings)


def admitted(service: RelyingPartyMiddleware, make_client: Any) -> bool:
    """Whether a fresh token for the echo service gets the echo back through ``service``."""
    token = make_client().request_token(SERVICE_URL)
    reply = call_service(SERVICE_URL, token, echo_payload("hello"), transport=WSGITransport(service))
    return "hello" in "".join(reply.itertext())


@pytest.mark.parametrize("given", ["str path", "Path", "PEM bytes", "PEM text"])
def test_one_certificate_is_taken_as_trusted_certs(sts_keys, clock, make_client, given):
    source = {"str path": str(sts_keys.cert), "Path": Path(sts_keys.cert),
              "PEM bytes": Path(sts_keys.cert).read_bytes(), "PEM text": Path(sts_keys.cert).read_text()}[given]
    service = guarded(sts_keys, clock, trusted_certs=source)
    assert len(service.policy.trusted_certs) == 1
    assert admitted(service, make_client)


def test_a_certificate_path_that_cannot_be_read_is_named_whole(sts_keys, clock, tmp_path):
    missing = tmp_path / "sts.crt"
    with pytest.raises(ConfigurationError) as caught:
        guarded(sts_keys, clock, trusted_certs=str(missing))
    assert str(caught.value).startswith("trusted_certs: ")
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize("skew", [300, 300.0, timedelta(minutes=5)], ids=["int", "float", "timedelta"])
def test_clock_skew_in_seconds_is_taken_as_seconds(sts_keys, clock, make_client, skew):
    service = guarded(sts_keys, clock, clock_skew=skew)
    assert service.policy.clock_skew == timedelta(seconds=300)
    assert admitted(service, make_client)
    token = make_client().request_token(SERVICE_URL)
    clock.advance(seconds=5 * 60 + 290)  # the token lives 5 min; 290 s later is within the skew
    reply = call_service(SERVICE_URL, token, echo_payload("late"), transport=WSGITransport(service))
    assert "late" in "".join(reply.itertext())


def test_one_understood_header_is_one_clark_name(sts_keys, clock):
    service = guarded(sts_keys, clock, understood_headers="{urn:example}Trace")
    assert "{urn:example}Trace" in service._understood
    assert "{" not in service._understood


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("audience", 42),
        ("audience", [SERVICE_URL, None]),
        ("audience", b"https://svc.example/soap"),
        ("issuer", {"a": 1}),
        ("trusted_certs", 42),
        ("trusted_certs", [42]),
        ("clock_skew", "300"),
        ("clock_skew", True),
        ("clock_skew", -1),
        ("clock_skew", float("nan")),
        ("clock_skew", 1e300),
        ("allow_sha1", "false"),
        ("allow_get", 1),
        ("clock", "utc"),
        ("max_body", "1MB"),
        ("max_body", 0),
        ("replay_cache", "memory:"),
        ("understood_headers", 5),
        ("verified_cache_size", 1.5),
    ],
)
def test_a_mistaken_middleware_argument_is_named_at_construction(sts_keys, clock, argument, value):
    with pytest.raises(ConfigurationError) as caught:
        guarded(sts_keys, clock, **{argument: value})
    assert str(caught.value).startswith(f"{argument}"), caught.value


def test_the_app_must_be_callable(sts_keys):
    with pytest.raises(ConfigurationError, match="^app: "):
        RelyingPartyMiddleware("myapp:app", audience=SERVICE_URL, issuer=ISSUER,  # type: ignore[arg-type]
                               trusted_certs=sts_keys.cert)


# ----------------------------------------------------------------------------- the STS


def sts(keys: KeyFiles, clock: FixedClock, /, **overrides: Any) -> TokenService:
    settings: dict[str, Any] = {"issuer": ISSUER, "signing_key": keys.load(), "users": demo_users(),
                                "relying_parties": [RelyingParty(SERVICE_URL)], "clock": clock}
    settings.update(overrides)
    return TokenService(**settings)


def client(app: TokenService, clock: FixedClock, username: str = "admin") -> StsClient:
    return StsClient(STS_URL, username=username, password=username, transport=WSGITransport(app), clock=clock)


def test_one_allowed_role_is_that_role_not_its_letters(sts_keys, clock):
    app = sts(sts_keys, clock, allowed_roles="admin")
    assert app.allowed_roles == frozenset({"admin"})
    assert client(app, clock).request_token(SERVICE_URL).assertion
    with pytest.raises(RemoteFault):
        client(app, clock, "alice").request_token(SERVICE_URL)


def test_durations_in_seconds_and_one_relying_party(sts_keys, clock):
    app = sts(sts_keys, clock, relying_parties=RelyingParty(OTHER_URL, token_type="1.1"), default_lifetime=600,
              clock_skew=60, digest_window=120.0, settings_ttl=timedelta(seconds=2))
    token = client(app, clock).request_token(OTHER_URL)
    assert token.expires is not None and token.created is not None
    assert token.expires - token.created == timedelta(minutes=10)
    assert app.settings().clock_skew == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("issuer", ["https://sts.example"]),
        ("signing_key", "sts.key"),
        ("users", [("admin", "pw")]),
        ("relying_parties", SERVICE_URL),
        ("relying_parties", [SERVICE_URL]),
        ("relying_parties", 5),
        ("allowed_roles", 5),
        ("allowed_roles", ["admin", ""]),
        ("clock", "now"),
        ("clock_skew", "5m"),
        ("clock_skew", -5),
        ("digest_window", 0),
        ("digest_window", timedelta(0)),
        ("nonce_cache", "memory:"),
        ("role_claim", None),
        ("max_body", -1),
        ("max_body", True),
        ("default_lifetime", 0),
        ("default_lifetime", "300"),
        ("allow_plaintext_http", "no"),
        ("settings_ttl", "1s"),
        ("settings_ttl", -1),
    ],
)
def test_a_mistaken_token_service_argument_is_named_at_construction(sts_keys, clock, argument, value):
    with pytest.raises(ConfigurationError) as caught:
        sts(sts_keys, clock, **{argument: value})
    assert str(caught.value).startswith(f"{argument}: "), caught.value


def test_a_settings_store_must_be_one(sts_keys, clock):
    with pytest.raises(ConfigurationError, match="^settings: "):
        TokenService(signing_key=sts_keys.load(), users=demo_users(), relying_parties=[],
                     settings="sqlite:///registry.db")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the client


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("url", None),
        ("username", ""),
        ("password", None),
        ("digest", "yes"),
        ("soap_version", 1.2),
        ("trust_version", 2005),
        ("timestamp", 0),
        ("transport", "urllib"),
        ("clock", 5),
    ],
)
def test_a_mistaken_client_argument_is_named_at_construction(argument, value):
    settings: dict[str, Any] = {"url": STS_URL, "username": "admin", "password": "admin",
                                "transport": WSGITransport(echo)}
    settings[argument] = value
    url = settings.pop("url")
    with pytest.raises(ConfigurationError) as caught:
        StsClient(url, **settings)
    assert str(caught.value).startswith(f"{argument}: "), caught.value
    assert repr(value) in str(caught.value) or argument == "password"  # never echo a password


def test_a_version_given_as_a_number_is_refused_with_the_string_to_write():
    with pytest.raises(ConfigurationError) as caught:
        StsClient(STS_URL, username="admin", password="admin", soap_version=1.2)  # type: ignore[arg-type]
    assert "'1.1' or '1.2'" in str(caught.value) and "1.2" in str(caught.value)
    with pytest.raises(ConfigurationError, match="^soap_version: "):
        call_service(SERVICE_URL, b"<a/>", echo_payload("x"), soap_version="1.3", transport=WSGITransport(echo))


def test_a_token_type_given_as_a_number_is_refused(make_client):
    with pytest.raises(ConfigurationError, match="^token_type: "):
        make_client().request_token(SERVICE_URL, token_type=2.0)


def test_urllib_transport_names_a_missing_or_unusable_cafile(tmp_path):
    missing = tmp_path / "ca.pem"
    with pytest.raises(ConfigurationError) as caught:
        UrllibTransport(cafile=str(missing))
    assert str(caught.value) == f"cafile {missing}: cannot be read (No such file or directory)"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError) as caught:
        UrllibTransport(cafile=garbage)
    assert str(caught.value).startswith(f"cafile {garbage}: ")
    with pytest.raises(ConfigurationError, match="^timeout: "):
        UrllibTransport(timeout="10")  # type: ignore[arg-type]


def test_a_replay_cache_object_is_still_taken(sts_keys, clock, make_client):
    service = guarded(sts_keys, clock, replay_cache=MemoryReplayCache())
    assert admitted(service, make_client)
