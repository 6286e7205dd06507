"""Distillation checkpoints: where they live, and loading them without running pickled code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
PREVIOUS_CHECKPOINT = "previous.ckpt"  # the one before last.ckpt, kept for a damaged latest
RUN_STATE_KEY = "hdd_run_state"  # our part of a Lightning checkpoint
# Settings that leave a run's numbers as they are: where it writes, how it runs and is
# watched. A finished result may be reused across changes of these.
EXECUTION_SETTINGS = (
    "paths", "trainer", "logger", "resume", "reuse", "study", "checkpoint", "geometry", "hydra",
    "grid_every",
    "method.compile_net", "method.embed_chunk", "method.train_chunk", "eval.train_chunk",
    "eval.test_chunk",
)  # fmt: skip
# A resumption may also change how long the run goes on (it can be extended) and how it is
# evaluated.
RESUMABLE_CHANGES = (*EXECUTION_SETTINGS, "eval", "iterations")


def last_checkpoint(output_dir: str | Path) -> Path:
    """The rolling checkpoint of a run directory."""
    return Path(output_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """The checkpoint to resume from: ``null`` none, ``auto`` this run's if any, else a path.

    A path may name the checkpoint file or the run directory that holds it.
    """
    if resume is None or resume == "":
        return None
    if resume == "auto":
        return _rolling(last_checkpoint(output_dir))
    path = Path(resume)
    if path.is_dir():
        path = _rolling(last_checkpoint(path)) or last_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"resume={resume}: no checkpoint at '{path}'")
    return path


def previous_of(path: Path) -> Path:
    """Where the rolling checkpoint ``path`` keeps its predecessor (a class-sharded rank's
    ``last.ckpt.rankR``: ``previous.ckpt.rankR``)."""
    return path.with_name(path.name.replace(LAST_CHECKPOINT, PREVIOUS_CHECKPOINT, 1))


def keep_previous(path: Path) -> None:
    """Make ``path`` the rolling checkpoint's predecessor while ``path`` stays in place.

    A hard link renamed onto ``previous.ckpt`` leaves no moment without ``last.ckpt``;
    where the file system has no hard links, a rename (``_rolling`` covers the gap).
    """
    previous = previous_of(path)
    link = previous.with_name(f".{previous.name}.tmp")
    link.unlink(missing_ok=True)
    try:
        os.link(path, link)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(link, previous)


def _rolling(last: Path) -> Path | None:
    """``last`` if it exists, else its predecessor (a save stopped between the two renames)."""
    return next((p for p in (last, previous_of(last)) if p.is_file()), None)


def load_resumable(path: Path) -> tuple[Path, dict]:
    """Load a checkpoint to resume; a damaged ``last.ckpt`` falls back to ``previous.ckpt``.

    Says so in one line. Any other damaged file, or a damaged predecessor, is an error.
    """
    try:
        return path, load_checkpoint(path)
    except CheckpointError as exc:
        fallback = previous_of(path)
        if path.name != LAST_CHECKPOINT or not fallback.is_file():
            raise
        ckpt = load_checkpoint(fallback)
        print(f"{exc}: resuming from the previous checkpoint '{fallback}' instead")
        return fallback, ckpt


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no pickled code runs) and check its layout."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"'{path}' holds objects a safe load refuses; not loading it ({first})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"'{path}' is not a readable checkpoint ({exc})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"'{path}' is not a checkpoint (a {type(ckpt).__name__})")
    missing = {"state_dict", "optimizer_states", "loops", RUN_STATE_KEY} - set(ckpt)
    if missing:
        raise CheckpointError(
            f"'{path}' is not a distillation checkpoint (lacks {sorted(missing)})"
        )
    state = ckpt[RUN_STATE_KEY]
    required = {"completed_iterations": int, "generators": dict, "config": dict}
    for key, kind in required.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(
                f"'{path}': run state '{key}' is missing or not a {kind.__name__}"
            )
    for name, value in ckpt["state_dict"].items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"'{path}': state_dict entry '{name}' is not a tensor")
    images = ckpt["state_dict"].get("syn_images")
    if images is None or images.dtype != torch.float32 or images.ndim != 4:
        raise CheckpointError(f"'{path}': state_dict lacks float32 'syn_images' (N, C, H, W)")
    kept = state.get("kept")
    if kept is not None and (not isinstance(kept, Tensor) or kept.dtype != torch.int64):
        raise CheckpointError(f"'{path}': kept indices must be an int64 tensor")
    return ckpt


def run_identity(cfg: DictConfig) -> dict:
    """The resolved settings that define a run's result (what a resumption must not change)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in data.items() if k not in RESUMABLE_CHANGES}


def check_same_run(ckpt: dict, cfg: DictConfig, path: str | Path) -> None:
    """Refuse to resume a checkpoint under settings that would change its result."""
    saved, now = ckpt[RUN_STATE_KEY]["config"], run_identity(cfg)
    changed = setting_differences(saved, now, ignore=RESUMABLE_CHANGES)
    if changed:
        raise CheckpointError(
            f"checkpoint '{path}' was made with other settings ({', '.join(changed[:6])}"
            f"{', ...' if len(changed) > 6 else ''}); resume with the original ones"
        )
    done = ckpt[RUN_STATE_KEY]["completed_iterations"]
    if done > cfg.iterations:
        raise CheckpointError(
            f"checkpoint '{path}' is at iteration {done}, beyond iterations={cfg.iterations}"
        )


def setting_differences(a: dict, b: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """Sorted dotted keys whose values differ between saved settings ``a`` and current ``b``.

    Keys in ``ignore`` (dotted, e.g. ``method.compile_net``) and everything under them are
    left out, and so are keys ``a`` lacks: settings added to the project after ``a`` was
    saved, whose defaults keep the behaviour from before they existed.
    """
    changed = _differences(a, b)
    return sorted(d for d in changed if not any(d == k or d.startswith(k + ".") for k in ignore))


def _differences(a: object, b: object, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a for d in _differences(a[k], b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]
