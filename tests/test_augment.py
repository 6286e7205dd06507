"""Behavioural tests of Differentiable Siamese Augmentation (src.augment)."""

import pytest
import torch

from src.augment import ALLOWED_OPS, DSA, build_augment
from src.errors import ConfigError

FULL = "color_crop_cutout_flip_scale_rotate"
SHAPES = [(1, 28, 28), (3, 32, 32)]


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Strictly positive random images, so a zero pixel can only come from the augmentation."""
    return torch.rand(n, c, h, w, generator=gen(seed)) + 0.1


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference translation out[i, j] = x[i + dy, j + dx] with zero fill, by slicing."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(0, -dy) : min(h, h - dy), max(0, -dx) : min(w, w - dx)] = x[
        ..., max(0, dy) : min(h, h + dy), max(0, dx) : min(w, w + dx)
    ]
    return out


def brightness_offsets(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image offset of a pure brightness change, after checking it is one constant."""
    diff = (y - x).flatten(1)
    assert torch.allclose(diff, diff[:, :1].expand_as(diff), atol=1e-6)
    return diff[:, 0]


# --- configuration ----------------------------------------------------------------------------


def test_strategy_parsing_and_identity() -> None:
    assert DSA().ops == ["color", "crop", "cutout", "flip", "scale", "rotate"]
    assert DSA("flip_rotate").ops == ["flip", "rotate"]
    x = images(4)
    for strategy in ("", "none"):
        aug = build_augment(strategy)
        assert aug.ops == []
        assert aug(x, gen(0)) is x


def test_bad_op_name_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="blur") as info:
        DSA("flip_blur")
    for op in ("color", "crop", "cutout", "flip", "scale", "rotate"):
        assert op in str(info.value)


def test_build_augment_passes_params() -> None:
    aug = build_augment("scale", scale=1.5)
    assert isinstance(aug, DSA) and aug.scale == 1.5


# --- randomness -------------------------------------------------------------------------------


@pytest.mark.parametrize("grouped", [False, True])
def test_same_seed_bitwise_identical_and_seeds_differ(grouped: bool) -> None:
    x = images(16)
    aug = DSA()
    groups = torch.arange(16) % 4 if grouped else None
    ga, gb, gc = gen(1), gen(1), gen(2)
    differs = False
    for _ in range(8):
        a = aug(x, ga, groups, 4 if grouped else None)
        b = aug(x, gb, groups, 4 if grouped else None)
        c = aug(x, gc, groups, 4 if grouped else None)
        assert torch.equal(a, b)
        differs |= not torch.equal(a, c)
    assert differs


@pytest.mark.parametrize("grouped", [False, True])
def test_global_rng_untouched(grouped: bool) -> None:
    x = images(8)
    groups = torch.arange(8) % 2 if grouped else None
    state = torch.get_rng_state()
    for seed in range(5):
        DSA()(x, gen(seed), groups)
    assert torch.equal(torch.get_rng_state(), state)


def test_num_groups_default_matches_explicit() -> None:
    x = images(12)
    groups = torch.arange(12) % 3
    assert torch.equal(DSA()(x, gen(3), groups), DSA()(x, gen(3), groups, 3))


# --- Siamese (grouped) mode -------------------------------------------------------------------


@pytest.mark.parametrize("c,h,w", SHAPES)
def test_identical_images_in_same_group_get_identical_outputs(c: int, h: int, w: int) -> None:
    n_groups = 24
    base = images(n_groups, c, h, w)
    x = torch.cat([base, base])
    groups = torch.cat([torch.arange(n_groups), torch.arange(n_groups)])
    aug = DSA()
    for seed in range(5):
        y = aug(x, gen(seed), groups, n_groups)
        assert y.shape == x.shape and torch.isfinite(y).all()
        assert torch.equal(y[:n_groups], y[n_groups:])


@pytest.mark.parametrize("c,h,w", SHAPES)
def test_group_shares_one_affine_transform(c: int, h: int, w: int) -> None:
    # Every op is affine in x, T(x) = A x + t; a group sharing one T must satisfy
    # T(a + b) - T(a) - T(b) + T(0) = 0 whatever op and parameters it drew.
    n_groups = 12
    a, b = images(n_groups, c, h, w, seed=1), images(n_groups, c, h, w, seed=2)
    x = torch.cat([a, b, a + b, torch.zeros_like(a)])
    groups = torch.arange(n_groups).repeat(4)
    for seed in range(4):
        ya, yb, yab, y0 = DSA()(x, gen(seed), groups, n_groups).chunk(4)
        assert torch.allclose(yab - ya - yb + y0, torch.zeros_like(ya), atol=1e-5)


