"""Geometry diagnostics of a run: at the start, every ``geometry.every`` iterations and at the end.

One seeded random network embeds a fixed sample of real images per class once; each
measurement embeds the current synthetic set and computes ``class_geometry`` per class
under the run's lift (README, "Geometry diagnostics").
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from src.compute import Compute
from src.data import DatasetInfo, RealPool
from src.data.factorize import expand
from src.hyperbolic.diagnostics import class_geometry
from src.models import init_weights_
from src.pipelines.components import build_loss, model_factory
from src.rng import make_generator

# Images embedded at a time: bounds the memory of the one real pass.
EMBED_CHUNK = 256


def diagnostic_lift(cfg: DictConfig) -> dict[str, Any]:
    """The lift the diagnostics use: the loss's own (HDD), else the method's HDD settings."""
    lift = build_loss(cfg.loss).geometry_lift()
    if lift is not None:
        return lift
    h = cfg.hdd
    return {"k": float(h.k), "kind": str(h.lift), "max_radius": h.max_radius}


class GeometryProbe:
    """Measures a synthetic set against a fixed real sample under one seeded random network."""

    def __init__(
        self,
        pool: RealPool,
        net_factory: Callable[[], nn.Module],
        lift: dict[str, Any],
        real_per_class: int,
        seed: int,
        factor: int = 1,
    ) -> None:
        self.lift = lift
        self.factor = factor
        self.pool = pool
        self.net = init_weights_(net_factory(), make_generator(seed, "geometry")).eval()
        n = min(real_per_class, pool.min_class_count())
        self.real_idx = pool.random_per_class(n, make_generator(seed, "geometry-sample"))
        self.real: Tensor | None = None  # embedded at the first measurement, on its device

    @torch.no_grad()
    def embed(self, images: Tensor, device: torch.device | str) -> Tensor:
        """Features of ``images`` under the probe's network, computed on ``device``, on the CPU."""
        self.net.to(device)
        return Compute(EMBED_CHUNK).forward(self.net.embed, images.to(device)).cpu()

    def measure(
        self, images: Tensor, labels: Tensor, device: torch.device | str = "cpu"
    ) -> dict[str, Any]:
        """Per-class diagnostics (lists over classes) and their class means."""
        if self.real is None:
            real = self.embed(self.pool.get(self.real_idx), device)
            self.real = real.view(*self.real_idx.shape, -1)
        images, labels = expand(images.detach().cpu(), labels.cpu(), self.factor)
        syn = self.embed(images, device)
        per_class = [
            class_geometry(self.real[c], syn[labels == c], **self.lift)
            for c in range(len(self.real))
        ]
        classes = {key: [d[key] for d in per_class] for key in per_class[0]}
        return {"classes": classes, "mean": {k: _mean(v) for k, v in classes.items()}}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def geometry_probe(
    cfg: DictConfig, info: DatasetInfo, pool: RealPool, factor: int = 1
) -> GeometryProbe:
    """The probe a run of ``cfg`` measures with (network and real sample from its seed)."""
    return GeometryProbe(
        pool,
        model_factory(cfg.model, info),
        diagnostic_lift(cfg),
        cfg.geometry.real_per_class,
        cfg.seed,
        factor,
    )


class GeometryDiagnostics(L.Callback):
    """Runs a GeometryProbe at the start, every ``every`` iterations and at the end.

    Class means go to every logger as ``geometry/<name>``, the listed ``classes`` also as
    ``geometry/c<class>/<name>``; ``history`` keeps every measurement (saved in checkpoints).
    """

    def __init__(self, probe: GeometryProbe, every: int | None, classes: list[int]) -> None:
        self.probe = probe
        self.every = every
        self.classes = classes
        self.history: dict[int, dict[str, Any]] = {}

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Measure the current set once per iteration count and log it."""
        step = pl_module.completed_iterations
        if step in self.history or not trainer.is_global_zero:
            return
        result = self.probe.measure(*pl_module.synthetic_set(), device=pl_module.device)
        self.history[step] = result
        metrics = {f"geometry/{k}": v for k, v in result["mean"].items() if v is not None}
        for c in self.classes:
            for k, values in result["classes"].items():
                if values[c] is not None:
                    metrics[f"geometry/c{c}/{k}"] = values[c]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The start of the run (a resumed run has its start in the restored history)."""
        if pl_module.completed_iterations == 0:
            self.measure(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        """Every ``every`` iterations."""
        if self.every and pl_module.completed_iterations % self.every == 0:
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The end of the run."""
        self.measure(trainer, pl_module)

    def summary(self) -> dict[str, Any]:
        """What results.json records: the lift, the first and last measurement, all means."""
        if not self.history:
            return {}
        steps = sorted(self.history)
        return {
            "lift": self.probe.lift,
            "start": self.history[steps[0]] | {"iteration": steps[0]},
            "end": self.history[steps[-1]] | {"iteration": steps[-1]},
            "history": {str(s): self.history[s]["mean"] for s in steps},
        }

    def state_dict(self) -> dict:
        """Measurements so far (kept across a resume)."""
        return {"history": {str(k): v for k, v in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore the measurements made before the checkpoint."""
        self.history = {int(k): v for k, v in state["history"].items()}
