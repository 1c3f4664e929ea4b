"""Hostile XML and SOAP against both endpoints: the middleware (with a valid token in the request)
and the STS (with a valid UsernameToken).

DTDs in every form (internal and external entities, XXE to a local file and to
a loopback URL, parameter entities, external DTD subsets, billion laughs, the
quadratic blow-up), also in UTF-16 where a byte scan for ``<!DOCTYPE`` sees
nothing; nesting 10,000 deep; tens of thousands of attributes or namespace
declarations on one element, too many elements; a 50 MB body (refused by its Content-Length
before a byte is read); oversized bodies made of a large attribute repeated; too
many header blocks; SOAP version mismatches; two Security headers;
mustUnderstand headers. Every refusal must be the right SOAP fault, leak
nothing, fetch nothing (a loopback HTTP server records any request), and never
reach the protected app or issue a token.
"""

from __future__ import annotations

import io
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import webtest
from lxml import etree

from _attacks import (  # noqa: F401  (fixtures)
    ACTOR_ATTRIBUTE,
    ANOTHER_NODE,
    PATH,
    STS_PATH,
    SOAP_VERSIONS,
    admitted,
    envelope,
    guard,
    guarded,
    issue,
    post,
    recorder,
    refused,
    security_block,
    sts_key,
)
from _forge import ENV_NS, RecordingApp, qn
from _support import ISSUER, SERVICE_URL
from _support.faults import assert_version_mismatch
from wstrust_wsgi import _xml, ns, saml

HOSTNAME = Path("/etc/hostname").read_text().strip()
SECRET = "TOP-SECRET-7f3a9c"
CLIENT = "soap:Client"


# --------------------------------------------------------------------------- a loopback listener


class _Listener:
    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                listener.requests.append(self.path)
                body = b'<!ENTITY leaked "FETCHED">'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"


@pytest.fixture(scope="module")
def loopback():  # type: ignore[no-untyped-def]
    """An HTTP server on a free loopback port that records every request; proven live, then emptied."""
    listener = _Listener()
    listener.thread.start()
    with urllib.request.urlopen(listener.url("probe"), timeout=5) as answer:
        assert answer.read() == b'<!ENTITY leaked "FETCHED">'
    assert listener.requests == ["/probe"]
    listener.requests.clear()
    yield listener
    listener.server.shutdown()
    listener.server.server_close()


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("secret") / "secret.txt"
    path.write_text(SECRET)
    return path


# --------------------------------------------------------------------------- requests for both targets