def test_grouped_output_does_not_depend_on_sample_order() -> None:
    x = images(40)
    groups = torch.arange(10).repeat(4)
    perm = torch.randperm(40, generator=gen(7))
    y = DSA()(x, gen(1), groups, 10)
    y_perm = DSA()(x[perm], gen(1), groups[perm], 10)
    assert torch.equal(y_perm, y[perm])


def test_group_shares_one_brightness_offset_and_groups_differ() -> None:
    n_groups, per_group = 20, 5
    x = images(n_groups * per_group)
    groups = torch.arange(n_groups).repeat_interleave(per_group)
    offsets = brightness_offsets(x, DSA("brightness")(x, gen(0), groups, n_groups))
    by_group = offsets.view(n_groups, per_group)
    # Every image of a group has the same offset; the groups drew independent ones.
    assert torch.allclose(by_group, by_group[:, :1].expand_as(by_group), atol=1e-6)
    assert by_group[:, 0].unique().numel() == n_groups


def test_group_shares_one_flip_decision() -> None:
    n_groups, per_group = 16, 4
    x = images(n_groups * per_group)  # random images are not mirror-symmetric
    groups = torch.arange(n_groups).repeat(per_group)  # interleaved group layout
    y = DSA("flip")(x, gen(5), groups, n_groups)
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert (flipped ^ kept).all()
    for k in range(n_groups):
        assert flipped[groups == k].all() or kept[groups == k].all()
    assert flipped.any() and kept.any()


def test_groups_draw_different_ops() -> None:
    # With "brightness_flip" a group is either shifted by a constant or flipped/kept.
    n_groups = 32
    x = images(n_groups)
    y = DSA("brightness_flip")(x, gen(0), torch.arange(n_groups), n_groups)
    flip_like = torch.tensor(
        [torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1)) for i in range(n_groups)]
    )
    assert flip_like.any() and not flip_like.all()


# --- independent mode -------------------------------------------------------------------------


def test_independent_mode_one_op_per_batch_params_per_image() -> None:
    x = images(12)
    aug = DSA("brightness_flip")
    g = gen(0)
    kinds = set()
    for _ in range(12):
        y = aug(x, g)
        flip_like = [torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1)) for i in range(12)]
        assert all(flip_like) or not any(flip_like)  # one op for the whole batch
        if not any(flip_like):
            offsets = brightness_offsets(x, y)
            assert offsets.unique().numel() == 12  # parameters drawn per image
        kinds.add(all(flip_like))
    assert kinds == {True, False}


def test_color_params_differ_per_image() -> None:
    # Copies of one image would give equal outputs only if the parameters were shared.
    x = images(1).expand(8, -1, -1, -1).contiguous()
    y = DSA("color")(x, gen(0))
    assert all(not torch.allclose(y[0], y[i]) for i in range(1, 8))


# --- closed forms of the ops ------------------------------------------------------------------


