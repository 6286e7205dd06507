"""Checkpoint and resume: a run stopped at iteration t and resumed ends bitwise equal."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch

from src.errors import CheckpointError, ConfigError, RunInterrupted
from src.io import load_distilled
from src.io.checkpoint import RUN_STATE_KEY, last_checkpoint, load_checkpoint
from src.methods.checkpoint import RunCheckpoint
from src.pipelines.distill import finished_results, run_distill
from tests.helpers import TINY, TINY_EXPERTS, compose_cfg

QUIET = ["eval.final=false", "eval.random_baseline=false", "geometry.enabled=false"]
METHODS = {
    "dm": ["method=dm"],
    "idm": ["method=idm", "ipc=1", "method.add_net_every=2", "method.train_steps=2",
            "method.train_batch=32"],
    "datadam": ["method=datadam"],
    "dance": ["method=dance", *TINY_EXPERTS],
    # plateau_patience 0: the AdamW learning rate is halved along the way, so the
    # scheduler's state must resume too.
    "ncfm": ["method=ncfm", "method.num_freqs=64", "method.plateau_patience=0", *TINY_EXPERTS],
    "iid": ["method=iid", "method.experts.model=convnet_d1", "method.experts.num_experts=2",
            "method.experts.epochs=1", "prune=random", "prune.keep_ratio=0.02"],
}  # fmt: skip


def _overrides(method: str, loss: str, out, *extra: str) -> list[str]:
    if method == "ncfm" and loss != "euclidean":
        extra = ("method.mean_weight=1.0", *extra)  # HDD is NCFM's added term
    return [*TINY, *METHODS[method], f"loss={loss}", "iterations=7", "checkpoint.every=2", *QUIET,
            f"paths.output_dir={out}", *extra]  # fmt: skip


def _sigterm_at(monkeypatch, iteration: int, after_check: bool = False) -> None:
    """Deliver SIGTERM to this process when ``iteration`` has just finished.

    ``after_check``: once the checkpoint callback has looked at that iteration, so the save
    must come from the interruption itself.
    """
    original = RunCheckpoint.on_train_batch_end

    def hook(self, trainer, pl_module, *args):
        if after_check:
            original(self, trainer, pl_module, *args)
        if pl_module.completed_iterations == iteration:
            os.kill(os.getpid(), signal.SIGTERM)
        if not after_check:
            original(self, trainer, pl_module, *args)

    monkeypatch.setattr(RunCheckpoint, "on_train_batch_end", hook)


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
@pytest.mark.parametrize("method", ["dm", "idm", "datadam", "dance", "iid", "ncfm"])
def test_stopped_and_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, method, loss):
    whole = run_distill(compose_cfg("distill", _overrides(method, loss, tmp_path / "whole")))
    assert whole["label"]
    expected = load_distilled(tmp_path / "whole" / "distilled.safetensors")

    out = tmp_path / "split"
    with monkeypatch.context() as m:
        _sigterm_at(m, 3)  # between checkpoints (every 2): the SIGTERM checkpoint is used
        with pytest.raises(RunInterrupted, match="after iteration 3"):
            run_distill(compose_cfg("distill", _overrides(method, loss, out)))
    assert not (out / "distilled.safetensors").exists()
    ckpt = load_checkpoint(last_checkpoint(out))
    assert ckpt[RUN_STATE_KEY]["completed_iterations"] == 3
    if method == "idm":  # the pool grew to 3 + 2 networks by iteration 3 (pushed at 0 and 2)
        assert len(ckpt[RUN_STATE_KEY]["net_pool"]["correct"]) == 5

    run_distill(compose_cfg("distill", _overrides(method, loss, out, "resume=auto")))
    resumed = load_distilled(out / "distilled.safetensors")
    assert resumed.meta["iteration"] == expected.meta["iteration"] == 7
    assert torch.equal(resumed.images, expected.images)
    assert torch.equal(resumed.labels, expected.labels)
    # The synthetic set did move: equality is not that of two untouched initial sets.
    initial = run_distill(
        compose_cfg("distill", _overrides(method, loss, tmp_path / "one", "iterations=1"))
    )
    assert initial and not torch.equal(
        load_distilled(tmp_path / "one" / "distilled.safetensors").images, expected.images
    )


def test_sigterm_after_the_checkpoint_check_still_saves_that_iteration(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", whole)))
    out = tmp_path / "split"
    with monkeypatch.context() as m:
        _sigterm_at(m, 5, after_check=True)
        with pytest.raises(RunInterrupted, match="after iteration 5"):
            run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out)))
    assert load_checkpoint(last_checkpoint(out))[RUN_STATE_KEY]["completed_iterations"] == 5
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, "resume=auto")))
    a = load_distilled(whole / "distilled.safetensors").images
    assert torch.equal(load_distilled(out / "distilled.safetensors").images, a)


def _metrics_rows(out) -> list[dict]:
    with open(out / "csv" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def _crash_at(monkeypatch, iteration: int) -> None:
    """Raise an error once ``iteration`` has finished, before its checkpoint is written."""
    original = RunCheckpoint.on_train_batch_end

    def hook(self, trainer, pl_module, *args):
        if pl_module.completed_iterations == iteration:
            raise RuntimeError("simulated crash")
        original(self, trainer, pl_module, *args)

    monkeypatch.setattr(RunCheckpoint, "on_train_batch_end", hook)


@pytest.mark.parametrize("stop", ["sigterm", "crash"])
def test_a_resumed_run_continues_its_metrics_file(tmp_path, monkeypatch, stop):
    logged = ["logger=csv", "trainer.log_every_n_steps=1"]
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", tmp_path / "whole", *logged)))
    out = tmp_path / "split"
    with monkeypatch.context() as m:
        if stop == "sigterm":  # checkpoint at 3, rows up to there
            _sigterm_at(m, 3)
        else:  # last checkpoint at 4 (every 2), rows logged up to 4: that row is redone
            _crash_at(m, 6)
        with pytest.raises((RunInterrupted, RuntimeError)):
            run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, *logged)))
    logged_steps = {int(r["step"]) for r in _metrics_rows(out)}
    assert max(logged_steps) == (2 if stop == "sigterm" else 4), logged_steps
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, *logged, "resume=auto")))
    # One row per iteration, none lost or repeated, with the uninterrupted run's losses.
    rows = _metrics_rows(out)
    assert [r["step"] for r in rows if r["train/loss"]] == [str(i) for i in range(7)]
    assert rows == _metrics_rows(tmp_path / "whole")


def test_resume_restores_the_pruned_pool_without_rescoring(tmp_path, monkeypatch):
    prune = ["prune=hyperbolic", "prune.keep_ratio=0.1", "prune.num_nets=1"]
    whole = tmp_path / "whole"
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", whole, *prune)))
    out = tmp_path / "split"
    with monkeypatch.context() as m:
        _sigterm_at(m, 4)
        with pytest.raises(RunInterrupted):
            run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, *prune)))
    import src.pipelines.distill as pipeline

    def no_scoring(*args, **kwargs):
        raise AssertionError("a resumed run must reuse the saved kept indices")

    monkeypatch.setattr(pipeline, "prune_pool", no_scoring)
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, *prune, "resume=auto")))
    a = load_distilled(whole / "distilled.safetensors").images
    assert torch.equal(load_distilled(out / "distilled.safetensors").images, a)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        _sigterm_at(m, 2)
        with pytest.raises(RunInterrupted):
            run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out)))
    other = _overrides("dm", "euclidean", out, "resume=auto")
    with pytest.raises(CheckpointError, match="other settings.*loss"):
        run_distill(compose_cfg("distill", other))
    with pytest.raises(ConfigError, match="no checkpoint"):  # found by the validation
        run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, "resume=/nonexistent")))


def test_resume_auto_without_a_checkpoint_starts_fresh(tmp_path):
    out = tmp_path / "fresh"
    run_distill(
        compose_cfg("distill", _overrides("dm", "lorentz", out, "resume=auto", "iterations=2"))
    )
    assert load_distilled(out / "distilled.safetensors").meta["iteration"] == 2
    assert load_checkpoint(last_checkpoint(out))[RUN_STATE_KEY]["completed_iterations"] == 2


def test_compare_with_resume_reuses_finished_runs_and_resumes_the_rest(tmp_path, monkeypatch):
    import src.pipelines.compare as compare

    overrides = [*TINY, "iterations=4", "checkpoint.every=1", *QUIET[2:]]
    first = compare.run_compare(overrides, ["euclidean"], [0], tmp_path, resume=True)
    calls = []
    real = compare.run_distill
    monkeypatch.setattr(
        compare, "run_distill", lambda cfg, *rest: calls.append(cfg) or real(cfg, *rest)
    )
    again = compare.run_compare(overrides, ["euclidean", "lorentz"], [0], tmp_path, resume=True)
    assert [c.loss._target_.rsplit(".", 1)[-1] for c in calls] == ["LorentzCentroidLoss"]
    assert again["summary"]["runs"]["euclidean"] == first["summary"]["runs"]["euclidean"]
    assert all(c.resume == "auto" for c in calls)


def test_a_finished_run_is_reused_only_under_the_same_result_settings(tmp_path):
    out = tmp_path / "done"
    base = [*TINY, "loss=euclidean", f"paths.output_dir={out}", *QUIET[2:]]
    assert finished_results(compose_cfg("distill", base)) is None  # nothing finished yet
    results = run_distill(compose_cfg("distill", base))
    # How a run is executed or watched does not change its numbers: reused.
    same = compose_cfg("distill", [*base, "checkpoint.every=7", "method.compile_net=true"])
    assert finished_results(same) == results
    # So is a run saved before the network, data set and Trainer groups named their builders.
    meta_file = out / "distilled.json"
    meta = json.loads(meta_file.read_text())
    for group in ("model", "dataset", "trainer"):
        node = meta["config"][group]
        assert "_target_" in node
        meta["config"][group] = {k: v for k, v in node.items() if not k.startswith("_")}
    meta_file.write_text(json.dumps(meta))
    assert finished_results(same) == results
    # A different budget (or loss, or evaluation) would: refused, naming the setting.
    for change, key in [("iterations=5", "iterations"), ("eval.epochs=3", "eval.epochs"),
                        ("loss=lorentz", "loss._target_")]:  # fmt: skip
        with pytest.raises(ConfigError, match=rf"other settings \(.*{key}"):
            finished_results(compose_cfg("distill", [*base, change]))


def test_a_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch, capsys):
    every = ["checkpoint.every=1"]
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", tmp_path / "whole", *every)))
    out = tmp_path / "split"
    with monkeypatch.context() as m:
        _sigterm_at(m, 3)
        with pytest.raises(RunInterrupted):
            run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, *every)))
    last = last_checkpoint(out)
    previous = last.with_name("previous.ckpt")
    assert load_checkpoint(previous)[RUN_STATE_KEY]["completed_iterations"] == 2
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    capsys.readouterr()
    resumed = ["resume=auto", *every]
    run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, *resumed)))
    said = [line for line in capsys.readouterr().out.splitlines() if "checkpoint" in line]
    assert f"resuming from the previous checkpoint '{previous}' instead" in said[0]
    assert said[0].startswith(f"'{last}' is not a readable checkpoint")
    assert said[1] == f"resuming from {previous} after iteration 2"
    a = load_distilled(tmp_path / "whole" / "distilled.safetensors").images
    assert torch.equal(load_distilled(out / "distilled.safetensors").images, a)


def test_a_damaged_checkpoint_without_a_predecessor_is_an_error(tmp_path):
    out = tmp_path / "run"
    last = last_checkpoint(out)
    last.parent.mkdir(parents=True)
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"last\.ckpt. (is not a readable|holds objects)"):
        run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, "resume=auto")))


def _with_iterations(overrides: list[str], n: int) -> list[str]:
    return [o for o in overrides if not o.startswith("iterations=")] + [f"iterations={n}"]


@pytest.mark.parametrize("loss", ["euclidean", "lorentz"])
@pytest.mark.parametrize("method", ["dm", "idm"])
def test_a_finished_run_extends_to_more_iterations_like_an_uninterrupted_one(
    tmp_path, method, loss
):
    logged = ["logger=csv", "trainer.log_every_n_steps=1"]
    whole = tmp_path / "whole"
    run_distill(compose_cfg("distill", _overrides(method, loss, whole, *logged)))
    out = tmp_path / "extended"
    first = _with_iterations(_overrides(method, loss, out, *logged), 3)
    if method == "dm" and loss == "lorentz":  # the first run's final evaluation finished, too
        first = [o for o in first if o != "eval.final=false"]
    run_distill(compose_cfg("distill", first))
    assert load_distilled(out / "distilled.safetensors").meta["iteration"] == 3
    run_distill(compose_cfg("distill", _overrides(method, loss, out, *logged, "resume=auto")))
    extended = load_distilled(out / "distilled.safetensors")
    expected = load_distilled(whole / "distilled.safetensors")
    assert extended.meta["iteration"] == 7
    assert torch.equal(extended.images, expected.images)
    steps = [r["step"] for r in _metrics_rows(out) if r["train/loss"]]
    assert steps == [str(i) for i in range(7)]
    whole_losses = [r["train/loss"] for r in _metrics_rows(whole) if r["train/loss"]]
    assert [r["train/loss"] for r in _metrics_rows(out) if r["train/loss"]] == whole_losses


def test_a_checkpoint_without_loop_state_cannot_be_extended(tmp_path):
    out = tmp_path / "run"
    run_distill(compose_cfg("distill", _with_iterations(_overrides("dm", "lorentz", out), 3)))
    ckpt = load_checkpoint(last_checkpoint(out))
    del ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    torch.save(ckpt, last_checkpoint(out))
    with pytest.raises(CheckpointError, match="after iteration 3 .* cannot be extended"):
        run_distill(compose_cfg("distill", _overrides("dm", "lorentz", out, "resume=auto")))


@pytest.mark.parametrize("hard_links", [True, False])
def test_keeping_the_previous_checkpoint_leaves_last_in_place(tmp_path, monkeypatch, hard_links):
    from src.io.checkpoint import keep_previous

    last = tmp_path / "last.ckpt"
    last.write_bytes(b"iteration 2")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(last.is_file())  # at every rename: is there a last.ckpt to resume from?
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    if not hard_links:
        monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError("no links")))
    keep_previous(last)
    assert (tmp_path / "previous.ckpt").read_bytes() == b"iteration 2"
    assert last.is_file() == hard_links  # without hard links, until the new one is renamed in
    assert seen == [True] and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["previous.ckpt", *(["last.ckpt"] if hard_links else [])]
    )


def test_a_resumed_run_reports_the_seconds_of_every_part(tmp_path, monkeypatch):
    out = tmp_path / "split"
    with monkeypatch.context() as m:
        _sigterm_at(m, 3)
        with pytest.raises(RunInterrupted):
            run_distill(compose_cfg("distill", _overrides("dm", "euclidean", out)))
    path = last_checkpoint(out)
    ckpt = load_checkpoint(path)
    assert ckpt[RUN_STATE_KEY]["distill_seconds"] > 0
    # Say the first part took 1000 s: the finished run reports that plus its own time.
    ckpt[RUN_STATE_KEY]["distill_seconds"] = 1000.0
    torch.save(ckpt, path)
    results = run_distill(compose_cfg("distill", _overrides("dm", "euclidean", out, "resume=auto")))
    assert 1000.0 < results["distill_seconds"] < 1000.0 + 600.0
