"""Replay: one-time-use assertions at the middleware, UsernameToken digest nonces at the STS.

Middleware: with ``replay_cache=`` an assertion ID is admitted once, however the
second request is wrapped (other SOAP version, a comment slipped into the token,
a Timestamp added); without it a bearer token is reusable for its lifetime (the
documented default, as in WIF). A refused forgery carrying a genuine ID must not
burn that ID, and a cache that fails refuses everyone (fail closed).

STS: a PasswordDigest nonce is accepted once per window, however it is re-sent:
the same bytes, a fresh Created with the digest recomputed (also when the
first use carried an old Created), the other SOAP version, another user, or
the nonce in a non-canonical base64 spelling.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
import webtest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    STS_PATH,
    VERSION_PAIRS,
    admitted,
    envelope,
    guard,
    issue,
    post,
    recorder,
    refused,
    sts_key,
)
from _forge import MEDIA, qn
from _support import SERVICE_URL
from wstrust_wsgi import ns, saml
from wstrust_wsgi.stores.memory import MemoryReplayCache


def _timestamp(now) -> bytes:  # type: ignore[no-untyped-def]
    stamp = etree.Element(qn(ns.WSU, "Timestamp"), nsmap={"wsu": ns.WSU})
    etree.SubElement(stamp, qn(ns.WSU, "Created")).text = saml.format_datetime(now)
    return etree.tostring(stamp)


OTHER_SOAP = {"1.1": "1.2", "1.2": "1.1"}
#: How the second request wraps the same assertion: name -> (soap version of the 2nd request, body maker).
RESENDS = ["identical", "other-soap-version", "comment-in-subject", "with-timestamp"]


def _resend(how: str, token: bytes, soap: str, clock) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    if how == "identical":
        return envelope([token], soap=soap), soap
    if how == "other-soap-version":
        return envelope([token], soap=OTHER_SOAP[soap]), OTHER_SOAP[soap]
    if how == "comment-in-subject":
        changed = token.replace(b">alice<", b">ali<!---->ce<")
        assert changed != token
        return envelope([changed], soap=soap), soap
    assert how == "with-timestamp"
    return envelope([_timestamp(clock.now), token], soap=soap), soap


@VERSION_PAIRS
@pytest.mark.parametrize("how", RESENDS)
def test_replay_cache_admits_an_assertion_once(recorder, sts_keys, issue, clock, version, soap, how):
    app = guard(recorder, sts_keys.cert, clock, replay_cache=MemoryReplayCache())
    token = issue(version).signed
    admitted(post(app, envelope([token], soap=soap), soap), recorder, "alice")
    body, second_soap = _resend(how, token, soap, clock)
    recorder.calls.clear()
    fault = refused(post(app, body, second_soap), second_soap, "wsse:InvalidSecurityToken", recorder=recorder)
    assert fault.reason == "The security token has already been used."


@VERSION_PAIRS
def test_without_a_replay_cache_a_bearer_token_is_reusable_by_default(recorder, sts_keys, issue, clock, version, soap):
    app = guard(recorder, sts_keys.cert, clock)
    token = issue(version).signed
    for _ in range(3):
        assert post(app, envelope([token], soap=soap), soap).status_int == 200
    assert [call["REMOTE_USER"] for call in recorder.calls] == ["alice"] * 3


@VERSION_PAIRS
def test_refused_forgery_with_a_genuine_id_does_not_burn_it(recorder, sts_keys, issue, clock, version, soap):
    app = guard(recorder, sts_keys.cert, clock, replay_cache=MemoryReplayCache())
    token = issue(version).signed
    forged = token.replace(b">alice<", b">admin<")
    assert forged != token
    refused(post(app, envelope([forged], soap=soap), soap), soap, "wsse:FailedCheck", recorder=recorder)
    admitted(post(app, envelope([token], soap=soap), soap), recorder, "alice")


@VERSION_PAIRS
def test_distinct_assertions_are_each_admitted_once(recorder, sts_keys, issue, clock, version, soap):
    app = guard(recorder, sts_keys.cert, clock, replay_cache=MemoryReplayCache())
    first, second = issue(version).signed, issue(version, subject="bob").signed
    assert post(app, envelope([first], soap=soap), soap).status_int == 200
    assert post(app, envelope([second], soap=soap), soap).status_int == 200
    assert [call["REMOTE_USER"] for call in recorder.calls] == ["alice", "bob"]


@VERSION_PAIRS
def test_replay_after_expiry_is_refused_as_expired(recorder, sts_keys, issue, clock, version, soap):
    app = guard(recorder, sts_keys.cert, clock, replay_cache=MemoryReplayCache())
    token = issue(version)
    assert post(app, envelope([token.signed], soap=soap), soap).status_int == 200
    recorder.calls.clear()
    clock.now = token.what.not_on_or_after + timedelta(minutes=5, seconds=1)
    fault = refused(post(app, envelope([token.signed], soap=soap), soap), soap, "wsse:InvalidSecurityToken",
                    recorder=recorder)
    assert fault.reason == "The security token has expired or is not yet valid."


class _UnavailableCache:
    """A replay cache whose backend is down (a real ReplayCache implementation, not a mock)."""

    def add(self, key, *, expires, now):  # type: ignore[no-untyped-def]
        raise ConnectionError("replay backend unreachable")


@VERSION_PAIRS
@pytest.mark.parametrize("cache", ["unreachable", "full"])
def test_failing_replay_cache_refuses_everyone(recorder, sts_keys, issue, clock, version, soap, cache):
    if cache == "unreachable":
        replay = _UnavailableCache()
    else:
        replay = MemoryReplayCache(max_entries=1)
        replay.add("live", expires=clock.now + timedelta(hours=1), now=clock.now)
    app = guard(recorder, sts_keys.cert, clock, replay_cache=replay)
    fault = refused(post(app, envelope([issue(version).signed], soap=soap), soap), soap, "wst:RequestFailed",
                    recorder=recorder, sender=False)
    expected = {"unreachable": "The service cannot check tokens right now.",
                "full": "The specified request failed."}[cache]
    assert fault.reason == expected


# --------------------------------------------------------------------------- STS digest nonces


def _post_rst(web: webtest.TestApp, body: bytes, soap: str) -> webtest.TestResponse:
    content_type = f"{MEDIA[soap]}; charset=utf-8"
    return web.post(STS_PATH, body, headers={"Content-Type": content_type}, expect_errors=True)


def _issued(response: webtest.TestResponse) -> bool:
    return response.status_int == 200 and b"Assertion" in response.body


def _redigest(body: bytes, *, password: str, created: str | None = None, nonce_text: str | None = None,
              username: str | None = None) -> bytes:
    """Re-sign a PasswordDigest UsernameToken with the given parts (the nonce bytes kept unless given)."""
    root = etree.fromstring(body)
    token = root.find(f".//{qn(ns.WSSE, 'UsernameToken')}")
    nonce_el = token.find(qn(ns.WSSE, "Nonce"))
    created_el = token.find(qn(ns.WSU, "Created"))
    if created is not None:
        created_el.text = created
    if nonce_text is not None:
        nonce_el.text = nonce_text
    if username is not None:
        token.find(qn(ns.WSSE, "Username")).text = username
    nonce = base64.b64decode(nonce_el.text)
    digest = hashlib.sha1(nonce + created_el.text.encode() + password.encode()).digest()
    token.find(qn(ns.WSSE, "Password")).text = base64.b64encode(digest).decode()
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _without_timestamp(body: bytes) -> bytes:
    """The request without its wsu:Timestamp (optional; the first one has expired by then)."""
    root = etree.fromstring(body)
    timestamp = root.find(f".//{qn(ns.WSU, 'Timestamp')}")
    timestamp.getparent().remove(timestamp)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _non_canonical(nonce_text: str) -> str:
    """The same 16 bytes in another base64 spelling: the padding bits of the last symbol set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert nonce_text.endswith("==") and len(nonce_text) == 24
    last = alphabet[alphabet.index(nonce_text[21]) | 0b1111]
    spelled = nonce_text[:21] + last + "=="
    assert spelled != nonce_text and base64.b64decode(spelled, validate=True) == base64.b64decode(nonce_text)
    return spelled


