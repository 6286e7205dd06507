"""A distillation run by stages: prepare (data, pruning, the method), fit, finish; what the
finish stage saves, pictures, evaluates and records is in src/pipelines/outputs.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.compute.sharding import ClassShardCheck, job_classes, run_classes, shards_classes
from src.data import DatasetInfo, RealPool
from src.errors import ConfigError, NonFiniteLossError, RunInterrupted
from src.evaluation.callback import PeriodicEvaluation
from src.io import atomic_write_text, metadata_path, save_distilled
from src.io.checkpoint import (
    EXECUTION_SETTINGS,
    RUN_STATE_KEY,
    check_same_run,
    last_checkpoint,
    load_resumable,
    resolve_resume,
    run_identity,
    setting_differences,
)
from src.io.csv_logger import ResumableCSVLogger
from src.io.lock import run_lock
from src.methods.base import init_generator, initial_synthetic_set
from src.methods.checkpoint import RunCheckpoint
from src.pipelines.components import (
    build_evaluator,
    build_loggers,
    build_method,
    instantiate,
    load_data,
    model_factory,
    trainer_factory,
)
from src.pipelines.cross_arch import eval_augment
from src.pipelines.diagnostics import GeometryDiagnostics, geometry_probe
from src.pipelines.merge import gather_rank_shards, rank_shard
from src.pipelines.outputs import (
    distilled_metadata,
    evaluate_final,
    format_results,
    log_results,
    save_set,
)
from src.pipelines.progress import progress_bar
from src.pipelines.publish import GridOverTime, publish_outputs
from src.pipelines.run import DISTILLED_FILE, RESULTS_FILE, Run
from src.pipelines.study import add_to_record, recorded_results, tensor_digest
from src.pipelines.validate import validate_distill
from src.pruning import FeatureCache, NoPruning, Pruner
from src.rng import make_generator


def finished_results(cfg: DictConfig) -> dict | None:
    """The results of the finished run in ``cfg``'s output_dir (None if it has not finished).

    Raises ConfigError when that run was made with other result-defining settings, so a
    benchmark that reuses finished runs never mixes budgets.
    """
    out = Path(cfg.paths.output_dir)
    done, meta = out / RESULTS_FILE, metadata_path(out / DISTILLED_FILE)
    if not done.is_file():
        return None
    saved = json.loads(meta.read_text()).get("config", {}) if meta.is_file() else {}
    now = OmegaConf.to_container(cfg, resolve=True)
    changed = setting_differences(saved, now, ignore=EXECUTION_SETTINGS)
    if changed:
        raise ConfigError(
            f"'{out}' holds a finished run made with other settings "
            f"({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''}): "
            "choose another output directory"
        )
    return json.loads(done.read_text())


def prune_pool(
    cfg: DictConfig,
    info: DatasetInfo,
    pool: RealPool,
    pruner: Pruner,
    features: FeatureCache | None = None,
) -> Tensor | None:
    """Indices of the real samples distillation may use (None: all), logged per class."""
    if isinstance(pruner, NoPruning):
        return None
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"
    pool.to(device)
    minimum = cfg.ipc * cfg.method.get("factor", 1) ** 2  # init needs that many per class
    generator = make_generator(cfg.seed, "prune", device)
    kept = pruner.select(pool, model_factory(cfg.model, info), generator, minimum, features).cpu()
    counts = torch.bincount(pool.labels.cpu()[kept], minlength=info.num_classes).tolist()
    print(f"pruning ({pruner.name}) keeps {len(kept)} of {len(pool)} real images: {counts}")
    pool.to("cpu")
    return kept


def geometry_diagnostics(
    cfg: DictConfig, info: DatasetInfo, pool: RealPool, factor: int
) -> GeometryDiagnostics | None:
    """The run's geometry diagnostics callback (None when ``geometry.diagnostics`` is off)."""
    if not cfg.geometry.get("diagnostics", True):
        return None
    probe = geometry_probe(cfg, info, pool, factor)
    return GeometryDiagnostics(probe, cfg.geometry.get("every"), list(cfg.geometry.classes))


def record_failure(cfg: DictConfig, exc: Exception) -> None:
    """Write ``failed.json`` (the error and what the job was) into a failed job's directory."""
    from src.io.hydra_callbacks import FAILED_FILE
    from src.pipelines.report import job_identity  # report reads what this writes

    out = Path(cfg.paths.output_dir)
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    record = job_identity(cfg) | {"error": str(exc), "overrides": list(overrides)}
    record["seed"] = cfg.get("seed")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / FAILED_FILE, json.dumps(record, indent=2) + "\n")


