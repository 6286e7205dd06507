"""Shared fixtures: small real pools (helpers and the tiny-run overrides: tests/helpers.py)."""

from __future__ import annotations

import pytest
import torch

from src.data import get_dataset_info, load_pool
from tests.helpers import ROOT


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
