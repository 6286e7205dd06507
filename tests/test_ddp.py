"""Multi-device distillation through Lightning's DDP (two CPU processes over gloo)."""

from __future__ import annotations

import torch

from src.io import load_distilled
from src.models import build_model
from tests.helpers import TINY, run_module

TINY_DDP = [*TINY, "method.batch_real=4", "eval.random_baseline=false",
            "geometry.real_per_class=10"]  # fmt: skip


def test_two_process_ddp_run_writes_one_set_like_a_single_device_run(tmp_path):
    ddp = run_module("src.distill", "trainer=ddp_cpu", *TINY_DDP, run_dir=tmp_path / "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_module("src.distill", "trainer=cpu", *TINY_DDP, run_dir=tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    a = load_distilled(tmp_path / "ddp" / "distilled.safetensors")
    b = load_distilled(tmp_path / "single" / "distilled.safetensors")
    assert a.images.shape == b.images.shape and torch.equal(a.labels, b.labels)
    assert set(a.meta) == set(b.meta)
    same = {k for k in a.meta if k != "config" and a.meta[k] == b.meta[k]}
    assert same == set(a.meta) - {"config"}
    assert a.meta["config"]["trainer"]["devices"] == 2
    # Rank 1 matched its own real batches, so the averaged gradients moved the set elsewhere.
    assert not torch.equal(a.images, b.images)
    # One set, one results file, written by rank 0 only.
    assert len(list((tmp_path / "ddp").rglob("distilled.safetensors"))) == 1
    assert (tmp_path / "ddp" / "results.json").is_file()


def _pool_step_on_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from src.methods.idm import NetPool

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        pool = NetPool(lr=0.1, net_decay=True)
        torch.manual_seed(0)  # the same initial network on every rank
        pool.push(build_model("convnet", 1, 3, (28, 28), width=4), capacity=5)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(2 * world, 1, 28, 28, generator=g), torch.arange(2 * world) % 3
        mine = slice(2 * rank, 2 * rank + 2)  # each rank trains on its own half
        for _ in range(2):
            pool.train_step(0, x[mine], y[mine])
        torch.save(
            {"state": pool.nets[0].state_dict(), "seen": pool.seen[0]}, f"{out_dir}/{rank}.pt"
        )
    finally:
        dist.destroy_process_group()


def test_idm_pool_training_under_ddp_equals_training_on_the_pooled_batch(tmp_path):
    import torch.multiprocessing as mp

    from src.methods.idm import NetPool

    mp.spawn(_pool_step_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in (0, 1))
    # Single process on the whole batch: the mean loss over 4 = the average of the ranks' means.
    pool = NetPool(lr=0.1, net_decay=True)
    torch.manual_seed(0)
    pool.push(build_model("convnet", 1, 3, (28, 28), width=4), capacity=5)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 1, 28, 28, generator=g), torch.arange(4) % 3
    for _ in range(2):
        pool.train_step(0, x, y)
    assert r0["seen"] == r1["seen"] == pool.seen[0] == 8  # accuracy counts pooled over ranks
    for name, value in pool.nets[0].state_dict().items():
        assert torch.equal(r0["state"][name], r1["state"][name]), name  # the copies agree
        torch.testing.assert_close(r0["state"][name], value, rtol=1e-5, atol=1e-6)


def test_two_process_ddp_idm_run_completes(tmp_path):
    res = run_module(
        "src.distill", "trainer=ddp_cpu", "method=idm", *TINY_DDP, "ipc=1", "iterations=4",
        "method.add_net_every=2", "method.train_steps=2", "method.train_batch=16",
        run_dir=tmp_path / "run",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    ds = load_distilled(tmp_path / "run" / "distilled.safetensors")
    assert (ds.method["name"], ds.meta["iteration"], ds.factor) == ("idm", 4, 2)
