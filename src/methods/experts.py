"""A pool of expert networks trained on the real data, cached on disk (DANCE, IID, NCFM).

N networks are trained for E epochs each; every expert's weights at its start (epoch 0), its
end and any chosen epochs are kept, so a method can load them or interpolate between two:
``theta = l * theta_init + (1 - l) * theta_end``. The pool lives in
``<data_dir>/experts/<dataset>__<network>__<hash>/`` with its protocol in ``protocol.json``;
the hash is of the data set, the network's layers and the protocol (epochs, optimiser,
schedule, augmentation, seed), so another protocol is another pool, as for the whole-set
cache. Training resumes
after its last finished epoch (one checkpoint per expert, replaced atomically).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from src.augment import DSA
from src.data import RealPool
from src.errors import CheckpointError, ConfigError
from src.io import atomic_path, atomic_write_text
from src.models import init_weights_
from src.rng import make_generator


@dataclass(frozen=True)
class ExpertProtocol:
    """How every expert of a pool is trained (DANCE's pretraining by default).

    SGD (lr, momentum, weight decay) on random batches of the whole training set, the
    learning rate times ``gamma`` at each fraction of ``epochs`` in ``milestones``; each batch
    augmented per image by DSA (``augment``: its strategy, null none) and, with probability
    ``cutmix``, mixed by CutMix with lambda ~ U(0, 1).
    """

    num_experts: int = 5
    epochs: int = 60
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    milestones: tuple[float, ...] = (2 / 3, 5 / 6)
    gamma: float = 0.2
    augment: str | None = "color_crop"
    cutmix: float = 0.5
    save_epochs: tuple[int, ...] = field(default=())
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_experts < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("experts: num_experts, epochs and batch_size must be >= 1")
        if not self.lr > 0 or not 0 <= self.cutmix <= 1:
            raise ConfigError("experts: lr must be > 0 and cutmix in [0, 1]")
        bad = [e for e in self.save_epochs if not 0 <= e <= self.epochs]
        if bad:
            raise ConfigError(f"experts.save_epochs must lie in [0, {self.epochs}], got {bad}")

    def kept_epochs(self) -> list[int]:
        """The epochs whose weights are kept: the start, the chosen ones and the end."""
        return sorted({0, *self.save_epochs, self.epochs})

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based) under the step schedule."""
        drops = sum(epoch >= round(m * self.epochs) for m in self.milestones)
        return self.lr * self.gamma**drops


def pool_dir(data_dir: str | Path, dataset: str, net: nn.Module, protocol: ExpertProtocol) -> Path:
    """Where the pool of ``net``'s architecture trained under ``protocol`` is kept: the hash
    covers the data set, the network's layers (its repr) and the protocol."""
    key = {"dataset": dataset, "network": repr(net), **asdict(protocol)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return Path(data_dir) / "experts" / f"{dataset}__{type(net).__name__.lower()}__{digest[:12]}"


def expert_protocol(settings: Mapping[str, Any]) -> ExpertProtocol:
    """The protocol of a config's ``experts`` node (lists become tuples)."""
    values = {
        k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v
        for k, v in settings.items()
    }
    try:
        return ExpertProtocol(**values)
    except TypeError as exc:
        raise ConfigError(f"method.experts: {exc}") from None


def pool_for(
    data_dir: str | Path,
    dataset: str,
    net_factory: Callable[[], nn.Module],
    protocol: ExpertProtocol,
) -> ExpertPool:
    """The pool of ``net_factory``'s network on ``dataset`` under ``protocol``, in its place."""
    net = net_factory()
    directory = pool_dir(data_dir, dataset, net, protocol)
    return ExpertPool(directory, protocol, net_factory, {"dataset": dataset, "network": repr(net)})


class ExpertPool:
    """The experts of one protocol: trained on first use, then read from disk."""

    def __init__(
        self,
        directory: Path,
        protocol: ExpertProtocol,
        net_factory: Callable[[], nn.Module],
        description: dict,
    ) -> None:
        self.directory = Path(directory)
        self.protocol = protocol
        self.net_factory = net_factory
        self.description = description | {"protocol": asdict(protocol)}

    def weights_path(self, expert: int, epoch: int) -> Path:
        """The file of expert ``expert``'s weights after ``epoch`` epochs."""
        return self.directory / f"expert{expert}" / f"epoch{epoch}.safetensors"

    def is_trained(self) -> bool:
        """Whether every expert's kept weights are on disk."""
        epochs = self.protocol.kept_epochs()
        return all(
            self.weights_path(i, e).is_file()
            for i in range(self.protocol.num_experts)
            for e in epochs
        )

    def ensure_trained(self, pool: RealPool, device: torch.device | str = "cpu") -> None:
        """Train (or finish training) every expert that is not on disk yet, with progress."""
        if self.is_trained():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.directory / "protocol.json", json.dumps(self.description, indent=2) + "\n"
        )
        p = self.protocol
        with Progress() as progress:
            task = progress.add_task("training experts", total=p.num_experts * p.epochs)
            for i in range(p.num_experts):
                for _ in self._train_expert(i, pool, device):
                    progress.advance(task)

    def state(self, expert: int, epoch: int) -> dict[str, Tensor]:
        """Expert ``expert``'s weights after ``epoch`` epochs (a kept epoch)."""
        path = self.weights_path(expert, epoch)
        if not path.is_file():
            raise CheckpointError(f"expert weights '{path}' are missing: train the pool first")
        return load_file(str(path))

    def _train_expert(self, i: int, pool: RealPool, device: torch.device | str) -> Iterator[int]:
        """Train expert ``i`` from its last finished epoch; yields after each epoch."""
        p = self.protocol
        net = self.net_factory().to(device)
        opt = torch.optim.SGD(
            net.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay
        )
        gen = make_generator(p.seed, f"expert{i}")
        start = self._restore(i, net, opt, gen)
        if start == 0:
            init_weights_(net, make_generator(p.seed, f"expert{i}-init"))
            self._keep(i, 0, net)
        else:
            yield from range(start)  # the finished epochs, for the progress bar
        augment = DSA(strategy=p.augment) if p.augment else None
        for epoch in range(start, p.epochs):
            for group in opt.param_groups:
                group["lr"] = p.lr_at(epoch)
            net.train()
            for idx in torch.randperm(len(pool), generator=gen).split(p.batch_size):
                idx = idx.to(pool.images.device)
                train_step(net, opt, pool.get(idx), pool.labels[idx], gen, augment, p.cutmix)
            if epoch + 1 in p.kept_epochs():
                self._keep(i, epoch + 1, net)
            self._save_progress(i, epoch + 1, net, opt, gen)
            yield epoch

    def _keep(self, i: int, epoch: int, net: nn.Module) -> None:
        path = self.weights_path(i, epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))

    def _progress_path(self, i: int) -> Path:
        return self.directory / f"expert{i}" / "progress.pt"

    def _save_progress(self, i: int, epoch: int, net: nn.Module, opt, gen) -> None:
        state = {
            "epoch": epoch,
            "net": net.state_dict(),
            "opt": opt.state_dict(),
            "gen": gen.get_state(),
        }
        with atomic_path(self._progress_path(i)) as tmp:
            torch.save(state, tmp)

    def _restore(self, i: int, net: nn.Module, opt, gen) -> int:
        """Load expert ``i``'s training state; returns its finished epochs (0: none)."""
        path = self._progress_path(i)
        if not path.is_file():
            return 0
        state = torch.load(path, weights_only=True, map_location="cpu")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        return int(state["epoch"])


