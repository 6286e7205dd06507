"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021) in "single" mode.

Every call picks ONE op of the strategy uniformly at random and applies it. In independent mode
(``groups is None``) one op is drawn for the whole batch and its parameters per image. In Siamese
mode each group draws its own op and one parameter set shared by every image of the group, so a
class's real and synthetic images receive the identical transform.

Draw order (fixed, so that the same generator state reproduces the same output). ``U`` is the
number of parameter units: the batch size N in independent mode, ``num_groups`` in Siamese mode.
``K = len(ops)``; H, W are the image height and width.

1. Op choice: ``randint(0, K, (1,))`` in independent mode, ``randint(0, K, (num_groups,))`` in
   Siamese mode.
2. Then, for EVERY entry of ``ops`` in order (chosen or not, so the number of draws never depends
   on the choice), for each primitive of the entry ("color" = brightness, saturation, contrast):

   - brightness, saturation, contrast, flip, rotate: ``rand(U)``;
   - scale: ``rand(U)`` for sx, then ``rand(U)`` for sy;
   - crop: ``randint(-sh, sh + 1, (U,))`` for the row shift, then the same with sw for columns,
     where ``s = int(side * crop + 0.5)``;
   - cutout: ``randint(0, H + 1 - size_h % 2, (U,))`` for the row centre, then the same for
     columns, where ``size = int(side * cutout + 0.5)``.

