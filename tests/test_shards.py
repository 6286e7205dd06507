"""Class-sharded distillation: per-class random streams, classes= jobs and their merge,
trainer=ddp_cpu_classes, all giving the one-process set bit for bit (DM, DataDAM)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from src.augment import DSA
from src.compute.sharding import block, job_classes, run_classes
from src.data import RealPool
from src.errors import ConfigError
from src.io import load_distilled
from src.rng import class_generators
from tests.helpers import REPO, TINY, assert_one_error_line, compose_cfg, run_module

# Both losses of DM, the synthetic set of every class, no evaluation (a shard has none).
SHARD_TINY = [*TINY, "eval.final=false", "eval.random_baseline=false", "geometry.enabled=false",
              "geometry.real_per_class=10", "method.batch_real=6"]  # fmt: skip
LOSSES = ("euclidean", "lorentz")


def test_classes_name_contiguous_blocks_lists_or_everything():
    assert [block(list(range(10)), i, 3) for i in range(3)] == [
        [0, 1, 2, 3], [4, 5, 6], [7, 8, 9]
    ]  # fmt: skip
    assert job_classes(None, 4) == [0, 1, 2, 3]
    assert job_classes("1/2", 5) == [3, 4] and job_classes([2, 7], 10) == [2, 7]
    for bad in ("2/2", "x/3", [3, 1], [0, 0], [10]):
        with pytest.raises(ConfigError, match="classes"):
            job_classes(bad, 10)
    trainer = {"strategy": "ddp_classes", "devices": 2, "num_nodes": 1}
    assert run_classes("1/2", trainer, 10) == [5, 6, 7]  # rank 0's block of 5, 6, 7, 8, 9
    with pytest.raises(ConfigError, match="3 ranks cannot share 2 classes"):
        run_classes([0, 1], {**trainer, "devices": 3}, 10)


def _pool(counts: list[int]) -> RealPool:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    images = torch.randint(0, 256, (len(labels), 1, 4, 4), dtype=torch.uint8)
    return RealPool(images, labels, len(counts), (0.5,), (0.5,))


def test_a_class_draws_the_same_real_batch_whichever_classes_its_pool_serves():
    pool = _pool([7, 3, 9, 5])
    full, weights = pool.sample(6, class_generators(0, "sample", range(4)))
    part = pool.with_classes([1, 3])
    idx, w = part.sample(6, class_generators(0, "sample", [1, 3]))
    assert torch.equal(idx, full[[1, 3]]) and torch.equal(w, weights[[1, 3]])
    # Padding beyond a class's size has weight 0 and the width is the whole data set's.
    assert w.shape == (2, 6) and w[0].tolist() == [1, 1, 1, 0, 0, 0]
    assert set(pool.labels[idx[1]].tolist()) == {3} and len(set(idx[1].tolist())) == 5


def test_a_group_draws_the_same_transform_whichever_groups_share_its_batch():
    dsa = DSA()
    x = torch.randn(8, 3, 8, 8)
    groups = torch.arange(4).repeat_interleave(2)
    whole = dsa(x, class_generators(0, "augment", range(4)), groups=groups, num_groups=4)
    part = dsa(x[4:], class_generators(0, "augment", [2, 3]), groups=groups[4:] - 2, num_groups=2)
    assert torch.equal(whole[4:], part)
    # Siamese: both images of a group (here identical inputs) get the same transform.
    same = dsa(x[:1].repeat(2, 1, 1, 1), class_generators(5, "a", [0]), torch.zeros(2), 1)
    assert torch.equal(same[0], same[1])
    with pytest.raises(ValueError, match="one generator per group"):
        dsa(x, class_generators(0, "augment", range(3)), groups=groups, num_groups=4)


def _distill(tmp_path, name: str, *overrides: str) -> torch.Tensor:
    from src.pipelines.distill import run_distill

    out = tmp_path / name
    run_distill(compose_cfg("distill", [*SHARD_TINY, *overrides, f"paths.output_dir={out}"]))
    return out


@pytest.mark.parametrize("method,loss", [("dm", "euclidean"), ("dm", "lorentz"),
                                         ("datadam", "lorentz")])  # fmt: skip
def test_two_class_shard_jobs_merge_to_the_one_process_set_bitwise(tmp_path, method, loss):
    from src.merge import main as merge

    run = [f"method={method}", f"loss={loss}"]
    one = load_distilled(_distill(tmp_path, "one", *run) / "distilled.safetensors")
    shards = [_distill(tmp_path, f"shard{i}", *run, f"classes={i}/2") for i in (1, 0)]
    second_half = load_distilled(shards[0] / "distilled.safetensors").labels.unique()
    assert second_half.tolist() == [5, 6, 7, 8, 9]
    merge([str(tmp_path / "merged"), *map(str, shards)])
    merged = load_distilled(tmp_path / "merged" / "distilled.safetensors")
    assert torch.equal(merged.images, one.images) and torch.equal(merged.labels, one.labels)
    assert merged.meta["config"]["classes"] is None and len(merged.meta["merged_from"]) == 2
    # The streams are the classes' own: the shared streams draw another set.
    shared = load_distilled(
        _distill(tmp_path, "shared", *run, "method.streams=shared") / "distilled.safetensors"
    )
    assert not torch.equal(shared.images, one.images)


def test_merging_refuses_overlapping_incomplete_or_mismatched_shards(tmp_path):
    a = _distill(tmp_path, "a", "loss=euclidean", "classes=[0,1,2,3,4]")
    b = _distill(tmp_path, "b", "loss=euclidean", "classes=[4,5,6,7,8,9]")
    c = _distill(tmp_path, "c", "loss=euclidean", "classes=[5,6,7,8]")
    d = _distill(tmp_path, "d", "loss=euclidean", "classes=[5,6,7,8,9]", "seed=1")
    for shards, fragment in (
        ((a, b), "classes [4] are in more than one shard"),
        ((a, c), "no shard holds classes [9]"),
        ((a, d), "other settings"),
    ):
        command = [sys.executable, "-m", "src.merge", str(tmp_path / "out"), *map(str, shards)]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert_one_error_line(result, fragment)
    assert not (tmp_path / "out").exists()


def test_a_method_whose_networks_learn_from_every_class_is_not_sharded(tmp_path):
    result = run_module("src.distill", *SHARD_TINY, "method=idm", "classes=0/2",
                        run_dir=tmp_path / "run")  # fmt: skip
    line = assert_one_error_line(result, "IDM learns networks from every class")
    assert "trainer=ddp" in line
    result = run_module("src.distill", *SHARD_TINY, "classes=0/2", "method.streams=shared",
                        run_dir=tmp_path / "run2")  # fmt: skip
    assert_one_error_line(result, "method.streams=per_class")


def test_ddp_ranks_holding_their_classes_write_the_one_process_set_and_resume_it(tmp_path):
    for loss in LOSSES:
        one = load_distilled(_distill(tmp_path, f"one_{loss}", f"loss={loss}")
                             / "distilled.safetensors")  # fmt: skip
        run_dir = tmp_path / f"ddp_{loss}"
        ddp = run_module("src.distill", *SHARD_TINY, f"loss={loss}", "trainer=ddp_cpu_classes",
                         "eval.final=true", run_dir=run_dir)  # fmt: skip
        assert ddp.returncode == 0, ddp.stderr[-3000:]
        merged = load_distilled(run_dir / "distilled.safetensors")
        assert torch.equal(merged.images, one.images) and torch.equal(merged.labels, one.labels)
        assert (run_dir / "results.json").is_file()  # rank 0 evaluated the whole set
        assert (run_dir / "checkpoints" / "last.ckpt.rank1").is_file()
    # Extended from the ranks' own checkpoints: the one-process run of 5 iterations.
    longer = run_module("src.distill", *SHARD_TINY, "loss=lorentz", "trainer=ddp_cpu_classes",
                        "iterations=5", "resume=auto", run_dir=run_dir)  # fmt: skip
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "resuming from" in longer.stdout
    five = load_distilled(_distill(tmp_path, "five", "loss=lorentz", "iterations=5")
                          / "distilled.safetensors")  # fmt: skip
    assert torch.equal(load_distilled(run_dir / "distilled.safetensors").images, five.images)


def test_a_shard_of_a_store_reads_only_its_classes_rows(tmp_path):
    from src.data import MappedPool, load_dataset
    from src.methods.base import initial_synthetic_set

    _, mapped = load_dataset("fashion_mnist", tmp_path, train=True, store=True)
    assert isinstance(mapped, MappedPool)
    rows: list[torch.Tensor] = []

    class Recording:  # the mapped images, noting every gather
        def __init__(self, images):
            self.images, self.shape = images, images.shape

        def __getitem__(self, index):
            rows.append(index)
            return self.images[index]

    shard = mapped.with_classes([3, 4])
    shard.images = Recording(mapped.images)
    images, labels = initial_synthetic_set(shard, 2, "real", class_generators(0, "init", [3, 4]))
    indices, _ = shard.sample(16, class_generators(0, "sample", [3, 4]))
    shard.get(indices)
    assert labels.tolist() == [3, 3, 4, 4] and images.shape == (4, 1, 28, 28)
    read = torch.cat([r.reshape(-1) for r in rows])
    assert len(read) == 4 + 32 and set(mapped.labels[read].tolist()) == {3, 4}


def test_a_groups_integers_come_from_its_uniforms_by_floor_and_stay_in_range():
    from src.augment.dsa import Columns

    columns = Columns(torch.tensor([[0.0, 0.5], [0.9999999, 0.25], [0.5, 0.0]]))
    assert columns.randint(-2, 3, 3).tolist() == [-2, 2, 0]  # -2 + floor(u * 5)
    assert columns.rand(3).tolist() == [0.5, 0.25, 0.0]
