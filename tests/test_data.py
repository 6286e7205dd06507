"""Behaviour of src.data: the registry, offline Fashion-MNIST, IDX parsing, RealPool sampling."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data import DATASETS, RealPool, get_dataset_info, load_pool, load_split
from src.data.loaders import read_idx
from src.errors import ConfigError, DataError

# name: (channels, im_size, num_classes, mean, std), as the data sets are published.
EXPECTED = {
    "mnist": (1, (28, 28), 10, (0.1307,), (0.3081,)),
    "fashion_mnist": (1, (28, 28), 10, (0.2861,), (0.3530,)),
    "svhn": (3, (32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": (3, (32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": (3, (32, 32), 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": (3, (64, 64), 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def small_pool(counts: list[int], channels: int = 1, size: int = 4, seed: int = 0) -> RealPool:
    """A pool with ``counts[c]`` random uint8 images of class c, in shuffled order."""
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=gen(seed))]
    images = torch.randint(
        0, 256, (len(labels), channels, size, size), dtype=torch.uint8, generator=gen(seed + 1)
    )
    return RealPool(images, labels, len(counts), (0.5,) * channels, (0.25,) * channels)


# --- registry ---------------------------------------------------------------------------------


def test_registry_holds_exactly_the_spec_data_sets() -> None:
    # ... and a seeded random stand-in of CIFAR-10's shape for benchmarks.
    assert set(DATASETS) == set(EXPECTED) | {"random_cifar10"}


def test_smallest_class_size_of_the_registry_matches_the_data(fmnist_train) -> None:
    info, pool = fmnist_train
    assert info.min_class_size == int(pool.counts.min()) == 6000


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_values(name: str) -> None:
    channels, im_size, num_classes, mean, std = EXPECTED[name]
    info = get_dataset_info(name)
    assert info.name == name
    assert info.channels == channels
    assert tuple(info.im_size) == im_size
    assert info.num_classes == num_classes
    assert tuple(info.mean) == pytest.approx(mean, abs=1e-9)
    assert tuple(info.std) == pytest.approx(std, abs=1e-9)
    assert len(info.mean) == len(info.std) == channels
    assert len(info.names()) == num_classes


def test_unknown_dataset_is_config_error_listing_the_names() -> None:
    with pytest.raises(ConfigError) as excinfo:
        get_dataset_info("imagenet_1k")
    message = str(excinfo.value)
    assert "imagenet_1k" in message
    for name in EXPECTED:
        assert name in message


# --- Fashion-MNIST, offline -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[torch.Tensor, ...]]:
    """Both splits of Fashion-MNIST, read with an empty root (so from the offline copy)."""
    root = tmp_path_factory.mktemp("empty_root")
    info = get_dataset_info("fashion_mnist")
    return {train: load_split(info, root, train=train, download=False) for train in (True, False)}


@pytest.mark.parametrize(("train", "n"), [(True, 60000), (False, 10000)])
def test_fashion_mnist_loads_offline(
    fashion: dict[bool, tuple[torch.Tensor, ...]], train: bool, n: int
) -> None:
    images, labels = fashion[train]
    assert images.dtype == torch.uint8
    assert tuple(images.shape) == (n, 1, 28, 28)
    assert labels.dtype == torch.int64
    assert tuple(labels.shape) == (n,)
    assert set(labels.unique().tolist()) == set(range(10))
    assert torch.bincount(labels, minlength=10).tolist() == [n // 10] * 10
    # Real pictures, not a blank placeholder: both dark and bright pixels occur.
    assert int(images.min()) == 0 and int(images.max()) == 255


def test_load_pool_of_fashion_mnist_is_a_uint8_pool(tmp_path: Path) -> None:
    pool = load_pool(get_dataset_info("fashion_mnist"), tmp_path, train=False, download=False)
    assert len(pool) == 10000
    assert pool.images.dtype == torch.uint8
    assert pool.min_class_count() == 1000


def write_idx(path: Path, array: np.ndarray, truncate: int = 0) -> Path:
    """Write ``array`` (uint8) as an IDX file, dropping the last ``truncate`` bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    data = data[: len(data) - truncate]
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_read_idx_round_trip(tmp_path: Path, name: str) -> None:
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_read_idx_rejects_truncated_body(tmp_path: Path, name: str) -> None:
    array = np.zeros((4, 3, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="truncated"):
        read_idx(write_idx(tmp_path / name, array, truncate=5))


def test_read_idx_rejects_trailing_bytes(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x-idx1-ubyte", np.zeros(6, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with pytest.raises(DataError):
        read_idx(path)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty
        b"\x00\x00",  # shorter than the magic number
        bytes([0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 7]),  # bad magic
        bytes([0, 0, 0x0D, 0x01, 0, 0, 0, 1]) + b"\x00" * 4,  # float32 IDX, not unsigned bytes
    ],
    ids=["empty", "short", "bad-magic", "float-dtype"],
)
def test_read_idx_rejects_non_idx_data(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(DataError):
        read_idx(path)


def test_read_idx_rejects_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 2]))  # three dimensions, one size given
    with pytest.raises(DataError):
        read_idx(path)