Siamese mode also takes one generator per group (a class-sharded run's per-class streams):
group i then draws one vector ``rand(1 + D)`` from its own generator, D being the number of
draws in 2., and takes its op from the first entry and every parameter from the next ones in
the order above, an integer in [lo, hi) as ``lo + floor(u * (hi - lo))``. So a group's
transform depends on no other group of the batch, at one generator call per group.

All draws are float32/int64 on the CPU with the given generator; the global RNG is never used.
"""

import functools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from src.errors import ConfigError

# Ops a strategy string may name; "color" expands to three primitives applied in sequence.
ALLOWED_OPS: tuple[str, ...] = (
    "color",
    "crop",
    "cutout",
    "flip",
    "scale",
    "rotate",
    "brightness",
    "saturation",
    "contrast",
)
_PRIMITIVES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    **{name: (name,) for name in ALLOWED_OPS if name != "color"},
}
_IDENTITY_STRATEGIES = ("", "none")

Params = dict[str, Tensor]


def parse_strategy(strategy: str) -> list[str]:
    """Split an underscore-joined strategy into op names; raise ConfigError on an unknown one."""
    if strategy.strip().lower() in _IDENTITY_STRATEGIES:
        return []
    ops = strategy.strip().lower().split("_")
    for op in ops:
        if op not in ALLOWED_OPS:
            raise ConfigError(
                f"unknown DSA op {op!r} in strategy {strategy!r}; "
                f"allowed ops: {', '.join(ALLOWED_OPS)} (or '' / 'none' for no augmentation)"
            )
    return ops


# ---------------------------------------------------------------------------------------------
# Differentiable primitives: each maps (x[n, C, H, W], per-image params with leading dim n) -> x.
# ---------------------------------------------------------------------------------------------


def _per_image(t: Tensor) -> Tensor:
    """Reshape a per-image vector (n,) to broadcast over (n, C, H, W)."""
    return t.view(-1, 1, 1, 1)


def apply_brightness(x: Tensor, p: Params) -> Tensor:
    """Add one offset per image to every pixel."""
    return x + _per_image(p["offset"])


def apply_saturation(x: Tensor, p: Params) -> Tensor:
    """Scale each pixel's deviation from its channel mean by a per-image factor."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_image(p["factor"]) + mean


def apply_contrast(x: Tensor, p: Params) -> Tensor:
    """Scale each image's deviation from its global mean by a per-image factor."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_image(p["factor"]) + mean


def apply_flip(x: Tensor, p: Params) -> Tensor:
    """Flip horizontally the images whose mask is set."""
    return torch.where(_per_image(p["mask"]), x.flip(-1), x)


def apply_affine(x: Tensor, p: Params) -> Tensor:
    """Resample each image through its own 2x3 affine matrix (zero padding, bilinear).

    PyTorch's default ``align_corners=False``, as the released DSA / DM / HDD scripts call
    it. For square images and the centred matrices drawn here (no translation) the other
    convention gives the same images up to rounding (tests/test_augment.py).
    """
    grid = F.affine_grid(p["theta"], list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def apply_translate(x: Tensor, p: Params) -> Tensor:
    """Shift each image by an exact integer (row, col) offset with zero fill."""
    n, _, h, w = x.shape
    # A one-pixel zero border gives the fill: out-of-range indices are clamped onto it.
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    rows = (torch.arange(h, device=x.device) + p["dy"][:, None] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device) + p["dx"][:, None] + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def apply_cutout(x: Tensor, p: Params) -> Tensor:
    """Zero one axis-aligned rectangle [top, bottom) x [left, right) per image."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= p["top"][:, None]) & (rows < p["bottom"][:, None])
    in_cols = (cols >= p["left"][:, None]) & (cols < p["right"][:, None])
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    # Multiplying by a constant mask keeps autograd simple (gradient 0 inside the hole).
    return x * keep[:, None].to(x.dtype)


_APPLY: dict[str, Callable[[Tensor, Params], Tensor]] = {
    "brightness": apply_brightness,
    "saturation": apply_saturation,
    "contrast": apply_contrast,
    "flip": apply_flip,
    "scale": apply_affine,
    "rotate": apply_affine,
    "crop": apply_translate,
    "cutout": apply_cutout,
}


class Draws:
    """Where parameter draws come from: ``rand(u)`` uniforms in [0, 1) and ``randint(lo, hi, u)``
    integers in [lo, hi), u of each."""

    def rand(self, u: int) -> Tensor:
        """``u`` uniforms in [0, 1)."""
        raise NotImplementedError

    def randint(self, lo: int, hi: int, u: int) -> Tensor:
        """``u`` integers in [lo, hi)."""
        raise NotImplementedError


class FromGenerator(Draws):
    """Straight from one generator (torch.rand, torch.randint)."""

    def __init__(self, g: torch.Generator) -> None:
        self.g = g

    def rand(self, u: int) -> Tensor:
        """torch.rand from the generator."""
        return torch.rand(u, generator=self.g)

    def randint(self, lo: int, hi: int, u: int) -> Tensor:
        """torch.randint from the generator."""
        return torch.randint(lo, hi, (u,), generator=self.g)


class Columns(Draws):
    """The columns of a (U, n) matrix of uniforms, one per draw, in order; an integer in
    [lo, hi) is lo + floor(u (hi - lo))."""

    def __init__(self, uniforms: Tensor) -> None:
        self.uniforms, self.next = uniforms, 0

    def rand(self, u: int) -> Tensor:
        """The next column (one uniform per group; ``u`` is the number of groups)."""
        column = self.uniforms[:, self.next]
        self.next += 1
        return column

    def randint(self, lo: int, hi: int, u: int) -> Tensor:
        """The next column, as integers in [lo, hi)."""
        scaled = (self.rand(u) * (hi - lo)).long().clamp(max=hi - lo - 1)
        return lo + scaled


class Counted(Draws):
    """Counts the draws (how many columns a group's vector needs)."""

    def __init__(self) -> None:
        self.n = 0

    def rand(self, u: int) -> Tensor:
        """Count one draw."""
        self.n += 1
        return torch.zeros(u)

    def randint(self, lo: int, hi: int, u: int) -> Tensor:
        """Count one draw."""
        self.n += 1
        return torch.full((u,), lo)


@functools.cache
def _draw_count(ops: tuple[str, ...]) -> int:
    """How many draws one unit's parameters take under ``ops`` (the same at any image size)."""
    counted = Counted()
    DSA(strategy="_".join(ops))._draw_all(1, 8, 8, counted)
    return counted.n


def _to_device(p: Params, like: Tensor) -> Params:
    """Move parameters to the input's device; floating ones also take its dtype."""
    return {
        k: v.to(device=like.device, dtype=like.dtype)
        if v.is_floating_point()
        else v.to(like.device)
        for k, v in p.items()
    }


def _select(p: Params, index: Tensor) -> Params:
    """Rows `index` of every parameter tensor."""
    return {k: v.index_select(0, index) for k, v in p.items()}


class DSA:
    """Differentiable Siamese Augmentation, "single" mode: one random op per draw."""

    def __init__(
        self,
        strategy: str = "color_crop_cutout_flip_scale_rotate",
        flip: float = 0.5,
        scale: float = 1.2,
        rotate: float = 15.0,
        crop: float = 0.125,
        cutout: float = 0.5,
        brightness: float = 1.0,
        saturation: float = 2.0,
        contrast: float = 0.5,
    ) -> None:
        """Parse the strategy and store the op strengths (defaults of the DSA paper)."""
        self.strategy = strategy
        self.ops: list[str] = parse_strategy(strategy)
        self.flip = flip
        self.scale = scale
        self.rotate = rotate
        self.crop = crop
        self.cutout = cutout
        self.brightness = brightness
        self.saturation = saturation
        self.contrast = contrast

    def __repr__(self) -> str:
        """Show the parsed ops."""
        return f"DSA(ops={self.ops})"

    # -- parameter draws (CPU, generator only) -------------------------------------------------

    def _draw_primitive(self, name: str, u: int, h: int, w: int, g: Draws) -> Params:
        """Draw the parameters of one primitive for `u` units (see the module docstring)."""
        if name == "brightness":
            return {"offset": (g.rand(u) - 0.5) * self.brightness}
        if name == "saturation":
            return {"factor": g.rand(u) * self.saturation}
        if name == "contrast":
            return {"factor": g.rand(u) + self.contrast}
        if name == "flip":
            return {"mask": g.rand(u) < self.flip}
        if name == "scale":
            lo, span = 1.0 / self.scale, self.scale - 1.0 / self.scale
            sx = g.rand(u) * span + lo
            sy = g.rand(u) * span + lo
            zero = torch.zeros(u)
            theta = torch.stack(
                [torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1
            )
            return {"theta": theta}
        if name == "rotate":
            angle = (g.rand(u) - 0.5) * 2 * self.rotate * math.pi / 180
            cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros(u)
            theta = torch.stack(
                [torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1
            )
            return {"theta": theta}
        if name == "crop":
            sh, sw = int(h * self.crop + 0.5), int(w * self.crop + 0.5)
            dy = g.randint(-sh, sh + 1, u)
            dx = g.randint(-sw, sw + 1, u)
            return {"dy": dy, "dx": dx}
        if name == "cutout":
            size_h, size_w = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
            cy = g.randint(0, h + 1 - size_h % 2, u)
            cx = g.randint(0, w + 1 - size_w % 2, u)
            top, left = cy - size_h // 2, cx - size_w // 2
            return {"top": top, "bottom": top + size_h, "left": left, "right": left + size_w}
        raise AssertionError(f"unhandled primitive {name}")  # parse_strategy guards this

    def _draw_all(self, u: int, h: int, w: int, g: Draws) -> list[list[Params]]:
        """Parameters of every op entry (one Params per primitive), drawn in the fixed order."""
        return [[self._draw_primitive(p, u, h, w, g) for p in _PRIMITIVES[op]] for op in self.ops]

    def _draw_groups(
        self, gens: Sequence[torch.Generator], h: int, w: int
    ) -> tuple[Tensor, list[list[Params]]]:
        """Each group's op and parameters from one vector of uniforms of its own generator."""
        draws = 1 + _draw_count(tuple(self.ops))  # the op, then every parameter
        columns = Columns(torch.stack([torch.rand(draws, generator=g) for g in gens]))
        choice = columns.randint(0, len(self.ops), len(gens))
        return choice, self._draw_all(len(gens), h, w, columns)

    # -- application ---------------------------------------------------------------------------

    def _apply_entry(self, k: int, x: Tensor, params: list[Params]) -> Tensor:
        """Apply the primitives of op entry `k` in sequence with per-image params."""
        for name, p in zip(_PRIMITIVES[self.ops[k]], params, strict=True):
            x = _APPLY[name](x, p)
        return x

    def __call__(
        self,
        x: Tensor,
        generator: torch.Generator | Sequence[torch.Generator],
        groups: Tensor | None = None,
        num_groups: int | None = None,
    ) -> Tensor:
        """Augment a batch (N, C, H, W); Siamese per group when `groups` (N,) is given, with
        one generator for all groups or one per group."""
        if not self.ops or x.shape[0] == 0:
            return x
        if not isinstance(generator, torch.Generator):
            if groups is None or len(generator) != (num_groups or int(groups.max()) + 1):
                raise ValueError("one generator per group needs groups and num_groups to match")
        elif generator.device.type != "cpu":
            raise ValueError("DSA needs a CPU torch.Generator (parameters are drawn on the CPU)")
        if x.dim() != 4:
            raise ValueError(f"DSA expects a batch of shape (N, C, H, W), got {tuple(x.shape)}")
        if groups is None:
            return self._independent(x, generator)
        return self._siamese(x, generator, groups, num_groups)

    def _independent(self, x: Tensor, g: torch.Generator) -> Tensor:
        """One op for the whole batch, parameters drawn per image."""
        n, _, h, w = x.shape
        k = int(torch.randint(0, len(self.ops), (1,), generator=g))
        table = self._draw_all(n, h, w, FromGenerator(g))
        return self._apply_entry(k, x, [_to_device(p, x) for p in table[k]])

    def _siamese(
        self,
        x: Tensor,
        g: torch.Generator | Sequence[torch.Generator],
        groups: Tensor,
        num_groups: int | None,
    ) -> Tensor:
        """One op and one parameter set per group; each op runs once over its subset."""
        n, _, h, w = x.shape
        if groups.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {tuple(groups.shape)}")
        groups = groups.long()
        if num_groups is None:
            num_groups = int(groups.max()) + 1  # host sync; callers pass num_groups to avoid it
        if isinstance(g, torch.Generator):
            choice = torch.randint(0, len(self.ops), (num_groups,), generator=g)
            table = self._draw_all(num_groups, h, w, FromGenerator(g))
        else:
            choice, table = self._draw_groups(g, h, w)

        # Sort samples by chosen op so each op sees one contiguous index set; counts needs one
        # host sync when groups live on an accelerator (none when they are on the CPU).
        op_of_sample = choice.to(groups.device)[groups]
        order = torch.argsort(op_of_sample, stable=True)
        counts = torch.bincount(op_of_sample, minlength=len(self.ops)).tolist()
        order, groups = order.to(x.device), groups.to(x.device)

        pieces: list[Tensor] = []
        start = 0
        for k, count in enumerate(counts):
            if count == 0:
                continue
            idx = order[start : start + count]
            start += count
            sample_groups = groups.index_select(0, idx)
            params = [_select(_to_device(p, x), sample_groups) for p in table[k]]
            pieces.append(self._apply_entry(k, x.index_select(0, idx), params))
        # Out-of-place index_copy scatters the subsets back and keeps the graph to x intact.
        return torch.index_copy(torch.zeros_like(x), 0, order, torch.cat(pieces))
