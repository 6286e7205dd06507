"""Pruning: scores, kept sizes, known answers, and the run integration."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from src.data import RealPool
from src.errors import ConfigError
from src.models import build_model, init_weights_
from src.pipelines.distill import run_distill
from src.pruning import (
    EuclideanPruning,
    FeatureCache,
    HyperbolicPruning,
    RandomPruning,
    averaged_features,
    centroid_scores,
    euclidean_scores,
    keep_lowest,
    origin_scores,
)
from src.rng import make_generator
from tests.helpers import TINY, compose_cfg


def _small_pool(per_class=(30, 50, 20)):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(labels), 1, 28, 28), generator=g, dtype=torch.uint8)
    return RealPool(images, labels, len(per_class), (0.5,), (0.25,))


def _factory():
    return build_model("convnet", 1, 3, (28, 28), width=8)


def test_scores_are_deterministic_for_a_seed():
    pool = _small_pool()
    prune = HyperbolicPruning(keep_ratio=0.2, num_nets=2)
    a = prune.scores(pool, _factory, make_generator(0, "prune"))
    b = prune.scores(pool, _factory, make_generator(0, "prune"))
    c = prune.scores(pool, _factory, make_generator(1, "prune"))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_features_are_averaged_over_the_networks():
    pool = _small_pool()
    one = averaged_features(pool, _factory, 1, make_generator(0, "p"))
    g = make_generator(0, "p")
    first = averaged_features(pool, _factory, 1, g)
    second = averaged_features(pool, _factory, 1, g)  # the generator moved on: next network
    both = averaged_features(pool, _factory, 2, make_generator(0, "p"))
    torch.testing.assert_close(one, first)
    torch.testing.assert_close(both, (first + second) / 2)


def test_features_are_each_networks_embedding_of_the_whole_pool():
    pool = _small_pool()  # 100 images: on a CPU embedded in pieces of 32
    features = averaged_features(pool, _factory, 1, make_generator(0, "p"))
    net = _factory().eval()
    init_weights_(net, make_generator(0, "p"))
    with torch.no_grad():
        whole = net.embed(pool.get(torch.arange(len(pool))))
    torch.testing.assert_close(features, whole, rtol=1e-5, atol=1e-6)


def test_repeated_scoring_reuses_the_features_and_moves_the_generator_alike(monkeypatch):
    import src.pruning.scores as scores

    calls = []
    real_init = scores.init_weights_
    monkeypatch.setattr(
        scores, "init_weights_", lambda net, g: calls.append(1) or real_init(net, g)
    )
    pool, cache = _small_pool(), FeatureCache()
    g1, g2 = make_generator(5, "prune"), make_generator(5, "prune")
    first = averaged_features(pool, _factory, 2, g1, cache=cache)
    second = averaged_features(pool, _factory, 2, g2, cache=cache)
    assert len(calls) == 2  # the second call embedded nothing
    assert torch.equal(first, second)
    assert torch.equal(g1.get_state(), g2.get_state())
    assert torch.rand(1, generator=g1).item() == torch.rand(1, generator=g2).item()
    # Other pool content, or another generator state, is computed afresh.
    changed = _small_pool()
    changed.images[0] = 255 - changed.images[0]
    averaged_features(changed, _factory, 2, make_generator(5, "prune"), cache=cache)
    averaged_features(changed, _factory, 2, make_generator(6, "prune"), cache=cache)
    assert len(calls) == 6
    averaged_features(pool, _factory, 2, make_generator(5, "prune"))  # no cache: no reuse
    assert len(calls) == 8


@pytest.mark.parametrize("ratio", [0.1, 0.2, 0.5, 1.0])
def test_kept_set_has_the_requested_size_per_class(ratio):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate((30, 50, 20))])
    kept = keep_lowest(torch.rand(len(labels), dtype=torch.float64), labels, 3, ratio, minimum=2)
    counts = torch.bincount(labels[kept], minlength=3).tolist()
    assert counts == [max(2, math.ceil(ratio * n - 1e-9)) for n in (30, 50, 20)]
    assert torch.equal(kept, torch.sort(kept).values) and len(set(kept.tolist())) == len(kept)


def test_centroid_criterion_keeps_the_points_nearest_the_centroid():
    # Per class: 8 points tightly around a direction, 2 far-off outliers in other directions.
    g = torch.Generator().manual_seed(3)
    feats, labels = [], []
    for c in range(2):
        base = torch.zeros(16)
        base[c] = 4.0
        core = base + 0.05 * torch.randn(8, 16, generator=g)
        outliers = 4.0 * torch.eye(16)[[5 + c, 9 + c]] + base * 0.1
        feats += [core, outliers]
        labels += [torch.full((10,), c)]
    features, labels = torch.cat(feats), torch.cat(labels)
    scores = centroid_scores(features, labels, 2, k=1.0)
    kept = keep_lowest(scores, labels, 2, keep_ratio=0.8)
    expected = torch.tensor([*range(0, 8), *range(10, 18)])
    assert torch.equal(kept, expected)


def test_origin_and_euclidean_criteria_match_their_closed_forms():
    features = torch.tensor([[3.0, 0.0], [0.5, 0.0], [0.0, 2.0], [1.0, 1.0]])
    labels = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(
        origin_scores(features, labels, 1, k=1.0), features.norm(dim=1).double()
    )
    mean = features.mean(0)
    torch.testing.assert_close(
        euclidean_scores(features, labels, 1, k=1.0), (features - mean).norm(dim=1).double()
    )


def test_random_pruning_and_controls_keep_the_same_ratio():
    pool = _small_pool()
    sizes = set()
    for pruner in (RandomPruning(0.2), EuclideanPruning(keep_ratio=0.2, num_nets=1),
                   HyperbolicPruning("origin", keep_ratio=0.2, num_nets=1)):  # fmt: skip
        kept = pruner.select(pool, _factory, make_generator(0, "prune"))
        sizes.add(tuple(torch.bincount(pool.labels[kept], minlength=3).tolist()))
    assert sizes == {(6, 10, 4)}
    again = RandomPruning(0.2).select(pool, _factory, make_generator(0, "prune"))
    assert torch.equal(again, RandomPruning(0.2).select(pool, _factory, make_generator(0, "prune")))


def test_bad_pruning_settings_are_config_errors():
    with pytest.raises(ConfigError, match="criterion"):
        HyperbolicPruning("euclidean")
    with pytest.raises(ConfigError, match="keep_ratio"):
        keep_lowest(torch.rand(4), torch.zeros(4, dtype=torch.long), 1, 0.0)
    with pytest.raises(ConfigError, match="keep_ratio"):
        keep_lowest(torch.rand(4), torch.zeros(4, dtype=torch.long), 1, 1.5)


def test_pruned_pool_takes_proportionally_less_memory():
    pool = _small_pool((50, 50))
    kept = RandomPruning(0.2).select(pool, _factory, make_generator(0, "prune"))
    assert pool.subset(kept).nbytes() * 5 == pool.nbytes()


def test_run_distills_from_the_kept_pool_and_saves_the_indices(tmp_path):
    cfg = compose_cfg(
        "distill", [*TINY, "prune=random", "prune.keep_ratio=0.1", f"paths.output_dir={tmp_path}"]
    )
    results = run_distill(cfg)
    assert results["kept_per_class"] == [600] * 10
    kept = load_file(tmp_path / "kept_indices.safetensors")["indices"]
    assert len(kept) == 6000 and len(set(kept.tolist())) == 6000
    meta = json.loads((tmp_path / "distilled.json").read_text())
    assert meta["prune"] == {"name": "random", "keep_ratio": 0.1}
    assert meta["loss"]["name"] == "lorentz" and meta["loss"]["k"] == 1.0