@pytest.mark.parametrize("kind", ["not-gzip", "cut-gzip"])
def test_read_idx_rejects_corrupt_gzip(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x-idx1-ubyte.gz"
    if kind == "not-gzip":
        path.write_bytes(b"this is not a gzip stream at all")
    else:
        good = gzip.compress(bytes([0, 0, 0x08, 1, 0, 0, 0, 100]) + bytes(100))
        path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError):
        read_idx(path)


# --- missing data sets with no network --------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "svhn", "cifar10", "cifar100", "tinyimagenet"])
def test_missing_dataset_is_data_error_saying_what_to_do(tmp_path: Path, name: str) -> None:
    root = tmp_path / "nothing_here"
    with pytest.raises(DataError) as excinfo:
        load_split(get_dataset_info(name), root, train=True, download=True)
    message = str(excinfo.value)
    assert f"'{name}'" in message
    assert str(root) in message  # where it looked / where to put the files
    assert "\n" not in message  # one line


# --- RealPool ---------------------------------------------------------------------------------


def test_pool_stores_uint8_a_quarter_of_float32() -> None:
    pool = small_pool([5, 7, 3], channels=3, size=6)
    n, c, h, w = pool.images.shape
    assert pool.images.dtype == torch.uint8
    assert pool.nbytes() == n * c * h * w
    as_float = pool.images.float()
    assert pool.nbytes() * 4 == as_float.numel() * as_float.element_size()
    assert pool.counts.tolist() == [5, 7, 3]
    assert pool.min_class_count() == 3


def test_pool_rejects_float_images() -> None:
    with pytest.raises(TypeError):
        RealPool(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), 2, (0.5,), (0.5,))


def test_pool_rejects_mismatched_labels() -> None:
    with pytest.raises(ValueError):
        RealPool(
            torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]), 2, (0.5,), (0.5,)
        )


def test_normalize_uses_mean_std_and_denormalize_inverts_it() -> None:
    mean, std = (0.2, 0.5, 0.7), (0.1, 0.3, 0.2)
    images = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8, generator=gen(3))
    pool = RealPool(images, torch.tensor([0, 1, 0, 1, 0, 1]), 2, mean, std)
    x = pool.normalize(images)
    assert x.dtype == torch.float32
    for ch in range(3):
        expected = (images[:, ch].float() / 255.0 - mean[ch]) / std[ch]
        torch.testing.assert_close(x[:, ch], expected)
    torch.testing.assert_close(pool.denormalize(x), images.float() / 255.0)
    torch.testing.assert_close(pool.get(torch.tensor([[4, 1]])), x[[4, 1]])


