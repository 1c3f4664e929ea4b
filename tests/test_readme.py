"""README.md is run, not only read: its Python blocks, its package list, and run.sh's promises.

* Every ```python block runs as written, in order, in one namespace, in a
  folder holding the files the blocks name (``sts.key``/``sts.crt``: a signing
  pair; ``tls.crt``: a TLS certificate from ``certs --tls``). The only edits are
  the network addresses, listed in :data:`ADDRESSES` (each must still be in
  the README, so the list cannot drift): the STS and the protected service the
  blocks build are served over HTTPS on loopback, and the client block reaches
  them there with ``UrllibTransport(cafile="tls.crt")`` and hostname checking on.
* The Debian packages README.md names are exactly those run.sh installs (its
  header comment names them too) and those .ci/run installs.
* run.sh as a non-root user on a machine without them names python3-venv with
  the rest, in one command, for ``test`` and for ``demo``.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from _support import ROOT, KeyFiles
from wstrust_wsgi.keys import generate_tls_pair

README = (ROOT / "README.md").read_text()
RUN_SH = (ROOT / "run.sh").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()

#: What the client block's network addresses become: (README text, replacement with {sts} / {service} ports).
ADDRESSES = [
    ('StsClient("https://sts.example/services/sts"', 'StsClient("https://127.0.0.1:{sts}/services/sts"'),
    ('call_service("https://svc.example/soap"', 'call_service("https://127.0.0.1:{service}/soap"'),
]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's name
        pass


@contextmanager
def https_server(app: Callable[..., Any], cert: Path, key: Path) -> Iterator[int]:
    """Serve ``app`` over HTTPS on 127.0.0.1 in a thread; yield the port."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_every_python_block_runs_as_written(tmp_path: Path, sts_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(README)
    assert len(blocks) >= 3, "README.md lost its Python blocks"
    shutil.copy(sts_keys.key, tmp_path / "sts.key")
    shutil.copy(sts_keys.cert, tmp_path / "sts.crt")
    tls_key, tls_cert = generate_tls_pair(["127.0.0.1"], tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme"}

    def served(name: str) -> Callable[..., Any]:  # whatever the blocks bind to ``name``, when a request comes
        return lambda environ, start_response: namespace[name](environ, start_response)

    with https_server(served("sts"), tls_cert, tls_key) as sts_port, \
            https_server(served("application"), tls_cert, tls_key) as service_port:
        for written, replacement in ADDRESSES:
            assert any(written in block for block in blocks), f"README.md no longer has {written}: update ADDRESSES"
            blocks = [block.replace(written, replacement.format(sts=sts_port, service=service_port))
                      for block in blocks]
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)  # noqa: S102 - the point
    printed = capsys.readouterr().out
    assert '<Hello xmlns="urn:example"' in printed and '>admin</Hello>' in printed, printed


# ---------------------------------------------------------------------- one list of Debian packages


def readme_packages() -> set[str]:
    found = re.findall(r"`apt-get install ([a-z0-9 .+-]+)`", README[:README.index("\n## ")])  # the opening
    assert len(found) == 1, found
    return set(found[0].split())


def run_sh_packages() -> set[str]:
    return {name for group in re.findall(r'missing="\$missing ([^"]+)"', RUN_SH) for name in group.split()}


def ci_packages() -> set[str]:
    joined = CI_RUN.replace("\\\n", " ")
    return {name for group in re.findall(r"apt-get install -y -qq ([a-z0-9 .+-]+)", joined) for name in group.split()}


def test_readme_run_sh_and_ci_name_the_same_debian_packages() -> None:
    assert "python3-venv" in run_sh_packages() and "npm" in run_sh_packages()
    assert readme_packages() == run_sh_packages() == ci_packages()


def test_run_sh_header_names_every_package_it_installs() -> None:
    lines = RUN_SH.splitlines()[1:]
    header = " ".join(line.lstrip("# ") for line in lines[:next(i for i, line in enumerate(lines)
                                                               if not line.startswith("#"))])
    missing = [name for name in sorted(run_sh_packages()) if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])",
                                                                          header)]
    assert not missing, f"run.sh's header comment does not name {missing}"