def run_distill(cfg: DictConfig, features: FeatureCache | None = None) -> dict:
    """Distill ``cfg.dataset`` into ``cfg.ipc`` images per class; returns the results dict.

    The output directory is locked for the whole run (one writer; under DDP rank 0 holds it).
    ``features`` keeps the pruning features of earlier runs in this process for later ones.
    """
    validate_distill(cfg)
    if rank_zero_only.rank != 0:
        return distill(cfg, features)
    done = reused_results(cfg)
    if done is not None:
        return done
    with run_lock(cfg.paths.output_dir):
        results = distill(cfg, features)
    add_to_record(cfg, results)
    return results


def reused_results(cfg: DictConfig) -> dict | None:
    """A study's run already done: in its record, or (``reuse``) finished in its directory."""
    done = recorded_results(cfg)
    if done is None and cfg.get("reuse"):
        done = finished_results(cfg)
        if done is not None:
            add_to_record(cfg, done)
    if done is not None:
        print(f"reused the finished run {cfg.paths.output_dir}: {done.get('label')}")
    return done


def distill(cfg: DictConfig, features: FeatureCache | None = None) -> dict:
    """The run itself (``run_distill`` without the directory lock): prepare, fit, finish."""
    run = prepare(cfg, features)
    trainer, seconds = fit(run)
    return finish(run, trainer, seconds)


def prepare(cfg: DictConfig, features: FeatureCache | None = None) -> Run:
    """Load the data, prune it or take the interrupted run's pool, build every piece."""
    out = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # only for third-party code
    info, pool = load_data(cfg.dataset, train=True)
    job_shard = cfg.get("classes") is not None  # one job of a class-sharded sweep
    baseline = None
    if cfg.eval.random_baseline and not job_shard:
        # Plain real images of the same IPC, drawn before any pruning: for DM exactly the set
        # init=real starts from (a factorised method packs these and more of the same draw).
        streams = init_generator(cfg.seed, cfg.method.get("streams", "per_class"), pool.classes)
        baseline = initial_synthetic_set(pool, cfg.ipc, "real", streams)
    pruner = instantiate(cfg.prune, "prune")
    resume_from, resumed_at, kept, seconds_before = resume_state(cfg, out)
    if resume_from is None:
        kept = prune_pool(cfg, info, pool, pruner, features)
    if kept is not None:
        pool = pool.subset(kept)  # the full pool is released: memory shrinks with the ratio
    classes = run_classes(cfg.get("classes"), cfg.trainer, info.num_classes)
    if len(classes) < info.num_classes:
        pool = pool.with_classes(classes)  # this job's or rank's classes alone
    module = build_method(cfg, info, pool)
    run = Run(cfg, out, info, pool, pruner, module, module.synthetic_set(), baseline, kept)
    run.resume_from, run.resumed_at, run.seconds_before = resume_from, resumed_at, seconds_before
    run.sharded = job_shard or shards_classes(cfg.trainer)
    if job_shard:
        print(f"class shard {classes[0]}-{classes[-1]} ({len(classes)} classes): not evaluated; "
              "merge the shards (python -m src.merge) and evaluate the merged set")  # fmt: skip
    elif cfg.eval.final or cfg.eval.random_baseline or len(cfg.eval.eval_at) > 0:
        _, run.test_pool = load_data(cfg.dataset, train=False)
        augment = eval_augment(cfg, module.augment)
        run.evaluate = build_evaluator(cfg, info, run.test_pool, augment)
        run.periodic = PeriodicEvaluation(list(cfg.eval.eval_at), run.evaluate)
    if not run.sharded:  # pictures and diagnostics read classes a shard may not hold
        run.diagnostics = geometry_diagnostics(cfg, info, pool, module.factor)
    run.loggers = build_loggers(cfg.get("logger"))
    for logger in run.loggers:
        if resumed_at is not None and isinstance(logger, ResumableCSVLogger):
            logger.resume_at(resumed_at)  # the metrics of the first part stay in its file
        # The resolved config, so a dashboard can filter and group runs.
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return run


