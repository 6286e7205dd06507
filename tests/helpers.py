"""What tests share: the tiny-run overrides, config composition and running an entry point
as a user does (a subprocess), with the checks of its error output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from src.io import save_distilled

ROOT = Path(__file__).resolve().parents[1]
REPO = ROOT
CONF = str(ROOT / "conf")

# The one tiny-run override set: small but real, every test composes the real configs with
# it (tests add what they vary). EVAL_TINY is its evaluation part, which src.evaluate takes.
EVAL_TINY = ["model.width=8", "eval.num_models=1", "eval.epochs=2", "logger=none"]
TINY = ["dataset=fashion_mnist", "ipc=2", "iterations=3", "method.batch_real=8", *EVAL_TINY]
# A tiny DANCE-style expert pool (DANCE, NCFM): two ConvNets, one epoch, no augmentation
# (tests/test_experts.py covers the protocol's own), trained on 2% of the real pool.
TINY_EXPERTS = ["method.experts.num_experts=2", "method.experts.epochs=1",
                "method.experts.batch_size=512", "method.experts.augment=null",
                "prune=random", "prune.keep_ratio=0.02"]  # fmt: skip


def compose_cfg(name: str, overrides: list[str]):
    """Compose ``conf/<name>.yaml`` with overrides."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(name, overrides=overrides)


# A Python warning as printed on stderr ("file.py:12: FutureWarning: ...") and its source line.
_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")


def run_module(module: str, *overrides: str, run_dir: Path) -> subprocess.CompletedProcess:
    """Run ``python -m module overrides... hydra.run.dir=run_dir`` from the repository root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("OMP_NUM_THREADS", None)  # torch's default threads, as a user's shell has
    return subprocess.run(
        [sys.executable, "-m", module, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def problem_lines(stderr: str) -> list[str]:
    """Non-empty stderr lines, without Python warnings emitted by third-party imports."""
    lines: list[str] = []
    in_warning = False
    for line in stderr.splitlines():
        if _WARNING.match(line):
            in_warning = True
            continue
        if in_warning and line[:1] in (" ", "\t"):
            continue
        in_warning = False
        if line.strip():
            lines.append(line)
    return lines


def describe(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit and exactly one ``error: ...`` line on stderr containing ``fragments``."""
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stderr + result.stdout, describe(result)
    lines = problem_lines(result.stderr)
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("error: "), describe(result)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_hydra_names_option(result: subprocess.CompletedProcess, bad: str) -> None:
    """Hydra rejected an unknown config-group option and named it."""
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stderr + result.stdout, describe(result)
    assert re.search(rf"\b{re.escape(bad)}\b", result.stderr), describe(result)


class Sentinel:
    """A valid distilled set already in a run folder, whose bytes must survive a failed run."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / "distilled.safetensors"
        images = torch.full((10, 1, 28, 28), 0.25)
        save_distilled(self.path, images, torch.arange(10), {"dataset": "fashion_mnist", "ipc": 1})
        self.files = {p.name: p.read_bytes() for p in folder.iterdir()}

    def assert_untouched(self) -> None:
        for name, data in self.files.items():
            assert (self.folder / name).read_bytes() == data, f"{name} was changed"
        new = {
            p.name
            for p in self.folder.iterdir()
            if p.name.startswith(("distilled", ".distilled", "results", "eval_results"))
        } - set(self.files)
        assert not new, f"a failed run wrote {sorted(new)}"
