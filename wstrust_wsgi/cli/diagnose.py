"""``wstrust-wsgi diagnose``: why would the relying party refuse (or admit) this token?

The input is a token as a person finds it: a bare assertion (SAML 2.0 or 1.1,
plain or encrypted), an RSTR from the STS, or a whole captured SOAP request to
the service; from a file or standard input. The relying party's settings come
from options (``--audience``, ``--issuer``, ``--trusted-cert``, ...) or from
the application itself (``--app module:callable``: the
:class:`~wstrust_wsgi.RelyingPartyMiddleware` found inside it).

The verdict is the middleware's own: a token or RSTR is put in a SOAP request
as a client would send it, and :meth:`RelyingPartyMiddleware.explain` runs
the full verification path on it with a trace (:mod:`wstrust_wsgi._checks`),
so every check printed is the check the service makes, in its order, and no
check exists twice. What is printed beside it (:mod:`.report`) is the token
read without verification, for a person to compare.

Exit status: 0 the token would be admitted, 1 refused, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from .. import _xml, ns, soap, xmlenc
from .._checks import CHECKS, Step, Trace
from .._time import parse_datetime, utcnow
from ..client import parse_response, service_request
from ..errors import BadValue, DecryptionFailed, MalformedMessage, SecurityWarning, TransportError, WsTrustError
from ..keys import SigningKey
from ..middleware import RelyingPartyMiddleware
from ..saml import version_of
from .report import Report, render_json, render_text

#: The payload of the request diagnose builds around a bare token or an RSTR's token.
_PAYLOAD = b'<Diagnose xmlns="urn:wstrust-wsgi:diagnose"/>'
_ENCRYPTED = {_xml.qname(ns.SAML2, "EncryptedAssertion"), _xml.qname(ns.XENC, "EncryptedData")}
_SOAP_TYPES = {ns.SOAP11: soap.SOAP11.content_type(), ns.SOAP12: soap.SOAP12.content_type()}
#: Attributes through which WSGI wrappers commonly hold the app they wrap.
_WRAPPED = ("app", "application", "wsgi_app", "_app", "wrapped", "__wrapped__", "func", "next_app")
_MAX_WALK = 200
_DECRYPTION = [c.name for c in CHECKS].index("decryption")


@dataclass
class Input:
    """The request to verify, what it was given as, and its token (plain) for the summary."""

    kind: str
    body: bytes
    content_type: str
    token: etree._Element | None
    encrypted: bool = False
    notes: list[str] = field(default_factory=list)
    #: Diagnose's own decryption step (``--decryption-key``): the middleware decrypts and verifies an
    #: encrypted token as one step with one fault, so diagnose decrypts first to show every check after it.
    decryption: Trace = field(default_factory=Trace)


def add_diagnose_command(commands: Any) -> None:
    """Register ``diagnose`` on the top-level subparsers."""
    parser = commands.add_parser(
        "diagnose", help="explain why the relying party would refuse (or admit) a token",
        description="Explain, check by check, why RelyingPartyMiddleware would refuse or admit a token. Exit "
                    "status: 0 admitted, 1 refused, 2 bad input.")
    parser.add_argument("file", nargs="?", default="-", metavar="FILE",
                        help="an assertion, an RSTR or a captured SOAP request (default: standard input)")
    parser.add_argument("--audience", action="append", default=[], metavar="URL",
                        help="this service's address as configured (repeatable)")
    parser.add_argument("--issuer", action="append", default=[], metavar="NAME", help="a trusted issuer (repeatable)")
    parser.add_argument("--trusted-cert", action="append", default=[], metavar="PEM",
                        help="a trusted signing certificate file (repeatable, e.g. during key rollover)")
    parser.add_argument("--decryption-key", action="append", default=[], metavar="KEY[,CERT]",
                        help="the private key (and its certificate, in the same PEM file or after a comma) "
                             "for encrypted tokens (repeatable)")
    parser.add_argument("--clock-skew", type=float, default=None, metavar="SECONDS",
                        help="tolerance on the validity times (default 300)")
    parser.add_argument("--allow-sha1", action="store_true", help="accept rsa-sha1 / sha1 signatures")
    parser.add_argument("--at", default=None, metavar="TIME",
                        help="check as of this time (xs:dateTime, e.g. 2014-01-27T08:30:00Z; default now)")
    parser.add_argument("--client-address", default=None, metavar="IP",
                        help="the address the client calls from, for a service with check_address")
    parser.add_argument("--app", default=None, metavar="MODULE:CALLABLE",
                        help="read the settings from the RelyingPartyMiddleware inside this WSGI app")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Diagnose and print; the exit status says admitted (0) or refused (1). Bad input raises BadValue (2)."""
    at = _time(args.at)
    middleware = _middleware(args)
    decrypter = _decrypter(args.decryption_key)
    try:
        given = _read_input(_read(args.file), decrypter)
    except MalformedMessage as exc:
        raise BadValue(f"the input holds no token diagnose can read: {exc.detail}") from None
    if given.decryption.fault is not None:  # refused: nothing is left to check
        trace, verified = given.decryption, None
        trace.steps[:0] = [_skip(c.name, "not checked: the token did not decrypt") for c in CHECKS[:_DECRYPTION]]
    else:
        trace, verified = middleware.explain(given.body, given.content_type, now=at,
                                               client_address=args.client_address)
        if given.decryption.steps:
            trace.steps[:0] = given.decryption.steps
        elif any(step.check == "one-token" and step.verdict == "pass" for step in trace.steps):
            trace.steps.append(_skip("decryption", "the token is not encrypted"))
        if verified is not None:
            recorded = {step.check for step in trace.steps}
            trace.steps += [_skip(name, "not configured") for name in ("client-address", "replay")
                            if name not in recorded]
    report = Report(given.kind, at, middleware.policy, given.token, given.encrypted, trace, verified, given.notes)
    if getattr(args, "json", False):
        print(render_json(report, now=utcnow()))
    else:
        print(render_text(report, now=utcnow()))
    return 0 if verified is not None else 1


