"""IDM and IDM+HDD (Zhao et al., CVPR 2023): a pool of progressively trained networks.

Per outer iteration (docs/method.md §5):
1. every ``add_net_every`` iterations (from iteration 0) a fresh network joins the
   pool (which starts with 3), the oldest leaving beyond ``pool_size``;
2. ``match_nets`` random pool networks match the classes (one batched pass each); a
   class's loss is the matching loss plus, with ``syn_ce``, ``ce_weight`` x the network's
   running real-batch accuracy in percent x the cross-entropy of its synthetic images;
   the image optimiser then steps once per class, as IDM does, so momentum also moves
   the other classes' images between their own steps;
3. ``train_nets`` random pool networks train ``train_steps`` SGD steps on random
   real batches of ``train_batch`` images (no augmentation), updating their accuracy.

Difference from the reference loop: all classes' gradients are taken at the iteration's
starting images in one batched pass; the reference recomputes class c after the
momentum-only moves of the c earlier class steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from src.checks import Problems
from src.compute import Compute, check_chunk
from src.errors import CheckpointError
from src.io.checkpoint import RUN_STATE_KEY
from src.matching.terms import total
from src.methods.base import SyntheticSetModule
from src.models import init_weights_
from src.rng import make_generator

INITIAL_NETS = 3


class NetPool(nn.Module):
    """Networks with their own SGD optimisers and running training accuracies."""

    def __init__(self, lr: float, net_decay: bool) -> None:
        super().__init__()
        self.nets = nn.ModuleList()
        self.optimizers: list[torch.optim.Optimizer] = []
        self.correct: list[int] = []
        self.seen: list[int] = []
        self.lr = lr
        self.net_decay = net_decay

    def __len__(self) -> int:
        return len(self.nets)

    def push(self, net: nn.Module, capacity: int) -> None:
        """Add a network (dropping the oldest beyond ``capacity``)."""
        if len(self.nets) >= capacity:
            del self.nets[0]
            for state in (self.optimizers, self.correct, self.seen):
                del state[0]
        self.nets.append(net)
        if self.net_decay:
            opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        else:
            opt = torch.optim.SGD(net.parameters(), lr=self.lr)
        self.optimizers.append(opt)
        self.correct.append(0)
        self.seen.append(0)

    def extra_state(self) -> dict:
        """Optimiser states and accuracy counters of every network."""
        return {
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "correct": list(self.correct),
            "seen": list(self.seen),
        }

    def load_extra_state(self, state: dict) -> None:
        """Restore ``extra_state`` into a pool of the same size."""
        if len(state["correct"]) != len(self.nets):
            raise CheckpointError(
                f"checkpoint pool has {len(state['correct'])} networks, this one {len(self.nets)}"
            )
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.correct = [int(v) for v in state["correct"]]
        self.seen = [int(v) for v in state["seen"]]

    def accuracy(self, i: int) -> float:
        """Running training accuracy of network ``i`` in percent (0 before any training)."""
        return 100.0 * self.correct[i] / self.seen[i] if self.seen[i] else 0.0

    def reset_accuracy(self) -> None:
        """Start new accuracy windows (IDM resets its meters at every evaluation interval)."""
        self.correct = [0] * len(self.nets)
        self.seen = [0] * len(self.nets)

    def train_step(self, i: int, x: Tensor, y: Tensor, chunk: int | str = "auto") -> None:
        """One SGD step of network ``i`` on a real batch; accumulates its accuracy.

        ``chunk`` (``method.train_chunk``): images per forward and backward, the gradients
        accumulating into the whole batch's.
        """
        net, opt = self.nets[i], self.optimizers[i]
        net.train()
        opt.zero_grad(set_to_none=True)
        compute = Compute.for_net(chunk, "method.train_chunk", net, x.device, "train")
        _, correct = compute.cross_entropy_backward(net, x, y)
        counts = torch.stack([correct, torch.tensor(len(y), device=x.device)])
        if _distributed():
            # Under DDP every rank trains its copy on its own batch: averaging the gradients
            # (and pooling the accuracy counts) keeps the copies identical.
            world = dist.get_world_size()
            for param in net.parameters():
                dist.all_reduce(param.grad)
                param.grad /= world
            dist.all_reduce(counts := counts.to(x.device))
        opt.step()
        self.correct[i] += int(counts[0])
        self.seen[i] += int(counts[1])


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class IDMModule(SyntheticSetModule):
    """IDM's outer iteration with any matching loss (euclidean = IDM, lorentz = IDM+HDD)."""

    label = "IDM"

    def __init__(
        self,
        *args: Any,
        pool_size: int = 100,
        add_net_every: int = 30,
        match_nets: int = 1,
        train_nets: int = 2,
        train_steps: int = 10,
        train_batch: int = 256,
        train_chunk: int | str = "auto",
        lr_net: float = 0.01,
        net_decay: bool = True,
        syn_ce: bool = True,
        ce_weight: float = 0.5,
        acc_reset_interval: int = 100,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "idm")
        kwargs.setdefault("factor", 2)
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False
        self.pool_size = pool_size
        self.add_net_every = add_net_every
        self.match_nets = match_nets
        self.train_nets = train_nets
        self.train_steps = train_steps
        self.train_batch = train_batch
        self.train_chunk = check_chunk(train_chunk, "method.train_chunk")
        self.syn_ce = syn_ce
        self.ce_weight = ce_weight
        self.acc_reset_interval = acc_reset_interval
        self.net_pool = NetPool(lr_net, net_decay)

    def setup(self, stage: str) -> None:
        """Generators, the real pool on the device, and the initial networks."""
        super().setup(stage)
        self.gen_pick = make_generator(self.seed, "pick")
        if len(self.net_pool) == 0:
            for _ in range(INITIAL_NETS):
                self.push_net()
        self._hide_pool_from_ddp()

    def _hide_pool_from_ddp(self) -> None:
        """Keep DDP's gradient hooks off the pool: it trains with its own steps and averaging.

        DDP then manages the synthetic images alone; networks pushed after wrapping are
        never registered with it.
        """
        names = [f"net_pool.{n}" for n, _ in self.net_pool.named_parameters()]
        names += [f"net_pool.{n}" for n, _ in self.net_pool.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, names)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD on the synthetic images (lr_img, momentum 0.5)."""
        return torch.optim.SGD([self.syn_images], lr=self.lr_img, momentum=self.momentum)

    def push_net(self) -> None:
        """A freshly initialised network joins the pool."""
        net = init_weights_(self.net_factory().to(self.device), self.gen_net)
        self.net_pool.push(net, self.pool_size)

    def generators(self) -> dict[str, torch.Generator]:
        """The shared generators plus the one that picks pool networks."""
        return super().generators() | {"pick": self.gen_pick}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also save the pool's optimiser states and accuracy counters (weights: state dict)."""
        super().on_save_checkpoint(checkpoint)
        checkpoint[RUN_STATE_KEY]["net_pool"] = self.net_pool.extra_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Grow the pool to the saved size (weights follow), then restore the rest."""
        pool_state = checkpoint[RUN_STATE_KEY]["net_pool"]
        while len(self.net_pool) < len(pool_state["correct"]):
            self.push_net()  # placeholder weights; the generator state is restored below
        super().on_load_checkpoint(checkpoint)
        self.net_pool.load_extra_state(pool_state)
        self._hide_pool_from_ddp()  # the pool grew before DDP wraps the module

    def _pick(self, n: int) -> list[int]:
        return torch.randperm(len(self.net_pool), generator=self.gen_pick)[:n].tolist()

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """The shared settings, and the pool's."""
        super().check_settings(settings, p)
        for key in ("pool_size", "add_net_every", "match_nets", "train_batch"):
            p.int_at_least(settings.get(key), f"method.{key}", 1)
        p.int_at_least(settings.get("acc_reset_interval"), "method.acc_reset_interval", 1)
        p.attempt(lambda: check_chunk(settings.get("train_chunk", "auto"), "method.train_chunk"))
        p.int_at_least(settings.get("train_nets"), "method.train_nets", 0)
        p.int_at_least(settings.get("train_steps"), "method.train_steps", 0)
        p.positive(settings.get("lr_net"), "method.lr_net")
        p.in_range(settings.get("ce_weight"), "method.ce_weight", 0, float("inf"), "l")

    def class_terms(self, i: int) -> dict[str, Tensor]:
        """Per-class terms (each (C,)) under pool network ``i``: matching (+ weighted
        synthetic cross-entropy, ``syn_ce``)."""
        net = self.net_pool.nets[i]
        net.eval()
        net.requires_grad_(False)  # only the images learn here
        try:
            terms, logits = self.match(net, with_logits=self.syn_ce)
        finally:
            net.requires_grad_(True)
        if self.syn_ce:
            labels = self.syn_labels.repeat_interleave(self.factor**2)
            ce = F.cross_entropy(logits, labels, reduction="none")
            per_class = ce.view(self.num_classes, -1).mean(dim=1)
            terms["syn_ce"] = self.ce_weight * self.net_pool.accuracy(i) * per_class
        return terms

    def class_losses(self, i: int) -> Tensor:
        """Per-class loss (C,) under pool network ``i``: the sum of its terms."""
        return total(self.class_terms(i))

    def train_pool_networks(self) -> None:
        """Train ``train_nets`` random pool networks on random real batches."""
        for i in self._pick(self.train_nets):
            for _ in range(self.train_steps):
                idx = torch.randint(len(self.pool), (self.train_batch,), generator=self.gen_sample)
                idx = idx.to(self.device)
                x, y = self.pool.get(idx), self.pool.labels[idx]
                self.net_pool.train_step(i, x, y, self.train_chunk)

    def outer_iteration(self, it: int) -> Tensor:
        """One IDM outer iteration (``it`` counts from 0; global_step counts C per network)."""
        if it % self.add_net_every == 0:
            self.push_net()
        if it % self.acc_reset_interval == 0 and it > 0:
            self.net_pool.reset_accuracy()
        loss_sum = torch.zeros((), device=self.device)
        term_sums: dict[str, Tensor] = {}
        for i in self._pick(self.match_nets):
            terms = self.class_terms(i)
            losses = total(terms)
            loss = losses.sum()
            self.check_finite(loss)
            self.step_per_class(losses)
            loss_sum = loss_sum + loss.detach()
            for name, values in terms.items():
                term_sums[name] = term_sums.get(name, 0) + values.detach()
        self.train_pool_networks()
        self.log_terms(term_sums)
        self.log("train/loss", loss_sum.float(), prog_bar=True)
        self.log("train/pool_size", float(len(self.net_pool)))
        return loss_sum
