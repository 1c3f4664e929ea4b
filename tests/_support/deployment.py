"""A deployment as an operator makes it, for the tests that start the STS from a TOML file.

The deployment file's tables (``Tables``, written with :func:`write_config`),
a registry set up the way ``wstrust-wsgi init`` and the admin commands leave it
(:func:`init_registry`), a TLS pair for gunicorn, and :class:`Gunicorn`, one
real gunicorn process on loopback. Shared by ``test_deploy.py``,
``test_setup.py``, ``test_lockout.py`` and the Node interop tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wstrust_wsgi import RelyingParty
from wstrust_wsgi.stores.sql import Registry

from . import slapd
from .apps import EMAIL
from .data import ROOT
from .net import free_port

__all__ = [
    "ADMIN_PASSWORD", "ISSUER", "SERVICE", "Gunicorn", "Tables", "free_port", "init_registry", "ldap_tables",
    "make_tls_pair",
    "sqlite_url", "toml_text", "write_config",
]

ISSUER = "https://sts.example.org/services/sts"
SERVICE = "https://svc.example.org/soap"
ADMIN_PASSWORD = "admin-s3cret"

Tables = dict[str, dict[str, Any]]


def toml_text(tables: Tables) -> str:
    """A TOML document for the value types the config uses (JSON strings are TOML basic strings)."""

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, (int, float, str)):
            return json.dumps(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(i) for i in item) + "]"
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in item.items()) + " }"
        raise TypeError(item)

    return "".join(f"[{name}]\n" + "".join(f"{key} = {value(v)}\n" for key, v in table.items()) + "\n"
                   for name, table in tables.items())


def write_config(directory: Path, tables: Tables, name: str = "sts.toml") -> Path:
    path = directory / name
    path.write_text(toml_text(tables))
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path.resolve()}"


def make_tls_pair(directory: Path, address: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed server certificate for IP ``address`` (ECDSA P-256) and its key, for gunicorn."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{address} (wstrust-wsgi test)")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)  # its own trust anchor
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "tls.key", directory / "tls.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def init_registry(url: str) -> None:
    """A registry as an operator sets it up: schema and issuer, a role, two users, one relying party."""
    registry = Registry.open(url)
    try:
        registry.init_schema(issuer=ISSUER)
        registry.add_role("staff")
        registry.add_user("admin", ADMIN_PASSWORD, roles=["admin"])
        registry.add_user("alice", "alice-pw", roles=["staff"])
        registry.add_relying_party(RelyingParty(SERVICE))
    finally:
        registry.close()


class Gunicorn:
    """One gunicorn process on 127.0.0.1, output to a log file; always :meth:`stop` it."""

    def __init__(self, app: str, *, port: int, cwd: Path, log: Path, args: tuple[str, ...] = ()) -> None:
        self.port = port
        self.log = log
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        env.pop("WSTRUST_CONFIG", None)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--no-control-socket",
                 "--graceful-timeout", "5", *args],
                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, workers: int = 1, timeout: float = 30.0) -> None:
        """Until every worker has built the app (deploy logs "STS at ..."), or fail with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.process.returncode}:\n{self.text()}")
            if self.text().count("STS at /") >= workers:
                return
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not start within {timeout:.0f} s:\n{self.text()}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"gunicorn did not exit within {timeout:.0f} s:\n{self.text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def ldap_tables(good: Tables, registry_file: Path | None, tmp_path: Path, url: str, **changes: Any) -> Tables:
    """``good`` switched to users from the directory at ``url`` (and to ``registry_file`` when given)."""
    (tmp_path / "bind-password").write_text(slapd.READER_PASSWORD + "\n")
    (tmp_path / "bind-password").chmod(0o600)
    if registry_file is not None:
        good["registry"]["url"] = sqlite_url(registry_file)
    good["users"] = {"source": "ldap"}
    good["ldap"] = {
        "urls": url, "bind_dn": slapd.READER_DN, "bind_password_file": str(tmp_path / "bind-password"),
        "user_search_base": slapd.PEOPLE, "group_search_base": slapd.GROUPS,
        "group_to_role": {"sts-admins": "admin"}, "attribute_to_claim": {"mail": EMAIL},
        "connect_timeout": 2, "receive_timeout": 2, **changes,
    }
    return good


@contextmanager
def running_demos(logs: Path, **env: str) -> Iterator[tuple[str, str, Path]]:
    """Both demos under real gunicorn on free loopback ports (their environment plus ``env``), logging in
    ``logs``: (the STS URL, the service URL, ``logs``); stopped on leaving."""
    from demo_sts import roundtrip

    sts_port, service_port = free_port(), free_port()
    environment = {**roundtrip.demo_env(sts_port, service_port), **env}
    processes = []
    try:
        for app, port in (("demo_sts.app:app", sts_port), ("demo_service.app:app", service_port)):
            process = roundtrip.start_gunicorn(app, port, environment, logs / f"{port}.log")
            processes.append(process)
            assert roundtrip.wait_ready(process, port), (logs / f"{port}.log").read_text()
        yield f"http://127.0.0.1:{sts_port}/services/sts", environment["WSTRUST_DEMO_SERVICE_URL"], logs
    finally:
        for process in processes:
            roundtrip.stop(process)
