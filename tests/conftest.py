"""Shared fixtures: composed configs and small real pools."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from src.data import get_dataset_info, load_pool

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")

# Small but real: every test run composes the real configs with these overrides.
TINY = [
    "dataset=fashion_mnist",
    "ipc=2",
    "iterations=3",
    "method.batch_real=8",
    "model.width=8",
    "eval.num_models=1",
    "eval.epochs=2",
    "logger=none",
]


def compose_cfg(name: str, overrides: list[str]):
    """Compose ``conf/<name>.yaml`` with overrides."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="session")
def fmnist_train():
    """The Fashion-MNIST training split as a RealPool (loaded once)."""
    info = get_dataset_info("fashion_mnist")
    return info, load_pool(info, ROOT / "data", train=True)


@pytest.fixture(scope="session")
def fmnist_test():
    """The Fashion-MNIST test split as a RealPool (loaded once)."""
    info = get_dataset_info("fashion_mnist")
    return info, load_pool(info, ROOT / "data", train=False)


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """Tests that draw inputs from the global RNG see the same inputs every run."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)
