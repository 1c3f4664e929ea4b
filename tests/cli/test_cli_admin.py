"""The administration commands (init, user, role, sts, rp), run as an administrator runs them.

Every command runs in a subprocess (``python -m wstrust_wsgi``) against a
registry in the test's own folder; passwords go in through stdin. The checks
are what a person or a script relies on: exit codes, one plain line on stderr
for every refusal, aligned tables holding the right rows, ``--json`` that
parses. The last test serves the STS from that registry under gunicorn and
changes users, roles, settings and relying parties while it runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from _support.net import stop, wait_listening
from _support import xmlsec1_verify
from wstrust_wsgi import ns
from wstrust_wsgi.wssecurity import UsernameToken

PYTHON_M = [sys.executable, "-m", "wstrust_wsgi"]
ISSUER = "https://sts.example.org/services/sts"
SERVICE = "https://svc.example.org/soap"
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
GIVEN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any WSTRUST_* variable of the person running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTRUST_")}
    env.update(extra)
    return env


def run(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """``python -m wstrust_wsgi ARGS``; stdin is the given text, else closed (no terminal to prompt on)."""
    return subprocess.run(
        [*PYTHON_M, *args], cwd=cwd, env=env if env is not None else clean_env(),
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )


def refused(result: subprocess.CompletedProcess[str], code: int, command: str) -> str:
    """The command failed with ``code``, one plain line on stderr naming it, nothing on stdout."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"wstrust-wsgi {command}: "), lines[0]
    assert result.stdout == ""
    return lines[0]


