"""The middleware follows the STS's federation metadata: rollover, and every way the metadata can go wrong.

The metadata is served by a small HTTP server in a thread (ETag and 304 as the
STS answers), or read from a file; ``refresh()`` is called by the test, so no
test waits for the background thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from webtest import TestApp

from _support import FixedClock, KeyFiles
from demo_service.app import echo
from wstrust_wsgi import ConfigurationError, RelyingPartyMiddleware
from wstrust_wsgi.federation import MetadataTrust
from wstrust_wsgi.keys import SigningKey
from wstrust_wsgi.metadata import StsDescription, build_metadata
from wstrust_wsgi.testing import TokenFactory, soap_request

ISSUER = "https://sts.test/services/sts"
AUDIENCE = "https://service.test/soap"
PAYLOAD = b'<e:echo xmlns:e="urn:demo:echo">hi</e:echo>'


def metadata(signer: SigningKey, *published: SigningKey, issuer: str = ISSUER) -> bytes:
    certs = [k.certificate for k in (published or (signer,))]
    return build_metadata(StsDescription(issuer, certs, "https://sts.test/services/sts"), signer)


class _Source:
    """What the little server answers, and what it was asked."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.asked: list[dict[str, str]] = []


@pytest.fixture
def served() -> Iterator[tuple[_Source, str]]:
    source = _Source()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            source.asked.append(dict(self.headers))
            etag = f'"{hash(source.body) & 0xFFFFFFFF:x}"'
            if source.status != 200:
                self.send_response(source.status)
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(source.body)))
            self.end_headers()
            self.wfile.write(source.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield source, f"http://127.0.0.1:{server.server_address[1]}/FederationMetadata/2007-06/FederationMetadata.xml"
    server.shutdown()
    server.server_close()


def middleware(url: str, pinned: list[SigningKey], clock: FixedClock, **options: object) -> RelyingPartyMiddleware:
    options.setdefault("metadata_signing_certs", [k.certificate for k in pinned])
    service = RelyingPartyMiddleware(echo, audience=AUDIENCE, issuer=ISSUER, clock=clock,  # type: ignore[arg-type]
                                     metadata_url=url, **options)
    assert service._trust.trust is not None
    service._trust.trust.stop()  # the test refreshes by hand
    return service


def trust_of(service: RelyingPartyMiddleware) -> MetadataTrust:
    assert service._trust.trust is not None
    return service._trust.trust


def status(service: RelyingPartyMiddleware, key: SigningKey, clock: FixedClock, **mint: object) -> int:
    token = TokenFactory(audience=AUDIENCE, issuer=ISSUER, signing_key=key, clock=clock).mint(**mint)  # type: ignore[arg-type]
    body, headers = soap_request(token, PAYLOAD)
    return TestApp(service).post("/", body, headers=headers, expect_errors=True).status_int


def test_rollover_add_next_promote_retire(served: tuple[_Source, str], sts_keys: KeyFiles, sts2_keys: KeyFiles,
                                          clock: FixedClock) -> None:
    source, url = served
    old, new = sts_keys.load(), sts2_keys.load()
    source.body = metadata(old)
    service = middleware(url, [old, new], clock)
    assert (status(service, old, clock), status(service, new, clock)) == (200, 500)
    source.body = metadata(old, old, new)  # keys add-next: published before it signs
    assert trust_of(service).refresh() is True
    assert (status(service, old, clock), status(service, new, clock)) == (200, 200)
    source.body = metadata(new, old, new)  # keys promote: the new key signs, the old one is still published
    trust_of(service).refresh()
    assert (status(service, old, clock), status(service, new, clock)) == (200, 200)
    source.body = metadata(new, new)  # keys retire
    assert trust_of(service).refresh() is True
    assert (status(service, old, clock), status(service, new, clock)) == (500, 200)


def test_encrypted_tokens_follow_the_rollover_too(served: tuple[_Source, str], sts_keys: KeyFiles,
                                                  sts2_keys: KeyFiles, clock: FixedClock) -> None:
    """The decryption step verifies with the policy of the moment, like the plain path (plain and
    encrypted tokens must not disagree on which keys are trusted)."""
    source, url = served
    old, new, own = sts_keys.load(), sts2_keys.load(), SigningKey.generate("the service's decryption key")
    source.body = metadata(old)
    service = middleware(url, [old, new], clock, decryption_keys=[own])
    sealed = {"encrypt_for": own.certificate}
    assert (status(service, old, clock, **sealed), status(service, new, clock, **sealed)) == (200, 500)
    source.body = metadata(new, old, new)
    assert trust_of(service).refresh() is True
    assert (status(service, old, clock, **sealed), status(service, new, clock, **sealed)) == (200, 200)
    source.body = metadata(new, new)
    assert trust_of(service).refresh() is True
    assert (status(service, old, clock, **sealed), status(service, new, clock, **sealed)) == (500, 200)


def test_refresh_is_conditional(served: tuple[_Source, str], sts_keys: KeyFiles, clock: FixedClock) -> None:
    source, url = served
    source.body = metadata(sts_keys.load())
    service = middleware(url, [sts_keys.load()], clock)
    assert trust_of(service).refresh() is False
    assert "If-None-Match" not in source.asked[0] and source.asked[-1]["If-None-Match"].startswith('"')


def test_server_down_keeps_the_last_good_copy(served: tuple[_Source, str], sts_keys: KeyFiles,
                                              clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    source, url = served
    source.body = metadata(sts_keys.load())
    service = middleware(url, [sts_keys.load()], clock)
    source.status = 503
    assert trust_of(service).refresh() is False
    assert "refused, the last good copy" in caplog.text and "HTTP 503" in caplog.text
    assert status(service, sts_keys.load(), clock) == 200


def test_tampered_or_foreign_metadata_is_refused_and_the_last_good_kept(
        served: tuple[_Source, str], sts_keys: KeyFiles, rogue_keys: KeyFiles, clock: FixedClock) -> None:
    source, url = served
    good, rogue = sts_keys.load(), rogue_keys.load()
    source.body = metadata(good)
    service = middleware(url, [good], clock)
    for bad in (metadata(good).replace(b"wstrust-wsgi STS", b"wstrust-wsgi STX"),  # tampered
                metadata(rogue, good, rogue),  # signed by an unknown key
                metadata(good, issuer="https://other.test/sts")):  # another entityID
        source.body = bad
        assert trust_of(service).refresh() is False
        assert status(service, good, clock) == 200 and status(service, rogue, clock) == 500


def test_a_start_without_metadata_is_one_sentence_unless_cached(served: tuple[_Source, str], sts_keys: KeyFiles,
                                                                 rogue_keys: KeyFiles, clock: FixedClock,
                                                                 tmp_path: Path) -> None:
    source, url = served
    source.status = 503
    with pytest.raises(ConfigurationError, match=r"^metadata_url: metadata at .* HTTP 503, and no metadata_cache"):
        middleware(url, [sts_keys.load()], clock)
    cache = tmp_path / "sts-metadata.xml"
    source.status, source.body = 200, metadata(sts_keys.load())
    middleware(url, [sts_keys.load()], clock, metadata_cache=str(cache))  # a good start writes the cache
    assert cache.read_bytes() == source.body
    source.status = 503
    restarted = middleware(url, [sts_keys.load()], clock, metadata_cache=str(cache))
    assert status(restarted, sts_keys.load(), clock) == 200
    cache.write_bytes(metadata(rogue_keys.load()))  # a cache is checked as the source is
    with pytest.raises(ConfigurationError, match="the cached copy .* is refused"):
        middleware(url, [sts_keys.load()], clock, metadata_cache=str(cache))


def test_a_copy_past_its_maximum_age(served: tuple[_Source, str], sts_keys: KeyFiles, clock: FixedClock) -> None:
    source, url = served
    source.body = metadata(sts_keys.load())
    closed = middleware(url, [sts_keys.load()], clock, metadata_max_age=timedelta(hours=2), health_path="/health")
    serving = middleware(url, [sts_keys.load()], clock, metadata_max_age=7200, metadata_when_stale="serve")
    source.status = 503
    clock.advance(timedelta(hours=3))
    for service in (closed, serving):
        trust_of(service).refresh()
    refused = status(closed, sts_keys.load(), clock)
    assert (refused, status(serving, sts_keys.load(), clock)) == (500, 200)
    health = TestApp(closed).get("/health", expect_errors=True)  # the first probe of this middleware
    assert health.status_int == 503 and health.json["checks"]["metadata"] == "failed"
    source.status = 200
    trust_of(closed).refresh()  # confirmed again (304): usable again
    assert status(closed, sts_keys.load(), clock) == 200


def test_file_source_and_trusted_certs_beside_it(sts_keys: KeyFiles, sts2_keys: KeyFiles, rogue_keys: KeyFiles,
                                                  clock: FixedClock, tmp_path: Path) -> None:
    path = tmp_path / "FederationMetadata.xml"
    path.write_bytes(metadata(sts_keys.load()))
    service = middleware(str(path), [], clock, trusted_certs=[sts2_keys.cert], metadata_signing_certs=())
    assert [status(service, k.load(), clock) for k in (sts_keys, sts2_keys, rogue_keys)] == [200, 200, 500]
    assert trust_of(service).refresh() is False  # unchanged file: not even read
    path.write_bytes(metadata(rogue_keys.load()))
    assert trust_of(service).refresh() is True
    assert [status(service, k.load(), clock) for k in (sts_keys, sts2_keys, rogue_keys)] == [500, 200, 200]


def test_arguments_are_checked(sts_keys: KeyFiles, clock: FixedClock) -> None:
    with pytest.raises(ConfigurationError, match="plain http and no metadata_signing_certs"):
        RelyingPartyMiddleware(echo, audience=AUDIENCE, issuer=ISSUER, metadata_url="http://sts.test/md.xml")
    with pytest.raises(ConfigurationError, match="trusted_certs: give the STS's certificate"):
        RelyingPartyMiddleware(echo, audience=AUDIENCE, issuer=ISSUER)
    with pytest.raises(ConfigurationError, match="metadata_url: .* must be an https:// URL"):
        RelyingPartyMiddleware(echo, audience=AUDIENCE, issuer=ISSUER, metadata_url="ftp://sts.test/md.xml")
    with pytest.raises(ConfigurationError, match="metadata_when_stale"):
        RelyingPartyMiddleware(echo, audience=AUDIENCE, issuer=ISSUER, metadata_url="/nonexistent.xml",
                               metadata_when_stale="maybe")
    with pytest.raises(ConfigurationError, match="metadata_signing_certs: "):
        RelyingPartyMiddleware(echo, audience=AUDIENCE, issuer=ISSUER, metadata_url="https://sts.test/md.xml",
                               metadata_signing_certs=["/nonexistent.crt"])
