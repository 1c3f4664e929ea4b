"""An assertion's ID must be unique in the whole message, on every admission path (issue 10, item 1).

The signature is verified on a standalone copy of the assertion, where its
Reference can only mean the assertion, and the claims come from that copy: a
second element elsewhere in the envelope carrying the same ID never changes
who is admitted. But the Reference is then ambiguous to anything else that
resolves it in the message, so the request must fail closed with
``wsse:FailedCheck``, as WSS4J's secure validation does, whichever way the
middleware admits it:

* **full**: the whole envelope parsed with the token (cutting off);
* **first-seen**: the token cut out of the envelope and verified alone (the
  full path must not be needed to refuse);
* **reused**: a token admitted before, recognised by its bytes, sent again
  with the duplicate added (neither other path may be needed to refuse).

The duplicate is tried under each ID-typed attribute name (``ID``,
``AssertionID``, ``Id``, ``wsu:Id``), in the Body, in a header block of its
own, beside the token in the Security header, on the Body element itself, and
written with a character reference (which a byte search would miss). The
same shapes with another ID are admitted as alice: the ID is what refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    VERSION_PAIRS,
    admitted,
    alice_tokens,
    envelope,
    guard,
    post,
    recorder,
    refused,
    sts_key,
)
from _forge import RecordingApp, qn
from wstrust_wsgi import ns

FAILED = "wsse:FailedCheck"
PATHS = ["full", "first-seen", "reused"]
ID_ATTRIBUTES = {"ID": "ID", "AssertionID": "AssertionID", "Id": "Id", "wsu:Id": qn(ns.WSU, "Id")}
PLACES = ["body", "header-block", "beside-the-token", "on-the-body-element", "character-reference"]


def _holder(attribute: str, value: str) -> bytes:
    element = etree.Element(qn("urn:example:elsewhere", "Data"), nsmap={"wsu": ns.WSU, "e": "urn:example:elsewhere"})
    element.set(attribute, value)
    element.text = "not the token"
    return etree.tostring(element)


def request(token: bytes, assertion_id: str, attribute: str, place: str, soap: str) -> bytes:
    """A request carrying ``token`` and, at ``place``, another element holding ``assertion_id``."""
    if place == "on-the-body-element":
        body = envelope([token], soap=soap)
        written = f' xmlns:wsu="{ns.WSU}" wsu:Id="{assertion_id}"' if attribute == qn(ns.WSU, "Id") \
            else f' {attribute}="{assertion_id}"'
        return body.replace(b"<s:Body>", b"<s:Body" + written.encode() + b">", 1)
    if place == "character-reference":
        holder = _holder(attribute, "MARK" + assertion_id[1:])
        reference = f"&#{ord(assertion_id[0])};".encode()
        return envelope([token], soap=soap, body=[holder.replace(b"MARK", reference, 1)])
    holder = _holder(attribute, assertion_id)
    if place == "body":
        return envelope([token], soap=soap, body=[holder])
    if place == "header-block":
        return envelope([token], soap=soap, headers=[holder])
    assert place == "beside-the-token"
    return envelope([token, holder], soap=soap)


class Fallback:
    """Records any call to the other admission paths of a middleware, so a test can require that none ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, middleware: Any, *names: str) -> None:
        self.called: list[str] = []
        for name in names:
            owner = middleware._fast if name == "first_seen" else middleware
            original = getattr(owner, name)
            monkeypatch.setattr(owner, name, lambda *a, _o=original, _n=name: self.called.append(_n) or _o(*a))


def path_under_test(path: str, recorder: RecordingApp, sts_keys: Any, clock: Any, genuine: bytes, soap: str,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[webtest.TestApp, Fallback | None]:
    """The middleware set up so that ``path`` is the one that answers the next request."""
    app = guard(recorder, sts_keys.cert, clock)
    middleware = app.app
    if path == "full":
        middleware._cutting = False
        return app, None
    if path == "first-seen":
        return app, Fallback(monkeypatch, middleware, "_verify")
    admitted(post(app, genuine, soap), recorder, "alice")  # the token is now remembered
    recorder.calls.clear()
    assert len(middleware._fast.seen) == 1
    return app, Fallback(monkeypatch, middleware, "_verify", "first_seen")


@VERSION_PAIRS
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("attribute", list(ID_ATTRIBUTES))
@pytest.mark.parametrize("place", PLACES)
def test_a_second_holder_of_the_assertion_id_fails_the_check(
    recorder, alice_tokens, sts_keys, clock, monkeypatch, version, soap, path, attribute, place
):
    token = alice_tokens[version.name]
    app, fallback = path_under_test(path, recorder, sts_keys, clock, envelope([token.signed], soap=soap), soap,
                                    monkeypatch)
    body = request(token.signed, token.what.assertion_id, ID_ATTRIBUTES[attribute], place, soap)
    fault = refused(post(app, body, soap), soap, FAILED, recorder=recorder)
    assert fault.reason == "The security token's ID is not unique in the message."
    if fallback is not None:
        assert fallback.called == [], f"the {path} path left the refusal to {fallback.called}"


@VERSION_PAIRS
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("place", PLACES)
def test_the_same_shapes_with_another_id_are_admitted(
    recorder, alice_tokens, sts_keys, clock, monkeypatch, version, soap, path, place
):
    token = alice_tokens[version.name]
    app, fallback = path_under_test(path, recorder, sts_keys, clock, envelope([token.signed], soap=soap), soap,
                                    monkeypatch)
    body = request(token.signed, "_another" + token.what.assertion_id[1:], qn(ns.WSU, "Id"), place, soap)
    assert admitted(post(app, body, soap), recorder, "alice").assertion_id == token.what.assertion_id
    if fallback is not None:
        assert fallback.called == []
