"""Scores of real samples for pruning: lower means more prototypical (kept first)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from src.data import RealPool
from src.hyperbolic import distance_to_origin, lift, lorentz_centroid, lorentz_distance
from src.models import init_weights_
from src.models.chunks import CPU_EMBED_CHUNK, map_pieces, resolve_chunk

# The features of the last pool scored in this process. A keep_ratio or criterion sweep in
# one process (Hydra's basic launcher, the pruning benchmark) embeds the pool only once.
_LAST_FEATURES: dict[str, tuple[Tensor, Tensor]] = {}


def features_key(pool: RealPool, net: nn.Module, num_nets: int, generator: torch.Generator) -> str:
    """What the averaged features depend on: pool content, architecture, count, generator state."""
    digest = hashlib.sha1()
    digest.update(pool.images.cpu().numpy().tobytes())
    digest.update(pool.labels.cpu().numpy().tobytes())
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
) -> Tensor:
    """Embed every pool image with ``num_nets`` random networks; mean feature (N, D), float32.

    Images go forward ``batch_size`` at a time, on a CPU ``CPU_EMBED_CHUNK`` at a time on the
    piece workers (their feature maps then stay in cache). A repeated call with the same
    inputs and generator state returns the remembered features and leaves the generator
    where the computation would have.
    """
    net = net_factory().to(pool.device).eval()
    key = features_key(pool, net, num_nets, generator)
    if key in _LAST_FEATURES:
        features, end_state = _LAST_FEATURES[key]
        generator.set_state(end_state)
        return features.clone()
    chunk = resolve_chunk("auto", "prune", net, pool.device, CPU_EMBED_CHUNK) or batch_size
    pieces = torch.arange(len(pool), device=pool.device).split(chunk)
    total: Tensor | None = None
    for _ in range(num_nets):
        init_weights_(net, generator)
        feats = torch.cat(map_pieces(lambda idx: net.embed(pool.get(idx)), pieces, pool.device))
        total = feats if total is None else total + feats
    features = total / num_nets
    _LAST_FEATURES.clear()
    _LAST_FEATURES[key] = (features.clone(), generator.get_state())
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
