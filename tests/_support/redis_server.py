"""A real redis-server on loopback for the tests that need one (replay caches, health, lockout).

Shared by ``tests/stores/test_replay.py``, ``tests/test_setup.py`` and any test
that needs a Redis to stop and start; a missing redis-server fails the test
(``.ci/run`` and ``run.sh`` install it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from .net import free_port

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """One real redis-server on 127.0.0.1, no persistence, run from its own directory.

    ``stop()`` then ``start()`` restarts it on the same port, empty, as after a crash.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def start(self) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            pytest.fail(f"{REDIS_SERVER} is missing (Debian package redis-server); .ci/run installs it")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
                cwd=self.directory, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 15
        while not self.answers_ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not answer PING on port {self.port}: {self.log.read_text()}")
            time.sleep(0.05)

    def answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)


