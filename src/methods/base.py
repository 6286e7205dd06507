"""What every distillation method shares: the synthetic set and one batched matching pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn

from src.augment import DSA
from src.checks import Problems, constructor_defaults
from src.compute import Compute, check_chunk
from src.data import RealPool
from src.data.factorize import expand, pack
from src.errors import CheckpointError, ConfigError, NonFiniteLossError
from src.io.checkpoint import RUN_STATE_KEY
from src.matching import MatchingLoss
from src.matching.terms import EMBED, ClassFeatures, FeatureTerm, LossTerm
from src.rng import class_generators, make_generator

INITS = ("real", "noise")
# How a run draws its real batches, DSA transforms and initial images: one generator per class
# (a class's draws do not depend on the others, so a class-sharded run is the one-process run),
# or one generator for all classes (the streams before per-class ones; their records stay valid).
STREAMS = ("per_class", "shared")


def init_generator(
    seed: int, streams: str, classes: Tensor
) -> torch.Generator | list[torch.Generator]:
    """The generator(s) the initial set (and the random real baseline) is drawn from."""
    return (
        make_generator(seed, "init")
        if streams == "shared"
        else class_generators(seed, "init", classes)
    )


def initial_synthetic_set(
    pool: RealPool,
    ipc: int,
    init: str,
    generator: torch.Generator | list[torch.Generator],
    factor: int = 1,
    pack_init: bool = True,
) -> tuple[Tensor, Tensor]:
    """Images (C*ipc, ch, H, W) float32 and class-ordered labels (C*ipc,) of the pool's
    classes to start from; ``generator``: one for all classes or one per class.

    With ``factor`` f > 1 each image packs f^2 distinct real images of its class, downscaled;
    with ``pack_init`` false it starts as one full-size real image instead (its f^2 parts
    are then zoomed crops of that image, as the released TinyImageNet IDM script starts).
    """
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    if init not in INITS:
        raise ConfigError(f"unknown init '{init}'; choose one of: {', '.join(INITS)}")
    labels = pool.classes.repeat_interleave(ipc)
    per_class = ipc * factor * factor if pack_init else ipc
    indices = pool.random_per_class(per_class, generator)  # also checks ipc vs class sizes
    if init == "real":
        images = pack(pool.get(indices).cpu(), factor if pack_init else 1)
    elif isinstance(generator, torch.Generator):
        images = torch.randn((len(labels), *pool.images.shape[1:]), generator=generator)
    else:
        shape = (ipc, *pool.images.shape[1:])
        images = torch.cat([torch.randn(shape, generator=g) for g in generator])
    return images.contiguous(), labels


def continue_epoch(checkpoint: dict[str, Any], completed: int) -> None:
    """Let a run saved at its last iteration go on to a larger ``iterations`` (extension).

    Lightning marks the batch that ended the loader as the last one and, restored from such
    a checkpoint, ends the epoch at once; cleared, the restore is that of a mid-run resume
    after ``completed`` iterations. (Called before Lightning restores its loops.)
    """
    try:
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        progress["is_last_batch"] = False
    except (KeyError, TypeError):
        raise CheckpointError(
            f"the checkpoint after iteration {completed} has no loop state Lightning can "
            "continue; it cannot be extended to more iterations"
        ) from None


def _names(generators: Mapping[str, Any]) -> str:
    """Generator names, a class's streams counted rather than listed."""
    plain = sorted(n for n in generators if "/class" not in n)
    per_class = len(generators) - len(plain)
    return ", ".join(plain) + (f" and {per_class} per-class streams" if per_class else "")


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class IterationLoader:
    """Outer-iteration numbers 0..N-1; distillation draws its own batches from the real pool.

    Resumable mid-epoch: Lightning saves ``state_dict`` (the next iteration, read from
    ``position``) in a checkpoint and, on resume, ``load_state_dict`` makes the loader
    continue from there while its length stays the full run.
    """

    def __init__(self, iterations: int, position: Callable[[], int]) -> None:
        self.iterations = iterations
        self.position = position
        self.start = 0

    def __len__(self) -> int:
        return self.iterations

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.iterations))

    def state_dict(self) -> dict:
        """The next iteration to run."""
        return {"next": self.position()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position."""
        self.start = int(state["next"])


class SyntheticSetModule(L.LightningModule):
    """Holds the synthetic images (an ``nn.Parameter``) and matches them to the real pool.

    Subclasses decide how an outer iteration runs (which networks, which steps);
    ``match`` is the shared batched pass: draw ``batch_real`` real images per class,
    give each class one Siamese DSA transform shared by its real and synthetic
    images, extract their features for all classes at once (real without gradient) and
    return the per-class value of every loss term.

    A method also says, in its own class, how it is named, checked and recorded
    (docs/extending.md): ``label`` (its paper name), ``variant_keys`` (settings whose value
    off the default names a variant in the label), ``class_separable`` (whether it may be
    class-sharded), ``check_settings`` (run by validation before any data are loaded) and
    ``describe`` (its metadata).
    """

    label: ClassVar[str] = "?"
    variant_keys: ClassVar[tuple[str, ...]] = ()
    # Whether class c's images depend only on class c's real images and networks that learn
    # nothing from the data (then ``classes=`` shards and ``trainer=ddp_classes`` apply).
    class_separable: ClassVar[bool] = False

    def __init__(
        self,
        pool: RealPool,
        net_factory: Callable[[], nn.Module],
        loss: MatchingLoss,
        augment: DSA,
        ipc: int,
        iterations: int,
        batch_real: int = 256,
        lr_img: float = 1.0,
        momentum: float = 0.5,
        init: str = "real",
        seed: int = 0,
        name: str = "dm",
        factor: int = 1,
        embed_chunk: int | str = "auto",
        pack_init: bool = True,
        terms: Mapping[str, FeatureTerm] | None = None,
        data_dir: str = "data",
        streams: str = "per_class",
    ) -> None:
        super().__init__()
        if streams not in STREAMS:
            raise ConfigError(
                f"method.streams must be one of {', '.join(STREAMS)}, got {streams!r}"
            )
        self.pool = pool
        self.net_factory = net_factory
        self.loss = loss
        self.augment = augment
        self.ipc = ipc
        self.iterations = iterations
        self.batch_real = batch_real
        self.lr_img = lr_img
        self.momentum = momentum
        self.seed = seed
        self.method_name = name
        self.factor = factor
        self.embed_chunk = check_chunk(embed_chunk, "method.embed_chunk")
        self.extra_terms = dict(terms or {})
        self.data_dir = str(data_dir)  # where cached artifacts (an expert pool) are kept
        self.streams = streams
        images, labels = initial_synthetic_set(
            pool, ipc, init, init_generator(seed, streams, pool.classes), factor, pack_init
        )
        self.syn_images = nn.Parameter(images)
        self.class_sample: list[torch.Generator] = []  # per-class streams, made in setup
        self.class_augment: list[torch.Generator] = []
        self.completed_iterations = 0
        self.register_buffer("syn_labels", labels)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], p: Problems) -> None:
        """Add a line to ``p`` for every invalid value of the method's config node."""
        p.int_at_least(settings.get("batch_real"), "method.batch_real", 1)
        p.positive(settings.get("lr_img"), "method.lr_img")
        p.in_range(settings.get("momentum"), "method.momentum", 0, 1, "l")
        p.one_of(settings.get("init"), "method.init", INITS)
        p.one_of(settings.get("streams", "per_class"), "method.streams", STREAMS)
        p.int_at_least(settings.get("factor", 1), "method.factor", 1)
        p.attempt(lambda: check_chunk(settings.get("embed_chunk", "auto"), "method.embed_chunk"))
        for name, node in (settings.get("terms") or {}).items():
            if not isinstance(node, Mapping) or "_target_" not in node:
                p.add(f"method.terms.{name} must be a node naming its term class in _target_")

    @classmethod
    def check_loss(cls, settings: Mapping[str, Any], loss_part: str, p: Problems) -> None:
        """Add a line to ``p`` when the run's loss (``loss_part``: its label text, "" for the
        method's own loss at its defaults) cannot work with these settings; any can here."""

    @classmethod
    def variant(cls, settings: Mapping[str, Any]) -> list[str]:
        """Label parts (``"key value"``) for ``variant_keys`` off the constructor's defaults,
        and one per term a config added (``"+name"``)."""
        defaults = constructor_defaults(cls)
        parts = [
            f"{key} {_text(settings[key])}"
            for key in cls.variant_keys
            if key in settings and settings[key] != defaults.get(key)
        ]
        return parts + [f"+{name}" for name in settings.get("terms") or {}]

    @classmethod
    def paper_label(
        cls,
        settings: Mapping[str, Any],
        loss: MatchingLoss,
        loss_reference: Mapping[str, Any] | None = None,
    ) -> str:
        """The run's paper name: method label, loss suffix, then the variants in brackets,
        e.g. ``DM``, ``DM+HDD``, ``DM+HDD (project, k 256, scale 20)``."""
        method_parts = cls.variant(settings)
        loss_text = loss.variant(loss_reference)
        if method_parts and loss_text:
            loss_text = "; " + loss_text[2:-1]
        elif method_parts:
            loss_text = ""
        head = cls.label + loss.label_suffix
        return head + (f" ({', '.join(method_parts)}{loss_text})" if method_parts else loss_text)

    @cached_property
    def terms(self) -> dict[str, FeatureTerm]:
        """The method's own terms, then those the config added (built once, after __init__).

        A plain dict, not a ModuleDict: the terms hold no state a checkpoint must keep.
        """
        return self.own_terms() | self.extra_terms

    def own_terms(self) -> dict[str, FeatureTerm]:
        """The method's loss terms (DM: the matching loss on the final embedding)."""
        return {"match": LossTerm(self.loss)}

    def describe(self) -> dict[str, Any]:
        """What a distilled set's metadata records of the method: name, label, factor, terms."""
        return {
            "name": self.method_name,
            "label": self.label,
            "factor": self.factor,
            "terms": {name: term.describe() for name, term in self.terms.items()},
        }

    @property
    def num_classes(self) -> int:
        """Number of classes of the data set."""
        return self.pool.num_classes

    @property
    def classes(self) -> Tensor:
        """The classes this module distills (all, or one shard's)."""
        return self.pool.classes

    def setup(self, stage: str) -> None:
        """Move the real pool next to the module and create the run's generators."""
        self.pool.to(self.device)
        # Under data-parallel DDP every rank draws its own real batches and DSA transforms
        # (rank 0 keeps the single-device streams); a class-sharded rank holds other classes
        # and keeps theirs. The network stream is shared, so all ranks embed alike.
        sharded = self._trainer is not None and getattr(
            self.trainer.strategy, "shards_classes", False
        )
        rank = f"-rank{self.global_rank}" if self.global_rank and not sharded else ""
        self.gen_sample = make_generator(self.seed, "sample" + rank)
        self.gen_augment = make_generator(self.seed, "augment" + rank)
        self.gen_net = make_generator(self.seed, "net", self.device)
        # Per-class streams (empty lists: the shared ones above draw for every class).
        self.class_sample, self.class_augment = (
            [
                class_generators(self.seed, name + rank, self.classes)
                for name in ("sample", "augment")
            ]
            if self.streams == "per_class"
            else ([], [])
        )
        # DSA group of every image of a step: class c's real images, then the synthetic set.
        per_class_real = min(self.batch_real, int(self.pool.counts.max()))
        real_groups = torch.arange(len(self.classes)).repeat_interleave(per_class_real)
        syn_groups = torch.searchsorted(self.classes, self.syn_labels.cpu())
        syn_groups = syn_groups.repeat_interleave(self.factor**2)
        self.groups = torch.cat([real_groups, syn_groups]).to(self.device)

    def training_step(self, batch: int, batch_idx: int) -> Tensor:
        """Run outer iteration ``batch`` (its number), then count it as completed."""
        loss = self.outer_iteration(int(batch))
        self.completed_iterations = int(batch) + 1
        return loss

    def outer_iteration(self, iteration: int) -> Tensor:
        """One outer iteration of the method; returns its loss (for logging or autograd)."""
        raise NotImplementedError

    def train_dataloader(self) -> IterationLoader:
        """One item per outer iteration, resumable."""
        return IterationLoader(self.iterations, lambda: self.completed_iterations)

    def generators(self) -> dict[str, torch.Generator]:
        """Every generator the run draws from after setup, by name (saved in checkpoints)."""
        named = {"sample": self.gen_sample, "augment": self.gen_augment, "net": self.gen_net}
        for stream, gens in (("sample", self.class_sample), ("augment", self.class_augment)):
            if gens:  # per-class streams
                named |= {
                    f"{stream}/class{int(c)}": g for c, g in zip(self.classes, gens, strict=True)
                }
        return named

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add what the state dict lacks: iteration count and generator states."""
        checkpoint.setdefault(RUN_STATE_KEY, {}).update(
            completed_iterations=self.completed_iterations,
            generators={k: g.get_state() for k, g in self.generators().items()},
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the iteration count and generator states (after ``setup``)."""
        state = checkpoint[RUN_STATE_KEY]
        self.completed_iterations = int(state["completed_iterations"])
        generators = self.generators()
        if set(state["generators"]) != set(generators):
            raise CheckpointError(
                "the checkpoint's random streams are not this run's (made with other "
                "method.streams or classes, or by another method): it has "
                f"{_names(state['generators'])}, this run uses {_names(generators)}"
            )
        for name, g in generators.items():
            g.set_state(state["generators"][name])
        if self.completed_iterations < self.iterations:
            continue_epoch(checkpoint, self.completed_iterations)

    def real_compute(self, net: nn.Module) -> Compute:
        """How the real images go through ``net``: all at once, or some at a time."""
        return Compute.for_net(self.embed_chunk, "method.embed_chunk", net, self.device, "embed")

    def extractor(self, net: nn.Module) -> Callable[[Tensor], dict[str, Tensor]]:
        """What the terms read of a batch under ``net``, by kind: by default its final
        embedding alone (``"embed"``, which every extraction must provide)."""
        return lambda x: {EMBED: net.embed(x)}

    def syn_extractor(
        self, net: nn.Module, extract: Callable[[Tensor], dict[str, Tensor]]
    ) -> Callable[[Tensor], dict[str, Tensor]]:
        """What the terms read of the synthetic images: by default what they read of the real
        ones (a method adds kinds only its synthetic terms need, e.g. IID's expert features)."""
        return extract

    def match(
        self,
        net: nn.Module,
        with_logits: bool = False,
        extract: Callable[[Tensor], dict[str, Tensor]] | None = None,
    ) -> tuple[dict[str, Tensor], Tensor | None]:
        """Every term's per-class values (C,) under ``net``, and the synthetic logits if asked.

        ``extract`` replaces ``self.extractor(net)`` (e.g. with its compiled version).
        """
        extract = extract or self.extractor(net)
        idx, weights = self.real_batch_indices()
        n_classes, per_class = idx.shape
        real = self.pool.get(idx)
        syn, _ = expand(self.syn_images, self.syn_labels, self.factor)
        augment_with = self.class_augment or self.gen_augment
        x = self.augment(
            torch.cat([real, syn]), augment_with, groups=self.groups, num_groups=n_classes
        )
        with torch.no_grad():
            real_feat = self.real_compute(net).forward(extract, x[: len(real)])
        syn_feat = self.syn_extractor(net, extract)(x[len(real) :])
        logits = net.classifier(syn_feat[EMBED]) if with_logits else None
        features = ClassFeatures(
            real={k: v.view(n_classes, per_class, *v.shape[1:]) for k, v in real_feat.items()},
            real_weights=weights.to(self.device),
            syn={k: v.view(n_classes, -1, *v.shape[1:]) for k, v in syn_feat.items()},
            syn_logits=None if logits is None else logits.view(n_classes, -1, logits.shape[-1]),
        )
        return {name: term(features) for name, term in self.terms.items()}, logits

    def real_batch_indices(self) -> tuple[Tensor, Tensor]:
        """A matching pass's real images: indices (C, B) and weights (C, B), 0 for padding."""
        return self.pool.sample(self.batch_real, self.class_sample or self.gen_sample)

    def log_terms(self, terms: Mapping[str, Tensor]) -> None:
        """Log each term's sum over classes as ``train/<name>``."""
        for name, values in terms.items():
            self.log(f"train/{name}", values.detach().sum().float())

    def step_per_class(self, losses: Tensor) -> None:
        """Backward once, then one image-optimiser step per class on that class's gradient
        (IDM's and DANCE's update: through momentum a class's step also moves the others)."""
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(losses.sum())
        grad = self.syn_images.grad.detach().clone()
        rows = self.syn_labels.view(-1, *([1] * (grad.ndim - 1)))
        for c in range(self.num_classes):
            self.syn_images.grad = torch.where(rows == c, grad, torch.zeros_like(grad))
            opt.step()

    def check_finite(self, loss: Tensor) -> None:
        """Stop the run, before any image update, when the loss is NaN or inf."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the matching loss became {loss.item()} at iteration {self.completed_iterations}; "
                "the synthetic set was not updated (lower lr_img or check the loss settings)"
            )

    def synthetic_set(self) -> tuple[Tensor, Tensor]:
        """The stored synthetic images and labels (detached, on the CPU, not expanded)."""
        return self.syn_images.detach().cpu().clone(), self.syn_labels.cpu().clone()
