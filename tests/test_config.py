"""Configs compose, name real classes, and drive a real run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from safetensors.torch import load_file

from src.errors import ConfigError
from src.io import load_distilled
from src.matching import EuclideanMeanLoss, LorentzCentroidLoss
from src.models import MODELS
from src.pipelines.distill import run_distill
from tests.helpers import CONF, ROOT, TINY, compose_cfg


def _options(group: str) -> list[str]:
    folder = Path(CONF) / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def test_defaults_are_dm_hdd_with_the_papers_settings():
    cfg = compose_cfg("distill", ["paths.output_dir=x"])
    assert cfg.dataset.name == "cifar10" and cfg.ipc == 10 and cfg.iterations == 20000
    assert cfg.method.name == "dm" and cfg.method.batch_real == 256
    assert cfg.method.lr_img == 1.0 and cfg.method.momentum == 0.5 and cfg.method.init == "real"
    loss = hydra.utils.instantiate(cfg.loss)
    assert isinstance(loss, LorentzCentroidLoss) and (loss.k, loss.scale) == (1.0, 20.0)
    e = cfg.eval
    assert (e.epochs, e.lr, e.momentum, e.weight_decay, e.batch_size) == (
        1000,
        0.01,
        0.9,
        5e-4,
        256,
    )
    assert isinstance(hydra.utils.instantiate(compose_cfg("distill", ["loss=euclidean"]).loss),
                      EuclideanMeanLoss)  # fmt: skip


@pytest.mark.parametrize("group", ["dataset", "method", "loss", "model", "augment", "trainer",
                                   "logger", "eval", "experiment"])  # fmt: skip
def test_every_option_of_every_group_composes(group):
    for option in _options(group):
        cfg = compose_cfg("distill", [f"{group}={option}", "paths.output_dir=x"])
        # Experiments are global packages; every other group fills its own key.
        assert group == "experiment" or cfg[group] is not None or option == "none"


def test_model_configs_name_registry_entries_and_datasets_match_the_registry():
    from src.data import DATASETS

    for option in _options("model"):
        assert compose_cfg("distill", [f"model={option}"]).model.name in MODELS
    for option in _options("dataset"):
        node = compose_cfg("distill", [f"dataset={option}"]).dataset
        if node._target_ == "src.data.load_dataset":
            assert node.name in DATASETS
        else:  # an ImageFolder tree: described by its config and its folders, not the registry
            assert node._target_ == "src.data.load_folder_dataset" and node.name not in DATASETS


@pytest.mark.parametrize("group", ["dataset", "method", "loss", "model", "augment", "trainer",
                                   "prune", "logger"])  # fmt: skip
def test_every_group_that_builds_something_names_it_with_target(group):
    for option in _options(group):
        node = compose_cfg("distill", [f"{group}={option}", "paths.output_dir=x"])[group]
        # logger: a node per logger (none: no logger at all).
        nodes = node.values() if group == "logger" else [node]
        for built in nodes:
            target = hydra.utils.get_object(built["_target_"])
            assert callable(target), f"{group}={option}: {built['_target_']}"


def test_a_bare_model_name_builds_what_its_group_node_builds():
    from src.data import get_dataset_info
    from src.pipelines.components import model_factory, network_spec

    info = get_dataset_info("fashion_mnist")
    for option in _options("model"):
        node = compose_cfg("distill", [f"model={option}"]).model
        from_node, from_name = model_factory(node, info)(), model_factory({"name": option}, info)()
        assert repr(from_node) == repr(from_name), option
        assert set(network_spec(node)) == set(node) - {"_target_", "_partial_"}
    with pytest.raises(ConfigError, match="fixes norm='batchnorm'"):
        model_factory({"name": "convnet_bn", "norm": "instancenorm"}, info)


def test_a_bare_dataset_node_loads_what_its_group_node_loads(tmp_path):
    from src.pipelines.components import load_data

    node = compose_cfg("distill", ["dataset=random_cifar10", f"paths.data_dir={tmp_path}"]).dataset
    bare = {"name": "random_cifar10", "root": str(tmp_path), "download": False}
    (info, pool), (info_bare, pool_bare) = load_data(node, train=False), load_data(bare, False)
    assert info == info_bare and torch.equal(pool.images, pool_bare.images)
    assert len(pool) != len(load_data(node, train=True)[1])  # the split is the caller's


def test_the_trainer_group_builds_a_factory_that_the_caller_completes():
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.strategies import SingleDeviceStrategy

    from src.pipelines.components import trainer_factory

    make = trainer_factory(compose_cfg("distill", ["trainer=ddp_cpu"]).trainer)
    assert make.keywords["strategy"] == "ddp" and make.keywords["devices"] == 2
    # What evaluation does with the run's trainer: one device, no data-parallel strategy.
    trainer = make(devices=1, strategy="auto", max_epochs=3, logger=False)
    assert isinstance(trainer.accelerator, CPUAccelerator) and trainer.max_epochs == 3
    assert isinstance(trainer.strategy, SingleDeviceStrategy)


def test_tiny_run_writes_a_loadable_set_and_results(tmp_path):
    cfg = compose_cfg("distill", [*TINY, f"paths.output_dir={tmp_path}", "eval.eval_at=[2]"])
    results = run_distill(cfg)
    ds = load_distilled(tmp_path / "distilled.safetensors")
    assert ds.images.shape == (20, 1, 28, 28) and ds.labels.bincount().tolist() == [2] * 10
    meta = ds.meta
    assert (meta["dataset"], meta["ipc"], meta["label"]) == ("fashion_mnist", 2, "DM+HDD")
    assert (meta["method"]["name"], meta["method"]["factor"], ds.factor) == ("dm", 1, 1)
    assert meta["loss"] == {
        "name": "lorentz", "k": 1.0, "scale": 20.0, "lift": "expmap", "max_radius": 10.0
    }  # fmt: skip
    assert meta["method"]["terms"]["match"]["loss"] == meta["loss"]
    assert (meta["iteration"], meta["seed"]) == (3, 0)
    assert meta["class_names"][0] == "T-shirt/top" and meta["config"]["ipc"] == 2
    assert json.loads((tmp_path / "distilled.json").read_text()) == meta
    assert (tmp_path / "distilled.png").stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert set(saved) >= {"random_real", "distilled", "during"} and "2" in saved["during"]
    for key in ("random_real", "distilled"):
        assert len(saved[key]["accuracies"]) == 1 and 0.0 <= saved[key]["mean"] <= 100.0


def test_multirun_sweeps_ipc_and_loss(tmp_path):
    overrides = [o for o in TINY if not o.startswith("ipc=")]
    cmd = [
        sys.executable, "-m", "src.distill", "-m", "ipc=1,2", "loss=euclidean,lorentz",
        *overrides, "eval.final=false", "eval.random_baseline=false",
        f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${hydra.job.num}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = set()
    for run in sorted(tmp_path.glob("[0-9]*")):
        meta = load_distilled(run / "distilled.safetensors").meta
        seen.add((meta["ipc"], meta["loss"]["name"]))
        assert len(load_file(run / "distilled.safetensors")["labels"]) == 10 * meta["ipc"]
    assert seen == {(1, "euclidean"), (1, "lorentz"), (2, "euclidean"), (2, "lorentz")}


def test_benchmark_experiment_holds_the_documented_budget():
    cfg = compose_cfg("distill", ["experiment=fashion_mnist_bench"])
    assert (cfg.dataset.name, cfg.ipc, cfg.iterations, cfg.method.batch_real) == (
        "fashion_mnist", 10, 200, 64
    )  # fmt: skip
    assert (cfg.eval.num_models, cfg.eval.epochs) == (3, 300)
    # Command-line values still win over the experiment's.
    assert compose_cfg("distill", ["experiment=fashion_mnist_bench", "ipc=1"]).ipc == 1


RELEASED_IDM = {  # IDM-HDD command lines: dataset, ipc -> lr_img, ce_weight, other settings
    ("cifar10", 1): (0.5, 0.5, {"batch_real": 5000, "add_net_every": 5}),
    ("cifar10", 10): (1.0, 0.5, {}),
    ("cifar10", 50): (0.2, 0.1, {"acc_reset_interval": 500}),
    ("cifar100", 1): (0.5, 0.5, {"batch_real": 5000, "add_net_every": 5}),
    ("cifar100", 10): (0.2, 0.1, {"train_steps": 50}),
    ("cifar100", 50): (0.2, 0.1, {"acc_reset_interval": 500}),
    ("tinyimagenet", 1): (0.5, 0.5, {}),
    ("tinyimagenet", 10): (1.0, 0.5, {"acc_reset_interval": 500}),
    ("tinyimagenet", 50): (0.2, 0.8, {"train_steps": 50, "acc_reset_interval": 1000}),
}
# The released IDM-HDD scripts per dataset: iterations, lift, cap, k, scale, ConvNet depth,
# whether the init packs four half-size real images per stored image.
RELEASED_IDM_SCRIPT = {
    "cifar10": (10000, "expmap", 10.0, 2.4, 100.0, None, True),
    "cifar100": (20000, "project", None, 2.0, 100.0, None, True),
    "tinyimagenet": (20000, "project", None, 0.5, 500.0, 3, False),
}


def _loss_settings(cfg) -> tuple:
    loss = hydra.utils.instantiate(cfg.loss)
    assert isinstance(loss, LorentzCentroidLoss)
    return loss.lift, loss.max_radius, loss.k, loss.scale


@pytest.mark.parametrize(("dataset", "ipc"), sorted(RELEASED_IDM))
def test_presets_hold_the_released_settings(dataset, ipc):
    lr_img, ce_weight, other = RELEASED_IDM[(dataset, ipc)]
    iterations, lift, cap, k, scale, depth, pack = RELEASED_IDM_SCRIPT[dataset]
    idm = compose_cfg("distill", [f"experiment=idm_hdd/{dataset}_ipc{ipc}"])
    assert (idm.dataset.name, idm.ipc, idm.iterations, idm.method.name) == (
        dataset, ipc, iterations, "idm"
    )  # fmt: skip
    assert (idm.method.lr_img, idm.method.ce_weight, idm.method.match_nets) == (
        lr_img, ce_weight, 1
    )  # fmt: skip
    assert idm.method.net_decay and idm.method.syn_ce and idm.method.factor == 2
    assert idm.method.pack_init is pack and idm.model.depth == depth
    expected = {"acc_reset_interval": 100} | other
    for key, value in expected.items():
        assert idm.method[key] == value
    assert _loss_settings(idm) == (lift, cap, k, scale)
    plain = compose_cfg("distill", [f"experiment=idm_hdd/{dataset}_ipc{ipc}", "loss=euclidean"])
    assert isinstance(hydra.utils.instantiate(plain.loss), EuclideanMeanLoss)
    dm = compose_cfg("distill", [f"experiment=dm_hdd/{dataset}_ipc{ipc}"])
    assert (dm.method.name, dm.iterations, dm.method.lr_img, dm.method.batch_real) == (
        "dm", 20000, 1.0, 256
    )  # fmt: skip
    assert _loss_settings(dm) == ("expmap", 10.0, 1.0, 20.0)
    assert dm.model.depth == (3 if dataset == "tinyimagenet" else None)


def test_the_default_lift_is_the_released_dm_hdd_one_and_the_exact_map_an_option():
    assert _loss_settings(compose_cfg("distill", [])) == ("expmap", 10.0, 1.0, 20.0)
    exact = compose_cfg("distill", ["loss.max_radius=null"])
    assert _loss_settings(exact) == ("expmap", None, 1.0, 20.0)
    project = compose_cfg("distill", ["loss.lift=project", "loss.max_radius=null"])
    assert _loss_settings(project) == ("project", None, 1.0, 20.0)


def test_lorentz_defaults_follow_the_method_and_yield_to_overrides():
    idm = hydra.utils.instantiate(compose_cfg("distill", ["method=idm"]).loss)
    assert (idm.k, idm.scale) == (2.4, 100.0)
    custom = hydra.utils.instantiate(compose_cfg("distill", ["method=idm", "loss.k=0.5"]).loss)
    assert (custom.k, custom.scale) == (0.5, 100.0)


def test_compare_runs_every_loss_on_the_same_seed_and_tabulates(tmp_path):
    from src.pipelines.compare import run_compare

    out = run_compare(TINY, ["euclidean", "lorentz"], [0], tmp_path)
    table = out["table"]
    assert "| random real (init) |" in table and "| DM |" in table and "| DM+HDD |" in table
    runs = out["summary"]["runs"]
    # The baseline is evaluated once per seed; both distilled sets are evaluated.
    assert "random_real" in runs["euclidean"][0] and "random_real" not in runs["lorentz"][0]
    assert {r["label"] for rs in runs.values() for r in rs} == {"DM", "DM+HDD"}
    assert (tmp_path / "runs" / "method_lorentz_seed0" / "distilled.safetensors").exists()


def test_labels_name_hdd_variants_that_differ_from_the_released_settings():
    from src.pipelines.components import run_label

    def label(*overrides):
        return run_label(compose_cfg("distill", list(overrides)))

    assert label() == "DM+HDD" and label("loss=euclidean") == "DM"
    assert label("loss.max_radius=null") == "DM+HDD (expmap exact, k 1, scale 20)"
    assert label("loss.lift=project", "loss.max_radius=null", "loss.k=16") == (
        "DM+HDD (project, k 16, scale 20)"
    )
    assert label("loss.k=4") == "DM+HDD (expmap cap 10, k 4, scale 20)"
    assert label("experiment=idm_hdd/cifar100_ipc1") == "IDM+HDD"  # that preset's released lift
    assert label("loss=lorentz_project") == "DM+HDD (project, k 256, scale 20)"  # recommended
    assert label("loss=euclidean_unsquared") == "DM (unsquared, scale 20)"  # flat-limit control
    assert label("method=idm", "loss=euclidean") == "IDM"


@pytest.mark.parametrize(("dataset", "ipc"), sorted(RELEASED_IDM))
def test_the_recommended_presets_are_the_released_ones_with_the_projection_lift(dataset, ipc):
    released = compose_cfg("distill", [f"experiment=dm_hdd/{dataset}_ipc{ipc}"])
    recommended = compose_cfg("distill", [f"experiment=dm_hdd_project/{dataset}_ipc{ipc}"])
    assert _loss_settings(recommended) == ("project", None, 256.0, 20.0)
    assert compose_cfg("distill", ["loss=lorentz_project"]).loss == recommended.loss
    for key in set(released) | set(recommended):
        if key != "loss":
            assert recommended.get(key) == released.get(key), key