def _skip(check: str, why: str) -> Step:
    return Step(check, "skipped", detail=why)


# ------------------------------------------------------------------ settings


def _time(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    try:
        return parse_datetime(text)
    except ValueError as exc:
        raise BadValue(f"--at: {exc}") from None


def _middleware(args: argparse.Namespace) -> RelyingPartyMiddleware:
    """The middleware whose checks run: the app's (``--app``) or one built from the options."""
    if args.app is not None:
        if args.audience or args.issuer or args.trusted_cert or args.clock_skew is not None or args.allow_sha1:
            raise BadValue("--app reads the settings from the app: give either --app or --audience, --issuer, "
                           "--trusted-cert, --clock-skew and --allow-sha1")
        return find_middleware(load_app(args.app), args.app)
    missing = [name for name, value in (("--audience", args.audience), ("--issuer", args.issuer),
                                        ("--trusted-cert", args.trusted_cert)) if not value]
    if missing:
        raise BadValue(f"give {', '.join(missing)} (the relying party's settings), or --app MODULE:CALLABLE")
    with warnings.catch_warnings():  # --allow-sha1 is the person's explicit choice here
        warnings.simplefilter("ignore", SecurityWarning)
        return RelyingPartyMiddleware(
            _no_app, audience=args.audience, issuer=args.issuer, trusted_certs=args.trusted_cert,
            clock_skew=300.0 if args.clock_skew is None else args.clock_skew, allow_sha1=args.allow_sha1,
            check_address=args.client_address is not None)


def _no_app(environ: Any, start_response: Any) -> list[bytes]:  # never called: diagnose only verifies
    raise AssertionError("diagnose never calls the app")


def load_app(spec: str) -> object:
    """``module:attribute`` (``module:factory()`` calls it), imported from the current folder too."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise BadValue(f"--app: {spec!r} is not MODULE:CALLABLE")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadValue(f"--app: cannot import {module_name!r}: {exc}") from None
    call = attribute.endswith("()")
    target: object = module
    for part in attribute.removesuffix("()").split("."):
        if not hasattr(target, part):
            raise BadValue(f"--app: {module_name!r} has no {attribute.removesuffix('()')!r}")
        target = getattr(target, part)
    return target() if call and callable(target) else target


def find_middleware(app: object, spec: str = "the app") -> RelyingPartyMiddleware:
    """The first RelyingPartyMiddleware reached from ``app`` through the wrappers around it.

    Breadth first through the attributes wrappers keep their app in (``app``,
    ``wsgi_app``, ``__wrapped__``, ...), ``functools.partial`` arguments,
    closure cells of function middleware, and the values of mappings and
    lists (URL maps); nothing is called.
    """
    seen: set[int] = set()
    queue: list[object] = [app]
    while queue and len(seen) < _MAX_WALK:
        current = queue.pop(0)
        if id(current) in seen or current is None or isinstance(current, (str, bytes, int, float, bool)):
            continue
        seen.add(id(current))
        if isinstance(current, RelyingPartyMiddleware):
            return current
        queue.extend(_inside(current))
    raise BadValue(f"--app: no RelyingPartyMiddleware found inside {spec}")


def _inside(obj: object) -> Iterator[object]:
    if isinstance(obj, dict):
        yield from obj.values()
        return
    if isinstance(obj, (list, tuple)):
        yield from obj
        return
    for name in _WRAPPED:
        try:
            value = getattr(obj, name, None)
        except Exception:  # noqa: BLE001 - a property that fails is no wrapper
            continue
        if value is not None:
            yield value
    for name in ("args", "keywords"):  # functools.partial
        value = getattr(obj, name, None) if type(obj).__name__ == "partial" else None
        if value:
            yield value
    for cell in getattr(obj, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
    if not callable(obj) or isinstance(obj, type):
        return
    call = getattr(type(obj), "__call__", None)
    for cell in getattr(call, "__closure__", None) or ():
        yield cell.cell_contents


def _decrypter(specs: list[str]) -> xmlenc.Decrypter | None:
    if not specs:
        return None
    pairs = []
    for spec in specs:
        key_path, _, cert_path = spec.partition(",")
        key_pem = _read(key_path)
        cert_pem = _read(cert_path) if cert_path else key_pem
        pairs.append(SigningKey.from_pem(key_pem, cert_pem, key_name=f"--decryption-key {key_path}",
                                         cert_name=f"--decryption-key {cert_path or key_path}"))
    return xmlenc.Decrypter(pairs)


# ------------------------------------------------------------------ input


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as stream:
        return stream.read()


def _read_input(data: bytes, decrypter: xmlenc.Decrypter | None) -> Input:
    """What ``data`` is, and the request that carries it (a bare token or an RSTR's token put in one)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        root = _xml.parse(data)
    except MalformedMessage as exc:
        raise BadValue(f"the input is not XML the service would parse: {exc.detail}") from None
    if root.tag in _ENCRYPTED or version_of(root) is not None:
        return _wrapped("assertion", _bare(data), root, decrypter)
    local = etree.QName(root).localname
    if local in ("RequestSecurityTokenResponse", "RequestSecurityTokenResponseCollection"):
        data = b'<s:Envelope xmlns:s="' + ns.SOAP11.encode() + b'"><s:Body>' + _bare(data) + b"</s:Body></s:Envelope>"
        root = _xml.parse(data)
    if etree.QName(root).namespace not in _SOAP_TYPES or local not in ("Envelope", "RequestSecurityTokenResponse",
                                                                          "RequestSecurityTokenResponseCollection"):
        raise BadValue(f"the input's root element is {root.tag}: not an assertion, an RSTR or a SOAP request")
    if any(_xml.namespace(el) in (ns.WST13, ns.WST2005) and etree.QName(el).localname == "RequestedSecurityToken"
           for el in root.iter() if isinstance(el.tag, str)):
        try:
            issued = parse_response(data)
        except (TransportError, WsTrustError) as exc:
            raise BadValue(f"the RSTR holds no token diagnose can read: {exc}") from None
        try:
            return _wrapped("rstr", issued.assertion, _xml.parse(issued.assertion), decrypter)
        except MalformedMessage:  # its bytes use a prefix declared outside them: take it with the prefixes in scope
            token = next(el for el in root.iter() if etree.QName(el).localname == "RequestedSecurityToken")
            element = next(child for child in token if isinstance(child.tag, str))
            given = _wrapped("rstr", etree.tostring(element), element, decrypter)
            given.notes.append("the token's bytes use namespace prefixes declared outside it; diagnose took it with "
                               "the declarations in scope (a service receiving it alone could not parse it)")
            return given
    return _request(data, root, decrypter)


def _bare(data: bytes) -> bytes:
    """The document without its XML declaration, to be put inside another."""
    if data.startswith(b"<?xml"):
        data = data[data.index(b"?>") + 2:]
    return data.strip()


def _wrapped(kind: str, token: bytes, element: etree._Element, decrypter: xmlenc.Decrypter | None) -> Input:
    """A SOAP 1.1 request carrying ``token`` as a client sends it (bytes spliced in unchanged)."""
    given = Input(kind, b"", "", element, notes=["diagnose put the token in a SOAP 1.1 request, as a client sends it: "
                                                 "the envelope checks are about that request"])
    if element.tag in _ENCRYPTED:
        token, given.token = _decrypt(given, element, decrypter)
        if given.token is None:
            return given
    given.body, headers = service_request(token, _PAYLOAD)
    given.content_type = headers["Content-Type"]
    return given


def _request(data: bytes, root: etree._Element, decrypter: xmlenc.Decrypter | None) -> Input:
    """A captured request: verified as it is (an encrypted token is decrypted in place first)."""
    content_type = _SOAP_TYPES[etree.QName(root).namespace]
    given = Input("request", data, content_type, None)
    security = root.find(f"{{{etree.QName(root).namespace}}}Header/{{{ns.WSSE}}}Security")
    tokens = [el for el in security if isinstance(el.tag, str)
              and (el.tag in _ENCRYPTED or version_of(el) is not None)] if security is not None else []
    if tokens and tokens[0].tag in _ENCRYPTED:
        plain, given.token = _decrypt(given, tokens[0], decrypter)
        if given.token is None:
            return given
        tokens[0].getparent().replace(tokens[0], _xml.parse(plain))
        given.body = etree.tostring(root)
        given.notes.append("the request was serialized again with the decrypted token in place of the encrypted one")
    elif tokens:
        given.token = tokens[0]
    return given


def _decrypt(given: Input, element: etree._Element, decrypter: xmlenc.Decrypter | None
             ) -> tuple[bytes, etree._Element | None]:
    """The decrypted token's bytes and element (None: refused, recorded as the decryption check's failure).

    The decryption is :class:`~wstrust_wsgi.xmlenc.Decrypter`'s, with the
    keys given; a failure is the one ``DecryptionFailed`` the middleware answers.
    """
    given.encrypted = True
    if decrypter is None:
        raise BadValue("the token is encrypted: give --decryption-key KEY[,CERT] (the key of the certificate "
                       "the STS encrypts for)")
    try:
        decrypted = decrypter.decrypt(xmlenc.encrypted_data_of(element), scope=element)
    except DecryptionFailed as fault:
        fault.expected = "a token encrypted for a --decryption-key certificate, with an allowed algorithm"
        fault.actual = fault.detail
        given.decryption.failed(fault)
        return b"", None
    given.decryption.passed("decryption", "decrypts with a configured key",
                            f"{decrypted.algorithm} with {decrypted.key_transport}, key of "
                            f"{decrypted.certificate.subject.rfc4514_string()}")
    return decrypted.plaintext, decrypted.element


__all__ = ["add_diagnose_command", "find_middleware", "load_app", "run"]