def resume_state(
    cfg: DictConfig, out: Path
) -> tuple[Path | None, int | None, Tensor | None, float]:
    """The checkpoint to resume from, its completed iterations, kept pool (or Nones) and the
    distillation seconds spent before it (0 for checkpoints that predate the count)."""
    resume_from = resolve_resume(cfg.resume, out)
    if resume_from is None:
        return None, None, None, 0.0
    resume_from, ckpt = load_resumable(resume_from)
    check_same_run(ckpt, cfg, resume_from)
    state = ckpt[RUN_STATE_KEY]
    resumed_at = int(state["completed_iterations"])
    print(f"resuming from {resume_from} after iteration {resumed_at}")
    # The pruned pool of the interrupted run, not a re-scoring.
    return resume_from, resumed_at, state["kept"], float(state.get("distill_seconds", 0.0))


def fit(run: Run) -> tuple[L.Trainer, float]:
    """Optimise the synthetic set; a SIGTERM or a non-finite loss ends it with a clear error."""
    cfg, out, module = run.cfg, run.out, run.module
    checkpoint = RunCheckpoint(
        last_checkpoint(out), cfg.checkpoint.every, run_identity(cfg), run.kept, run.seconds_before
    )
    callbacks = [progress_bar(), checkpoint, *(c for c in (run.periodic, run.diagnostics) if c)]
    if not run.sharded:
        callbacks.append(
            GridOverTime(out, cfg.grid_every, run.pool.denormalize, run.info.num_classes)
        )
    if shards_classes(cfg.trainer):
        callbacks.append(ClassShardCheck(job_classes(cfg.get("classes"), run.info.num_classes)))
    trainer = trainer_factory(cfg.trainer)(
        max_epochs=1,  # the loader holds one item per outer iteration
        callbacks=callbacks,
        logger=run.loggers or False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    try:
        trainer.fit(module, ckpt_path=run.resume_from, weights_only=True)
    except SIGTERMException:
        raise RunInterrupted(
            f"stopped by SIGTERM after iteration {module.completed_iterations}; the checkpoint "
            f"is {checkpoint.path}: rerun with resume={checkpoint.path} (or resume=auto)"
        ) from None
    except NonFiniteLossError as exc:
        # The images were not updated by the failing step: keep that last finite set (a
        # class-sharded rank: its own classes' part).
        sharded_rank = shards_classes(cfg.trainer)
        target = rank_shard(out, trainer.global_rank) if sharded_rank else out / DISTILLED_FILE
        if trainer.is_global_zero or sharded_rank:
            meta = distilled_metadata(cfg, run.info, module, run.pruner) | {"stopped": str(exc)}
            save_distilled(target, *module.synthetic_set(), meta)
        raise NonFiniteLossError(f"{exc}; the last finite set is in {target}") from None
    return trainer, checkpoint.seconds()


def finish(run: Run, trainer: L.Trainer, seconds: float) -> dict:
    """Save the set and its pictures, evaluate it, write results.json, publish."""
    cfg, info, module = run.cfg, run.info, run.module
    images, labels = module.synthetic_set()
    meta = distilled_metadata(cfg, info, module, run.pruner)
    if shards_classes(cfg.trainer):
        images, labels = gather_rank_shards(run.out, trainer, images, labels, meta)
    results: dict = {"label": meta["label"], "dataset": info.name, "ipc": cfg.ipc}
    results |= {"seed": cfg.seed, "distill_seconds": seconds, "threads": torch.get_num_threads()}
    results["set_sha256"] = tensor_digest(images)  # two settings may distil the very same set
    if not trainer.is_global_zero:
        return results  # under DDP rank 0 alone writes, pictures and evaluates
    save_set(run, images, labels, meta)
    if run.kept is not None:
        results["kept_per_class"] = run.pool.counts.tolist()
    if run.diagnostics:
        results["geometry"] = run.diagnostics.summary()
    if run.periodic:
        results["during"] = {str(k): v.as_dict() for k, v in sorted(run.periodic.history.items())}
    results |= evaluate_final(run, images, labels)
    atomic_write_text(run.out / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    if run.evaluate is not None:
        print(format_results(results))
    log_results(run.loggers, results, module.completed_iterations)
    artifact = re.sub(r"[^a-z0-9._]+", "-", f"{info.name}-ipc{cfg.ipc}-{meta['label'].lower()}")
    publish_outputs(run.loggers, run.out, artifact, module.completed_iterations)
    return results
