"""N ConvNets in one training step, three ways: a loop, ``torch.vmap``, grouped convolutions.

``EvalModule`` trains its networks in a Python loop. The two stacked alternatives the
performance issue names are built here from the same networks, checked to compute the same
logits, and timed side by side; whichever wins on a device would move into ``src``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state
from torch.nn.utils import skip_init

from bench import sync
from src.models import build_model, init_weights_
from src.rng import make_generator


class GroupedConvNets(nn.Module):
    """N default ConvNets (instance norm, ReLU, average pooling) as one network.

    Input (N, B, C, H, W), network n's batch at index n; output logits (N, B, classes).
    Network n's channels are group n of every ``Conv2d(groups=N)``; the per-channel
    ``GroupNorm``, ReLU and pooling act channel by channel anyway, and the classifiers are
    one batched matrix product. Its parameters are copies, for timing, not for training the
    originals.
    """

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.n = len(nets)
        layers: list[nn.Module] = []
        for group in zip(*(net.features for net in nets), strict=True):
            first = group[0]
            if isinstance(first, nn.Conv2d):
                conv = skip_init(
                    nn.Conv2d,
                    self.n * first.in_channels,
                    self.n * first.out_channels,
                    first.kernel_size,
                    padding=first.padding,
                    groups=self.n,
                )
                layers.append(_stacked_affine(conv, group, torch.cat))
            elif isinstance(first, nn.GroupNorm) and first.num_groups == first.num_channels:
                channels = self.n * first.num_channels
                norm = skip_init(nn.GroupNorm, channels, channels, eps=first.eps)
                layers.append(_stacked_affine(norm, group, torch.cat))
            elif isinstance(first, (nn.ReLU, nn.AvgPool2d)):
                layers.append(copy.deepcopy(first))
            else:
                raise TypeError(f"no grouped form of {type(first).__name__}")
        self.features = nn.Sequential(*layers)
        self.classifier = _stacked_affine(
            nn.Module(), [net.classifier for net in nets], torch.stack
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, B, classes) of network n on its batch x[n]."""
        n, b = x.shape[:2]
        h = self.features(x.transpose(0, 1).flatten(1, 2))  # (B, N*C, H, W)
        h = h.view(b, n, -1).transpose(0, 1)  # (N, B, D)
        head = self.classifier
        return torch.baddbmm(head.bias[:, None], h, head.weight.transpose(1, 2))


def _stacked_affine(
    target: nn.Module, group: tuple[nn.Module, ...] | list[nn.Module], join: Callable
) -> nn.Module:
    """``target`` with weight and bias = ``join`` of the group's (copied, no init drawn)."""
    target.weight = nn.Parameter(join([m.weight.detach() for m in group]))
    target.bias = nn.Parameter(join([m.bias.detach() for m in group]))
    return target


def stacked_step_times(
    images: Tensor, labels: Tensor, info, num_models: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds of one training step (forward + backward) of ``num_models`` ConvNets, 3 ways.

    A Python loop over the networks (what ``EvalModule`` does), one ``torch.vmap`` over their
    stacked weights (``torch.func.stack_module_state``), and ``GroupedConvNets``; each
    network gets its own batch, as in evaluation. The three are checked to compute the same
    logits, then alternated per repeat so all see the same machine load.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    nets = []
    for i in range(num_models):
        net = build_model("convnet", info.channels, info.num_classes, info.im_size)
        nets.append(init_weights_(net, make_generator(i, "bench-stack")).to(device))
    params, buffers = stack_module_state(nets)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    skeleton = copy.deepcopy(nets[0]).to("meta")
    batched = torch.vmap(lambda p, b, x: functional_call(skeleton, (p, b), (x,)))
    grouped = GroupedConvNets(nets).to(device)
    x, y = images.to(device), labels.to(device)
    shuffles = torch.stack([torch.randperm(len(x), generator=make_generator(i, "bench-batch"))
                            for i in range(num_models)]).to(device)  # fmt: skip
    xs, ys = x[shuffles], y[shuffles]  # (N, B, ...) a batch per network

    def backward(logits: Tensor) -> Tensor:
        F.cross_entropy(logits.flatten(0, 1), ys.flatten()).backward()
        return logits

    variants: dict[str, Callable[[], Tensor]] = {
        "loop": lambda: backward(torch.stack([net(b) for net, b in zip(nets, xs, strict=True)])),
        "vmap": lambda: backward(batched(params, buffers, xs)),
        "grouped": lambda: backward(grouped(xs)),
    }
    reference = variants["loop"]()  # also the warm-up
    for name in ("vmap", "grouped"):
        if not torch.allclose(variants[name](), reference, rtol=1e-4, atol=1e-4):
            raise AssertionError(f"the {name} networks compute other logits than the loop")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times
