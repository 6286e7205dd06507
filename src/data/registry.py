"""The data sets the project knows: shape, classes and normalisation (docs/method.md §9)."""

from __future__ import annotations

from dataclasses import dataclass

from src.errors import ConfigError

_FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CIFAR10 = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a data set."""

    name: str
    channels: int
    im_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] | None = None
    min_class_size: int | None = None  # smallest class of the training split, for early checks

    def names(self) -> list[str]:
        """Class names, or the class indices as strings where none are known."""
        if self.class_names is not None:
            return list(self.class_names)
        return [str(c) for c in range(self.num_classes)]


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", 1, (28, 28), 10, (0.1307,), (0.3081,), tuple("0123456789"), 5421),
        DatasetInfo("fashion_mnist", 1, (28, 28), 10, (0.2861,), (0.3530,), _FASHION, 6000),
        DatasetInfo(
            "svhn",
            3,
            (32, 32),
            10,
            (0.4377, 0.4438, 0.4728),
            (0.1980, 0.2010, 0.1970),
            tuple("0123456789"),
            4659,
        ),  # fmt: skip
        DatasetInfo(
            "cifar10",
            3,
            (32, 32),
            10,
            (0.4914, 0.4822, 0.4465),
            (0.2023, 0.1994, 0.2010),
            _CIFAR10,
            5000,
        ),  # fmt: skip
        DatasetInfo(
            "cifar100",
            3,
            (32, 32),
            100,
            (0.5071, 0.4866, 0.4409),
            (0.2673, 0.2564, 0.2762),
            min_class_size=500,
        ),  # fmt: skip
        # Seeded random images of CIFAR-10's shape: benchmarks and smoke runs without data.
        DatasetInfo(
            "random_cifar10",
            3,
            (32, 32),
            10,
            (0.5, 0.5, 0.5),
            (0.2887, 0.2887, 0.2887),
            min_class_size=5000,
        ),  # fmt: skip
        DatasetInfo(
            "tinyimagenet",
            3,
            (64, 64),
            200,
            (0.485, 0.456, 0.406),
            (0.229, 0.224, 0.225),
            min_class_size=500,
        ),  # fmt: skip
    )
}


def get_dataset_info(name: str) -> DatasetInfo:
    """Look a data set up by name; an unknown name is a ConfigError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset '{name}'; choose one of: {', '.join(sorted(DATASETS))}"
        ) from None