NONCE_REPLAYS = ["identical", "fresh-created", "other-soap-version", "other-user", "non-canonical-base64",
                 "nine-minutes-later", "first-sent-with-an-old-created"]


@pytest.mark.parametrize("how", NONCE_REPLAYS)
def test_digest_nonce_is_accepted_once(sts_app, make_client, clock, how):
    web = webtest.TestApp(sts_app)
    if how == "first-sent-with-an-old-created":  # 9 minutes old: inside the 5 min window + 5 min skew
        clock.advance(minutes=-9)
    first = make_client(digest=True, soap_version="1.2").build_request(SERVICE_URL)
    if how == "first-sent-with-an-old-created":
        clock.advance(minutes=9)
    assert _issued(_post_rst(web, first, "1.2"))
    nonce_text = etree.fromstring(first).findtext(f".//{qn(ns.WSSE, 'Nonce')}")
    soap = "1.2"
    if how == "identical":
        second = first
    elif how == "fresh-created":
        clock.advance(seconds=30)
        second = _redigest(first, password="admin", created=saml.format_datetime(clock.now))
    elif how == "other-soap-version":
        soap = "1.1"
        other = make_client(digest=True, soap_version="1.1").build_request(SERVICE_URL)
        second = _redigest(other, password="admin", nonce_text=nonce_text)
    elif how == "other-user":
        second = _redigest(first, password="alice", username="alice")
    elif how == "non-canonical-base64":
        second = _redigest(first, password="admin", nonce_text=_non_canonical(nonce_text))
    elif how == "first-sent-with-an-old-created":
        # The nonce is remembered from its first use, not from the Created it came with:
        # 7 minutes on, the old Created + window + skew has passed, the first use has not.
        clock.advance(minutes=7)
        second = _redigest(_without_timestamp(first), password="admin", created=saml.format_datetime(clock.now))
    else:
        clock.advance(minutes=9)
        second = _redigest(first, password="admin", created=saml.format_datetime(clock.now - timedelta(minutes=1)))
    response = _post_rst(web, second, soap)
    refused(response, soap, "wst:FailedAuthentication")
    assert b"Assertion" not in response.body


def test_fresh_nonce_with_the_same_created_gets_a_token(sts_app, make_client):
    """Control: what is refused above is the nonce, not the rest of the request."""
    web = webtest.TestApp(sts_app)
    first = make_client(digest=True).build_request(SERVICE_URL)
    assert _issued(_post_rst(web, first, "1.2"))
    fresh = base64.b64encode(hashlib.sha256(first).digest()[:16]).decode()
    assert _issued(_post_rst(web, _redigest(first, password="admin", nonce_text=fresh), "1.2"))
