"""A study as configuration: a sweep's runs, reused from their directories or from a record.

A study config (``conf/experiment/study/<name>.yaml``) names its grid in
``hydra.sweeper.params``, one directory per cell (``hydra.sweep.subdir``), ``resume: auto`` and
``study.record``, the JSON file committed with the results. Each job of
``python -m src.distill -m experiment=study/<name>`` then:

1. takes its results from the record when the record holds its run (same directory) made
   with the same settings, and refuses a record entry made with other settings;
2. takes them from its directory when the run finished there;
3. else distills, continuing an interrupted run from its checkpoint, and adds the results to
   the record (under a file lock: parallel jobs of one sweep share it).

The random real baseline depends only on the real images drawn and the evaluation protocol,
not on the method or loss: a run whose baseline (same images, same protocol) is in the record
takes its accuracies from there instead of training the same networks again.

So a study resumes across sessions from its committed record and ``src.report RECORD`` draws
its table and plot with no training.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.data.store import digest
from src.errors import ConfigError
from src.io import atomic_write_text
from src.io.checkpoint import EXECUTION_SETTINGS, setting_differences

RECORD_FORMAT = "hdd-study/1"


def record_path(cfg: DictConfig) -> Path | None:
    """The study record this run belongs to (None: not part of a study)."""
    study = cfg.get("study")
    return Path(study.record) if study and study.get("record") else None


def run_key(cfg: DictConfig) -> str:
    """The run's name in its record: its output directory, relative to the working directory
    (the repository root) when inside it, so a record made in one clone holds in another."""
    out = Path(str(cfg.paths.output_dir)).resolve()
    try:
        return out.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return out.as_posix()


def load_record(path: Path) -> dict:
    """A study record (an empty one when the file does not exist yet)."""
    if not path.is_file():
        return {"format": RECORD_FORMAT, "runs": {}}
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ConfigError(f"study record '{path}' is not valid JSON") from None
    if record.get("format") != RECORD_FORMAT:
        raise ConfigError(f"'{path}' is not a study record ({RECORD_FORMAT})")
    return record


def recorded_results(cfg: DictConfig) -> dict | None:
    """The results the record holds for this run, if it was made with the same settings."""
    path = record_path(cfg)
    if path is None:
        return None
    entry = load_record(path)["runs"].get(run_key(cfg))
    if entry is None:
        return None
    now = OmegaConf.to_container(cfg, resolve=True)
    changed = setting_differences(entry["settings"], now, ignore=EXECUTION_SETTINGS)
    if changed:
        raise ConfigError(
            f"the study record '{path}' holds run '{run_key(cfg)}' made with other settings "
            f"({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''}): "
            "change the study's run directories or remove that entry"
        )
    return entry["results"]


def add_to_record(cfg: DictConfig, results: dict) -> None:
    """Write this run's settings, overrides and results into the study record."""
    path = record_path(cfg)
    if path is None:
        return
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    entry = {
        "settings": OmegaConf.to_container(cfg, resolve=True),
        "overrides": overrides,
        "results": results,
    }
    with _locked(path):
        record = load_record(path)
        record["runs"][run_key(cfg)] = entry
        record["runs"] = dict(sorted(record["runs"].items()))
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def tensor_digest(tensor: Tensor) -> str:
    """SHA-256 of a tensor's bytes (row-major, on the CPU)."""
    return digest(tensor.detach().cpu().numpy())


def baseline_key(images: Tensor, labels: Tensor, protocol: dict) -> str:
    """SHA-256 of a baseline's images, labels and evaluation protocol (all its score rests on)."""
    digest = hashlib.sha256()
    for tensor in (images, labels):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps(protocol, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def recorded_baseline(cfg: DictConfig, key: str) -> dict | None:
    """The random real accuracies of a recorded run whose baseline has this key, if any."""
    path = record_path(cfg)
    if path is None:
        return None
    for _, results in recorded_runs(path):
        if results.get("random_real_key") == key and "random_real" in results:
            return results["random_real"]
    return None


def recorded_runs(path: Path) -> Iterator[tuple[str, dict]]:
    """(run name, results) of every run in a study record."""
    for key, entry in load_record(path)["runs"].items():
        yield key, entry["results"]


def study_reports(names: list[str]) -> list[list[str]]:
    """The ``src.report`` command lines of each named study: its record, then each entry of its
    config's ``study.reports``, written beside the record."""
    from hydra.errors import MissingConfigException

    from src.pipelines.compare import compose_distill

    commands = []
    for name in names:
        try:
            study = compose_distill([f"experiment=study/{name}"]).study
        except MissingConfigException:
            raise ConfigError(f"no study config conf/experiment/study/{name}.yaml") from None
        if not study.get("reports"):
            raise ConfigError(f"study '{name}' names no reports (study.reports)")
        out = ["--out", str(Path(study.record).parent)]
        commands += [[study.record, *shlex.split(line), *out] for line in study.reports]
    return commands


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` (jobs of a parallel sweep add in turn)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
