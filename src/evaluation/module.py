"""EvalModule: trains freshly initialised networks on a distilled set (docs/method.md §8)."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from src.augment import DSA
from src.compute import Compute, check_chunk
from src.data import RealPool
from src.evaluation.protocol import EvalProtocol
from src.models import init_weights_
from src.rng import make_generator


class EvalModule(L.LightningModule):
    """Trains ``num_models`` fresh networks on (images, labels) and tests them on real data.

    The schedule is counted in optimizer steps: ``epochs * ceil(N / batch_size)``
    steps, learning rate x0.1 after half of them, so a 100-image set trained for
    1000 epochs costs 1000 steps and no per-epoch framework work. Each network
    sees its own shuffling and its own DSA draws, and has its own parameters, so
    one optimiser over all of them trains them exactly as separately. How a batch goes
    through a network (``train_chunk``, ``test_chunk``: whole, or some images at a time
    on a CPU) is a ``src.compute`` plan; a split backward adds its gradients to ``.grad``
    directly, which the CPU's precisions allow (no loss scaling from ``manual_backward``).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        test_pool: RealPool | None,
        model_factory: Callable[[], nn.Module],
        augment: DSA | None,
        protocol: EvalProtocol,
        test_batch_size: int = 1024,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # for the chunked backward
        self.register_buffer("images", images.detach().clone().float())
        self.register_buffer("labels", labels.detach().clone().long())
        self.test_pool = test_pool
        self.augment = augment
        self.protocol = protocol
        self.batch_size = min(protocol.batch_size, len(images))
        self.test_batch_size = test_batch_size
        self.steps_per_epoch = math.ceil(len(images) / self.batch_size)
        self.total_steps = protocol.epochs * self.steps_per_epoch
        self.seed = protocol.seed
        self.train_chunk = check_chunk(protocol.train_chunk, "eval.train_chunk")
        self.test_chunk = check_chunk(protocol.test_chunk, "eval.test_chunk")
        init = make_generator(self.seed, "eval-init")
        self.nets = nn.ModuleList(
            init_weights_(model_factory(), init) for _ in range(protocol.num_models)
        )
        self.test_accuracies: list[float] = []

    def setup(self, stage: str) -> None:
        """Generators for shuffling and augmentation; the test pool moves to the device."""
        self.gen_shuffle = make_generator(self.seed, "eval-shuffle")
        self.gen_augment = make_generator(self.seed, "eval-augment")
        if self.test_pool is not None:
            self.test_pool.to(self.device)

    def on_train_start(self) -> None:
        """Images per forward and backward of each network, now that the device is known."""
        self._train_compute = [
            Compute.for_net(self.train_chunk, "eval.train_chunk", net, self.device, "train")
            for net in self.nets
        ]

    def train_dataloader(self) -> DataLoader:
        """One item per optimizer step; batches come from the in-memory set."""
        return DataLoader(range(self.total_steps), batch_size=None, shuffle=False)

    def configure_optimizers(self) -> dict:
        """SGD(lr, momentum, weight decay) with lr x0.1 at half of the steps."""
        opt = torch.optim.SGD(
            self.nets.parameters(),
            lr=self.protocol.lr,
            momentum=self.protocol.momentum,
            weight_decay=self.protocol.weight_decay,
        )
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [self.total_steps // 2], gamma=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _batch_indices(self, step: int) -> Tensor:
        """Indices (num_models, batch) of this step, reshuffled per network every epoch."""
        position = step % self.steps_per_epoch
        if position == 0:
            keys = torch.rand(len(self.nets), len(self.images), generator=self.gen_shuffle)
            self._order = keys.argsort(dim=1).to(self.device)
        return self._order[:, position * self.batch_size : (position + 1) * self.batch_size]

    def training_step(self, step: Tensor, batch_idx: int) -> None:
        """One SGD step of every network on the cross-entropy of its own augmented batch."""
        opt = self.optimizers()
        opt.zero_grad()
        order = self._batch_indices(int(batch_idx))
        loss = self.images.new_zeros(())
        for net, idx, compute in zip(self.nets, order, self._train_compute, strict=True):
            x = self.images[idx]
            if self.augment is not None:
                x = self.augment(x, self.gen_augment)
            net_loss, _ = compute.cross_entropy_backward(
                net, x, self.labels[idx], self.manual_backward
            )
            loss = loss + net_loss
        opt.step()
        self.lr_schedulers().step()
        self.log("eval/train_loss", loss / len(self.nets), prog_bar=True)

    def test_dataloader(self) -> DataLoader:
        """Chunks of test-set indices."""
        if self.test_pool is None:
            raise RuntimeError("EvalModule needs a test pool to test")
        return DataLoader(torch.arange(len(self.test_pool)), batch_size=self.test_batch_size)

    def on_test_epoch_start(self) -> None:
        """Reset the per-network correct counts; images per test forward of each network."""
        self._correct = torch.zeros(len(self.nets), dtype=torch.int64, device=self.device)
        self._seen = 0
        self._test_compute = [
            Compute.for_net(self.test_chunk, "eval.test_chunk", net, self.device, "embed")
            for net in self.nets
        ]

    def test_step(self, indices: Tensor, batch_idx: int) -> None:
        """Count each network's correct predictions on a chunk of the test set."""
        x = self.test_pool.get(indices)
        y = self.test_pool.labels[indices]
        for m, (net, compute) in enumerate(zip(self.nets, self._test_compute, strict=True)):
            self._correct[m] += (compute.forward(net, x).argmax(dim=1) == y).sum()
        self._seen += len(indices)

    def on_test_epoch_end(self) -> None:
        """Per-network test accuracies in percent, logged and kept in ``test_accuracies``."""
        acc = 100.0 * self._correct.double() / max(self._seen, 1)
        self.test_accuracies = acc.tolist()
        self.log("eval/test_acc_mean", acc.mean().float())
        self.log("eval/test_acc_std", acc.std(unbiased=False).float() if len(acc) > 1 else 0.0)
