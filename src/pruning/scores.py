"""Scores of real samples for pruning: lower means more prototypical (kept first)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from src.compute import Compute
from src.data import RealPool
from src.hyperbolic import distance_to_origin, lift, lorentz_centroid, lorentz_distance
from src.models import init_weights_


class FeatureCache:
    """The averaged features of the last pool scored, with the generator state after them.

    Held by whoever runs several prunings in one process (``src.distill`` under Hydra's basic
    launcher, the pruning benchmark), so a keep_ratio or criterion sweep embeds the pool once.
    """

    def __init__(self) -> None:
        self._key: str | None = None
        self._value: tuple[Tensor, Tensor] | None = None

    def get(self, key: str) -> tuple[Tensor, Tensor] | None:
        """(features, generator state after computing them) stored under ``key``, or None."""
        return self._value if key == self._key else None

    def put(self, key: str, features: Tensor, end_state: Tensor) -> None:
        """Remember ``features`` under ``key``, forgetting the previous entry."""
        self._key, self._value = key, (features.clone(), end_state)


def features_key(pool: RealPool, net: nn.Module, num_nets: int, generator: torch.Generator) -> str:
    """What the averaged features depend on: pool content, architecture, count, generator state."""
    digest = hashlib.sha1()
    digest.update(pool.content_digest().encode())
    digest.update(repr(net).encode())
    digest.update(f"{num_nets}|{pool.device}|".encode())
    digest.update(generator.get_state().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def averaged_features(
    pool: RealPool,
    net_factory: Callable[[], nn.Module],
    num_nets: int,
    generator: torch.Generator,
    batch_size: int = 1024,
    cache: FeatureCache | None = None,
) -> Tensor:
    """Embed every pool image with ``num_nets`` random networks; mean feature (N, D), float32.

    Images go forward at most ``batch_size`` at a time (fewer on a CPU: ``src.compute``).
    Given a ``cache`` holding the features of the same inputs and generator state, returns
    those and leaves the generator where the computation would have.
    """
    net = net_factory().to(pool.device).eval()
    key = features_key(pool, net, num_nets, generator) if cache is not None else ""
    if cache is not None and (hit := cache.get(key)) is not None:
        features, end_state = hit
        generator.set_state(end_state)
        return features.clone()
    compute = Compute.for_net("auto", "prune", net, pool.device, "embed").or_chunk(batch_size)
    indices = torch.arange(len(pool), device=pool.device)
    total: Tensor | None = None
    for _ in range(num_nets):
        init_weights_(net, generator)
        feats = compute.forward(lambda idx: net.embed(pool.get(idx)), indices)
        total = feats if total is None else total + feats
    features = total / num_nets
    if cache is not None:
        cache.put(key, features, generator.get_state())
    return features


def _per_class(features: Tensor, labels: Tensor, num_classes: int, score) -> Tensor:
    scores = torch.empty(len(features), dtype=torch.float64, device=features.device)
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        if len(idx):
            scores[idx] = score(features[idx])
    return scores


def centroid_scores(features: Tensor, labels: Tensor, num_classes: int, k: float) -> Tensor:
    """Geodesic distance of each lifted feature to its class's Lorentz centroid."""

    def score(f: Tensor) -> Tensor:
        x = lift(f, k)
        return lorentz_distance(x, lorentz_centroid(x, k).unsqueeze(0), k)

    return _per_class(features, labels, num_classes, score)


def origin_scores(features: Tensor, labels: Tensor, num_classes: int, k: float) -> Tensor:
    """Geodesic distance of each lifted feature to the origin (its hierarchy level)."""
    return distance_to_origin(lift(features, k), k)


def euclidean_scores(features: Tensor, labels: Tensor, num_classes: int, k: float) -> Tensor:
    """Euclidean distance of each feature to its class mean."""
    return _per_class(features.double(), labels, num_classes, lambda f: (f - f.mean(0)).norm(dim=1))


CRITERIA = {"centroid": centroid_scores, "origin": origin_scores, "euclidean": euclidean_scores}
