"""Our P_SHA1 equals WSS4J's, the one CXF's STS and clients compute proof keys with.

``java/PSha1.java`` runs ``org.apache.ws.security.conversation.dkalgo.P_SHA1``
from the Debian ``libwss4j-java`` package (Java's single-file launcher, so the
JDK is needed); .ci/run and run.sh install both. The cases: node-psha1's known
answer (client entropy as the secret) and its swapped order, and random
secrets and seeds of the sizes clients send, for key lengths of one to several
SHA-1 blocks.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from base64 import b64decode, b64encode
from pathlib import Path

import pytest

from wstrust_wsgi.wstrust.proof import p_sha1

JAVA_DIR = Path(__file__).resolve().parent / "java"
WSS4J_JAR = Path("/usr/share/java/wss4j.jar")
CLIENT = b64decode("GS5olVevYMI4vW1Df/7FUpHcJJopTszp6sodlK4/rP8=")
SERVER = b64decode("LmF9Mjf9lYMa9YkxZDjaRFe6iMAfReKjzhLHDx376jA=")


def wss4j_p_sha1(cases: list[tuple[bytes, bytes, int]]) -> list[bytes]:
    java = shutil.which("java")
    if java is None or not WSS4J_JAR.is_file():
        pytest.fail("java and /usr/share/java/wss4j.jar are needed (Debian default-jdk-headless libwss4j-java); "
                    ".ci/run installs them")
    args = [item for secret, seed, length in cases for item in (b64encode(secret).decode(), b64encode(seed).decode(),
                                                                str(length))]
    result = subprocess.run([java, "-cp", str(WSS4J_JAR), str(JAVA_DIR / "PSha1.java"), *args],
                            capture_output=True, text=True, timeout=120, cwd=JAVA_DIR)
    assert result.returncode == 0, result.stderr
    return [b64decode(line) for line in result.stdout.split()]


def test_our_p_sha1_equals_wss4j() -> None:
    draw = random.Random(12)
    cases = [(CLIENT, SERVER, 32), (SERVER, CLIENT, 32)]
    cases += [(os.urandom(draw.choice([16, 24, 32, 64])), os.urandom(draw.choice([16, 32, 64])), length)
              for length in (16, 20, 24, 32, 40, 48, 64, 100)]
    theirs = wss4j_p_sha1(cases)
    assert theirs[0] == b64decode("ZMOP1NFa5VKTQ8I2awGXDjzKP+686eujiangAgf5N+Q=")
    assert theirs[1] == b64decode("XhgKIjUn7YaiLchcgQ+OljJKT/KpqSctWiqv9miX37A=")
    assert [p_sha1(secret, seed, length) for secret, seed, length in cases] == theirs