def train_step(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    gen: torch.Generator,
    augment: DSA | None,
    cutmix: float,
) -> Tensor:
    """One SGD step on a real batch, augmented per image and (with probability ``cutmix``)
    CutMix-ed; returns the loss (detached)."""
    if augment is not None:
        x = augment(x, gen)
    target_b, lam = None, 1.0
    if cutmix > 0 and float(torch.rand((), generator=gen)) < cutmix:
        x, target_b, lam = cut_mix(x, y, gen)
    opt.zero_grad(set_to_none=True)
    logits = net(x)
    loss = lam * F.cross_entropy(logits, y)
    if target_b is not None:
        loss = loss + (1 - lam) * F.cross_entropy(logits, target_b)
    loss.backward()
    opt.step()
    return loss.detach()


def cut_mix(x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, float]:
    """CutMix: a box of each image replaced by the same box of a permuted batch; returns the
    images, the permuted labels and the area fraction kept (lambda ~ U(0, 1), adjusted to
    the box as clipped)."""
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=gen).to(x.device)
    lam = float(torch.rand((), generator=gen))
    cut = (1 - lam) ** 0.5
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (), generator=gen))
    cx = int(torch.randint(0, w, (), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    mixed = x.clone()
    mixed[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    kept = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return mixed, y[perm], kept


def interpolate(init: dict[str, Tensor], end: dict[str, Tensor], mix: float) -> dict[str, Tensor]:
    """``mix * init + (1 - mix) * end`` for every floating-point tensor (others from ``end``)."""
    return {
        k: mix * init[k] + (1 - mix) * v if v.is_floating_point() else v.clone()
        for k, v in end.items()
    }