def table(text: str) -> list[list[str]]:
    """The rows of a printed table, header first, after checking that its columns are aligned.

    Cells are separated by two or more spaces; every cell of every row must
    start exactly where its header starts.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    rows = []
    for line in lines:
        cells = list(re.finditer(r"\S+(?: \S+)*", line))
        assert [c.start() for c in cells] == starts[:len(cells)], f"misaligned:\n{text}"
        rows.append([c.group() for c in cells])
    return rows


@dataclass(frozen=True)
class Admin:
    """One registry (SQLite, in the test's folder), its keys, and the command pointed at both."""

    root: Path
    url: str
    keys: Path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(*args, "--registry", self.url, cwd=self.root, stdin=stdin)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", stdin=stdin))

    def add_user(self, name: str, password: str, *args: str) -> str:
        return self.ok("user", "add", name, "--password-stdin", *args, stdin=password + "\n")

    def authenticate(self, name: str, password: str) -> Any:
        """The registry's own answer to a PasswordText UsernameToken, in this process."""
        from wstrust_wsgi.stores.sql import Registry

        registry = Registry.open(self.url)
        try:
            return registry.authenticate(UsernameToken(name, password, False, None, None, None))
        finally:
            registry.close()


def make_admin(root: Path, issuer: str = ISSUER) -> Admin:
    admin = Admin(root, f"sqlite://{root / 'registry.db'}", root / "keys")
    result = admin("init", "--issuer", issuer, "--keys", str(admin.keys))
    assert result.returncode == 0, result.stderr
    return admin


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Admin:
    """One ``init`` per module; each test gets a copy (a CLI start and a key generation fewer per test)."""
    return make_admin(tmp_path_factory.mktemp("template"))


@pytest.fixture
def admin(tmp_path: Path, initialised: Admin) -> Admin:
    """A fresh copy of the initialised registry and its keys in this test's folder."""
    for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
        if (initialised.root / name).exists():
            shutil.copy2(initialised.root / name, tmp_path / name)
    shutil.copytree(initialised.keys, tmp_path / "keys")
    return Admin(tmp_path, f"sqlite://{tmp_path / 'registry.db'}", tmp_path / "keys")


# ----------------------------------------------------------------------------- init


def test_init_creates_the_registry_and_a_deployment_key_pair(tmp_path):
    result = run("init", "--issuer", ISSUER, "--registry", f"sqlite://{tmp_path / 'r.db'}",
                 "--keys", str(tmp_path / "keys"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.db").is_file()
    key_file, cert_file = tmp_path / "keys" / "sts.key", tmp_path / "keys" / "sts.crt"
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    cert.verify_directly_issued_by(cert)
    assert "DEMO" not in cert.subject.rfc4514_string()
    assert "sts.example.org" in cert.subject.rfc4514_string()
    assert key_file.stat().st_mode & 0o077 == 0
    assert (tmp_path / "keys").stat().st_mode & 0o077 == 0
    assert "created" in result.stdout and "Next steps" in result.stdout
    assert "user add" in result.stdout and "rp add" in result.stdout


def test_init_uses_wstrust_registry_then_the_default_file_in_the_current_folder(tmp_path):
    env_db = tmp_path / "from-env.db"
    result = run("init", "--issuer", ISSUER, cwd=tmp_path, env=clean_env(WSTRUST_REGISTRY=f"sqlite://{env_db}"))
    assert result.returncode == 0, result.stderr
    assert env_db.is_file() and not (tmp_path / "wstrust.db").exists()
    assert (tmp_path / "keys" / "sts.key").is_file()

    result = run("init", "--issuer", ISSUER, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "wstrust.db").is_file()
    settings = json.loads(run("sts", "show", "--json", cwd=tmp_path).stdout)
    assert settings["issuer"] == ISSUER


def test_a_relative_sqlite_url_is_relative_to_the_current_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    result = run("init", "--issuer", ISSUER, "--registry", "sqlite:///./sub/r.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sub" / "r.db").is_file()
    assert f"sqlite://{tmp_path / 'sub' / 'r.db'}" in result.stdout  # the absolute URL, for the server


def test_init_again_with_another_issuer_changes_it_and_says_so(admin):
    result = admin("init", "--issuer", "https://new.example.org/sts", "--keys", str(admin.keys))
    assert result.returncode == 0, result.stderr
    assert "changed from https://sts.example.org/services/sts" in result.stderr
    assert admin.json("sts", "show")["issuer"] == "https://new.example.org/sts"


def test_init_again_keeps_the_key_pair_and_the_registry(admin):
    before = (admin.keys / "sts.key").read_bytes()
    admin.add_user("bob", "pw", "--role", "admin")
    out = admin.json("init", "--issuer", ISSUER, "--keys", str(admin.keys))
    assert out["keys_created"] is False and out["registry_created"] is False
    assert (admin.keys / "sts.key").read_bytes() == before
    assert [u["name"] for u in admin.json("user", "list")] == ["bob"]


def test_init_json_describes_what_it_made(tmp_path):
    out = json.loads(run("init", "--issuer", ISSUER, "--json", "--registry", f"sqlite://{tmp_path / 'r.db'}",
                         cwd=tmp_path).stdout)
    assert out["registry_created"] is True and out["keys_created"] is True
    assert out["settings"]["issuer"] == ISSUER
    assert out["settings"]["allowed_roles"] == ["admin"]
    assert out["signing_key"].endswith("sts.key") and out["certificate"].endswith("sts.crt")
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", out["certificate_sha256"])


@pytest.mark.parametrize("issuer", ["sts.example.org/services/sts", "/services/sts", "ftp://sts.example.org/",
                                    "https://", "https://sts.example.org/with space", ""])
def test_init_refuses_an_issuer_that_is_not_an_absolute_url(tmp_path, issuer):
    line = refused(run("init", "--issuer", issuer, cwd=tmp_path), 2, "init")
    assert "--issuer" in line
    assert not (tmp_path / "wstrust.db").exists() and not (tmp_path / "keys").exists()


def test_init_refuses_half_a_key_pair(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "sts.key").write_text("a key, its certificate lost")
    line = refused(run("init", "--issuer", ISSUER, cwd=tmp_path), 2, "init")
    assert "sts.crt" in line
    assert (tmp_path / "keys" / "sts.key").read_text() == "a key, its certificate lost"


def test_init_with_a_keys_path_that_is_a_file_fails_in_one_line(tmp_path):
    (tmp_path / "blocker").write_text("a file")
    refused(run("init", "--issuer", ISSUER, "--keys", str(tmp_path / "blocker" / "keys"), cwd=tmp_path), 2, "init")


def test_issuer_is_required(tmp_path):
    result = run("init", cwd=tmp_path)
    assert result.returncode == 2 and "--issuer" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- no registry, broken registry


@pytest.mark.parametrize("command", [["user", "list"], ["role", "list"], ["sts", "show"], ["rp", "list"]])
def test_a_command_without_a_registry_says_to_run_init(tmp_path, command):
    line = refused(run(*command, cwd=tmp_path), 2, " ".join(command))
    assert "wstrust-wsgi init" in line
    assert not (tmp_path / "wstrust.db").exists()


def test_a_file_that_is_not_a_database_is_one_line_and_no_traceback(tmp_path):
    (tmp_path / "wstrust.db").write_bytes(b"not sqlite at all " * 100)
    result = run("user", "list", cwd=tmp_path)
    # 2 when the registry reports it as a registry that cannot be opened, 1 for a raw database error.
    line = refused(result, result.returncode if result.returncode in (1, 2) else 1, "user list")
    assert "not a database" in line and "wstrust.db" in line


def test_an_empty_database_file_says_to_run_init(tmp_path):
    (tmp_path / "wstrust.db").touch()
    line = refused(run("sts", "show", cwd=tmp_path), 2, "sts show")
    assert "init" in line


def test_an_unsupported_registry_url_exits_2(tmp_path):
    line = refused(run("user", "list", "--registry", "mysql://db.example.org/sts", cwd=tmp_path), 2, "user list")
    assert "mysql://db.example.org/sts" in line


def test_json_and_registry_do_not_apply_to_client_or_certs(tmp_path):
    result = run("--json", "certs", "--dir", str(tmp_path / "c"), cwd=tmp_path)
    assert result.returncode == 2 and "--json" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- user


def test_user_add_then_list_show_and_json(admin):
    admin.ok("role", "add", "operators")
    out = admin.add_user("bob", "s3cret", "--role", "admin", "--role", "operators",
                         "--claim", f"{EMAIL}=bob@example.org", "--claim", f"{GIVEN}=Bob",
                         "--claim", f"{GIVEN}=Robert")
    assert "bob" in out
    admin.add_user("alice", "pw")

    rows = table(admin.ok("user", "list"))
    assert rows[0] == ["NAME", "ROLES", "CLAIMS", "DIGEST"]
    assert rows[1:] == [["alice", "-", "0", "no"], ["bob", "admin, operators", "3", "no"]]

    users = admin.json("user", "list")
    assert [u["name"] for u in users] == ["alice", "bob"]
    bob = admin.json("user", "show", "bob")
    assert bob == {"name": "bob", "roles": ["admin", "operators"], "digest_secret": False,
                   "claims": {EMAIL: ["bob@example.org"], GIVEN: ["Bob", "Robert"]}}

    shown = admin.ok("user", "show", "bob")
    assert re.search(r"^roles\s+admin, operators$", shown, re.M)
    assert f"{GIVEN} = Robert" in shown
    assert "s3cret" not in shown + json.dumps(bob)
    assert admin.authenticate("bob", "s3cret") is not None
    assert admin.authenticate("bob", "wrong") is None


def test_json_flag_works_before_and_after_the_command(admin):
    admin.add_user("bob", "pw")
    before = json.loads(run("--json", "--registry", admin.url, "user", "list", cwd=admin.root).stdout)
    after = admin.json("user", "list")
    assert before == after and before[0]["name"] == "bob"


def on_a_terminal(admin: Admin, args: list[str], answers: list[tuple[str, str]], *, within: float = 60.0,
                  ) -> tuple[int, str]:
    """Run the command on a pseudo-terminal, typing each answer after its prompt; (exit code, screen).

    getpass reads from the controlling terminal, not stdin, so this is how
    a person typing the password is reproduced. Bounded by ``within`` seconds.
    """
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.chdir(admin.root)
        os.execve(sys.executable, [*PYTHON_M, *args, "--registry", admin.url], clean_env())
    screen = b""
    pending = list(answers)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            if pending and pending[0][0].encode() in screen.rsplit(b"\n", 1)[-1]:
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, 9)
            pytest.fail(f"no end within {within} s: {screen!r}")
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace")


def test_user_add_asks_twice_on_a_terminal_without_echo(admin):
    code, screen = on_a_terminal(admin, ["user", "add", "erin", "--role", "admin"],
                                 [("New password for erin:", "typed secret"), ("Again:", "typed secret")])
    assert code == 0, screen
    assert "typed secret" not in screen  # not echoed
    assert admin.authenticate("erin", "typed secret") is not None


def test_user_passwd_on_a_terminal_refuses_two_different_passwords(admin):
    admin.add_user("erin", "old")
    code, screen = on_a_terminal(admin, ["user", "passwd", "erin"],
                                 [("New password for erin:", "one"), ("Again:", "two")])
    assert code == 2 and "differ" in screen and "Traceback" not in screen
    assert admin.authenticate("erin", "old") is not None


def test_user_add_reads_exactly_one_line_from_stdin(admin):
    admin.ok("user", "add", "bob", "--password-stdin", stdin="  spaced pass  \r\n")
    assert admin.authenticate("bob", "  spaced pass  ") is not None
    admin.ok("user", "add", "carol", "--password-stdin", stdin="no-newline")
    assert admin.authenticate("carol", "no-newline") is not None


@pytest.mark.parametrize(("stdin", "says"), [("\n", "empty"), ("", "empty"), ("one\ntwo\n", "one line")])
def test_user_add_refuses_a_bad_password_on_stdin(admin, stdin, says):
    line = refused(admin("user", "add", "bob", "--password-stdin", stdin=stdin), 2, "user add")
    assert says in line
    assert admin.json("user", "list") == []


def test_user_add_without_a_terminal_or_password_stdin_refuses_instead_of_hanging(admin):
    line = refused(admin("user", "add", "bob"), 2, "user add")
    assert "--password-stdin" in line


def test_a_password_is_never_accepted_as_an_argument(admin):
    result = admin("user", "add", "bob", "--password", "s3cret")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert admin.json("user", "list") == []


def test_user_add_with_an_unknown_role_is_refused_before_asking_for_a_password(admin):
    line = refused(admin("user", "add", "bob", "--role", "nosuch"), 1, "user add")
    assert "'nosuch'" in line and "admin" in line  # names the known roles
    assert admin.json("user", "list") == []


def test_user_add_twice_is_refused(admin):
    admin.add_user("bob", "pw")
    line = refused(admin("user", "add", "bob", "--password-stdin", stdin="pw2\n"), 1, "user add")
    assert "already exists" in line
    assert admin.authenticate("bob", "pw") is not None


@pytest.mark.parametrize("claim", ["no-equals-sign", "not a uri=value", "=value", "relative/path=value"])
def test_user_add_refuses_a_malformed_claim(admin, claim):
    refused(admin("user", "add", "bob", "--claim", claim, "--password-stdin", stdin="pw\n"), 2, "user add")
    assert admin.json("user", "list") == []


@pytest.mark.parametrize("name", ["", " bob", "bob ", "bo\tb"])
def test_user_add_refuses_a_bad_name(admin, name):
    refused(admin("user", "add", name, "--password-stdin", stdin="pw\n"), 2, "user add")


def test_user_add_digest_secret_is_shown_and_warned_about(admin):
    result = admin("user", "add", "dave", "--digest-secret", "--password-stdin", stdin="pw\n")
    assert result.returncode == 0 and "PasswordDigest" in result.stderr
    assert admin.json("user", "show", "dave")["digest_secret"] is True
    assert table(admin.ok("user", "list"))[1] == ["dave", "-", "0", "yes"]


def test_user_passwd_changes_the_password(admin):
    admin.add_user("bob", "old")
    admin.ok("user", "passwd", "bob", "--password-stdin", stdin="new\n")
    assert admin.authenticate("bob", "new") is not None
    assert admin.authenticate("bob", "old") is None


def test_user_passwd_for_an_unknown_user_is_refused(admin):
    line = refused(admin("user", "passwd", "ghost", "--password-stdin", stdin="pw\n"), 1, "user passwd")
    assert "'ghost'" in line


def test_user_grant_and_revoke(admin):
    admin.add_user("bob", "pw")
    admin.ok("role", "add", "operators")
    assert admin.json("user", "grant", "bob", "operators")["roles"] == ["operators"]
    admin.ok("user", "grant", "bob", "admin")
    assert table(admin.ok("user", "list"))[1] == ["bob", "admin, operators", "0", "no"]
    assert admin.json("user", "revoke", "bob", "admin")["roles"] == ["operators"]


@pytest.mark.parametrize(("args", "says"), [
    (["user", "grant", "ghost", "admin"], "'ghost'"),
    (["user", "grant", "bob", "nosuch"], "'nosuch'"),
    (["user", "revoke", "ghost", "admin"], "'ghost'"),
    (["user", "revoke", "bob", "nosuch"], "'nosuch'"),
    (["user", "revoke", "bob", "admin"], "does not hold"),
    (["user", "show", "ghost"], "'ghost'"),
    (["user", "remove", "ghost"], "'ghost'"),
    (["user", "claim", "ghost", EMAIL, "x"], "'ghost'"),
    (["user", "unclaim", "bob", EMAIL], "no claim"),
])
def test_user_commands_naming_something_unknown_exit_1_in_one_line(admin, args, says):
    admin.add_user("bob", "pw")
    line = refused(admin(*args), 1, " ".join(args[:2]))
    assert says in line


def test_user_grant_of_a_role_already_held_is_refused(admin):
    admin.add_user("bob", "pw", "--role", "admin")
    assert "already holds" in refused(admin("user", "grant", "bob", "admin"), 1, "user grant")


def test_user_claim_sets_values_and_unclaim_removes_them(admin):
    admin.add_user("bob", "pw", "--claim", f"{EMAIL}=old@example.org")
    admin.ok("user", "claim", "bob", EMAIL, "a@example.org", "b@example.org")
    assert admin.json("user", "show", "bob")["claims"] == {EMAIL: ["a@example.org", "b@example.org"]}
    admin.ok("user", "unclaim", "bob", EMAIL)
    assert admin.json("user", "show", "bob")["claims"] == {}


def test_user_claim_refuses_a_claim_that_is_not_a_uri(admin):
    admin.add_user("bob", "pw")
    refused(admin("user", "claim", "bob", "email", "x"), 2, "user claim")


def test_user_remove(admin):
    admin.add_user("bob", "pw")
    admin.add_user("alice", "pw")
    assert "Removed user 'bob'" in admin.ok("user", "remove", "bob")
    assert [u["name"] for u in admin.json("user", "list")] == ["alice"]
    assert admin.authenticate("bob", "pw") is None


def test_user_list_when_empty_says_so(admin):
    assert "No users" in admin.ok("user", "list")
    assert admin.json("user", "list") == []


# ----------------------------------------------------------------------------- role


def test_role_add_list_remove(admin):
    admin.ok("role", "add", "operators")
    admin.add_user("bob", "pw", "--role", "admin", "--role", "operators")
    admin.add_user("alice", "pw", "--role", "operators")
    rows = table(admin.ok("role", "list"))
    assert rows[0] == ["ROLE", "GETS TOKENS", "USERS", "MEMBERS"]
    assert rows[1:] == [["admin", "yes", "1", "bob"], ["operators", "no", "2", "alice, bob"]]
    assert admin.json("role", "list") == [
        {"name": "admin", "users": ["bob"], "allowed": True},
        {"name": "operators", "users": ["alice", "bob"], "allowed": False},
    ]
    admin.ok("role", "remove", "operators")
    assert [r["name"] for r in admin.json("role", "list")] == ["admin"]
    assert admin.json("user", "show", "alice")["roles"] == []


def test_role_errors(admin):
    assert "already exists" in refused(admin("role", "add", "admin"), 1, "role add")
    assert "'nosuch'" in refused(admin("role", "remove", "nosuch"), 1, "role remove")
    refused(admin("role", "add", " padded"), 2, "role add")


def test_role_allowed_to_get_tokens_cannot_be_removed_until_the_setting_changes(admin):
    line = refused(admin("role", "remove", "admin"), 1, "role remove")
    assert "sts set --allowed-role" in line
    admin.ok("role", "add", "operators")
    admin.ok("sts", "set", "--allowed-role", "operators")
    admin.ok("role", "remove", "admin")


# ----------------------------------------------------------------------------- sts


def test_sts_show(admin):
    shown = admin.ok("sts", "show")
    assert re.search(rf"^issuer\s+{re.escape(ISSUER)}$", shown, re.M)
    assert re.search(r"^allowed roles\s+admin$", shown, re.M)
    assert admin.json("sts", "show") == {
        "issuer": ISSUER, "allowed_roles": ["admin"], "default_lifetime": 300, "clock_skew": 300,
        "signature_algorithm": "rsa-sha256", "allow_plaintext_http": False,
    }


def test_sts_set_changes_every_setting(admin):
    admin.ok("role", "add", "operators")
    result = admin("sts", "set", "--issuer", "https://other.example.org/sts", "--allowed-role", "admin",
                   "--allowed-role", "operators", "--lifetime", "600", "--skew", "60",
                   "--signature-algorithm", "rsa-sha512", "--allow-plaintext-http", "yes")
    assert result.returncode == 0, result.stderr
    assert "in clear" in result.stderr  # the risky choice is named
    assert admin.json("sts", "show") == {
        "issuer": "https://other.example.org/sts", "allowed_roles": ["admin", "operators"],
        "default_lifetime": 600, "clock_skew": 60, "signature_algorithm": "rsa-sha512",
        "allow_plaintext_http": True,
    }
    assert admin.json("sts", "set", "--allow-plaintext-http", "no")["allow_plaintext_http"] is False
    assert admin.json("sts", "set", "--allow-any-role")["allowed_roles"] == []
    assert "any" in admin.ok("sts", "show")


@pytest.mark.parametrize("args", [
    [], ["--lifetime", "0"], ["--lifetime", "five"], ["--lifetime", "99999999999"], ["--skew", "-1"],
    ["--skew", "7200"], ["--signature-algorithm", "md5"], ["--allow-plaintext-http", "maybe"],
    ["--issuer", "not a url"], ["--allowed-role", "admin", "--allow-any-role"],
])
def test_sts_set_refuses_bad_values_with_exit_2(admin, args):
    result = admin("sts", "set", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert admin.json("sts", "show")["default_lifetime"] == 300


def test_sts_set_an_unknown_allowed_role_exits_1(admin):
    line = refused(admin("sts", "set", "--allowed-role", "nosuch"), 1, "sts set")
    assert "'nosuch'" in line
    assert admin.json("sts", "show")["allowed_roles"] == ["admin"]


# ----------------------------------------------------------------------------- rp


def test_rp_add_list_show_remove(admin, tmp_path):
    admin.ok("rp", "add", SERVICE)
    out = admin.ok("rp", "add", "https://legacy.example.org/svc", "--token-type", "1.1", "--lifetime", "120",
                   "--claim", EMAIL, "--encrypt-cert", str(admin.keys / "sts.crt"))
    assert "AppliesTo" in out
    rows = table(admin.ok("rp", "list"))
    assert rows[0] == ["ADDRESS", "TOKEN", "LIFETIME", "CLAIMS", "ENCRYPTION"]
    assert rows[1:] == [["https://legacy.example.org/svc", "SAML 1.1", "120 s (2 min)", "1", "aes256-gcm"],
                        [SERVICE, "SAML 2.0", "default (300 s)", "all", "-"]]
    legacy = admin.json("rp", "show", "https://legacy.example.org/svc")
    assert legacy["token_type"] == "1.1" and legacy["lifetime"] == 120 and legacy["claims"] == [EMAIL]
    assert legacy["certificate"]["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert admin.json("rp", "show", SERVICE) == {"address": SERVICE, "token_type": "2.0", "lifetime": None,
                                                 "claims": None, "certificate": None, "encryption": None,
                                                 "key_types": None}
    shown = admin.ok("rp", "show", "https://legacy.example.org/svc")
    assert re.search(r"^token type\s+SAML 1\.1$", shown, re.M) and "SHA-256" in shown
    admin.ok("rp", "remove", SERVICE)
    assert [p["address"] for p in admin.json("rp", "list")] == ["https://legacy.example.org/svc"]


def test_rp_add_key_types_limits_what_the_party_is_issued(admin):
    admin.ok("rp", "add", "https://hok.example.org/svc", "--key-types", "symmetric,public")
    assert admin.json("rp", "show", "https://hok.example.org/svc")["key_types"] == ["public", "symmetric"]
    assert re.search(r"^key types\s+public\n\s+symmetric$", admin.ok("rp", "show", "https://hok.example.org/svc"),
                     re.M)
    refused = admin("rp", "add", "https://other.example.org/svc", "--key-types", "secret")
    assert refused.returncode == 2 and "'secret' is not one of bearer, symmetric, public" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_rp_add_accepts_a_urn(admin):
    admin.ok("rp", "add", "urn:federation:example:svc")
    assert admin.json("rp", "list")[0]["address"] == "urn:federation:example:svc"


@pytest.mark.parametrize("address", ["urn:foo", "urn:", "urn:-bad:svc", "URN:foo"])
def test_rp_add_refuses_a_malformed_urn_saying_what_a_urn_must_look_like(admin, address):
    """The rule (model.check_address) and its message agree: a refused urn: is told the URN shape."""
    line = refused(admin("rp", "add", address), 2, "rp add")
    assert f"{address!r}: not a URN (a URN is urn:NAMESPACE:NAME, e.g. urn:example:service" in line, line
    admin.ok("rp", "add", "urn:example:service")  # the example the message gives is accepted
    assert [p["address"] for p in admin.json("rp", "list")] == ["urn:example:service"]


@pytest.mark.parametrize("address", ["svc.example.org/soap", "/soap", "soap", "ftp://svc.example.org/",
                                     "https:///nohost", "https://svc.example.org/a b", "http://svc:notaport/"])
def test_rp_add_refuses_an_address_that_is_not_an_absolute_url(admin, address):
    line = refused(admin("rp", "add", address), 2, "rp add")
    assert "absolute URL" in line or "not a valid URL" in line
    assert admin.json("rp", "list") == []


@pytest.mark.parametrize("args", [["--lifetime", "0"], ["--lifetime", "x"], ["--token-type", "3.0"],
                                  ["--claim", "email"]])
def test_rp_add_refuses_bad_values(admin, args):
    result = admin("rp", "add", SERVICE, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert admin.json("rp", "list") == []


def test_rp_add_with_a_certificate_that_is_missing_or_not_pem(admin, tmp_path):
    line = refused(admin("rp", "add", SERVICE, "--cert", str(tmp_path / "missing.pem")), 2, "rp add")
    assert "missing.pem" in line
    (tmp_path / "junk.pem").write_text("junk")
    assert "junk.pem" in refused(admin("rp", "add", SERVICE, "--cert", str(tmp_path / "junk.pem")), 2, "rp add")


def write_certificate(path: Path, *, days: int = 30, ago: int = 1, key: Any = None) -> Path:
    """A self-signed certificate valid from ``ago`` days back for ``days`` days (RSA-2048 unless ``key``)."""
    import datetime as dt

    from cryptography.x509.oid import NameOID

    key = key if key is not None else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=ago)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test relying party")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_rp_add_and_set_choose_how_tokens_are_encrypted_and_show_says_so(admin):
    cert = admin.keys / "sts.crt"
    sha1 = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA1()).hex(":").upper()
    added = admin("rp", "add", SERVICE, "--encrypt-cert", str(cert), "--encryption", "aes128-gcm",
                  "--key-reference", "thumbprint")
    assert added.returncode == 0 and added.stderr == "", added.stderr
    assert re.search(r"^encryption\s+aes128-gcm, key transport rsa-oaep-mgf1p, certificate named by thumbprint$",
                     added.stdout, re.M), added.stdout
    assert f"SHA-1 thumbprint {sha1}" in admin.ok("rp", "show", SERVICE)
    shown = admin.json("rp", "show", SERVICE)
    assert shown["encryption"] == {"algorithm": "aes128-gcm", "key_transport": "rsa-oaep-mgf1p",
                                   "key_reference": "thumbprint"}
    assert shown["certificate"]["sha1"] == sha1

    legacy = admin("rp", "set", SERVICE, "--encryption", "aes256-cbc", "--key-transport", "rsa-oaep")
    assert legacy.returncode == 0 and "aes256-cbc is a legacy choice" in legacy.stderr
    assert re.search(r"^encryption\s+aes256-cbc \(legacy: CBC, no integrity\), key transport rsa-oaep,",
                     legacy.stdout, re.M)
    assert table(admin.ok("rp", "list"))[1] == [SERVICE, "SAML 2.0", "default (300 s)", "all", "aes256-cbc"]

    assert "now sent in clear" in admin.ok("rp", "set", SERVICE, "--no-encrypt")
    assert admin.json("rp", "show", SERVICE)["encryption"] is None
    assert table(admin.ok("rp", "list"))[1][-1] == "-"
    assert "encrypted as shown" in admin.ok("rp", "set", SERVICE, "--encrypt-cert", str(cert))
    assert admin.json("rp", "show", SERVICE)["encryption"]["algorithm"] == "aes256-cbc"  # the choice was kept


def test_rp_add_refuses_an_encryption_certificate_that_cannot_serve(admin, tmp_path):
    expired = write_certificate(tmp_path / "expired.pem", days=10, ago=20)
    line = refused(admin("rp", "add", SERVICE, "--encrypt-cert", str(expired)), 2, "rp add")
    assert "expired.pem: the encryption certificate (CN=test relying party) expired on" in line
    ec_cert = write_certificate(tmp_path / "ec.pem", key=ec.generate_private_key(ec.SECP256R1()))
    assert "holds no RSA key" in refused(admin("rp", "add", SERVICE, "--encrypt-cert", str(ec_cert)), 2, "rp add")
    small = write_certificate(tmp_path / "small.pem",
                              key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert "1024 bits, at least 2048" in refused(admin("rp", "add", SERVICE, "--encrypt-cert", str(small)), 2,
                                                 "rp add")
    assert admin.json("rp", "list") == []
    admin.ok("rp", "add", SERVICE)
    assert "expired on" in refused(admin("rp", "set", SERVICE, "--encrypt-cert", str(expired)), 2, "rp set")
    soon = write_certificate(tmp_path / "soon.pem", days=10)
    result = admin("rp", "set", SERVICE, "--encrypt-cert", str(soon))
    assert result.returncode == 0 and "soon.pem expires on" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["rp", "add", SERVICE, "--encryption", "aes128-gcm"], "give --encrypt-cert PEM too"),
    (["rp", "set", SERVICE], "nothing to change"),
    (["rp", "set", SERVICE, "--key-reference", "ski"], "has no encryption certificate"),
])
def test_rp_encryption_options_that_say_nothing_usable_are_refused(admin, args, message):
    if args[1] == "set":
        admin.ok("rp", "add", SERVICE)
    assert message in refused(admin(*args), 2, " ".join(args[:2]))


