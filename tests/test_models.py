"""Behaviour of the network package: shapes, registry, errors, seeded init, batch independence."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from src.errors import ConfigError
from src.models import MODELS, ConvNet, build_model, init_weights_

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# --- ConvNet ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_convnet_feature_is_2048_for_standard_shapes(shape: tuple[int, int, int]) -> None:
    model = build_model("convnet", shape[0], 10, shape[1:])
    x = torch.randn(3, *shape)
    assert model.feature_dim == 2048
    assert model.embed(x).shape == (3, 2048)
    assert model(x).shape == (3, 10)


def test_convnet_default_depth_follows_image_size() -> None:
    def depth(model: nn.Module) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in model.modules())

    assert depth(build_model("convnet", 3, 10, (32, 32))) == 3
    assert depth(build_model("convnet_bn", 3, 10, (64, 64))) == 4
    assert depth(build_model("convnet", 3, 10, (64, 64), depth=2, width=8)) == 2


def test_convnet_28x28_first_conv_pads_to_32x32() -> None:
    mnist = ConvNet(1, 10, (28, 28), width=8)
    cifar = ConvNet(3, 10, (32, 32), width=8)
    assert mnist.features[0].padding == (3, 3)
    assert cifar.features[0].padding == (1, 1)
    # First block = conv, norm, act, avgpool: 28 -> 32 -> 16, the same as 32 -> 32 -> 16.
    assert mnist.features[:4](torch.randn(2, 1, 28, 28)).shape == (2, 8, 16, 16)
    assert cifar.features[:4](torch.randn(2, 3, 32, 32)).shape == (2, 8, 16, 16)


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"])
@pytest.mark.parametrize("act", ["relu", "leakyrelu", "sigmoid", "gelu"])
@pytest.mark.parametrize("pool", ["avgpool", "maxpool", "none"])
def test_convnet_options_build_and_report_feature_dim(norm: str, act: str, pool: str) -> None:
    model = ConvNet(3, 5, (32, 32), width=8, depth=2, norm=norm, act=act, pool=pool)
    side = 8 if pool != "none" else 32
    assert model.feature_dim == 8 * side * side
    assert model.embed(torch.randn(2, 3, 32, 32)).shape == (2, model.feature_dim)


def test_convnet_norm_layer_types() -> None:
    def norm_of(norm: str) -> nn.Module:
        return ConvNet(3, 10, (32, 32), width=8, depth=1, norm=norm).features[1]

    inst = norm_of("instancenorm")
    assert isinstance(inst, nn.GroupNorm) and inst.num_groups == 8 and inst.affine
    group = norm_of("groupnorm")
    assert isinstance(group, nn.GroupNorm) and group.num_groups == 4
    assert isinstance(norm_of("batchnorm"), nn.BatchNorm2d)
    layer = norm_of("layernorm")
    assert isinstance(layer, nn.LayerNorm) and layer.normalized_shape == (8, 32, 32)
    assert isinstance(norm_of("none"), nn.Identity)


# --- registry --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_models_give_logits_and_embeddings(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape[0], 7, shape[1:])
    x = torch.randn(2, *shape)
    emb = model.embed(x)
    assert emb.shape == (2, model.feature_dim)
    assert model(x).shape == (2, 7)
    # forward is the classifier applied to the embedding.
    torch.testing.assert_close(model(x), model.classifier(emb))


def test_registry_variants_use_their_norm() -> None:
    assert any(
        isinstance(m, nn.BatchNorm2d) for m in build_model("vgg11_bn", 3, 10, (32, 32)).modules()
    )
    assert not any(
        isinstance(m, nn.BatchNorm2d) for m in build_model("vgg11", 3, 10, (32, 32)).modules()
    )
    assert any(
        isinstance(m, nn.GroupNorm) for m in build_model("resnet18", 3, 10, (32, 32)).modules()
    )
    alex = build_model("alexnet", 3, 10, (32, 32))
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for m in alex.modules())


def test_unknown_model_name_lists_choices() -> None:
    with pytest.raises(ConfigError, match="'lenet'") as info:
        build_model("lenet", 3, 10, (32, 32))
    assert ", ".join(sorted(MODELS)) in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"norm": "weirdnorm"}, "weirdnorm"),
        ({"act": "swishy"}, "swishy"),
        ({"pool": "lppool"}, "lppool"),
    ],
)
def test_unknown_convnet_option_raises_config_error(kwargs: dict[str, str], bad: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown .* '{bad}'; choose one of"):
        build_model("convnet", 3, 10, (32, 32), **kwargs)


def test_unknown_norm_for_other_families_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="'layernorm'"):
        build_model("resnet18", 3, 10, (32, 32), norm="layernorm")
    with pytest.raises(ConfigError, match="'groupnorm'.*none, batchnorm, instancenorm"):
        build_model("alexnet", 3, 10, (32, 32), norm="groupnorm")


def test_unknown_option_or_conflicting_variant_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="width"):
        build_model("alexnet", 3, 10, (32, 32), width=64)
    with pytest.raises(ConfigError, match="depth"):
        build_model("convnet_d2", 3, 10, (32, 32), depth=3)
    with pytest.raises(ConfigError, match="norm"):
        build_model("convnet_bn", 3, 10, (32, 32), norm="instancenorm")
    # Base names take any option; a suffixed variant accepts its own fixed value again.
    ln = build_model("convnet", 3, 10, (32, 32), width=8, norm="layernorm", act="gelu")
    assert any(isinstance(m, nn.LayerNorm) for m in ln.modules())
    assert any(isinstance(m, nn.GELU) for m in ln.modules())
    d2 = build_model("convnet_d2", 3, 10, (32, 32), depth=2, width=8, norm="batchnorm")
    assert d2.feature_dim == 8 * 8 * 8


# --- seeded initialisation -------------------------------------------------------------------


def _small_net() -> nn.Module:
    return ConvNet(3, 10, (32, 32), width=16, depth=2, norm="batchnorm")


def test_init_same_seed_same_params_different_seed_different() -> None:
    a, b = _small_net(), _small_net()
    init_weights_(a, torch.Generator().manual_seed(3))
    init_weights_(b, torch.Generator().manual_seed(3))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    init_weights_(b, torch.Generator().manual_seed(4))
    assert not torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.classifier.bias, b.classifier.bias)


def test_init_is_in_place_and_returns_module() -> None:
    model = _small_net()
    weight = model.features[0].weight
    before = weight.detach().clone()
    # Seed 1: the global RNG that built the model is seeded 0, which init_weights_ would match.
    assert init_weights_(model, torch.Generator().manual_seed(1)) is model
    assert model.features[0].weight is weight
    assert not torch.equal(weight, before)
    assert weight.requires_grad  # still a trainable leaf after the no_grad re-init


def test_init_does_not_touch_global_rng() -> None:
    model = build_model("resnet18", 3, 10, (32, 32))
    state = torch.random.get_rng_state()
    init_weights_(model, torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_init_matches_pytorch_default_reset_exactly() -> None:
    # A CPU generator and the global CPU RNG with the same seed draw the same stream, so
    # init_weights_ must equal calling every reset_parameters() in module order.
    model = build_model("resnet18", 3, 10, (32, 32))
    reference = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(11)
        for m in reference.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    init_weights_(model, torch.Generator().manual_seed(11))
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)


def test_init_weight_distribution_matches_default_bound() -> None:
    layer = nn.Linear(1024, 1024)
    init_weights_(layer, torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(1024)
    assert layer.weight.abs().max() <= bound
    assert layer.bias.abs().max() <= bound
    std = layer.weight.std().item()
    assert std == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(layer.weight.mean().item()) < 0.01 * bound

    conv = nn.Conv2d(64, 128, 3)
    init_weights_(conv, torch.Generator().manual_seed(1))
    fan_in = 64 * 3 * 3
    assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in)
    assert conv.weight.std().item() == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.02)


def test_init_resets_norm_layers() -> None:
    model = nn.Sequential(nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.LayerNorm([4, 2, 2]))
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-5, 5)
    model.train()
    model[0](torch.randn(8, 4, 2, 2) * 3 + 2)  # moves the running stats
    init_weights_(model, torch.Generator().manual_seed(0))
    for norm in model:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    bn = model[0]
    assert torch.equal(bn.running_mean, torch.zeros(4))
    assert torch.equal(bn.running_var, torch.ones(4))
    assert bn.num_batches_tracked.item() == 0


def test_init_refuses_unknown_parametrised_module() -> None:
    with pytest.raises(TypeError, match="Embedding"):
        init_weights_(nn.Sequential(nn.Embedding(4, 2)), torch.Generator().manual_seed(0))


# --- batch independence ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: build_model("convnet", 3, 10, (32, 32), width=16),
        lambda: build_model("convnet", 3, 10, (32, 32), width=16, norm="layernorm"),
        lambda: build_model("vgg11", 3, 10, (32, 32)),
        lambda: build_model("resnet18", 3, 10, (32, 32)),
    ],
)
def test_instance_norm_embeddings_do_not_depend_on_the_batch(
    make: Callable[[], nn.Module],
) -> None:
    # float64: float32 convolutions may pick other kernels for other batch sizes, and deep
    # nets amplify those last-bit differences; the property itself is exact.
    model = make().train().double()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    together = model.embed(x)
    alone = torch.cat([model.embed(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-9, atol=1e-10)


def test_batchnorm_in_train_mode_does_depend_on_the_batch() -> None:
    # Contrast case: shows the independence test above can fail.
    model = build_model("convnet_bn", 3, 10, (32, 32), width=16).train().double()
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    together = model.embed(x)
    alone = torch.cat([model.embed(x[i : i + 3]) for i in (0, 3)])
    assert not torch.allclose(together, alone, rtol=1e-9, atol=1e-10)
