"""Send a run's pictures and distilled set to the loggers that can hold them (W&B)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import Logger, WandbLogger

from src.viz import save_image_grid

PICTURES = ("distilled.png", "poincare_before.png", "poincare_after.png", "levels.png")


def publish_outputs(loggers: list[Logger], out: Path, name: str, step: int) -> None:
    """Log the run's PNGs as images and its distilled set (+ JSON) as a W&B artifact.

    Called once at the end of a run; it also finishes the W&B run.
    """
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        for picture in PICTURES:
            if (out / picture).is_file():
                logger.log_image(key=f"images/{Path(picture).stem}", images=[str(out / picture)],
                                 step=step)  # fmt: skip
        import wandb

        artifact = wandb.Artifact(name=name, type="distilled-set")
        for file in ("distilled.safetensors", "distilled.json", "kept_indices.safetensors"):
            if (out / file).is_file():
                artifact.add_file(str(out / file))
        logger.experiment.log_artifact(artifact)
        offline = bool(getattr(logger.experiment, "offline", False))
        run_dir = Path(logger.experiment.dir).parent
        logger.experiment.finish()  # flush the (offline) run: `wandb sync` can upload it now
        if offline:
            print(f"W&B run saved offline; upload it with: wandb sync {run_dir}")


class GridOverTime(L.Callback):
    """Every ``every`` iterations, write the synthetic set's grid to ``grids/`` and log it.

    W&B shows the logged grids as a slider over iterations; the PNGs serve everyone else.
    """

    def __init__(self, out: Path, every: int, denormalize: Any, num_classes: int) -> None:
        self.dir = Path(out) / "grids"
        self.every = every
        self.denormalize = denormalize
        self.num_classes = num_classes

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs, batch, idx) -> None:
        """Render and log the grid when the iteration just finished is due."""
        done = pl_module.completed_iterations
        if done % self.every or not trainer.is_global_zero:
            return
        images, labels = pl_module.synthetic_set()
        path = self.dir / f"iteration_{done:06d}.png"
        save_image_grid(path, self.denormalize(images), labels, self.num_classes)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="images/grid", images=[str(path)], step=trainer.global_step)


def sweep_identity() -> dict[str, str]:
    """W&B ``group`` (the sweep) and ``name`` (its point) of this Hydra job; empty outside Hydra."""
    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        sweep = f"{hc.job.name}-{Path(hc.sweep.dir).name}"
        return {"group": sweep, "name": hc.job.override_dirname or str(hc.job.num)}
    return {"name": Path(hc.runtime.output_dir).name}