def test_rp_set_takes_a_certificate_or_no_encryption_not_both(admin):
    admin.ok("rp", "add", SERVICE)
    result = admin("rp", "set", SERVICE, "--no-encrypt", "--encrypt-cert", str(admin.keys / "sts.crt"))
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_rp_add_cert_is_a_deprecated_spelling_of_encrypt_cert(admin):
    result = admin("rp", "add", SERVICE, "--cert", str(admin.keys / "sts.crt"))
    assert result.returncode == 0 and "--cert is deprecated, use --encrypt-cert" in result.stderr
    assert admin.json("rp", "show", SERVICE)["encryption"]["algorithm"] == "aes256-gcm"
    assert "--cert" not in admin.ok("rp", "add", "--help")  # no longer offered


def test_rp_errors_for_duplicates_and_unknown_addresses(admin):
    admin.ok("rp", "add", SERVICE)
    assert "already exists" in refused(admin("rp", "add", SERVICE), 1, "rp add")
    assert "rp list" in refused(admin("rp", "show", SERVICE + "/"), 1, "rp show")
    refused(admin("rp", "remove", "https://nobody.example.org/"), 1, "rp remove")


def test_help_lists_the_administration_commands(tmp_path):
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("init", "user", "role", "sts", "rp", "--registry", "--json", "WSTRUST_REGISTRY"):
        assert command in result.stdout
    result = run("user", "--help", cwd=tmp_path)
    for action in ("add", "list", "show", "passwd", "grant", "revoke", "claim", "unclaim", "remove"):
        assert action in result.stdout


