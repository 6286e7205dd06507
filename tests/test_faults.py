"""Faults a long run meets: SIGTERM, SIGKILL, a full disk, unsafe or damaged files."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.errors import CheckpointError, DistilledFileError
from src.io import load_distilled, save_distilled
from src.io.checkpoint import RUN_STATE_KEY, last_checkpoint, load_checkpoint
from tests.helpers import REPO, run_module

# A long tiny run (stopped by the tests long before its end), checkpointing often.
LONG = ["dataset=fashion_mnist", "ipc=1", "iterations=100000", "checkpoint.every=2",
        "model.width=8", "method.batch_real=4", "logger=none", "eval.final=false",
        "eval.random_baseline=false", "geometry.enabled=false"]  # fmt: skip


@pytest.fixture
def start():
    """Start the long run in a child process; a child still running at teardown (a failed
    test) is killed, so it cannot keep the machine busy for 100 000 iterations."""
    children: list[subprocess.Popen] = []

    def start_run(run_dir: Path, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        flags = [a for a in extra if a.startswith("-")]  # e.g. -m: before the overrides
        overrides = [a for a in extra if not a.startswith("-")]
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "src.distill",
                    *flags,
                    *LONG,
                    *overrides,
                    f"hydra.run.dir={run_dir}",
                ],  # fmt: skip
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        return children[-1]

    yield start_run
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=60)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_sigterm_writes_a_checkpoint_exits_cleanly_and_the_run_resumes(tmp_path, start):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    _wait_for(last_checkpoint(run_dir), proc)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: stopped by SIGTERM after iteration ") and "resume=" in last
    assert "Traceback" not in stderr
    done = load_checkpoint(last_checkpoint(run_dir))[RUN_STATE_KEY]["completed_iterations"]
    assert f"after iteration {done};" in last  # the checkpoint holds the last iteration run
    assert not (run_dir / "distilled.safetensors").exists()
    # Resume, finishing three iterations later.
    res = run_module("src.distill", *LONG, "resume=auto", f"iterations={done + 3}", run_dir=run_dir)
    assert res.returncode == 0, res.stderr
    assert load_distilled(run_dir / "distilled.safetensors").meta["iteration"] == done + 3


def test_sigterm_stops_a_whole_sweep_not_only_its_job(tmp_path, start):
    sweep = tmp_path / "sweep"
    proc = start(tmp_path / "unused", "-m", "seed=0,1", "method.compile_net=false",
                 f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}")  # fmt: skip
    _wait_for(last_checkpoint(sweep / "0"), proc)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, stderr
    assert (sweep / "0" / "failed.json").is_file()  # the stopped job is on record
    assert not (sweep / "1").exists()  # and the sweep's next job never started


@pytest.mark.parametrize("delay", [0.0, 0.37, 0.71])
def test_sigkill_at_any_moment_leaves_the_files_whole(tmp_path, delay, start):
    run_dir = tmp_path / "run"
    # A finished run leaves a distilled set and a checkpoint ...
    first = run_module("src.distill", *LONG, "iterations=3", run_dir=run_dir)
    assert first.returncode == 0, first.stderr
    before = load_distilled(run_dir / "distilled.safetensors")
    # ... that a second, killed run in the same directory must not damage.
    proc = start(run_dir, "seed=1")
    mtime = last_checkpoint(run_dir).stat().st_mtime_ns
    deadline = time.monotonic() + 300
    while last_checkpoint(run_dir).stat().st_mtime_ns == mtime:  # it is writing checkpoints
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=60)
    ckpt = load_checkpoint(last_checkpoint(run_dir))  # whole: the old one or a newer one
    assert ckpt[RUN_STATE_KEY]["completed_iterations"] >= 2
    after = load_distilled(run_dir / "distilled.safetensors")
    assert torch.equal(after.images, before.images)


def test_a_full_disk_while_checkpointing_fails_cleanly_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch
):
    from src.pipelines.distill import run_distill
    from tests.helpers import compose_cfg

    out = tmp_path / "run"
    cfg = compose_cfg("distill", [*LONG, "iterations=6", f"paths.output_dir={out}"])
    import lightning.fabric.plugins.io.torch_io as torch_io

    real_save = torch_io._atomic_save
    calls = []

    def save(checkpoint, path):
        calls.append(1)
        if len(calls) >= 2:  # the first checkpoint fits, the second finds the disk full
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(checkpoint, path)

    monkeypatch.setattr(torch_io, "_atomic_save", save)
    with pytest.raises(CheckpointError, match="no space left on device.*previous checkpoint"):
        run_distill(cfg)
    monkeypatch.undo()
    assert load_checkpoint(last_checkpoint(out))[RUN_STATE_KEY]["completed_iterations"] == 2
    assert [p.name for p in last_checkpoint(out).parent.iterdir()] == ["last.ckpt"]


def test_a_full_disk_while_saving_the_set_keeps_the_old_one(tmp_path, monkeypatch):
    import src.io.distilled as distilled

    path = tmp_path / "distilled.safetensors"
    save_distilled(path, torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), {"dataset": "x"})

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(distilled, "save_file", full)
    with pytest.raises(OSError):
        save_distilled(path, torch.ones(2, 1, 4, 4), torch.tensor([0, 1]), {"dataset": "y"})
    monkeypatch.undo()
    kept = load_distilled(path)
    assert torch.equal(kept.images, torch.zeros(2, 1, 4, 4)) and kept.meta["dataset"] == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["distilled.json", "distilled.safetensors"]


class _Exploit:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Exploit(marker)}, bad)
    with pytest.raises(CheckpointError, match="safe load refuses"):
        load_checkpoint(bad)
    res = run_module("src.distill", *LONG, "iterations=2", f"resume={bad}", run_dir=tmp_path / "r")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: '{bad}' holds objects")
    assert not marker.exists()


def test_damaged_or_foreign_checkpoints_are_rejected(tmp_path):
    run_dir = tmp_path / "run"
    assert run_module("src.distill", *LONG, "iterations=2", run_dir=run_dir).returncode == 0
    good = last_checkpoint(run_dir)
    data = good.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(cut)
    ckpt = torch.load(good, weights_only=True)
    cases = {
        "lacks": {k: v for k, v in ckpt.items() if k != RUN_STATE_KEY},
        "syn_images": {**ckpt, "state_dict": {**ckpt["state_dict"], "syn_images": torch.zeros(3)}},
        "int64": {**ckpt, RUN_STATE_KEY: {**ckpt[RUN_STATE_KEY], "kept": torch.zeros(3)}},
        "completed_iterations": {**ckpt, RUN_STATE_KEY: {**ckpt[RUN_STATE_KEY],
                                                         "completed_iterations": "2"}},
    }  # fmt: skip
    for message, content in cases.items():
        path = tmp_path / f"{message}.ckpt"
        torch.save(content, path)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_a_truncated_or_retyped_distilled_file_is_rejected(tmp_path):
    path = tmp_path / "d.safetensors"
    save_distilled(path, torch.zeros(4, 1, 8, 8), torch.arange(4), {"dataset": "x"})
    data = path.read_bytes()
    for n in (4, 40, len(data) - 7):
        cut = tmp_path / f"cut{n}.safetensors"
        cut.write_bytes(data[:n])
        with pytest.raises(DistilledFileError, match="not a readable safetensors"):
            load_distilled(cut)
    from safetensors.torch import save_file

    wrong = {
        "exactly the tensors": {"images": torch.zeros(2, 1, 4, 4), "labels": torch.zeros(2),
                                "extra": torch.zeros(1)},
        "images must be float32": {"images": torch.zeros(2, 1, 4, 4, dtype=torch.float64),
                                   "labels": torch.zeros(2, dtype=torch.int64)},
        "labels must be int64": {"images": torch.zeros(2, 1, 4, 4),
                                 "labels": torch.zeros(3, dtype=torch.int64)},
    }  # fmt: skip
    for message, tensors in wrong.items():
        bad = tmp_path / "bad.safetensors"
        save_file(tensors, str(bad), metadata={"hdd": '{"format": "hdd-distilled/1"}'})
        with pytest.raises(DistilledFileError, match=message):
            load_distilled(bad)
