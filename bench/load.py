"""Load the demo STS and the demo echo service over real HTTP and report what they sustain.

Not a test: a measurement with a pass/fail verdict on correctness only. It starts
``demo_sts.app`` and ``demo_service.app`` under gunicorn on free loopback ports
(with :mod:`demo_sts.roundtrip`'s helpers, so the servers run exactly as in the
demo and the real-process tests), then for ``--seconds`` drives them with
``--clients`` threads, each cycling through a fixed mix of request kinds:

==============  =========================================================  ==============================
kind            what is sent                                               expected
==============  =========================================================  ==============================
issue           RST as admin/admin (StsClient) for the echo service        a token
call            the echo call carrying the client's current token          Caller == admin
bad_password    RST as admin with a wrong password                         wst:FailedAuthentication
no_role         RST as alice/alice (good password, no admin role)          wst:RequestFailed
tampered        the echo call with the token's subject, claim or           wsse:FailedCheck
                signature value changed
wrong_audience  the echo call with a token signed by the demo STS key      wsse:InvalidSecurityToken
                for another audience (signed here: the demo STS has
                one relying party only)
==============  =========================================================  ==============================

Per kind it prints the count, errors (any outcome but the expected one),
wrongly admitted (a bad request answered 200), requests per second and latency
percentiles, then the command that reproduces the run. Exit status: 0 when
there were no errors, no wrong admissions, no internal error in the servers'
logs and every kind ran; 1 otherwise; 2 when the servers did not start.

Latencies are measured in the client, around one request (connect, send,
server, parse); the client threads share the machine with both servers.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench/ is on sys.path, the project root is not
    sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from demo_sts import roundtrip  # noqa: E402
from wstrust_wsgi import (  # noqa: E402
    IssuedToken,
    RemoteFault,
    SigningKey,
    StsClient,
    TransportError,
    UrllibTransport,
    call_service,
    ns,
)
from wstrust_wsgi._time import utcnow  # noqa: E402
from wstrust_wsgi.saml import SAML2, AssertionContent, AssertionSigner  # noqa: E402

KINDS = ("issue", "call", "bad_password", "no_role", "tampered", "wrong_audience")
#: The local fault code each bad kind must be refused with.
EXPECTED_FAULT = {
    "bad_password": "FailedAuthentication",
    "no_role": "RequestFailed",
    "tampered": "FailedCheck",
    "wrong_audience": "InvalidSecurityToken",
}
#: One client's cycle: 20 % issuance, 40 % calls with the token, 40 % bad requests.
SCHEDULE = ("issue", "call", "call", "bad_password", "call", "no_role", "issue", "call", "tampered", "wrong_audience")
ECHO_NS = "urn:wstrust-wsgi:demo:echo"
#: Re-sign the wrong-audience token this often (its lifetime is 5 minutes).
WRONG_AUDIENCE_REFRESH = 60.0
HTTP_TIMEOUT = 10.0


# ----------------------------------------------------------------------------- outcomes


@dataclass
class Sample:
    kind: str
    seconds: float
    #: "ok" (the expected outcome), "error" (another outcome) or "admitted" (a bad request got 200).
    outcome: str
    detail: str = ""


class Unexpected(Exception):
    """An outcome that is neither the expected one nor a wrong admission."""


class WronglyAdmitted(Exception):
    """A request that had to be refused was answered 200."""


def expect_refusal(kind: str, attempt: Callable[[], object]) -> None:
    """Run a request that must be refused with EXPECTED_FAULT[kind]."""
    try:
        attempt()
    except RemoteFault as fault:
        if fault.local_code != EXPECTED_FAULT[kind]:
            raise Unexpected(f"fault {fault.local_code} ({fault.reason}), expected {EXPECTED_FAULT[kind]}") from None
        return
    raise WronglyAdmitted(f"{kind} was answered 200")


def tamper(assertion: bytes, variant: int) -> bytes:
    """The assertion with its subject, a claim or its signature value changed (signed bytes no longer match)."""
    if variant % 3 == 0:
        changed = assertion.replace(b">admin</NameID>", b">root</NameID>", 1)
    elif variant % 3 == 1:
        changed = assertion.replace(b">admin@example.org<", b">root@example.org<", 1)
    else:
        start = assertion.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
        flipped = b"B" if assertion[start:start + 1] == b"A" else b"A"
        changed = assertion[:start] + flipped + assertion[start + 1:]
    if changed == assertion:
        raise Unexpected(f"tampering variant {variant % 3} found nothing to change in the token")
    return changed


# ----------------------------------------------------------------------------- one client


@dataclass
class Target:
    """Where the servers listen and what the wrong-audience token is signed with."""

    sts_url: str
    service_url: str
    issuer: str
    other_audience: str
    signer: AssertionSigner


@dataclass
class Client:
    """One load thread: its SOAP / WS-Trust versions, current token and samples."""

    index: int
    target: Target
    samples: list[Sample] = field(default_factory=list)
    token: IssuedToken | None = None
    foreign: tuple[float, bytes] | None = None
    tamper_count: int = 0

    @property
    def soap(self) -> str:
        return "1.2" if self.index % 2 else "1.1"

    @property
    def trust(self) -> str:
        return "1.3" if self.index % 4 < 2 else "2005"

    def sts(self, username: str, password: str) -> StsClient:
        return StsClient(self.target.sts_url, username=username, password=password, soap_version=self.soap,
                         trust_version=self.trust, transport=UrllibTransport(timeout=HTTP_TIMEOUT))

    def echo(self, assertion: IssuedToken | bytes) -> etree._Element:
        payload = etree.Element(f"{{{ECHO_NS}}}Echo", nsmap={"echo": ECHO_NS})
        etree.SubElement(payload, f"{{{ECHO_NS}}}Message").text = f"load {self.index}"
        reply: etree._Element = call_service(self.target.service_url, assertion, payload, soap_version=self.soap,
                                             transport=UrllibTransport(timeout=HTTP_TIMEOUT))
        return reply

    def foreign_token(self) -> bytes:
        """A token the demo STS key signed for another audience (re-signed before it expires)."""
        now = time.monotonic()
        if self.foreign is None or now - self.foreign[0] > WRONG_AUDIENCE_REFRESH:
            issued = utcnow()
            content = AssertionContent(
                issuer=self.target.issuer, subject="admin", audience=self.target.other_audience,
                issue_instant=issued, not_before=issued, not_on_or_after=issued + timedelta(minutes=5),
                attributes={ns.CLAIM_ROLE: ("admin",)}, assertion_id="_" + uuid.uuid4().hex,
            )
            self.foreign = (now, self.target.signer.sign(SAML2, content))
        return self.foreign[1]

    def run(self, kind: str) -> None:
        """Send one request of ``kind``; raise Unexpected or WronglyAdmitted when it goes wrong."""
        if kind == "issue":
            token = self.sts("admin", "admin").request_token(self.target.service_url)
            if token.applies_to != self.target.service_url or not token.assertion:
                raise Unexpected(f"token for {token.applies_to!r}")
            self.token = token
        elif kind == "call":
            assert self.token is not None
            reply = self.echo(self.token)
            caller = reply.findtext(f"{{{ECHO_NS}}}Caller")
            if caller != "admin":
                raise Unexpected(f"the service answered caller {caller!r}")
        elif kind == "bad_password":
            expect_refusal(kind, lambda: self.sts("admin", "not-the-password").request_token(self.target.service_url))
        elif kind == "no_role":
            expect_refusal(kind, lambda: self.sts("alice", "alice").request_token(self.target.service_url))
        elif kind == "tampered":
            assert self.token is not None
            self.tamper_count += 1
            forged = tamper(self.token.assertion, self.tamper_count)
            expect_refusal(kind, lambda: self.echo(forged))
        elif kind == "wrong_audience":
            foreign = self.foreign_token()
            expect_refusal(kind, lambda: self.echo(foreign))
        else:
            raise AssertionError(kind)

    def loop(self, deadline: float, max_requests: int, stop: threading.Event) -> None:
        """Cycle through SCHEDULE (shifted by the client's index) until the deadline or the request cap."""
        for number in range(max_requests):
            if stop.is_set() or time.monotonic() >= deadline:
                return
            kind = SCHEDULE[(number + self.index) % len(SCHEDULE)]
            if self.token is None and kind in ("call", "tampered"):
                kind = "issue"  # calls need a token first
            started = time.perf_counter()
            try:
                self.run(kind)
                outcome, detail = "ok", ""
            except WronglyAdmitted as exc:
                outcome, detail = "admitted", str(exc)
            except (Unexpected, RemoteFault, TransportError) as exc:
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a load tool reports every failure, it does not stop at one
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            self.samples.append(Sample(kind, time.perf_counter() - started, outcome, detail))


# ----------------------------------------------------------------------------- report


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def report(samples: list[Sample], elapsed: float) -> tuple[int, int, list[str]]:
    """Print the table; return (errors, wrongly admitted, kinds that never ran)."""
    header = f"{'kind':<16}{'count':>7}{'errors':>8}{'wrongly_admitted':>18}{'req/s':>9}" \
             f"{'p50_ms':>9}{'p90_ms':>9}{'p99_ms':>9}{'max_ms':>9}"
    print(header)
    print("-" * len(header))
    total_errors = total_admitted = 0
    missing = []
    rows = [(kind, [s for s in samples if s.kind == kind]) for kind in KINDS] + [("total", samples)]
    for kind, chosen in rows:
        errors = sum(s.outcome == "error" for s in chosen)
        admitted = sum(s.outcome == "admitted" for s in chosen)
        if kind != "total":
            total_errors += errors
            total_admitted += admitted
            if not chosen:
                missing.append(kind)
        latencies = sorted(s.seconds * 1000 for s in chosen)
        if latencies:
            figures = "".join(f"{percentile(latencies, p):>9.1f}" for p in (50, 90, 99)) + f"{latencies[-1]:>9.1f}"
        else:
            figures = f"{'-':>9}" * 4
        print(f"{kind:<16}{len(chosen):>7}{errors:>8}{admitted:>18}{len(chosen) / elapsed:>9.1f}{figures}")
    return total_errors, total_admitted, missing


def first_problems(samples: list[Sample], limit: int = 5) -> list[str]:
    return [f"  {s.kind}: {s.outcome}: {s.detail}" for s in samples if s.outcome != "ok"][:limit]


def server_log_summary(log_paths: list[Path]) -> tuple[dict[str, int], list[str]]:
    """Counts of the servers' issued / admitted / refused lines, and any internal error or traceback."""
    counts = {"issued": 0, "admitted": 0, "refused": 0}
    internal = []
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            for word in counts:
                if f" {word}: " in line:
                    counts[word] += 1
            if "internal error" in line or line.startswith("Traceback"):
                internal.append(f"  {path.name}: {line.strip()[:200]}")
    return counts, internal


# ----------------------------------------------------------------------------- main


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reproduce_command(args: argparse.Namespace) -> str:
    python = Path(sys.executable)
    shown = os.path.relpath(python, ROOT) if python.is_relative_to(ROOT) else str(python)
    return f"cd {shlex.quote(str(ROOT))} && " + shlex.join(
        [shown, "bench/load.py", "--seconds", f"{args.seconds:g}", "--clients", str(args.clients),
         "--max-requests", str(args.max_requests)]
    )


def worker_settings(process: object) -> str:
    """The gunicorn worker options the roundtrip helper chose, read back from the command it ran."""
    argv = list(getattr(process, "args", []))
    value = {flag: argv[argv.index(flag) + 1] for flag in ("--worker-class", "--workers", "--threads") if flag in argv}
    return (f"worker class {value.get('--worker-class', '?')}, {value.get('--workers', '?')} worker(s) x "
            f"{value.get('--threads', '?')} thread(s)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Load the demo STS and echo service under gunicorn on loopback.")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send requests (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="cap on requests per client, whatever the time (default 100000)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be in (0, 3600]")
    if not 1 <= args.clients <= 256:
        parser.error("--clients must be between 1 and 256")
    if args.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sts_port, service_port = free_port(), free_port()
    while service_port == sts_port:
        service_port = free_port()
    env = roundtrip.demo_env(sts_port, service_port)
    logs = Path(tempfile.mkdtemp(prefix="wstrust-load-"))
    certs = Path(env.get("WSTRUST_DEMO_CERTS", ROOT / "certs"))
    target = Target(
        sts_url=f"http://127.0.0.1:{sts_port}/services/sts",
        service_url=env["WSTRUST_DEMO_SERVICE_URL"],
        issuer=env["WSTRUST_DEMO_ISSUER"],
        other_audience=f"http://127.0.0.1:{service_port}/services/other",
        signer=AssertionSigner(SigningKey.from_files(certs / "sts.key", certs / "sts.crt")),
    )
    servers = []
    stop = threading.Event()
    clients = [Client(index, target) for index in range(args.clients)]
    try:
        for app, port in (("demo_sts.app:app", sts_port), ("demo_service.app:app", service_port)):
            log_path = logs / f"{app.split('.')[0]}.log"
            process = roundtrip.start_gunicorn(app, port, env, log_path)
            servers.append(process)
            if not roundtrip.wait_ready(process, port):
                print(f"{app} did not start on 127.0.0.1:{port}; its log: {log_path}", file=sys.stderr)
                return 2
        print(f"wstrust-wsgi load: {args.clients} client threads for {args.seconds:g} s over HTTP on 127.0.0.1")
        print(f"  STS     {target.sts_url}  (gunicorn demo_sts.app:app, {worker_settings(servers[0])})")
        print(f"  service {target.service_url}  (gunicorn demo_service.app:app, {worker_settings(servers[1])})")
        print("  worker settings: demo_sts.roundtrip.start_gunicorn, as in the demo; the STS stays one process "
              f"because its digest-nonce cache is per process; {os.cpu_count()} CPU(s) shared by servers and clients")
        print(f"  mix per client: {', '.join(SCHEDULE)}; SOAP 1.1/1.2 and WS-Trust 1.3/2005 alternate by client")
        print()
        started = time.monotonic()
        deadline = started + args.seconds
        threads = [threading.Thread(target=c.loop, args=(deadline, args.max_requests, stop), daemon=True,
                                    name=f"load-{c.index}") for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 4 * HTTP_TIMEOUT)
        stop.set()
        elapsed = time.monotonic() - started
    except KeyboardInterrupt:
        stop.set()
        print("interrupted", file=sys.stderr)
        return 1
    finally:
        for process in servers:
            roundtrip.stop(process)
    samples = [s for c in clients for s in c.samples]
    errors, admitted, missing = report(samples, elapsed)
    counts, internal = server_log_summary(sorted(logs.glob("*.log")))
    print()
    print(f"elapsed {elapsed:.2f} s; server log lines: "
          + ", ".join(f"{word} {count}" for word, count in counts.items()))
    problems = first_problems(samples)
    if problems:
        print("first unexpected outcomes:")
        print("\n".join(problems))
    if internal:
        print(f"internal errors in the server logs ({logs}):")
        print("\n".join(internal[:5]))
    if missing:
        print(f"kinds that never ran: {', '.join(missing)}")
    print(f"reproduce: {reproduce_command(args)}")
    ok = errors == 0 and admitted == 0 and not internal and not missing
    print(f"result: {'OK' if ok else 'FAILED'} ({errors} errors, {admitted} wrongly admitted)")
    if ok:
        shutil.rmtree(logs, ignore_errors=True)  # kept for inspection only when something went wrong
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
