"""Evaluate a distilled set and its random-real twin across architectures, with the robust
scores (``src.evaluation.scores``) and the whole-set reference per architecture."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from src.augment import DSA
from src.data import DatasetInfo, RealPool
from src.errors import ConfigError
from src.evaluation import EvalResult
from src.evaluation.scores import (
    augmentation_robust_score,
    improvement_over_random,
    label_robust_score,
    whole_set_gap,
)
from src.evaluation.whole_set import whole_set_reference
from src.pipelines.components import build_evaluator, network_spec

AUGMENTS = ("same", "none")


def architecture_specs(cfg: DictConfig) -> dict[str, dict]:
    """Architecture name -> network config for ``eval.models`` ([] = the evaluation network).

    An entry is a registry name or a ``{name: ..., ...}`` node; the run's own network, named
    in the list, keeps the run's settings (e.g. its depth and width).
    """
    own = network_spec(cfg.eval.get("model") or cfg.model)
    specs = {}
    for entry in cfg.eval.get("models") or [own]:
        spec = {"name": entry} if isinstance(entry, str) else network_spec(entry)
        if "name" not in spec:
            raise ConfigError(f"eval.models entries need a name, got {spec!r}")
        specs[spec["name"]] = own if spec == {"name": own.get("name")} else spec
    return specs


def eval_augment(cfg: DictConfig, augment: DSA | None) -> DSA | None:
    """The augmentation evaluation networks train with: the run's (``same``) or none."""
    choice, robust = cfg.eval.get("augment", "same"), cfg.eval.get("robust", False)
    if choice not in AUGMENTS:
        raise ConfigError(f"eval.augment must be one of {', '.join(AUGMENTS)}; got {choice!r}")
    if robust not in (True, False):
        raise ConfigError(f"eval.robust must be true or false, got {robust!r}")
    if robust and choice == "none":
        raise ConfigError("eval.robust compares training with and without augmentation: "
                          "it needs eval.augment=same")  # fmt: skip
    return augment if choice == "same" else None


def evaluate_across(
    cfg: DictConfig,
    info: DatasetInfo,
    test_pool: RealPool,
    augment: DSA,
    sets: dict[str, tuple],
    done: dict[str, dict] | None = None,
    on_result: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """Per architecture: each set's accuracies (``sets``: name -> (images, labels, factor)),
    without augmentation too when ``eval.robust``, and the scores these allow.

    Every set of one architecture is trained with the same evaluation seed. ``done``:
    architecture -> evaluations already made under this protocol (e.g. a run's own), reused.
    ``on_result(architecture, evaluations)`` is called after each new evaluation (to save it).
    """
    train_augment, robust = eval_augment(cfg, augment), cfg.eval.get("robust", False)
    out = {}
    for name, spec in architecture_specs(cfg).items():
        runs = [("", train_augment), *([("_no_aug", None)] if robust else [])]
        arch: dict = {"model": spec, **(done or {}).get(name, {})}
        for suffix, aug in runs:
            evaluate = build_evaluator(cfg, info, test_pool, aug, model_cfg=spec)
            for key, (images, labels, factor) in sets.items():
                if key + suffix not in arch:
                    arch[key + suffix] = evaluate(images, labels, factor=factor).as_dict()
                    if on_result is not None:
                        on_result(name, arch)
        whole = whole_set_reference(cfg.paths.data_dir, info.name, spec)
        out[name] = arch | scores(arch, whole)
    return out


def scores(arch: dict, whole: dict | None) -> dict:
    """The robust scores of one architecture's evaluations (those its inputs allow)."""
    acc = {k: v["accuracies"] for k, v in arch.items() if isinstance(v, dict) and "accuracies" in v}
    out: dict = {}
    if "distilled" in acc and "random_real" in acc:
        out["improvement"] = improvement_over_random(acc["distilled"], acc["random_real"])
        if "distilled_no_aug" in acc:
            out["improvement_no_aug"] = improvement_over_random(
                acc["distilled_no_aug"], acc["random_real_no_aug"]
            )
            out["augmentation_robust_score"] = augmentation_robust_score(
                acc["distilled"], acc["random_real"],
                acc["distilled_no_aug"], acc["random_real_no_aug"],
            )  # fmt: skip
    if whole is not None and "distilled" in acc:
        out["whole_set"] = whole
        out["whole_set_gap"] = whole_set_gap(acc["distilled"], whole["accuracy"])
        if "random_real" in acc:
            out["label_robust_score"] = label_robust_score(
                acc["distilled"], acc["random_real"], whole["accuracy"]
            )
    return {k: v.as_dict() if isinstance(v, EvalResult) else v for k, v in out.items()}


COLUMNS = {
    "random_real": "random real",
    "distilled": "distilled",
    "improvement": "IOR",
    "random_real_no_aug": "random real, no aug",
    "distilled_no_aug": "distilled, no aug",
    "improvement_no_aug": "IOR, no aug",
    "augmentation_robust_score": "ARS",
    "whole_set_gap": "gap to whole set",
    "label_robust_score": "LRS",
}


def cross_table(results: dict[str, dict], title: str) -> str:
    """A Markdown table: one row per architecture, mean ± std cells (README 'Robust scores')."""
    used = [k for k in COLUMNS if any(k in arch for arch in results.values())]
    lines = [title, "", "| architecture | " + " | ".join(COLUMNS[k] for k in used) + " |"]
    lines.append("|---|" + "---|" * len(used))
    for name, arch in results.items():
        cells = [str(EvalResult(arch[k]["accuracies"])) if k in arch else "—" for k in used]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    refs = [
        f"{name}: {arch['whole_set']['accuracy']:.2f} ({_source(arch['whole_set'])})"
        for name, arch in results.items()
        if "whole_set" in arch
    ]
    if refs:
        lines += ["", "Whole training set: " + "; ".join(refs) + "."]
    return "\n".join(lines)


def _source(whole: dict) -> str:
    if whole["source"] == "published":
        return "published"
    protocol = whole["protocol"]
    return f"measured, {protocol['epochs']} epochs x {protocol['num_models']} networks"
