"""Send a run's pictures and distilled set to the loggers that can hold them (W&B)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger

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
        logger.experiment.finish()  # flush the (offline) run: `wandb sync` can upload it now