@pytest.mark.parametrize("c,h,w", SHAPES)
def test_flip_is_identity_or_mirror(c: int, h: int, w: int) -> None:
    x = images(32, c, h, w)
    y = DSA("flip")(x, gen(0))
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(32)]
    kept = [torch.equal(y[i], x[i]) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


@pytest.mark.parametrize("c,h,w", SHAPES)
def test_crop_is_exact_integer_translation(c: int, h: int, w: int) -> None:
    x = images(16, c, h, w)
    y = DSA("crop")(x, gen(0))
    s = int(h * 0.125 + 0.5)
    moved = 0
    for i in range(16):
        matches = [
            (dy, dx)
            for dy in range(-s, s + 1)
            for dx in range(-s, s + 1)
            if torch.equal(y[i], shifted(x[i], dy, dx))
        ]
        assert len(matches) == 1
        moved += matches[0] != (0, 0)
    assert moved > 0


@pytest.mark.parametrize("c,h,w", SHAPES)
def test_cutout_zeroes_one_square(c: int, h: int, w: int) -> None:
    x = images(64, c, h, w)
    y = DSA("cutout")(x, gen(0))
    size = int(h * 0.5 + 0.5)
    full = 0
    for i in range(64):
        hole = (y[i] == 0).all(0)
        assert ((y[i] == 0).any(0) == hole).all()  # same hole in every channel
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert hole[r0:r1, c0:c1].all() and hole.sum() == (r1 - r0) * (c1 - c0)  # a rectangle
        assert r1 - r0 <= size and c1 - c0 <= size
        inside = r0 > 0 and r1 < h and c0 > 0 and c1 < w
        if inside:
            assert r1 - r0 == size and c1 - c0 == size
        full += inside
        assert torch.equal(y[i][:, ~hole], x[i][:, ~hole])  # the rest is unchanged
    assert full > 0


@pytest.mark.parametrize(
    "strategy,kwargs", [("scale", {"scale": 1.0}), ("rotate", {"rotate": 0.0})]
)
def test_affine_ops_with_identity_params_reproduce_input(strategy: str, kwargs: dict) -> None:
    for c, h, w in SHAPES:
        x = images(6, c, h, w)
        y = DSA(strategy, **kwargs)(x, gen(0))
        assert torch.allclose(y, x, atol=1e-5)


def test_scale_and_rotate_change_the_image() -> None:
    x = images(6)
    for strategy in ("scale", "rotate"):
        assert not torch.allclose(DSA(strategy)(x, gen(0)), x, atol=1e-3)


def test_brightness_adds_one_constant_per_image() -> None:
    x = images(10)
    offsets = brightness_offsets(x, DSA("brightness")(x, gen(0)))
    assert (offsets.abs() <= 0.5).all()


def test_saturation_and_contrast_preserve_their_means() -> None:
    x = images(10)
    y = DSA("saturation")(x, gen(0))
    assert torch.allclose(y.mean(1), x.mean(1), atol=1e-5)
    y = DSA("contrast")(x, gen(0))
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)


# --- autograd and shapes ----------------------------------------------------------------------


@pytest.mark.parametrize("op", ALLOWED_OPS)
@pytest.mark.parametrize("grouped", [False, True])
def test_gradients_are_finite_and_nonzero(op: str, grouped: bool) -> None:
    x = images(8).requires_grad_(True)
    groups = torch.arange(8) % 3 if grouped else None
    DSA(op)(x, gen(0), groups).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("c,h,w", SHAPES)
@pytest.mark.parametrize("grouped", [False, True])
def test_full_strategy_on_mnist_and_cifar_shapes(c: int, h: int, w: int, grouped: bool) -> None:
    x = images(20, c, h, w).requires_grad_(True)
    groups = torch.arange(20) % 10 if grouped else None
    g = gen(0)
    for _ in range(6):
        y = DSA()(x, g, groups, 10 if grouped else None)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
        y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_rejects_groups_of_wrong_length() -> None:
    with pytest.raises(ValueError):
        DSA()(images(4), gen(0), torch.zeros(3, dtype=torch.long), 1)


# --- affine sampling convention ---------------------------------------------------------------


def test_affine_ops_sample_as_the_released_scripts_and_the_convention_is_moot_when_square():
    import math

    import torch.nn.functional as F

    from src.augment.dsa import apply_affine

    x = images(4, 3, 32, 32).double()
    c, s = math.cos(0.2), math.sin(0.2)
    for theta in ([[0.8, 0.0, 0.0], [0.0, 1.1, 0.0]], [[c, s, 0.0], [-s, c, 0.0]]):
        theta = torch.tensor([theta], dtype=torch.float64).expand(4, 2, 3)
        # The released call: affine_grid / grid_sample with PyTorch's defaults.
        released = F.grid_sample(x, F.affine_grid(theta, list(x.shape)))
        torch.testing.assert_close(apply_affine(x, {"theta": theta}), released, rtol=0, atol=0)
        corners = F.grid_sample(
            x, F.affine_grid(theta, list(x.shape), align_corners=True), align_corners=True
        )
        torch.testing.assert_close(released, corners, rtol=0, atol=1e-12)
    # On a non-square image the two conventions differ: the check above can fail.
    y = images(1, 1, 28, 32).double()
    theta = theta[:1]
    edge = F.grid_sample(y, F.affine_grid(theta, list(y.shape)))
    corner = F.grid_sample(
        y, F.affine_grid(theta, list(y.shape), align_corners=True), align_corners=True
    )
    assert (edge - corner).abs().max() > 1e-3