class _Targets:
    """target name -> (TestApp, path, request builder(soap, marker text) -> bytes, whether it was let through);
    each target is built on first use (the STS loads its key, the service needs a token)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._built: dict[str, tuple] = {}

    def __getitem__(self, name: str) -> tuple:
        if name not in self._built:
            self._built[name] = getattr(self, "_" + name)(self._request.getfixturevalue)
        return self._built[name]

    @staticmethod
    def _service(fixture):  # type: ignore[no-untyped-def]
        recorder = fixture("recorder")
        app = guard(recorder, fixture("sts_keys").cert, fixture("clock"))
        token = fixture("issue")(saml.SAML2).signed

        def build(soap: str, marker: str = "hi there") -> bytes:
            return envelope([token], soap=soap, message=marker)

        return app, PATH, build, lambda response: bool(recorder.calls)

    @staticmethod
    def _sts(fixture):  # type: ignore[no-untyped-def]
        app = webtest.TestApp(fixture("sts_app"))
        make_client = fixture("make_client")

        def build(soap: str, marker: str = "admin") -> bytes:
            body = make_client(soap_version=soap, digest=True).build_request(SERVICE_URL)
            if marker != "admin":
                body = body.replace(b"<wsse:Username>admin</wsse:Username>",
                                    f"<wsse:Username>{marker}</wsse:Username>".encode())
            return body

        return app, STS_PATH, build, lambda response: b"Assertion" in response.body


@pytest.fixture
def targets(request):  # type: ignore[no-untyped-def]
    return _Targets(request)


TARGETS = pytest.mark.parametrize("target", ["service", "sts"])


def send(targets, target: str, body: bytes, soap: str, *, content_type: str | None = None):  # type: ignore[no-untyped-def]
    app, path, _, _ = targets[target]
    return post(app, body, soap, content_type=content_type, path=path)


def assert_refused(targets, target: str, response, soap: str, code: str, **kwargs):  # type: ignore[no-untyped-def]
    fault = refused(response, soap, code, **kwargs)
    assert not targets[target][3](response), f"{target} let a hostile request through"
    return fault


# --------------------------------------------------------------------------- DTDs


def _dtds(loopback, secret_file) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """name -> (document type declaration, reference placed in the request's text)."""
    laughs = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    return {
        "internal-entity": ('<!DOCTYPE Envelope [<!ENTITY e "admin">]>', "&e;"),
        "xxe-etc-hostname": ('<!DOCTYPE Envelope [<!ENTITY e SYSTEM "file:///etc/hostname">]>', "&e;"),
        "xxe-secret-file": (f'<!DOCTYPE Envelope [<!ENTITY e SYSTEM "file://{secret_file}">]>', "&e;"),
        "xxe-loopback-url": (f'<!DOCTYPE Envelope [<!ENTITY e SYSTEM "{loopback.url("entity")}">]>', "&e;"),
        "parameter-entity-loopback-url": (
            f'<!DOCTYPE Envelope [<!ENTITY % p SYSTEM "{loopback.url("parameter")}"> %p;]>', "&leaked;"),
        "external-dtd-subset-loopback-url": (f'<!DOCTYPE Envelope SYSTEM "{loopback.url("dtd")}">', "&leaked;"),
        "public-id-loopback-url": (f'<!DOCTYPE Envelope PUBLIC "-//X//Y//EN" "{loopback.url("public")}">', "x"),
        "billion-laughs": (f"<!DOCTYPE Envelope [{laughs}]>", "&lol9;"),
        "quadratic-blow-up": (f'<!DOCTYPE Envelope [<!ENTITY a "{"x" * 40_000}">]>', "&a;" * 8_000),
    }


DTD_NAMES = ["internal-entity", "xxe-etc-hostname", "xxe-secret-file", "xxe-loopback-url",
             "parameter-entity-loopback-url", "external-dtd-subset-loopback-url", "public-id-loopback-url",
             "billion-laughs", "quadratic-blow-up"]


def with_dtd(body: bytes, dtd: str, marker: str, reference: str, encoding: str) -> bytes:
    text = body.decode("utf-8")
    text = text[text.index("?>") + 2:] if text.startswith("<?xml") else text
    assert marker in text
    text = text.replace(marker, reference, 1)
    return f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n{dtd}\n{text}'.encode(encoding)


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("dtd", DTD_NAMES)
def test_dtd_is_refused_and_nothing_leaks_or_is_fetched(
    targets, loopback, secret_file, soap, target, encoding, dtd
):
    declaration, reference = _dtds(loopback, secret_file)[dtd]
    marker = "@@here@@"
    body = with_dtd(targets[target][2](soap, marker), declaration, marker, reference, encoding)
    if encoding == "utf-16":
        assert b"DOCTYPE" not in body  # invisible to a scan of the raw bytes
    response = send(targets, target, body, soap)
    fault = assert_refused(targets, target, response, soap, CLIENT)
    if encoding == "utf-8":
        assert fault.reason == "DTDs are not allowed."  # refused before the parser runs
    else:  # refused after parsing, or by the parser when it could not fetch an external subset
        assert fault.reason in ("DTDs are not allowed.", "The request is not a well-formed SOAP message.")
    for leaked in (SECRET, "FETCHED", "lollol", "x" * 100):
        assert leaked.encode() not in response.body
    assert loopback.requests == [], "the parser fetched an external resource"


class _FifoWatch:
    """A named pipe that records whether anybody opened it for reading.

    A writer thread waits on it; if the parser opens the pipe, the writer hands it a harmless DTD
    and closes (so the parser is never left blocked). Otherwise :meth:`opened` unblocks the writer
    itself, marked as the cleanup.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._cleanup = False
        self._opened_by_other = False
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        if not self._cleanup:
            self._opened_by_other = True
            os.write(fd, b'<!ENTITY leaked "FROM-FIFO">')
        os.close(fd)

    def opened(self) -> bool:
        # A parser that opened the pipe read it to its end, after the writer's flag was set.
        self._thread.join(timeout=0.05)
        if self._thread.is_alive():
            self._cleanup = True
            reader = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self._thread.join(timeout=5)
            os.close(reader)
        return self._opened_by_other


LOCAL_DTDS = {
    "external-subset": '<!DOCTYPE Envelope SYSTEM "file://{path}">',
    "external-subset-public-id": '<!DOCTYPE Envelope PUBLIC "-//X//Y//EN" "file://{path}">',
    "external-subset-bare-path": '<!DOCTYPE Envelope SYSTEM "{path}">',
    "parameter-entity": '<!DOCTYPE Envelope [<!ENTITY % p SYSTEM "file://{path}"> %p;]>',
}


@TARGETS
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize("dtd", list(LOCAL_DTDS))
def test_local_file_named_by_a_dtd_is_never_opened(targets, tmp_path, target, encoding, dtd):
    """Refusing a DTD after parsing is too late: the parser must not have read the local file the
    DTD names (a FIFO or device there blocks the worker; any readable file is read). UTF-8 is caught
    by the byte scan before parsing; UTF-16 and UTF-32 hide the declaration from that scan."""
    watch = _FifoWatch(tmp_path / "dtd.fifo")
    marker = "@@here@@"
    body = with_dtd(targets[target][2]("1.1", marker), LOCAL_DTDS[dtd].format(path=watch.path), marker, "x",
                    encoding)
    response = send(targets, target, body, "1.1")
    opened = watch.opened()
    assert_refused(targets, target, response, "1.1", CLIENT)
    assert b"FROM-FIFO" not in response.body
    assert not opened, f"the parser opened {watch.path} named in a {encoding} DTD"


@TARGETS
def test_etc_hostname_never_appears_in_the_answer(targets, loopback, secret_file, target):
    declaration, reference = _dtds(loopback, secret_file)["xxe-etc-hostname"]
    body = with_dtd(targets[target][2]("1.1", "@@here@@"), declaration, "@@here@@", reference, "utf-8")
    response = send(targets, target, body, "1.1")
    assert_refused(targets, target, response, "1.1", CLIENT)
    assert HOSTNAME
    assert HOSTNAME.encode() not in response.body


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize("kind", ["xinclude", "schema-location"])
def test_references_that_need_no_dtd_are_never_fetched(targets, loopback, soap, target, kind):
    """XInclude and xsi:schemaLocation are plain markup: the request is processed normally, unfetched."""
    _, _, build, let_through = targets[target]
    body = build(soap)
    if kind == "xinclude":
        piece = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{loopback.url("xinclude")}"/>'
        body = body.replace(b"</s:Header>", piece.encode() + b"</s:Header>", 1)
    else:
        piece = (f' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                 f'xsi:schemaLocation="urn:x {loopback.url("schema")}"')
        body = body.replace(b"<s:Envelope ", b"<s:Envelope" + piece.encode() + b" ", 1)
    assert loopback.url("").encode() in body
    response = send(targets, target, body, soap)
    assert response.status_int == 200 and let_through(response)
    assert loopback.requests == []


# --------------------------------------------------------------------------- size and depth


class CountingInput(io.RawIOBase):
    """A wsgi.input that counts the bytes the application read from it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        self.read_bytes += len(chunk)
        return chunk

    def readable(self) -> bool:
        return True


@pytest.fixture(scope="module")
def fifty_megabytes() -> bytes:
    start = f'<s:Envelope xmlns:s="{ns.SOAP11}"><s:Body><x>'.encode()
    return start + b"A" * (50 * 1024 * 1024 - len(start))


def _raw_post(app, path: str, data: bytes, *, content_length: int | None):  # type: ignore[no-untyped-def]
    """POST ``data`` through a counting wsgi.input; (webob response, the stream)."""
    request = webtest.TestRequest.blank(path, method="POST", content_type="text/xml; charset=utf-8")
    stream = CountingInput(data)
    request.environ["wsgi.input"] = stream
    if content_length is None:
        request.environ.pop("CONTENT_LENGTH", None)
        request.environ["wsgi.input_terminated"] = True
    else:
        request.environ["CONTENT_LENGTH"] = str(content_length)
    return request.get_response(app), stream


def _apps(recorder, sts_keys, clock, sts_app):  # type: ignore[no-untyped-def]
    from wstrust_wsgi import RelyingPartyMiddleware

    service = RelyingPartyMiddleware(recorder, audience=SERVICE_URL, issuer=ISSUER, trusted_certs=[sts_keys.cert],
                                     clock=clock)
    return {"service": (service, PATH, _xml.DEFAULT_MAX_BYTES), "sts": (sts_app, STS_PATH, 256 * 1024)}


@TARGETS
def test_fifty_megabytes_are_refused_by_content_length_before_reading(
    recorder, sts_keys, clock, sts_app, fifty_megabytes, target
):
    app, path, _ = _apps(recorder, sts_keys, clock, sts_app)[target]
    response, stream = _raw_post(app, path, fifty_megabytes, content_length=len(fifty_megabytes))
    assert stream.read_bytes == 0, "the body was read although its Content-Length is over the limit"
    fault = refused(response, "1.1", CLIENT, recorder=recorder)
    assert fault.reason == "The request body is too large."


@TARGETS
def test_fifty_megabytes_without_content_length_are_read_only_up_to_the_limit(
    recorder, sts_keys, clock, sts_app, fifty_megabytes, target
):
    app, path, limit = _apps(recorder, sts_keys, clock, sts_app)[target]
    response, stream = _raw_post(app, path, fifty_megabytes, content_length=None)
    assert stream.read_bytes <= limit + 1
    fault = refused(response, "1.1", CLIENT, recorder=recorder)
    assert fault.reason == "The request body is too large."


@TARGETS
def test_fifty_megabytes_behind_a_small_content_length_are_read_only_that_far(
    recorder, sts_keys, clock, sts_app, fifty_megabytes, target
):
    app, path, _ = _apps(recorder, sts_keys, clock, sts_app)[target]
    response, stream = _raw_post(app, path, fifty_megabytes, content_length=4096)
    assert stream.read_bytes == 4096
    refused(response, "1.1", CLIENT, recorder=recorder)


@SOAP_VERSIONS
@TARGETS
def test_large_attribute_repeated_past_the_limit_is_refused(targets, soap, target):
    value = "x" * 65_536
    copies = 20 if target == "service" else 5
    filler = "".join(f'<f:Filler xmlns:f="urn:filler" a="{value}"/>' for _ in range(copies)).encode()
    body = targets[target][2](soap).replace(b"</s:Header>", filler + b"</s:Header>", 1)
    assert len(body) > (1024 * 1024 if target == "service" else 256 * 1024)
    fault = assert_refused(targets, target, send(targets, target, body, soap), soap, CLIENT)
    assert fault.reason == "The request body is too large."


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize("depth", [65, 10_000])
def test_deep_nesting_is_refused(targets, soap, target, depth):
    nested = ("<n>" * depth + "</n>" * depth).encode()
    body = targets[target][2](soap).replace(b"</s:Body>", nested + b"</s:Body>", 1)
    fault = assert_refused(targets, target, send(targets, target, body, soap), soap, CLIENT)
    assert fault.reason in ("The request is nested too deeply.", "The request is not a well-formed SOAP message.")


def _many_attributes(count: int) -> bytes:
    return b"<f:Wide xmlns:f=\"urn:wide\"" + b"".join(b' a%d="1"' % i for i in range(count)) + b"/>"


def _many_declarations(count: int) -> bytes:
    return b"<f:Wide" + b"".join(b' xmlns:f%d="urn:f%d"' % (i, i) for i in range(count)) + b" xmlns:f=\"urn:f\"/>"


#: shape -> (what to add, where, the fault reason; None: processed). The caps: 64 attributes and 64
#: namespace declarations on one element, 50,000 elements in a message. Controls go in a header block
#: of their own (ignored by both targets); refusals come from the parser, wherever the piece is.
ATTRIBUTES = "The request has too many attributes on one element."
DECLARATIONS = "The request has too many namespace declarations on one element."
SHAPES = {
    "20000-attributes-on-one-element": (_many_attributes(20_000), "body", ATTRIBUTES),
    "65-attributes-on-one-element": (_many_attributes(65), "header", ATTRIBUTES),
    "64-attributes-on-one-element": (_many_attributes(64), "header", None),
    "8000-declarations-on-one-element": (_many_declarations(8_000), "body", DECLARATIONS),
    "65-declarations-on-one-element": (_many_declarations(64), "header", DECLARATIONS),
    "64-declarations-on-one-element": (_many_declarations(63), "header", None),
    "50000-elements": (b"<e/>" * 50_000, "body", "The request has too many elements."),
}


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize("shape", list(SHAPES))
def test_shape_of_the_message_is_capped(targets, soap, target, shape):
    """Found by outside testing: an element with tens of thousands of attributes was admitted."""
    piece, where, reason = SHAPES[shape]
    body = targets[target][2](soap)
    body = body.replace(b"</s:Header>", piece + b"</s:Header>", 1) if where == "header" \
        else body.replace(b"</s:Body>", piece + b"</s:Body>", 1)
    response = send(targets, target, body, soap)
    if reason is None:
        assert response.status_int == 200 and targets[target][3](response), response.body[:300]
    else:
        assert assert_refused(targets, target, response, soap, CLIENT).reason == reason


# --------------------------------------------------------------------------- SOAP processing


def _extra_headers(count: int) -> bytes:
    return b"".join(f'<h:Extra xmlns:h="urn:example:h" n="{i}"/>'.encode() for i in range(count))


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize(("blocks", "outcome"), [(32, "processed"), (33, CLIENT), (1000, CLIENT)])
def test_header_block_count_is_capped(targets, soap, target, blocks, outcome):
    body = targets[target][2](soap)
    body = body.replace(b"</s:Header>", _extra_headers(blocks - 1) + b"</s:Header>", 1)
    assert body.count(b"<h:Extra ") == blocks - 1
    response = send(targets, target, body, soap)
    if outcome == "processed":
        assert response.status_int == 200 and targets[target][3](response)
    else:
        fault = assert_refused(targets, target, response, soap, outcome)
        assert fault.reason == "The SOAP header has too many blocks."


@TARGETS
@pytest.mark.parametrize("sent", ["1.1", "1.2"], ids=["soap1.1-envelope", "soap1.2-envelope"])
def test_envelope_in_the_other_soap_version_is_a_version_mismatch(targets, target, sent):
    """Answered in SOAP 1.1 with an Upgrade header whatever was announced (SOAP 1.2 part 1 appendix A)."""
    announced = "1.2" if sent == "1.1" else "1.1"
    body = targets[target][2](sent)
    response = send(targets, target, body, announced)
    assert_refused(targets, target, response, "1.1", "soap:VersionMismatch")
    assert_version_mismatch(response.status_int, response.headers["Content-Type"], response.body)


@SOAP_VERSIONS
@pytest.mark.parametrize(
    "role",
    [None, "", "next", "next-padded", "ultimate-receiver"],
    ids=["no-role", "empty-role", "next", "next-with-spaces", "ultimate-receiver"],
)
def test_two_security_headers_for_this_node_are_invalid_security(guarded, recorder, issue, soap, role):
    roles = {
        None: None,
        "": "",
        "next": {"1.1": "http://schemas.xmlsoap.org/soap/actor/next",
                 "1.2": "http://www.w3.org/2003/05/soap-envelope/role/next"}[soap],
        "next-padded": " http://www.w3.org/2003/05/soap-envelope/role/next " if soap == "1.2"
        else " http://schemas.xmlsoap.org/soap/actor/next ",
        "ultimate-receiver": "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver",
    }
    token = issue(saml.SAML2).signed
    body = envelope([token], soap=soap, headers=[security_block([token], soap, actor=roles[role])])
    refused(post(guarded, body, soap), soap, "wsse:InvalidSecurity", recorder=recorder)


@SOAP_VERSIONS
def test_two_security_headers_at_the_sts_are_invalid_security(targets, soap):
    body = targets["sts"][2](soap)
    body = body.replace(b"</s:Header>", security_block([], soap, must_understand="1") + b"</s:Header>", 1)
    assert body.count(b"Security ") >= 2
    assert_refused(targets, "sts", send(targets, "sts", body, soap), soap, "wsse:InvalidSecurity")


@SOAP_VERSIONS
def test_second_security_header_for_another_actor_is_left_alone(guarded, recorder, issue, soap):
    token = issue(saml.SAML2).signed
    evil = issue(saml.SAML2, subject="admin").signed
    body = envelope([token], soap=soap, headers=[security_block([evil], soap, actor=ANOTHER_NODE)])
    admitted(post(guarded, body, soap), recorder, "alice")


UNKNOWN = "{urn:example:ext}Unknown"


def _unknown_header(soap: str, must_understand: str | None, actor: str | None = None) -> bytes:
    header = etree.Element(UNKNOWN, nsmap={"x": "urn:example:ext", "s": ENV_NS[soap]})
    if must_understand is not None:
        header.set(qn(ENV_NS[soap], "mustUnderstand"), must_understand)
    if actor is not None:
        header.set(qn(ENV_NS[soap], ACTOR_ATTRIBUTE[soap]), actor)
    header.text = "x"
    return etree.tostring(header)


def _with_header(body: bytes, header: bytes) -> bytes:
    return body.replace(b"</s:Header>", header + b"</s:Header>", 1)


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize("flag", ["1", "true", " 1 "], ids=["one", "true", "one-padded"])
def test_unknown_mandatory_header_is_a_must_understand_fault(targets, soap, target, flag):
    body = _with_header(targets[target][2](soap), _unknown_header(soap, flag))
    assert_refused(targets, target, send(targets, target, body, soap), soap, "soap:MustUnderstand")


@SOAP_VERSIONS
@TARGETS
@pytest.mark.parametrize(("flag", "actor"), [("0", None), ("false", None), (None, None), ("1", ANOTHER_NODE)],
                         ids=["zero", "false", "absent", "for-another-actor"])
def test_unknown_optional_header_is_ignored(targets, soap, target, flag, actor):
    body = _with_header(targets[target][2](soap), _unknown_header(soap, flag, actor))
    response = send(targets, target, body, soap)
    assert response.status_int == 200 and targets[target][3](response)


@SOAP_VERSIONS
def test_understood_headers_option_lets_the_app_take_a_mandatory_header(sts_keys, clock, issue, soap):
    recorder = RecordingApp()
    app = guard(recorder, sts_keys.cert, clock, understood_headers=[UNKNOWN])
    body = _with_header(envelope([issue(saml.SAML2).signed], soap=soap), _unknown_header(soap, "1"))
    admitted(post(app, body, soap), recorder, "alice")
    other = _unknown_header(soap, "1").replace(b"Unknown", b"Another")
    refused(post(app, _with_header(envelope([issue(saml.SAML2).signed], soap=soap), other), soap), soap,
            "soap:MustUnderstand", recorder=RecordingApp())


@SOAP_VERSIONS
def test_must_understand_is_checked_before_the_token(guarded, recorder, soap):
    """No Security header at all, and a mandatory unknown header: MustUnderstand comes first
    (SOAP 1.2 part 1 section 2.6: mandatory headers are checked before any processing)."""
    body = _with_header(envelope([], soap=soap, security_headers=0, headers=[b"<h:X xmlns:h='urn:h'/>"]),
                        _unknown_header(soap, "1"))
    refused(post(guarded, body, soap), soap, "soap:MustUnderstand", recorder=recorder)
