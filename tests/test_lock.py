"""One writer per run directory: a second process is refused, the lock dies with its holder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.io.lock import LOCK_FILE, RunLockedError, run_lock
from tests.helpers import REPO, TINY, problem_lines, run_module

QUIET = ["eval.final=false", "eval.random_baseline=false", "geometry.enabled=false"]


def _start_run(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "src.distill", *TINY, *QUIET, *extra, f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_holder(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> dict:
    """The lock file's record once ``proc`` holds the lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the holder exited early: {proc.stderr.read()[-2000:]}")
        try:
            info = json.loads((run_dir / LOCK_FILE).read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if info.get("pid") == proc.pid:
            return info
        time.sleep(0.1)
    pytest.fail("the holder never took the lock")


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_a_second_process_is_refused_and_the_first_finishes(tmp_path):
    run_dir = tmp_path / "run"
    first = _start_run(run_dir, "iterations=20")
    try:
        _wait_for_holder(run_dir, first)
        first.send_signal(signal.SIGSTOP)  # hold it mid-run while the second one tries
        before = _snapshot(run_dir)
        second = run_module("src.distill", *TINY, *QUIET, "seed=5", run_dir=run_dir)
        after = _snapshot(run_dir)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode != 0
    lines = problem_lines(second.stderr)
    assert len(lines) == 1, second.stderr[-2000:]
    assert f"'{run_dir}' is being written by another live process" in lines[0]
    assert f"pid {first.pid} on host {socket.gethostname()}" in lines[0]
    # The refused process (other overrides) wrote nothing, Hydra's config records included.
    assert after == before
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert (run_dir / "distilled.safetensors").is_file()


def test_the_lock_is_free_once_its_holder_is_killed(tmp_path):
    run_dir = tmp_path / "run"
    holder = _start_run(run_dir, "iterations=100000")
    _wait_for_holder(run_dir, holder)
    with pytest.raises(RunLockedError, match=f"pid {holder.pid}"), run_lock(run_dir):
        pass
    holder.kill()  # SIGKILL: no handler runs
    holder.wait(timeout=60)
    with run_lock(run_dir) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
