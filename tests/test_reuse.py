"""The cut-token paths (``wstrust_wsgi._reuse``) reach the full path's verdict on every request.

Three middlewares answer each request: one that has already admitted the
token (so it takes the reused-token path), a fresh one (so the token is cut
out and verified alone, the first-seen path) and one with both paths off that
parses the token with its envelope and verifies everything from scratch. All
must give the same status and the same bytes, and call the app with the same
user. The requests: the genuine one, the token hidden in a
comment / CDATA section / processing instruction before a forged one, moved to
another header or the Body, sent twice, wrapped in another namespace context,
nested too deep, in another encoding or XML version, followed by garbage, the
placeholder's own bytes injected, its ID held by a second element (also written
with a character reference), too many attributes or namespace declarations on
one element of either part, too many elements in the two parts together, and
thousands of byte-level edits of the whole request; then time moving past the
token's life.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree

from _forge import RecordingApp, content, sign_with, soap_request
from _support import ISSUER, SERVICE_URL, FixedClock
from wstrust_wsgi import RelyingPartyMiddleware, _xml, ns, saml
from wstrust_wsgi._reuse import SeenTokens

WSU = ns.WSU.encode()


def post(app: Any, body: bytes, content_type: str = "text/xml; charset=utf-8") -> tuple[str, bytes]:
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
    }
    out = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], out


class Pair:
    """A middleware that has seen the token, a fresh one per request, and a from-scratch one."""

    def __init__(self, certs: Any, clock: FixedClock, token: bytes) -> None:
        self.apps = (RecordingApp(), RecordingApp(), RecordingApp())
        self.options = dict(audience=SERVICE_URL, issuer=ISSUER, trusted_certs=certs, clock=clock)
        self.learning = RelyingPartyMiddleware(self.apps[0], **self.options)
        self.scratch = RelyingPartyMiddleware(self.apps[2], **self.options, verified_cache_size=0)
        self.scratch._cutting = False
        assert post(self.learning, soap_request(token))[0].startswith("200")
        assert len(self.learning._fast.seen) == 1

    def same(self, body: bytes, content_type: str = "text/xml; charset=utf-8") -> str:
        before = [len(app.calls) for app in self.apps]
        fresh = RelyingPartyMiddleware(self.apps[1], **self.options)
        answers = [post(app, body, content_type) for app in (self.learning, fresh, self.scratch)]
        assert answers[0] == answers[2], ("reused", answers[0][0], answers[2][0], body[:3000])
        assert answers[1] == answers[2], ("first seen", answers[1][0], answers[2][0], body[:3000])
        called = [len(app.calls) - n for app, n in zip(self.apps, before)]
        assert called[0] == called[1] == called[2]
        if called[0]:
            users = {app.calls[-1]["REMOTE_USER"] for app in self.apps}
            assert len(users) == 1
            assert all(app.calls[-1]["body"] == body for app in self.apps)
        return answers[0][0]


S2 = ns.SAML2.encode()


def prefixed_saml2(key: Any, what: saml.AssertionContent) -> bytes:
    """A SAML 2.0 token as other STSes write it, every element ``saml2:``-prefixed (signed by signxml)."""
    unsigned = etree.tostring(saml.build_saml2(what))
    assert unsigned.startswith(b'<Assertion xmlns="' + S2 + b'" ')
    prefixed = re.sub(rb"<(/?)(?=[A-Za-z])(?!ds:)", rb"<\1saml2:", unsigned).replace(b" xmlns=", b" xmlns:saml2=", 1)
    return sign_with(key, saml.SAML2, what, root=etree.fromstring(prefixed))


@pytest.fixture(params=["2.0", "2.0-prefixed", "1.1"])
def token(request: pytest.FixtureRequest, sts_keys: Any, clock: FixedClock) -> bytes:
    """Ours (SAML 2.0 in the default namespace, as AD FS writes it; SAML 1.1 ``saml:``), and a prefixed 2.0."""
    if request.param == "2.0-prefixed":
        return prefixed_saml2(sts_keys.load(), content(clock.now))
    version = saml.SAML2 if request.param == "2.0" else saml.SAML11
    return saml.AssertionSigner(sts_keys.load()).sign(version, content(clock.now))


@pytest.fixture
def pair(sts_keys: Any, clock: FixedClock, token: bytes) -> Pair:
    return Pair([sts_keys.cert], clock, token)


def test_a_remembered_token_is_not_parsed_again(pair: Pair, token: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    other: list[str] = []
    for owner, name in ((pair.learning, "_verify"), (pair.learning._fast, "first_seen")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _o=original, _n=name: other.append(_n) or _o(*a))
    assert pair.same(soap_request(token)).startswith("200")
    assert pair.same(soap_request(token, message="another call")).startswith("200")
    assert other == []
    assert pair.apps[0].calls[-1]["assertion"].subject == "admin"


def test_a_first_seen_token_is_parsed_once_alone(sts_keys: Any, clock: FixedClock, token: bytes,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    middleware = RelyingPartyMiddleware(RecordingApp(), audience=SERVICE_URL, issuer=ISSUER,
                                        trusted_certs=[sts_keys.cert], clock=clock, verified_cache_size=0)
    full: list[int] = []
    original = middleware._verify
    monkeypatch.setattr(middleware, "_verify", lambda *a: full.append(1) or original(*a))
    for _ in range(2):
        assert post(middleware, soap_request(token))[0].startswith("200")
    assert full == [] and len(middleware._fast.seen) == 0  # cut every time, remembered never (no cache)
    with_cache = RelyingPartyMiddleware(RecordingApp(), audience=SERVICE_URL, issuer=ISSUER,
                                        trusted_certs=[sts_keys.cert], clock=clock)
    assert post(with_cache, soap_request(token))[0].startswith("200")
    assert len(with_cache._fast.seen) == 1  # remembered at once


def forged(sts_keys: Any, clock: FixedClock) -> bytes:
    """A token for another user, signed by the trusted key but then edited (so its signature fails)."""
    good = saml.AssertionSigner(sts_keys.load()).sign(saml.SAML2, content(clock.now, subject="mallory"))
    assert b">mallory<" in good
    return good.replace(b">mallory<", b">admin<", 1)


def hiding_places(token: bytes, evil: bytes) -> dict[str, bytes]:
    genuine = soap_request(token)
    security_start = genuine.index(token)
    before, after = genuine[:security_start], genuine[security_start + len(token):]
    found = re.search(rb' (?:ID|AssertionID)="([^"]+)"', token)
    assert found is not None
    token_id = found.group(1)
    attributes = b"".join(b' z%d="1"' % i for i in range(65))
    declarations = b"".join(b' xmlns:z%d="urn:z%d"' % (i, i) for i in range(65))
    return {
        "genuine": genuine,
        "in a comment, forged after": before + b"<!--" + token + b"-->" + evil + after,
        "in CDATA, forged after": before + b"<![CDATA[" + token + b"]]>" + evil + after,
        "in a PI, forged after": before + b"<?x " + token + b"?>" + evil + after,
        "twice": before + token + token + after,
        "then forged": before + token + evil + after,
        "forged then": before + evil + token + after,
        "in another header": genuine.replace(b"<s:Header>", b"<s:Header><x:Other xmlns:x=\"urn:x\">" + token
                                             + b"</x:Other>", 1).replace(token + after, after, 1),
        "in the body": before + after.replace(b"<s:Body>", b"<s:Body>" + token, 1),
        "in a wrapper inside Security": before + b"<w:Wrap xmlns:w=\"urn:w\">" + token + b"</w:Wrap>" + after,
        "default namespace around it": genuine.replace(b"<s:Envelope ", b"<s:Envelope xmlns=\"urn:evil\" ", 1),
        "SAML 2.0 as the default namespace around it": genuine.replace(
            b"<s:Envelope ", b"<s:Envelope xmlns=\"" + S2 + b"\" ", 1),
        "its prefix rebound around it": genuine.replace(
            b"<s:Envelope ", b"<s:Envelope xmlns:saml2=\"urn:evil\" xmlns:saml=\"urn:evil\" xmlns:ds=\"urn:e\" ", 1),
        "relative namespace URI around it": genuine.replace(b"<s:Envelope ", b"<s:Envelope xmlns:rel=\"admin\" ", 1),
        "relative default namespace around it": genuine.replace(b"<s:Envelope ", b"<s:Envelope xmlns=\"rel\" ", 1),
        "unparsable namespace URI around it": genuine.replace(b"<s:Envelope ", b"<s:Envelope xmlns:u=\"a b:c\" ", 1),
        "text after it": before + token + b"admin" + after,
        "whitespace after it": before + token + b"\n  \t" + after,
        "no-break space after it": before + token + "\u00a0".encode() + after,
        "followed by garbage": before + token + after + b"<junk/>",
        "unclosed after": before + token + after.replace(b"</s:Envelope>", b"", 1),
        "latin-1 declared": genuine.replace(b"encoding='utf-8'", b"encoding='iso-8859-1'", 1),
        "xml 1.1 declared": genuine.replace(b"version='1.0'", b"version='1.1'", 1),
        "no declaration": genuine[genuine.index(b"<s:Envelope"):],
        "utf-16": genuine.decode().replace("encoding='utf-8'", "encoding='utf-16'", 1).encode("utf-16"),
        "security not mustUnderstand-free": genuine.replace(b"<s:Header>", b"<s:Header><x:H xmlns:x=\"urn:x\" "
                                                            b"s:mustUnderstand=\"1\"/>", 1),
        "its ID again in the body": genuine.replace(
            b"<s:Body>", b"<s:Body><d:D xmlns:d=\"urn:d\" ID=\"" + token_id + b"\"/>", 1),
        "its ID again as the Body's wsu:Id": genuine.replace(
            b"<s:Body>", b"<s:Body xmlns:wsu=\"" + WSU + b"\" wsu:Id=\"" + token_id + b"\">", 1),
        "its ID again beside it, by a character reference": before + token + b"<d:D xmlns:d=\"urn:d\" Id=\"&#"
        + str(token_id[0]).encode() + b";" + token_id[1:] + b"\"/>" + after,
        "another ID beside it, by a character reference": before + token + b"<d:D xmlns:d=\"urn:d\" Id=\"&#"
        + str(token_id[0]).encode() + b";x" + token_id[1:] + b"\"/>" + after,
        "65 attributes on a header element": before + b"<x:A xmlns:x=\"urn:x\"" + attributes + b"/>" + token + after,
        "65 attributes on its own start tag": before + token.replace(b"Assertion ", b"Assertion" + attributes + b" ", 1)
        + after,
        "65 declarations on the envelope": genuine.replace(b"<s:Envelope ", b"<s:Envelope" + declarations + b" ", 1),
        "elements within the cap apart, over it together": genuine.replace(
            b"<s:Body>", b"<s:Body>" + b"<e/>" * (_xml.DEFAULT_MAX_ELEMENTS - 10), 1),
        "expired timestamp": before + b"<wsu:Timestamp xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/"
                                      b"oasis-200401-wss-wssecurity-utility-1.0.xsd\"><wsu:Created>"
                                      b"2001-01-01T00:00:00Z</wsu:Created><wsu:Expires>2001-01-01T00:05:00Z"
                                      b"</wsu:Expires></wsu:Timestamp>" + token + after,
    }


def test_every_hiding_place_gets_the_full_paths_answer(pair: Pair, token: bytes, sts_keys: Any,
                                                       clock: FixedClock) -> None:
    verdicts = {name: pair.same(body) for name, body in hiding_places(token, forged(sts_keys, clock)).items()}
    assert verdicts["genuine"].startswith("200")
    assert verdicts["default namespace around it"].startswith("200")  # the token declares what it uses
    assert verdicts["SAML 2.0 as the default namespace around it"].startswith("200")
    assert verdicts["whitespace after it"].startswith("200")
    assert verdicts["another ID beside it, by a character reference"].startswith("200")
    for name in ("its ID again in the body", "its ID again as the Body's wsu:Id",
                 "its ID again beside it, by a character reference", "65 attributes on a header element",
                 "65 attributes on its own start tag", "65 declarations on the envelope",
                 "elements within the cap apart, over it together"):
        assert not verdicts[name].startswith("200"), name
    for name in ("in a comment, forged after", "in CDATA, forged after", "in a PI, forged after", "twice",
                 "then forged", "forged then", "in another header", "in the body", "in a wrapper inside Security",
                 "followed by garbage", "unclosed after", "expired timestamp"):
        assert not verdicts[name].startswith("200"), name


def test_too_deep_with_the_token_is_refused_although_the_splice_is_shallow(pair: Pair, token: bytes) -> None:
    genuine = soap_request(token)
    at = genuine.index(token)
    depth = 56  # the splice stays within 64 levels; with the token's own levels it does not
    wrapped = (genuine[:at] + b"<w:a xmlns:w=\"urn:w\">" * depth + token + b"</w:a>" * depth
               + genuine[at + len(token):])
    assert not pair.same(wrapped).startswith("200")


def test_the_placeholder_cannot_be_forged(pair: Pair, token: bytes) -> None:
    seen = pair.learning._fast.seen
    assert seen is not None
    namespace = seen.tag[1:].split("}")[0]
    planted = soap_request(token).replace(b"<s:Body>", b"<s:Body><t xmlns=\"" + namespace.encode() + b"\"/>", 1)
    assert pair.same(planted).startswith("200")  # admitted by the full path, which sees the real token
    only_placeholder = soap_request(b"<t xmlns=\"" + namespace.encode() + b"\"/>")
    assert not pair.same(only_placeholder).startswith("200")


def test_byte_edits_anywhere_get_the_full_paths_answer(pair: Pair, token: bytes) -> None:
    genuine = soap_request(token)
    admitted = refused = 0
    for offset in range(0, len(genuine), 3):
        for edit in (genuine[:offset] + genuine[offset + 1:],
                     genuine[:offset] + b"<" + genuine[offset:],
                     genuine[:offset] + b"<!--x-->" + genuine[offset:]):
            if pair.same(edit).startswith("200"):
                admitted += 1
            else:
                refused += 1
    assert admitted and refused  # both answers occurred, and always agreed


def test_time_and_certificate_are_rechecked_on_the_reused_path(pair: Pair, token: bytes, clock: FixedClock) -> None:
    genuine = soap_request(token)
    clock.advance(minutes=9)
    assert pair.same(genuine).startswith("200")
    clock.advance(minutes=1, seconds=1)
    assert not pair.same(genuine).startswith("200")
    clock.advance(days=3650)
    assert not pair.same(genuine).startswith("200")


def test_a_token_relying_on_outside_namespaces_is_not_cut(sts_keys: Any, clock: FixedClock) -> None:
    token = prefixed_saml2(sts_keys.load(), content(clock.now))
    seen = SeenTokens()
    declared_outside = b"<e xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">" + token.replace(
        b" xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"", b"", 1) + b"</e>"
    assert seen.cut(declared_outside, 64) is None
    ours = saml.AssertionSigner(sts_keys.load()).sign(saml.SAML2, content(clock.now))
    default_outside = b"<e xmlns=\"" + S2 + b"\">" + ours.replace(b" xmlns=\"" + S2 + b"\"", b"", 1) + b"</e>"
    assert b"<Assertion ID=" in default_outside and seen.cut(default_outside, 64) is None
    unqualified = b"<e>" + token.replace(b"<saml2:Issuer>", b"<Issuer xmlns=\"\">", 1).replace(
        b"</saml2:Issuer>", b"</Issuer>", 1) + b"</e>"
    assert seen.cut(unqualified, 64) is None
    inclusive = b"<e>" + ours.replace(b"<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">",
                                       b"<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">"
                                       b"<ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\""
                                       b" PrefixList=\"xs\"/>", 1) + b"</e>"
    assert b"PrefixList" in inclusive and seen.cut(inclusive, 64) is None
    whole = b"<e>" + token + b"</e>"
    cut = seen.cut(whole, 64)
    assert cut is not None and cut.wire == token
    seen.remember(cut, b"key")
    assert len(seen) == 1
    for around in (b"<e>", b"<e xmlns=\"urn:evil\">", b"<e xmlns=\"" + S2 + b"\">"):
        cut = seen.cut(around + ours + b"</e>", 64)  # its own root declares the default namespace it uses
        assert cut is not None and cut.wire == ours and cut.alone is not None
        assert cut.alone.tag == f"{{{ns.SAML2}}}Assertion"


def leaning_on_the_context(key: Any, what: saml.AssertionContent) -> bytes:
    """A SAML 2.0 token whose root is ``saml2:``-prefixed and whose other elements are unprefixed, with no
    default namespace of its own: it means SAML 2.0 only where the context declares that default.

    Exclusive c14n renders the default namespace on each unprefixed child (the root does not use it),
    so the signature made with the default declared on the root holds in such a context too. Its start
    tag carries the text ``xmlns="..."`` inside an attribute value, which a text match would mistake
    for a declaration.
    """
    unsigned = etree.tostring(saml.build_saml2(what))
    head = b'<saml2:Assertion xmlns:saml2="' + S2 + b'" xmlns="' + S2 + b'" Note=\' xmlns="urn:x"\' '
    tree = etree.fromstring(head + unsigned[len(b'<Assertion xmlns="') + len(S2) + 2:-len(b"</Assertion>")]
                            + b"</saml2:Assertion>")
    signed = sign_with(key, saml.SAML2, what, root=tree)
    escaped = b'Note=" xmlns=&quot;urn:x&quot;"'  # as lxml writes the value; the same value, quoted otherwise:
    assert signed.count(b' xmlns="' + S2 + b'"') == 1 and signed.count(escaped) == 1
    return signed.replace(b' xmlns="' + S2 + b'"', b"", 1).replace(escaped, b"Note=' xmlns=\"urn:x\"'", 1)


def test_a_token_leaning_on_the_contexts_default_namespace_takes_the_full_path(
        sts_keys: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    token = leaning_on_the_context(sts_keys.load(), content(clock.now))
    pair = Pair([sts_keys.cert], clock, saml.AssertionSigner(sts_keys.load()).sign(saml.SAML2, content(clock.now)))
    in_context = soap_request(token).replace(b"<s:Envelope ", b"<s:Envelope xmlns=\"" + S2 + b"\" ", 1)
    full: list[int] = []
    original = RelyingPartyMiddleware._verify
    monkeypatch.setattr(RelyingPartyMiddleware, "_verify", lambda *a: full.append(1) or original(*a))
    assert pair.same(in_context).startswith("200")  # valid where it stands, as the full path sees it
    assert len(full) == 3  # no path cut it: alone, its elements would be in no namespace
    assert not pair.same(soap_request(token)).startswith("200")  # without that context, it is not SAML 2.0


def test_a_default_namespace_token_is_cut_and_reused_under_any_context(
        sts_keys: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """AD FS's serialization (``<Assertion xmlns="urn:...:assertion">``) takes the cut and reuse paths,
    also inside an envelope declaring another default namespace, and still agrees with the full path."""
    token = saml.AssertionSigner(sts_keys.load()).sign(saml.SAML2, content(clock.now))
    assert token.startswith(b'<Assertion xmlns="' + S2 + b'" ID="')
    pair = Pair([sts_keys.cert], clock, token)
    full: list[int] = []
    original = RelyingPartyMiddleware._verify
    monkeypatch.setattr(RelyingPartyMiddleware, "_verify", lambda self, *a: full.append(id(self)) or original(self, *a))
    for default in (b"urn:evil", S2, ns.SAML1.encode(), ns.WSSE.encode()):
        request = soap_request(token).replace(b"<s:Envelope ", b"<s:Envelope xmlns=\"" + default + b"\" ", 1)
        assert pair.same(request).startswith("200")
        request = request.replace(b"<wsse:Security>", b"<wsse:Security xmlns=\"urn:other\">", 1)
        assert pair.same(request).startswith("200")
    assert set(full) == {id(pair.scratch)}  # the remembered and the fresh middleware never fell back


def test_seen_tokens_are_bounded(sts_keys: Any, clock: FixedClock) -> None:
    seen = SeenTokens(max_entries=4)
    signer = saml.AssertionSigner(sts_keys.load())
    for _ in range(9):
        cut = seen.cut(b"<e>" + signer.sign(saml.SAML2, content(clock.now)) + b"</e>", 64)
        assert cut is not None
        seen.remember(cut, b"key")
        assert len(seen) <= 4


def test_many_clients_each_reusing_a_token(sts_keys: Any, clock: FixedClock) -> None:
    signer = saml.AssertionSigner(sts_keys.load())
    tokens = [signer.sign(saml.SAML2, content(clock.now, subject=f"user{i}")) for i in range(5)]
    app = RecordingApp()
    middleware = RelyingPartyMiddleware(app, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                        clock=clock)
    for _ in range(3):
        for i, token in enumerate(tokens):
            assert post(middleware, soap_request(token))[0].startswith("200")
            assert app.calls[-1]["REMOTE_USER"] == f"user{i}"
    assert len(middleware._fast.seen) == 5
    clock.advance(minutes=11)
    assert not post(middleware, soap_request(tokens[0]))[0].startswith("200")


def test_replay_cache_still_applies(sts_keys: Any, clock: FixedClock, token: bytes) -> None:
    from wstrust_wsgi.stores.memory import MemoryReplayCache
    middleware = RelyingPartyMiddleware(RecordingApp(), audience=SERVICE_URL, issuer=ISSUER,
                                        trusted_certs=[sts_keys.cert], clock=clock, replay_cache=MemoryReplayCache())
    assert post(middleware, soap_request(token))[0].startswith("200")
    for _ in range(3):
        assert post(middleware, soap_request(token))[0].startswith("500")


def test_skew_setting_matches(sts_keys: Any, clock: FixedClock, token: bytes) -> None:
    pair = Pair([sts_keys.cert], clock, token)
    clock.advance(minutes=10, seconds=-1)  # NotOnOrAfter is now + 5 min; the skew adds 5 more
    assert pair.same(soap_request(token)).startswith("200")
    clock.advance(seconds=2)
    assert not pair.same(soap_request(token)).startswith("200")
    assert timedelta(minutes=5) == pair.learning.policy.clock_skew
