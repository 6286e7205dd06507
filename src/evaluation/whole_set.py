"""The whole-training-set reference: measured accuracies cached with their protocol, and the
published ones.

A measurement is stored as ``<data_dir>/whole_set/<dataset>__<model>__<hash>.json`` holding
the protocol (data set, network settings, epochs, optimiser, augmentation, networks, seed)
and the result; the hash is of the protocol, so another protocol is another file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from src.evaluation.protocol import EvalResult
from src.io import atomic_write_text

# ConvNet-3 trained on the whole training set, test accuracy (%), as the field reports it
# (Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023, Table 1;
# the same values as in DC and DSA). Other architectures have no published reference here.
PUBLISHED_WHOLE_SET = {
    ("mnist", "convnet"): 99.6,
    ("fashion_mnist", "convnet"): 93.5,
    ("svhn", "convnet"): 95.4,
    ("cifar10", "convnet"): 84.8,
    ("cifar100", "convnet"): 56.2,
    ("tinyimagenet", "convnet"): 37.6,
}
# The network those values are for (conf/model/convnet.yaml; depth follows the image size).
PUBLISHED_NETWORK = {"width": 128, "norm": "instancenorm", "act": "relu", "pool": "avgpool"}
CACHE_DIR = "whole_set"


def protocol_key(protocol: dict) -> str:
    """A short hash of a protocol (its JSON with sorted keys)."""
    text = json.dumps(protocol, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(data_dir: str | Path, protocol: dict) -> Path:
    """Where the measurement under ``protocol`` is (or will be) cached."""
    name = f"{protocol['dataset']}__{protocol['model']['name']}__{protocol_key(protocol)}.json"
    return Path(data_dir) / CACHE_DIR / name


def load_cached(data_dir: str | Path, protocol: dict) -> EvalResult | None:
    """The cached result of exactly this protocol (None if it was never measured)."""
    path = cache_path(data_dir, protocol)
    if not path.is_file():
        return None
    return EvalResult(json.loads(path.read_text())["result"]["accuracies"])


def save_cached(data_dir: str | Path, protocol: dict, result: EvalResult) -> Path:
    """Cache a measurement with its protocol (atomically)."""
    path = cache_path(data_dir, protocol)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"protocol": protocol, "result": result.as_dict()}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def whole_set_reference(data_dir: str | Path, dataset: str, model: dict) -> dict | None:
    """The whole-set accuracy for (dataset, network): the newest measurement of that exact
    network, else the published value; None when there is neither.

    Returns ``{"accuracy", "source": "measured" | "published", "protocol"}``.
    """
    folder = Path(data_dir) / CACHE_DIR
    measured = []
    for path in folder.glob(f"{dataset}__{model['name']}__*.json") if folder.is_dir() else []:
        record = json.loads(path.read_text())
        if record["protocol"]["model"] == model:
            measured.append((path.stat().st_mtime, record))
    if measured:
        record = max(measured, key=lambda item: item[0])[1]
        accuracy = EvalResult(record["result"]["accuracies"]).mean
        return {"accuracy": accuracy, "source": "measured", "protocol": record["protocol"]}
    published = PUBLISHED_WHOLE_SET.get((dataset, model["name"]))
    settings = {k: v for k, v in model.items() if k not in ("name", "depth") and v is not None}
    if published is None or any(PUBLISHED_NETWORK.get(k) != v for k, v in settings.items()):
        return None  # published values are for the field's default network only
    return {"accuracy": published, "source": "published", "protocol": None}