@pytest.mark.parametrize("command", ["test", "demo"])
def test_run_sh_as_non_root_names_python3_venv_with_the_rest(tmp_path: Path, command: str) -> None:
    """A machine with python3 but no venv module and none of the test programs; not root; no apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "ls", "cksum", "cut", "rm", "cat", "touch"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "python3").write_text('#!/bin/sh\ncase "$*" in *ensurepip*|*" venv "*) exit 1;; esac\nexit 0\n')
    for stub in ("id", "python3"):
        (bin_dir / stub).chmod(0o755)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / "run.sh", checkout / "run.sh")
    result = subprocess.run(["/bin/sh", str(checkout / "run.sh"), command], capture_output=True, text=True,
                            env={"PATH": str(bin_dir), "PYTHON": str(bin_dir / "python3")}, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("missing Debian packages:")]
    assert len(lines) == 1, result.stderr
    named = set(lines[0].partition("sudo apt-get install ")[2].rstrip(")").split())
    assert "python3-venv" in named, result.stderr
    if command == "test":
        assert {"xmlsec1", "redis-server", "npm"} <= named, result.stderr  # found on PATH, which has none
    else:
        assert named == {"python3-venv"}, result.stderr
    assert not (checkout / ".venv").exists()
    assert os.listdir(checkout) == ["run.sh"]


# ---------------------------------------------------------------------- "Run it for real", step by step


def run_it_for_real() -> str:
    start = README.index("## Run it for real")
    return README[start:README.index("\n## ", start + 1)]


def test_run_it_for_real_starts_by_installing_the_package() -> None:
    first = re.findall(r"^```sh\n(.*?)^```", run_it_for_real(), flags=re.S | re.M)[0]
    assert "python3 -m venv" in first and "pip install" in first, first


def test_run_it_for_real_steps_run_as_written(tmp_path: Path) -> None:
    """Steps 1 to 3 (registry, users, relying party, the TOML file, a TLS certificate, check), as a shell runs them.

    Only the folders move under ``tmp_path``, the command runs from this
    checkout, and the password comes from standard input instead of a prompt.
    Installing (step 0) and serving (step 4) are what the gunicorn tests do.
    """
    section = run_it_for_real()
    shell = [block for block in re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
             if "pip install" not in block and "gunicorn" not in block]
    tomls = re.findall(r"^```toml\n(.*?)^```", section, flags=re.S | re.M)
    assert len(shell) == 2 and len(tomls) == 1, (shell, tomls)

    def moved(text: str) -> str:
        for folder in ("/etc/wstrust", "/var/lib/wstrust"):
            text = text.replace(folder, f"{tmp_path}{folder}")
        return text

    command = f"{sys.executable} -m wstrust_wsgi"
    prompt = "wstrust-wsgi user add admin --role admin"
    assert prompt in shell[0]
    steps = moved(shell[0]).replace(prompt, f"printf 's3cret\\n' | {command} user add admin --role admin "
                                            "--password-stdin")
    config = moved(tomls[0])
    steps += f"\nmkdir -p {tmp_path}/etc/wstrust && cat > {tmp_path}/etc/wstrust/sts.toml <<'EOF'\n{config}EOF\n"
    steps += moved(shell[1])
    script = steps.replace("wstrust-wsgi ", f"{command} ")
    env = {key: value for key, value in os.environ.items() if not key.startswith("WSTRUST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(["/bin/sh", "-eu", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    checks = [line.split()[:2] for line in result.stdout.splitlines() if line[:5].strip() in ("ok", "warn", "FAIL")]
    assert ["ok", "registry"] in checks and ["ok", "replay"] in checks and not any(c[0] == "FAIL" for c in checks), \
        result.stdout
    assert (tmp_path / "etc" / "wstrust" / "tls.crt").is_file()
    assert (tmp_path / "var" / "lib" / "wstrust" / "registry.db").is_file()
