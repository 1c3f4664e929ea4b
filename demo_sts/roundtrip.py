"""The demo round trip: ``python -m demo_sts.roundtrip`` (what ``./run.sh demo`` runs).

Starts the demo STS and the demo echo service under gunicorn on loopback,
runs the client as admin/admin the way the WSO2 page this project follows
shows it (the token, then "Request and response messages to and from the
STS": the RST and RSTR, the password masked, then the service call and its
reply), shows with the ``wstrust-wsgi client`` command that alice (no admin
role) is refused, prints the servers' log lines, and stops both servers
whatever happened.

Ports: WSTRUST_DEMO_STS_PORT (8080) and WSTRUST_DEMO_SERVICE_PORT (8081).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from wstrust_wsgi import StsClient, UrllibTransport, WsTrustError, call_service, cli
from wstrust_wsgi.exchange import Exchange, RecordingTransport, describe, token_text

ROOT = Path(__file__).resolve().parent.parent


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_gunicorn(app: str, port: int, env: dict[str, str], log_path: Path,
                   extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """One gunicorn process serving ``app`` on 127.0.0.1:``port`` (gthread: 1 worker, 4 threads).

    ``extra``: more gunicorn options, such as ``--certfile`` and ``--keyfile`` for TLS.
    """
    log = open(log_path, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--workers", "1", "--threads", "4", "--graceful-timeout", "5",
         "--no-control-socket", *extra],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def demo_env(sts_port: int, service_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["WSTRUST_DEMO_ISSUER"] = f"http://127.0.0.1:{sts_port}/services/sts"
    env["WSTRUST_DEMO_SERVICE_URL"] = f"http://127.0.0.1:{service_port}/services/echo"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def admin_round_trip(sts_url: str, service_url: str) -> int:
    """admin's token, the RST and RSTR that carried it (as the WSO2 page ends), then the service call.

    The library rather than the ``client`` command, so that the messages come
    after the token and before the service call; the exchange is recorded by
    wrapping the transport, which never changes the bytes sent.
    """
    exchanges: list[Exchange] = []
    transport = RecordingTransport(UrllibTransport(), exchanges.append)
    try:
        client = StsClient(sts_url, username="admin", password="admin", transport=transport)
        token = client.request_token(service_url)
        print(f"Issued token ({token.token_type}), id {token.assertion_id}:")
        print(token_text(token.assertion, indent=sys.stdout.isatty()))
        print("\n=== Request and response messages to and from the STS (secrets masked) ===")
        print(describe(exchanges[-1], secrets=["admin"]))
        print(f"=== admin calls {service_url} with the token ===")
        reply = call_service(service_url, token, cli.echo_payload("Hello from wstrust-wsgi"), transport=transport)
    except WsTrustError as exc:
        print(f"admin's round trip failed: {exc}", file=sys.stderr)
        return 1
    print(f"Reply from {service_url}:")
    print(etree.tostring(reply, pretty_print=True).decode().rstrip())
    try:
        renewed = client.renew(token)
    except WsTrustError as exc:
        print(f"admin's renewal failed: {exc}", file=sys.stderr)
        return 1
    print(f"\n=== admin renews the token ===\nRenewed token id {renewed.assertion_id} (replaces "
          f"{token.assertion_id}), valid until {renewed.expires.isoformat() if renewed.expires else 'unknown'}")
    return 0


def main() -> int:
    sts_port = int(os.environ.get("WSTRUST_DEMO_STS_PORT", "8080"))
    service_port = int(os.environ.get("WSTRUST_DEMO_SERVICE_PORT", "8081"))
    for name, port in (("WSTRUST_DEMO_STS_PORT", sts_port), ("WSTRUST_DEMO_SERVICE_PORT", service_port)):
        if not port_is_free(port):
            print(f"Port {port} on 127.0.0.1 is in use: stop what runs there or set {name}.", file=sys.stderr)
            return 1
    env = demo_env(sts_port, service_port)
    sts_url = f"http://127.0.0.1:{sts_port}/services/sts"
    service_url = env["WSTRUST_DEMO_SERVICE_URL"]
    logs = Path(tempfile.mkdtemp(prefix="wstrust-demo-"))
    servers = []
    try:
        print(f"Starting the STS at {sts_url} and the echo service at {service_url} (gunicorn) ...")
        for app, port in (("demo_sts.app:app", sts_port), ("demo_service.app:app", service_port)):
            process = start_gunicorn(app, port, env, logs / f"{app.split('.')[0]}.log")
            servers.append(process)
            if not wait_ready(process, port):
                print(f"{app} did not start on port {port}; its log is {logs / (app.split('.')[0] + '.log')}",
                      file=sys.stderr)
                return 1
        print("\n=== admin/admin: request a token, then call the service with it ===")
        status = admin_round_trip(sts_url, service_url)
        print("\n=== alice/alice: good password, but not in the admin role ===")
        refused = cli.main(["client", "--sts", sts_url, "--service", service_url,
                            "--username", "alice", "--password", "alice"])
    finally:
        for process in servers:
            stop(process)
    print("\n=== server log lines ===")
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "wstrust_wsgi" in line:
                print(f"{log.stem}: {line}")
    if status == 0 and refused == 1:
        print("\nRound trip complete: admin got a token and the service admitted it; alice was refused.")
        return 0
    print("\nThe round trip did not go as expected (see above).", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