def test_sample_draws_distinct_members_of_each_class() -> None:
    pool = small_pool([20, 30, 25, 40])
    b = 10
    indices, weights = pool.sample(b, gen(0))
    assert tuple(indices.shape) == tuple(weights.shape) == (4, b)
    assert torch.equal(weights, torch.ones(4, b))  # every class has >= b samples
    for c in range(4):
        row = indices[c]
        assert (pool.labels[row] == c).all()
        assert len(set(row.tolist())) == b


def test_sample_is_seeded_by_the_generator_only() -> None:
    pool = small_pool([50, 60, 70])
    torch.manual_seed(123)  # the global RNG must not matter
    a, _ = pool.sample(8, gen(7))
    torch.manual_seed(456)
    b, _ = pool.sample(8, gen(7))
    c, _ = pool.sample(8, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_covers_the_class() -> None:
    pool = small_pool([12, 9])
    seen: set[int] = set()
    g = gen(1)
    for _ in range(60):
        indices, _ = pool.sample(3, g)
        seen |= set(indices[1].tolist())
    assert seen == set(torch.nonzero(pool.labels == 1).flatten().tolist())


def test_small_class_gets_weight_zero_padding() -> None:
    counts = [10, 3, 6]
    pool = small_pool(counts)
    b = 6
    indices, weights = pool.sample(b, gen(2))
    assert tuple(indices.shape) == (3, b)
    for c, n in enumerate(counts):
        drawn = min(n, b)
        assert set(weights[c].tolist()) <= {0.0, 1.0}
        assert int(weights[c].sum()) == drawn
        real = indices[c][weights[c] > 0]
        assert (pool.labels[real] == c).all()
        assert len(set(real.tolist())) == drawn
    # The short class's real draws are all of its samples.
    real_1 = indices[1][weights[1] > 0]
    assert set(real_1.tolist()) == set(torch.nonzero(pool.labels == 1).flatten().tolist())
    # Padding still points at valid indices (so gathering never goes out of bounds).
    assert ((indices >= 0) & (indices < len(pool))).all()


def test_random_per_class_rejects_n_above_smallest_class() -> None:
    pool = small_pool([8, 4, 9])
    picked = pool.random_per_class(4, gen(0))
    assert tuple(picked.shape) == (3, 4)
    for c in range(3):
        assert (pool.labels[picked[c]] == c).all()
        assert len(set(picked[c].tolist())) == 4
    with pytest.raises(ConfigError) as excinfo:
        pool.random_per_class(5, gen(0))
    assert "5" in str(excinfo.value) and "4" in str(excinfo.value)


def test_subset_keeps_exactly_those_samples() -> None:
    pool = small_pool([6, 5, 7], channels=3)
    keep = torch.tensor([0, 3, 4, 9, 10, 17])
    sub = pool.subset(keep)
    assert len(sub) == len(keep)
    assert torch.equal(sub.images, pool.images[keep])
    assert torch.equal(sub.labels, pool.labels[keep])
    expected_counts = torch.bincount(pool.labels[keep], minlength=3)
    assert torch.equal(sub.counts, expected_counts)
    assert sub.num_classes == pool.num_classes
    # Normalisation is the parent pool's, not a default.
    torch.testing.assert_close(sub.get(torch.arange(len(keep))), pool.get(keep))
    # Sampling from the subset only returns subset rows of the right class.
    indices, weights = sub.sample(2, gen(0))
    for c in range(3):
        real = indices[c][weights[c] > 0]
        assert (sub.labels[real] == c).all()


def test_random_cifar10_is_seeded_and_shaped_like_cifar10():
    from src.data import get_dataset_info
    from src.data.loaders import load_split

    info = get_dataset_info("random_cifar10")
    x, y = load_split(info, "unused", train=False)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [1000] * 10
    assert torch.equal(load_split(info, "unused", train=False)[0], x)
    assert not torch.equal(load_split(info, "unused", train=True)[0][:10000], x)
