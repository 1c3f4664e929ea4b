"""The performance targets of wstrust-wsgi, measured against their floors and peers in one run.

::

    .venv/bin/python bench/bench.py                 # everything, about two minutes
    .venv/bin/python bench/bench.py --quick         # fewer rounds, a smoke run
    .venv/bin/python bench/bench.py --skip-http     # in-process targets only
    .venv/bin/python bench/bench.py --only 3e       # one target (1, 2, 3, 3e, 3h, 4, 5)

Targets (each printed with its ratio and MET / NOT MET):

1. token minting (build the assertion, sign, build the RSTR, serialize) >= 0.8 x
   raw RSA-2048 PKCS#1 v1.5 SHA-256 signing with cryptography (the floor);
2. an STS request end to end in-process (parse the RST, authenticate,
   authorize, mint), with the password check's own cost reported apart; the
   STS uses :class:`~wstrust_wsgi.stores.cache.CachedUserStore`;
3. middleware validation of a first-seen token (parse the envelope, verify,
   check) >= the fastest peer (python3-saml ``validate_sign``, python-xmlsec
   ``SignatureContext.verify``) on the same token in the same process; also
   shown against raw RSA-2048 verification (the floor);
   3e. the same for an encrypted token (EncryptedAssertion, AES-256-GCM, RSA-OAEP), beside the
   plain one, against its floor: RSA-2048 OAEP decryption plus AES-256-GCM decryption of the
   token's size (reported, no target: the signature check comes on top of the floor);
   3h. a symmetric holder-of-key request beside the bearer one, first-seen and reused
   (``bench/holder_of_key.py``; reported, no target);
4. middleware validation of a token already seen >= 20,000 requests/s per core;
5. over real HTTP (gunicorn on loopback, ``wrk`` in another process): STS
   issuance throughput, and the protected echo service >= 0.8 x the same echo
   without the middleware, with token reuse.

In-process contenders run in interleaved rounds (each round runs every
contender once, for the same time slice, in turn), so that drift (frequency
scaling, a noisy neighbour) hits all of them alike; the figure is the median
over rounds. The process is pinned to one core (``os.sched_setaffinity``).
The peers are optional: ``.venv/bin/pip install python3-saml xmlsec``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # the reference builders, signers and verifiers are test oracles

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from lxml import etree  # noqa: E402
from webob import Request  # noqa: E402

from wstrust_wsgi import (  # noqa: E402
    MemoryUserStore, RelyingParty, RelyingPartyMiddleware, SigningKey, StsClient, TokenService, User,
    WSGITransport, _xml, saml, soap, wstrust,
)
from wstrust_wsgi.saml import verify as saml_verify  # noqa: E402
from wstrust_wsgi.stores.cache import CachedUserStore  # noqa: E402
from wstrust_wsgi.xmldsig import Verified  # noqa: E402
from _support.envelope_oracles import response_envelope_from_tree  # noqa: E402
from _support.signing_oracles import sign_with_signxml, verify_with_signxml  # noqa: E402
from wstrust_wsgi.stores.memory import hash_password  # noqa: E402

CERTS = ROOT / "certs"
ISSUER = "http://127.0.0.1:8080/services/sts"
SERVICE_URL = "http://127.0.0.1:8081/services/echo"
STS_PATH, SERVICE_PATH = "/services/sts", "/services/echo"
USERS = [User("admin", "admin", roles=["admin"]), User("alice", "alice", roles=["everyone"])]


# ----------------------------------------------------------------------------- the apps (also served by gunicorn)

def ok_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The smallest WSGI app: what the middleware costs on top of nothing."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def make_sts(*, cached: bool = True) -> TokenService:
    store = MemoryUserStore(USERS)
    return TokenService(
        issuer=ISSUER, signing_key=SigningKey.from_files(CERTS / "sts.key", CERTS / "sts.crt"),
        users=CachedUserStore(store) if cached else store,
        relying_parties=[RelyingParty(SERVICE_URL)],
    )


def make_protected(app: Any = None, **options: Any) -> RelyingPartyMiddleware:
    from demo_service.app import echo
    return RelyingPartyMiddleware(app or echo, audience=SERVICE_URL, issuer=ISSUER,
                                  trusted_certs=[CERTS / "sts.crt"], **options)


def gunicorn_app(kind: str) -> Any:
    """``gunicorn 'bench:gunicorn_app("sts")'`` (run from bench/): sts, protected or plain."""
    from demo_service.app import echo
    from wstrust_wsgi._wsgi import mount
    logging.getLogger("wstrust_wsgi").setLevel(logging.WARNING)
    if kind == "sts":
        return mount(STS_PATH, make_sts())
    if kind == "protected":
        return mount(SERVICE_PATH, make_protected())
    return mount(SERVICE_PATH, echo)


# ----------------------------------------------------------------------------- measuring

def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (batches sized from a first call)."""
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-7)
    batch = max(1, int(0.02 / one))
    count, start = 0, time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        count += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """Median rate of each contender over ``rounds`` rounds, each running every contender in turn."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in contenders.items():
            results[name].append(rate(fn, seconds))
    return {name: statistics.median(values) for name, values in results.items()}


def show(title: str, rates: dict[str, float]) -> None:
    print(f"\n{title}")
    for name, value in rates.items():
        print(f"  {name:58s} {value:12,.0f} /s  {1e6 / value:10.1f} us")


def verdict(label: str, ratio: float, target: float, what: str) -> str:
    line = f"  TARGET {label}: {ratio:.2f} x {what} (target >= {target}) -> {'MET' if ratio >= target else 'NOT MET'}"
    print(line)
    return line


def environ_for(body: bytes, headers: dict[str, str], path: str) -> Callable[[], dict[str, Any]]:
    base = Request.blank(path, method="POST", headers=headers).environ
    base["CONTENT_LENGTH"] = str(len(body))

    def make() -> dict[str, Any]:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        return environ
    return make


def call(app: Any, make_environ: Callable[[], dict[str, Any]], expect: str = "200") -> Callable[[], bytes]:
    def run() -> bytes:
        status: list[str] = []
        out = b"".join(app(make_environ(), lambda s, h, e=None: status.append(s)))
        if not status[0].startswith(expect):
            raise AssertionError(f"{status[0]}: {out[:300]!r}")
        return out
    return run


class Capture:
    """A transport that records what a client sends, then delivers it in-process."""

    def __init__(self, app: Any) -> None:
        self.inner = WSGITransport(app)
        self.sent: list[tuple[bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        self.sent.append((body, dict(headers)))
        return self.inner(url, body, headers)


# ----------------------------------------------------------------------------- the targets

def machine() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for dist in ("cryptography", "lxml", "signxml", "WebOb", "gunicorn", "python3-saml", "xmlsec"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return [f"CPU: {model} ({os.cpu_count()} logical CPUs)", f"Python {platform.python_version()} ({platform.platform()})",
            "libxml2 %d.%d.%d" % etree.LIBXML_VERSION, ", ".join(versions)]


def setup() -> dict[str, Any]:
    """A token for the echo service, the RST and service request bodies, and the apps."""
    sts = make_sts()
    capture = Capture(sts)
    client = StsClient(ISSUER, username="admin", password="admin", soap_version="1.1", transport=capture)
    token = client.request_token(SERVICE_URL)
    rst_body, rst_headers = capture.sent[-1]
    protected_ok = make_protected(ok_app)
    service_capture = Capture(protected_ok)
    from wstrust_wsgi.client import call_service
    payload = b'<echo:Echo xmlns:echo="urn:wstrust-wsgi:demo:echo"><echo:Message>hello</echo:Message></echo:Echo>'
    try:
        call_service(SERVICE_URL, token, payload, transport=service_capture)
    except Exception:
        pass  # ok_app answers no SOAP; the request is what we wanted
    service_body, service_headers = service_capture.sent[-1]
    return {"sts": sts, "token": token.assertion, "rst": (rst_body, rst_headers),
            "service": (service_body, service_headers), "payload": payload}


def target1(ctx: dict[str, Any], rounds: int, seconds: float) -> list[str]:
    key = SigningKey.from_files(CERTS / "sts.key", CERTS / "sts.crt")
    signer = saml.AssertionSigner(key)
    rst_body, rst_headers = ctx["rst"]
    envelope = soap.parse_envelope(rst_body, content_type=rst_headers["Content-Type"])
    request = wstrust.parse_request(envelope.body_child())
    relates_to = soap.RelatesTo.of(envelope)  # None for StsClient's requests (no wsa:MessageID)
    signed_info = b"x" * 700  # a SignedInfo is ~700 bytes; the RSA operation barely depends on it

    def mint(sign: Callable[..., bytes],
             respond: Callable[..., bytes] = wstrust.response_envelope) -> Callable[[], bytes]:
        def run() -> bytes:  # TokenService._issue after authorization, with the same calls
            now = datetime.now(timezone.utc)
            content = saml.AssertionContent(
                issuer=ISSUER, subject="admin", audience=SERVICE_URL, issue_instant=now, not_before=now,
                not_on_or_after=now + timedelta(minutes=5), attributes={"http://schemas.microsoft.com/ws/2008/06/identity/claims/role": ("admin",)},
            )
            assertion = sign(saml.SAML2, content)
            return respond(envelope.version, request, assertion,
                           token_type=request.token_type or saml.SAML2.token_type, version=saml.SAML2,
                           assertion_id=content.assertion_id, created=now, expires=content.not_on_or_after,
                           relates_to=relates_to)
        return run

    rates = interleaved({
        "floor: RSA-2048 PKCS#1 v1.5 SHA-256 sign (cryptography)":
            lambda: key.private_key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256()),
        "mint: build + sign (our path) + RSTR + serialize": mint(signer.sign),
        "mint, RSTR built as a tree (reference)": mint(signer.sign, response_envelope_from_tree),
        "mint with signxml (reference)": mint(lambda version, what: sign_with_signxml(key, version, what)),
    }, rounds, seconds)
    show("1. Token minting", rates)
    floor = rates["floor: RSA-2048 PKCS#1 v1.5 SHA-256 sign (cryptography)"]
    print(f"  RSTR as a tree: {rates['mint, RSTR built as a tree (reference)'] / floor:.2f} x floor; "
          f"signxml pipeline: {rates['mint with signxml (reference)'] / floor:.2f} x floor")
    return [verdict("1 (minting)", rates["mint: build + sign (our path) + RSTR + serialize"] / floor, 0.8, "floor")]


def target2(ctx: dict[str, Any], rounds: int, seconds: float) -> list[str]:
    body, headers = ctx["rst"]
    cached = call(ctx["sts"], environ_for(body, headers, STS_PATH))
    uncached = call(make_sts(cached=False), environ_for(body, headers, STS_PATH))
    salt = os.urandom(16)
    key = SigningKey.from_files(CERTS / "sts.key", CERTS / "sts.crt")
    rates = interleaved({
        "floor: RSA-2048 sign": lambda: key.private_key.sign(b"x" * 700, padding.PKCS1v15(), hashes.SHA256()),
        "STS request in-process, password check cached": cached,
    }, rounds, seconds)
    slow = interleaved({
        "scrypt password check alone (n=2^14, r=8)": lambda: hash_password("admin", salt),
        "STS request in-process, password check uncached": uncached,
    }, max(3, rounds // 2), max(0.3, seconds))
    rates.update(slow)
    show("2. STS request end to end (parse RST, authenticate, authorize, mint)", rates)
    scrypt_ms = 1e3 / slow["scrypt password check alone (n=2^14, r=8)"]
    uncached_ms = 1e3 / slow["STS request in-process, password check uncached"]
    cached_ms = 1e3 / rates["STS request in-process, password check cached"]
    print(f"  password check: {scrypt_ms:.1f} ms of the uncached request's {uncached_ms:.1f} ms; "
          f"with the cache the request takes {cached_ms:.2f} ms ({uncached_ms / cached_ms:.0f} x faster)")
    ratio = rates["STS request in-process, password check cached"] / rates["floor: RSA-2048 sign"]
    line = f"  STS request (cached password check): {ratio:.2f} x floor (RSA sign) [no numeric target; the STS minus its KDF]"
    print(line)
    return [line]


def target3(ctx: dict[str, Any], rounds: int, seconds: float) -> list[str]:
    token = ctx["token"]
    body, headers = ctx["service"]
    cert = (CERTS / "sts.crt").read_bytes()
    first_seen = call(make_protected(ok_app, verified_cache_size=0), environ_for(body, headers, SERVICE_PATH))
    signxml_mw = make_protected(ok_app, verified_cache_size=0)
    reference = call(signxml_mw, environ_for(body, headers, SERVICE_PATH))
    from cryptography import x509
    public = x509.load_pem_x509_certificate(cert).public_key()
    sig_el = etree.fromstring(token).find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    import base64
    raw_sig = base64.b64decode(sig_el.text)
    si = etree.fromstring(token).find(".//{http://www.w3.org/2000/09/xmldsig#}SignedInfo")
    si_c14n = etree.tostring(si, method="c14n", exclusive=True)
    contenders: dict[str, Callable[[], object]] = {
        "floor: RSA-2048 PKCS#1 v1.5 SHA-256 verify (cryptography)":
            lambda: public.verify(raw_sig, si_c14n, padding.PKCS1v15(), hashes.SHA256()),
        "middleware, first-seen token (our verifier)": first_seen,
    }
    missing = []
    try:
        from onelogin.saml2.utils import OneLogin_Saml2_Utils
        pem = cert.decode()
        assert OneLogin_Saml2_Utils.validate_sign(token, cert=pem, xpath="/saml:Assertion/ds:Signature") is True
        contenders["peer: python3-saml validate_sign (bare assertion)"] = \
            lambda: OneLogin_Saml2_Utils.validate_sign(token, cert=pem, xpath="/saml:Assertion/ds:Signature")
    except ImportError as exc:
        missing.append(f"python3-saml not installed ({exc})")
    try:
        import xmlsec
        xkey = xmlsec.Key.from_memory(cert, xmlsec.constants.KeyDataFormatCertPem)

        def xmlsec_verify() -> None:
            root = etree.fromstring(token)
            xmlsec.tree.add_ids(root, ["ID"])
            node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
            ctx_ = xmlsec.SignatureContext()
            ctx_.key = xkey
            ctx_.verify(node)
        xmlsec_verify()
        contenders["peer: python-xmlsec SignatureContext.verify (parse + verify)"] = xmlsec_verify
    except ImportError as exc:
        missing.append(f"xmlsec not installed ({exc})")
    original = saml_verify._verify_signature_and_cert

    def by_signxml(root: Any, version: Any, policy: Any, now: Any, parts: Any = None) -> Any:
        cert = policy.trusted_certs[0]
        signed = verify_with_signxml(root, version, policy, now)
        return signed, Verified((signed,), cert.public_key(), cert, "")

    def with_signxml() -> object:
        saml_verify._verify_signature_and_cert = by_signxml  # type: ignore[assignment]
        try:
            return reference()
        finally:
            saml_verify._verify_signature_and_cert = original  # type: ignore[assignment]
    contenders["middleware, first-seen token, signxml verifier (reference)"] = with_signxml
    rates = interleaved(contenders, rounds, seconds)
    show("3. Middleware validation of a first-seen token", rates)
    for line in missing:
        print("  " + line)
    ours = rates["middleware, first-seen token (our verifier)"]
    floor = rates["floor: RSA-2048 PKCS#1 v1.5 SHA-256 verify (cryptography)"]
    print(f"  ours: {ours / floor:.2f} x floor; signxml reference: "
          f"{rates['middleware, first-seen token, signxml verifier (reference)'] / floor:.2f} x floor")
    peers = {k: v for k, v in rates.items() if k.startswith("peer:")}
    if not peers:
        line = "  TARGET 3: no peer installed; not evaluated"
        print(line)
        return [line]
    best = max(peers, key=lambda k: peers[k])
    return [verdict("3 (first-seen token)", ours / peers[best], 1.0, f"fastest peer ({best[6:]})")]


def target3e(ctx: dict[str, Any], rounds: int, seconds: float) -> list[str]:
    """A first-seen encrypted token, beside the plain one, against RSA-OAEP + AES-GCM decryption (the floor)."""
    import os as _os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from wstrust_wsgi.xmlenc import encrypt
    token = ctx["token"]
    body, headers = ctx["service"]
    service_key = SigningKey.from_files(CERTS / "service.key", CERTS / "service.crt")
    holder = etree.Element(f"{{{saml.SAML2.namespace}}}EncryptedAssertion", nsmap={"saml2": saml.SAML2.namespace})
    holder.append(encrypt(token, service_key.certificate))
    encrypted = etree.tostring(holder)
    encrypted_body = body.replace(token, encrypted)
    assert encrypted_body != body
    keys = [(CERTS / "service.key", CERTS / "service.crt")]
    first_plain = call(make_protected(ok_app, verified_cache_size=0), environ_for(body, headers, SERVICE_PATH))
    first_encrypted = call(make_protected(ok_app, verified_cache_size=0, decryption_keys=keys),
                           environ_for(encrypted_body, headers, SERVICE_PATH))
    reused = make_protected(ok_app, decryption_keys=keys)
    call(reused, environ_for(encrypted_body, headers, SERVICE_PATH))()
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    content_key, iv = _os.urandom(32), _os.urandom(12)
    wrapped = service_key.certificate.public_key().encrypt(content_key, oaep)  # type: ignore[union-attr]
    sealed = AESGCM(content_key).encrypt(iv, token, None)

    def floor() -> bytes:
        key = service_key.private_key.decrypt(wrapped, oaep)
        return AESGCM(key).decrypt(iv, sealed, None)
    rates = interleaved({
        f"floor: RSA-2048 OAEP decrypt + AES-256-GCM of {len(token)} bytes": floor,
        "middleware, first-seen plain token": first_plain,
        "middleware, first-seen encrypted token": first_encrypted,
        "middleware, encrypted token seen before (cache hit)": call(reused, environ_for(encrypted_body, headers,
                                                                                           SERVICE_PATH)),
    }, rounds, seconds)
    show("3e. Middleware validation of a first-seen encrypted token", rates)
    floor_rate = next(v for k, v in rates.items() if k.startswith("floor"))
    enc, plain = rates["middleware, first-seen encrypted token"], rates["middleware, first-seen plain token"]
    extra = 1e6 / enc - 1e6 / plain
    line = (f"  3e (first-seen encrypted token): {enc / floor_rate:.2f} x floor, {enc / plain:.2f} x the plain "
            f"token; decryption adds {extra:.0f} us = {extra / (1e6 / floor_rate):.2f} x the floor's "
            f"{1e6 / floor_rate:.0f} us")
    print(line)
    return [line]


def target4(ctx: dict[str, Any], rounds: int, seconds: float) -> list[str]:
    body, headers = ctx["service"]
    reuse = make_protected(ok_app)
    from wstrust_wsgi.stores.memory import MemoryReplayCache
    envelope_only = environ_for(body, headers, SERVICE_PATH)
    content_type = headers["Content-Type"]
    call(reuse, environ_for(body, headers, SERVICE_PATH))()  # the token is now remembered
    splice = reuse._fast.seen.splice(body)
    assert splice is not None, "the reused token was not recognised"
    rates = interleaved({
        "middleware, token seen before (cache hit) + trivial app": call(reuse, environ_for(body, headers, SERVICE_PATH)),
        "  of which: finding the remembered token's bytes and cutting them out": lambda: reuse._fast.seen.splice(body),
        "  of which: hardened parse of the envelope without the token":
            lambda: soap.parse_envelope(splice.body, content_type=content_type),
        "  (for scale: hardened parse of the whole envelope)":
            lambda: soap.parse_envelope(body, content_type=content_type),
        "  (for scale: lxml fromstring of the whole envelope, no checks)":
            lambda: etree.fromstring(body, parser=_xml._parser()),
        "trivial app alone (no middleware)": call(ok_app, envelope_only),
    }, rounds, seconds)
    show("4. Middleware validation of a token already seen", rates)
    # with one-time-use tokens the second request must be refused: the replay cache is still consulted
    one_time = make_protected(ok_app, replay_cache=MemoryReplayCache())
    call(one_time, environ_for(body, headers, SERVICE_PATH))()
    call(one_time, environ_for(body, headers, SERVICE_PATH), expect="500")()
    print("  (checked: with replay_cache= the reused token is refused on its second use)")
    return [verdict("4 (token reuse)", rates["middleware, token seen before (cache hit) + trivial app"] / 20000, 1.0,
                    "20,000 requests/s")]


# ----------------------------------------------------------------------------- real HTTP

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GUNICORN_OPTIONS = ["--worker-class", "gthread", "--workers", "1", "--threads", "4", "--log-level", "warning"]


def start_gunicorn(kind: str, port: int, cpus: str) -> subprocess.Popen[bytes]:
    command = ["taskset", "-c", cpus, str(Path(sys.executable).parent / "gunicorn"), *GUNICORN_OPTIONS,
               "--chdir", str(ROOT / "bench"), "--pythonpath", str(ROOT), "--bind", f"127.0.0.1:{port}",
               f'bench:gunicorn_app("{kind}")']
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gunicorn {kind} did not start: {process.stderr.read().decode() if process.stderr else ''}")


def wrk(port: int, path: str, body: bytes, headers: dict[str, str], seconds: int, connections: int,
        cpus: str, workdir: Path) -> tuple[float, str]:
    body_file = workdir / f"body-{port}.xml"
    body_file.write_bytes(body)
    lua = workdir / f"post-{port}.lua"
    lines = ['wrk.method = "POST"', f'local f = assert(io.open({str(body_file)!r}, "rb"))',
             "wrk.body = f:read('*a')", "f:close()"]
    lines += [f"wrk.headers[{k!r}] = {v!r}" for k, v in headers.items() if k.lower() != "content-length"]
    lines += ["responses = {}", "function response(status, headers, body)",
              "  if status ~= 200 then error('HTTP ' .. status) end", "end"]
    lua.write_text("\n".join(lines) + "\n")
    command = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(lua),
               f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    text = out.stdout + out.stderr
    requests = next((float(line.split()[1]) for line in text.splitlines() if line.startswith("Requests/sec")), 0.0)
    if "Non-2xx" in text or "error" in text.lower() and "Socket errors" not in text:
        raise RuntimeError(f"wrk reported errors:\n{text}")
    return requests, " ".join(shlex.quote(c) for c in command)


def target5(ctx: dict[str, Any], rounds: int, seconds: int) -> list[str]:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        line = "  TARGET 5: wrk or taskset missing (apt-get install -y wrk util-linux); not evaluated"
        print(line)
        return [line]
    cpus = os.cpu_count() or 1
    server_cpu, client_cpu = ("1", "0") if cpus > 1 else ("0", "0")
    print(f"\n5. Real HTTP: gunicorn {' '.join(GUNICORN_OPTIONS)} pinned to CPU {server_cpu}, "
          f"wrk -t1 pinned to CPU {client_cpu}, {seconds} s per run, {rounds} interleaved rounds")
    results: dict[str, list[float]] = {"sts": [], "protected": [], "plain": []}
    commands = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ports = {kind: free_port() for kind in results}
        servers = {kind: start_gunicorn(kind, ports[kind], server_cpu) for kind in results}
        try:
            rst_body, rst_headers = ctx["rst"]
            service_body, service_headers = ctx["service"]
            for _ in range(rounds):
                for kind in results:
                    path, body, headers = (STS_PATH, rst_body, rst_headers) if kind == "sts" else \
                        (SERVICE_PATH, service_body, service_headers)
                    value, commands[kind] = wrk(ports[kind], path, body, headers, seconds, 8, client_cpu, workdir)
                    results[kind].append(value)
        finally:
            for server in servers.values():
                server.terminate()
                server.wait(10)
    rates = {
        "STS issuance (PasswordText, cached password check)": statistics.median(results["sts"]),
        "echo behind the middleware (token reused)": statistics.median(results["protected"]),
        "echo without the middleware": statistics.median(results["plain"]),
    }
    show("5. Real HTTP over loopback (requests/s as wrk counts them)", rates)
    for kind, command in commands.items():
        print(f"  wrk command ({kind}): {command}")
    return [verdict("5 (HTTP, protected vs unprotected echo)",
                    rates["echo behind the middleware (token reused)"] / rates["echo without the middleware"], 0.8,
                    "unprotected echo")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds in-process (median taken)")
    parser.add_argument("--seconds", type=float, default=0.4, help="time slice per contender per round")
    parser.add_argument("--http-seconds", type=int, default=5)
    parser.add_argument("--http-rounds", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the core the in-process runs are pinned to")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.2 s, HTTP 2 s x 1")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--only", choices=["1", "2", "3", "3e", "3h", "4", "5"], help="run this target alone")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.http_seconds, args.http_rounds = 3, 0.2, 2, 1
    logging.getLogger("wstrust_wsgi").setLevel(logging.WARNING)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    print("wstrust-wsgi benchmark")
    for line in machine():
        print("  " + line)
    print(f"  pinned to CPU {args.cpu}; {args.rounds} rounds x {args.seconds} s per contender, median shown")
    ctx = setup()
    summary = []
    from holder_of_key import target3h  # its own module: it imports from this one
    targets = {"1": target1, "2": target2, "3": target3, "3e": target3e, "3h": target3h, "4": target4}
    for name, target in targets.items():
        if args.only in (None, name):
            summary += target(ctx, args.rounds, args.seconds)
    if not args.skip_http and args.only in (None, "5"):
        summary += target5(ctx, args.http_rounds, args.http_seconds)
    print("\nSummary")
    for line in summary:
        print(line)
    print("\nreproduce: " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/bench.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