# ----------------------------------------------------------------------------- the STS under gunicorn

STS_MODULE = '''\
"""The STS over the registry, as a deployment writes it (this test's own WSGI module)."""
import os

from wstrust_wsgi import SigningKey, TokenService
from wstrust_wsgi.stores.sql import Registry

registry = Registry.open(os.environ["WSTRUST_REGISTRY"])
app = TokenService(
    signing_key=SigningKey.from_files(os.path.join("keys", "sts.key"), os.path.join("keys", "sts.crt")),
    users=registry, relying_parties=registry, settings=registry,
)
'''


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gunicorn_has(option: str) -> bool:
    help_text = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    return option in help_text


@dataclass(frozen=True)
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Admin, Served]]:
    """init, then the STS under gunicorn (2 workers x 2 threads) reading that registry; stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/services/sts"
    admin = make_admin(tmp_path, issuer=url)
    (tmp_path / "sts_app.py").write_text(STS_MODULE)
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "sts_app:app", "--bind", f"127.0.0.1:{port}",
               "--chdir", str(tmp_path), "--workers", "2", "--worker-class", "gthread", "--threads", "2",
               "--graceful-timeout", "5"]
    if gunicorn_has("--no-control-socket"):
        command.append("--no-control-socket")
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=clean_env(WSTRUST_REGISTRY=admin.url),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, log)
        yield admin, Served(url, process, log)
    finally:
        stop(process)


@dataclass(frozen=True)
class Outcome:
    """What ``wstrust-wsgi client --no-call`` got: the assertion, or the fault's local code."""

    returncode: int
    assertion: etree._Element | None
    raw: bytes
    stderr: str

    @property
    def fault(self) -> str:
        match = re.search(r"\((\w+)\)$", self.stderr.strip())
        return match.group(1) if match else ""


