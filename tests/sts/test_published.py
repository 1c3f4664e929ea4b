"""The STS publishes its federation metadata: served, cached by validators, following its keys."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from webtest import TestApp

from _support import ISSUER, SERVICE_URL, FixedClock, KeyFiles, client_factory, demo_users
from wstrust_wsgi import ConfigurationError, RelyingParty, TokenService
from wstrust_wsgi._wsgi import mount
from wstrust_wsgi.keys import KeySet, SigningKey
from wstrust_wsgi.metadata import read_metadata
from wstrust_wsgi.xmldsig import certificate_base64
from wstrust_wsgi.sts.published import METADATA_PATH

NOW = datetime.now(timezone.utc)


class Rolling:
    """A key source the test turns: what the registry's keys look like to the STS."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self.reads = 0

    def signing_keys(self) -> KeySet:
        self.reads += 1
        return self.keys


def service(signing_key: object, clock: FixedClock, **options: object) -> TokenService:
    return TokenService(issuer=ISSUER, signing_key=signing_key, users=demo_users(),  # type: ignore[arg-type]
                        relying_parties=RelyingParty(SERVICE_URL, claims=["urn:example:claim"]), clock=clock,
                        **options)  # type: ignore[arg-type]


def test_metadata_is_served_signed_by_the_primary(sts_keys: KeyFiles, clock: FixedClock) -> None:
    answer = TestApp(service(sts_keys.load(), clock)).get(METADATA_PATH)
    assert answer.content_type == "application/samlmetadata+xml"
    assert answer.headers["ETag"] and answer.headers["Last-Modified"]
    read = read_metadata(answer.body, issuer=ISSUER, now=NOW, signing_certs=[sts_keys.load().certificate])
    assert read.endpoint == "http://localhost" and read.mex == "http://localhost/mex"
    assert b"urn:example:claim" in answer.body and b"/claims/role" in answer.body


def test_conditional_get_answers_304(sts_keys: KeyFiles, clock: FixedClock) -> None:
    app = TestApp(service(sts_keys.load(), clock))
    first = app.get(METADATA_PATH)
    again = app.get(METADATA_PATH, headers={"If-None-Match": first.headers["ETag"]}, status=304)
    assert again.body == b""
    app.get(METADATA_PATH, headers={"If-Modified-Since": first.headers["Last-Modified"]}, status=304)
    changed = app.get(METADATA_PATH, headers={"If-None-Match": '"something-else"'})
    assert changed.body == first.body
    assert app.head(METADATA_PATH).headers["ETag"] == first.headers["ETag"]


def test_path_is_configurable_or_off(sts_keys: KeyFiles, clock: FixedClock) -> None:
    moved = TestApp(service(sts_keys.load(), clock, metadata_path="/metadata.xml"))
    assert moved.get("/metadata.xml").status_int == 200
    assert moved.get(METADATA_PATH, expect_errors=True).status_int == 405
    off = TestApp(service(sts_keys.load(), clock, metadata_path=None))
    assert off.get(METADATA_PATH, expect_errors=True).status_int == 405
    with pytest.raises(ConfigurationError, match="metadata_path"):
        service(sts_keys.load(), clock, metadata_path="metadata.xml")


def test_public_url_is_the_advertised_endpoint(sts_keys: KeyFiles, clock: FixedClock) -> None:
    app = TestApp(service(sts_keys.load(), clock, public_url="https://sts.example/services/sts"))
    read = read_metadata(app.get(METADATA_PATH).body, issuer=ISSUER, now=NOW)
    assert (read.endpoint, read.mex) == ("https://sts.example/services/sts", "https://sts.example/services/sts/mex")


def test_served_from_the_hosts_root_when_mounted(sts_keys: KeyFiles, clock: FixedClock) -> None:
    """As deployed: the STS at /services/sts, its metadata at the host's root, naming the STS's address."""
    sts = service(sts_keys.load(), clock)
    app = TestApp(mount("/services/sts", sts, host_paths=(METADATA_PATH,)))
    read = read_metadata(app.get(METADATA_PATH).body, issuer=ISSUER, now=NOW)
    assert read.endpoint == "http://localhost/services/sts"
    assert app.get("/services/sts/FederationMetadata/2007-06/FederationMetadata.xml", expect_errors=True).status_int == 404


def test_metadata_follows_the_key_source(sts_keys: KeyFiles, sts2_keys: KeyFiles, clock: FixedClock) -> None:
    """A next key appears beside the primary; after promotion the new primary signs (document and tokens)."""
    old, new = sts_keys.load(), sts2_keys.load()
    source = Rolling(KeySet.of(old))
    sts = service(source, clock, settings_ttl=0)
    app = TestApp(sts)
    first = app.get(METADATA_PATH)
    source.keys = KeySet(old, (old.certificate, new.certificate))  # add-next
    second = app.get(METADATA_PATH, headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_int == 200 and second.headers["ETag"] != first.headers["ETag"]
    read = read_metadata(second.body, issuer=ISSUER, now=NOW, signing_certs=[old.certificate])
    assert len(read.signing_certificates) == 2
    source.keys = KeySet(new, (old.certificate, new.certificate))  # promote
    read = read_metadata(app.get(METADATA_PATH).body, issuer=ISSUER, now=NOW,
                         signing_certs=[new.certificate])
    assert read.signed_by == new.certificate
    token = client_factory(sts, clock)().request_token(SERVICE_URL)
    assert certificate_base64(new.certificate).replace("\n", "").encode() in token.assertion.replace(b"\n", b"")


def test_a_bad_signing_key_argument_is_named(clock: FixedClock) -> None:
    with pytest.raises(ConfigurationError, match="signing_key"):
        service("sts.key", clock)


def test_signing_key_generate_is_a_key_source_value() -> None:
    key = SigningKey.generate("one")
    assert KeySet.of(key).published == (key.certificate,)
