"""What the deployment needs to know of the gunicorn running it, which hands an app factory nothing.

Two questions, answered from the process itself: how many workers the server
runs (:func:`worker_count`, for the warning that per-process caches are not
shared), and whether this worker is the one that should say a start-up error
(:func:`said_once`, so that a bad deployment file is one sentence, not one per
worker with the master's chained tracebacks). Outside gunicorn both answer as
if there were no gunicorn, so ``make_app`` behaves the same under any server.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

E = TypeVar("E", bound=BaseException)

__all__ = ["said_once", "worker_count"]


def worker_count() -> int | None:
    """How many worker processes the gunicorn loading this app runs; None outside gunicorn.

    gunicorn hands an app factory nothing of its configuration, but the
    application whose ``wsgi()`` is loading the app (in each worker, or in the
    master with ``--preload``) is on the call stack, and holds it.
    """
    worker = _gunicorn_worker()
    if worker is not None:
        return _workers(worker)
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, BaseApplication):
            workers = getattr(candidate.cfg, "workers", None)
            return workers if isinstance(workers, int) else None
        frame = frame.f_back
    return None


def said_once(error: E) -> E:
    """``error``, to raise, in the one process of a gunicorn server that is to say it; elsewhere no return.

    Without ``--preload`` every worker builds the app, so a bad file fails in
    each of them. gunicorn prints each worker's StartupError, and stops on the
    first worker that exits with code 4 ("App failed to load"); a second one
    exiting with 4 while the master is already stopping raises the master's
    HaltServer again inside its own handler: two chained tracebacks. So in a
    worker, the first to fail says the sentence (it returns ``error``, raised
    as before: printed once, exit 4); a sibling that fails later, or while the
    master is stopping it, says nothing and exits 0 once the master has told it
    to stop (SIGTERM, which gunicorn's workers only note in ``alive``).

    The siblings learn that the sentence was said from a small marker file
    (``wstrust-wsgi-<uid>-gunicorn-<master pid>.failed`` in the temporary
    folder, mode 0600, holding the master's identity, so a file left by an
    earlier master with the same pid is ignored; with one worker there is no
    sibling and no marker). Anything unexpected (no
    gunicorn, ``--preload``, an unusable marker) leaves gunicorn's own
    behaviour: the sentence is raised.
    """
    worker = _gunicorn_worker()
    if worker is None:
        return error
    if worker.alive and (_workers(worker) <= 1 or _first_to_fail(worker)):  # alone: no sibling, no marker
        return error
    deadline = time.monotonic() + _SIBLING_WAIT
    while worker.alive and time.monotonic() < deadline:  # the first one's exit stops the master, then us
        time.sleep(0.05)
    if worker.alive:  # the master never stopped us: say it after all
        return error
    raise SystemExit(0)


#: How long a worker that failed second waits for the master to stop it before it speaks up itself.
_SIBLING_WAIT = 60.0


def _gunicorn_worker() -> Any | None:
    """The gunicorn worker this process is, while it loads the app (its SIGTERM handler is the worker's)."""
    try:
        from gunicorn.workers.base import Worker  # type: ignore[import-untyped]
    except ImportError:
        return None
    owner = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return owner if isinstance(owner, Worker) else None


def _workers(worker: Any) -> int:
    """How many workers the master runs (gunicorn's ``--workers``); 2 if it cannot be read."""
    count = getattr(getattr(worker, "cfg", None), "workers", 2)
    return count if isinstance(count, int) else 2


def _first_to_fail(worker: Any) -> bool:
    """Whether no sibling of ``worker`` has failed before it; records that one has (under an exclusive lock)."""
    try:
        import fcntl
    except ImportError:
        return True
    identity = _master_identity(worker)
    marker = Path(tempfile.gettempdir()) / f"wstrust-wsgi-{os.getuid()}-gunicorn-{worker.ppid}.failed"
    try:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return True
    with os.fdopen(fd, "r+b") as handle:
        try:
            if os.fstat(fd).st_uid != os.getuid():
                return True
            fcntl.flock(fd, fcntl.LOCK_EX)
            if handle.read() == identity:
                return False
            handle.seek(0)
            handle.truncate()
            handle.write(identity)
            handle.flush()
        except OSError:
            return True
    return True


def _master_identity(worker: Any) -> bytes:
    """The master's pid and its first listening socket's inode: shared by its workers, not by an earlier master."""
    inode = 0
    for listener in getattr(worker, "sockets", None) or ():
        try:
            inode = os.fstat(listener.fileno()).st_ino
            break
        except (OSError, ValueError, AttributeError):
            continue
    return f"{worker.ppid}:{inode}".encode()