def request_token(root: Path, sts: str, username: str, password: str, *options: str) -> Outcome:
    result = subprocess.run(
        [*PYTHON_M, "client", "--sts", sts, "--service", SERVICE, "--username", username, "--no-call", *options],
        cwd=root, env=clean_env(WSTRUST_PASSWORD=password), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    match = re.search(r"<(?:saml:)?Assertion.*</(?:saml:)?Assertion>", result.stdout, re.S)
    raw = match.group(0).encode() if match else b""
    return Outcome(result.returncode, etree.fromstring(raw) if match else None, raw, result.stderr)


def settles(attempt: Callable[[], Outcome], accept: Callable[[Outcome], bool], *, within: float = 10.0,
            confirm: int = 2) -> Outcome:
    """Retry ``attempt`` until ``accept`` holds, then confirm it holds ``confirm`` more times.

    Bounded by ``within`` seconds. The STS caches its settings for a second
    in each of the two workers, so a change shows within about two seconds
    (plus a client start-up); the confirmations make sure both workers agree.
    """
    deadline = time.monotonic() + within
    outcome = attempt()
    while not accept(outcome) and time.monotonic() < deadline:
        time.sleep(0.2)
        outcome = attempt()
    assert accept(outcome), f"not settled within {within} s: rc {outcome.returncode}, {outcome.stderr}"
    for _ in range(confirm):
        outcome = attempt()
        assert accept(outcome), f"did not stay settled: rc {outcome.returncode}, {outcome.stderr}"
    return outcome


def issued(outcome: Outcome) -> bool:
    return outcome.returncode == 0 and outcome.assertion is not None


def refused_with(code: str) -> Callable[[Outcome], bool]:
    return lambda outcome: outcome.returncode == 1 and outcome.fault == code and outcome.assertion is None


def saml2(element: etree._Element, path: str) -> list[str]:
    return [str(v) for v in element.xpath(path, namespaces={"s": ns.SAML2})]


def test_a_running_sts_follows_the_registry_without_a_restart(served, tmp_path):
    admin, sts = served
    token = lambda user="bob", password="pw1", *options: request_token(  # noqa: E731
        tmp_path, sts.url, user, password, *options)
    master = sts.process.pid

    admin.add_user("bob", "pw1", "--role", "admin", "--claim", f"{EMAIL}=bob@example.org")
    # No relying party yet: the address is unknown to the STS.
    settles(token, refused_with("InvalidRequest"))

    admin.ok("rp", "add", SERVICE)
    got = settles(token, issued)
    assertion = got.assertion
    assert assertion is not None
    assert saml2(assertion, "s:Issuer/text()") == [sts.url]
    assert saml2(assertion, "s:Subject/s:NameID/text()") == ["bob"]
    assert saml2(assertion, "s:Conditions/s:AudienceRestriction/s:Audience/text()") == [SERVICE]
    assert saml2(assertion, f"s:AttributeStatement/s:Attribute[@Name='{EMAIL}']/s:AttributeValue/text()") == [
        "bob@example.org"]
    checked = xmlsec1_verify(got.raw, admin.keys / "sts.crt", tmp_path)
    assert checked.returncode == 0 and "\nOK\n" in checked.stderr, checked.stdout + checked.stderr

    # The admin checkbox unticked for bob: a good password, no allowed role.
    admin.ok("user", "revoke", "bob", "admin")
    settles(token, refused_with("RequestFailed"))

    # Another role allowed instead, with a shorter lifetime: the settings cache catches up.
    admin.ok("role", "add", "operators")
    admin.ok("user", "grant", "bob", "operators")
    admin.ok("sts", "set", "--allowed-role", "operators", "--lifetime", "120")

    def lifetime(outcome: Outcome) -> float:
        assert outcome.assertion is not None
        start, end = (datetime.fromisoformat(saml2(outcome.assertion, f"s:Conditions/@{a}")[0].replace("Z", "+00:00"))
                      for a in ("NotBefore", "NotOnOrAfter"))
        return (end - start).total_seconds()

    settles(token, lambda outcome: issued(outcome) and lifetime(outcome) == 120)

    # A new password works at once, the old one no longer.
    admin.ok("user", "passwd", "bob", "--password-stdin", stdin="pw2\n")
    settles(token, refused_with("FailedAuthentication"))
    settles(lambda: token("bob", "pw2"), issued)

    # A PasswordDigest user, kept recoverable on purpose.
    admin.ok("user", "add", "carol", "--role", "operators", "--digest-secret", "--password-stdin", stdin="pw3\n")
    settles(lambda: token("carol", "pw3", "--digest", "--trust", "2005", "--soap", "1.1"), issued)

    # The relying party removed: its address is unknown again.
    admin.ok("rp", "remove", SERVICE)
    settles(lambda: token("bob", "pw2"), refused_with("InvalidRequest"))

    assert sts.process.poll() is None and sts.process.pid == master, "gunicorn was restarted"
    assert "Traceback" not in sts.log.read_text()


def test_a_registered_certificate_authenticates_the_cli_client_under_gunicorn(served, tmp_path):
    """``user cert add``, then ``client --client-cert --client-key`` (no password anywhere) gets carol's token
    from the STS under gunicorn; after ``user cert remove`` the same request is refused."""
    from wstrust_wsgi import SigningKey

    admin, sts = served
    admin.add_user("carol", "a password never sent", "--role", "admin")
    admin.ok("rp", "add", SERVICE)
    pair = SigningKey.generate("carol")
    (tmp_path / "carol.crt").write_bytes(pair.certificate_pem)
    (tmp_path / "carol.key").write_bytes(pair.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    admin.ok("user", "cert", "add", "carol", str(tmp_path / "carol.crt"))

    def ask() -> Outcome:
        result = subprocess.run(
            [*PYTHON_M, "client", "--sts", sts.url, "--service", SERVICE, "--client-cert", "carol.crt",
             "--client-key", "carol.key", "--soap", "1.1", "--no-call"],
            cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert "Traceback" not in result.stderr, result.stderr
        match = re.search(r"<(?:saml:)?Assertion.*</(?:saml:)?Assertion>", result.stdout, re.S)
        raw = match.group(0).encode() if match else b""
        return Outcome(result.returncode, etree.fromstring(raw) if match else None, raw, result.stderr)

    got = settles(ask, issued)
    assert got.assertion is not None and saml2(got.assertion, "s:Subject/s:NameID/text()") == ["carol"]
    admin.ok("user", "cert", "remove", "carol")
    assert ask().fault == "FailedAuthentication"
