"""One writer per run directory: an OS-level lock held for the whole run.

``flock`` on ``<run dir>/.lock``: the kernel releases it when its process ends, also on
SIGKILL, so a stale lock cannot outlive its holder. The file records the holder (pid,
host, start time) for the refusal message; it is never deleted, since removing a lock
file races with the next process taking it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src.errors import HDDError

LOCK_FILE = ".lock"


class RunLockedError(HDDError):
    """Another live process is writing to this run directory."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on host {info.get('host')}, since {info.get('since')}"


# Directories this process holds (resolved path -> descriptor): a flock conflicts with
# another descriptor of the same process too, so holding is re-entrant through this table.
_HELD: dict[Path, int] = {}


def acquire(directory: str | Path) -> Path:
    """Take the writer lock of ``directory`` (created if missing) until ``release``.

    Raises RunLockedError, naming the directory and the holder, when another process
    holds it. Taking a lock this process already holds does nothing.
    """
    directory = Path(directory)
    key = directory.resolve()
    path = directory / LOCK_FILE
    if key in _HELD:
        return path
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise RunLockedError(
            f"'{directory}' is being written by another live process ({_holder(path)}); "
            "wait for it to finish or choose another output directory"
        ) from None
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since})
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode(), 0)
    _HELD[key] = fd
    return path


def release(directory: str | Path) -> None:
    """Give up the lock of ``directory`` if this process holds it."""
    fd = _HELD.pop(Path(directory).resolve(), None)
    if fd is not None:
        os.close(fd)  # releases the lock


@contextmanager
def run_lock(directory: str | Path) -> Iterator[Path]:
    """Hold the writer lock of ``directory`` for the block (kept if it was held before)."""
    held = Path(directory).resolve() in _HELD
    path = acquire(directory)
    try:
        yield path
    finally:
        if not held:
            release(directory)
