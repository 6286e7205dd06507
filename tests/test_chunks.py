"""Training in pieces: the accumulated gradient is the whole batch's, BatchNorm is never split."""

from __future__ import annotations

import copy
import multiprocessing
import threading

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from src.compute import CPU_TRAIN_CHUNK, Compute, check_chunk, set_piece_workers
from src.compute.workers import map_pieces
from src.errors import ConfigError
from src.evaluation import EvalModule, EvalProtocol
from src.methods.idm import NetPool
from src.models import build_model

CPU = torch.device("cpu")


def _net(name="convnet", seed=0):
    torch.manual_seed(seed)
    return build_model(name, 1, 10, (28, 28), width=8)


def _grads(net):
    return [p.grad.clone() for p in net.parameters()]


def test_pieces_accumulate_the_whole_batch_gradient_loss_and_accuracy():
    net = _net()
    x, y = torch.randn(23, 1, 28, 28), torch.randint(0, 10, (23,))
    logits = net(x)
    F.cross_entropy(logits, y).backward()
    whole = _grads(net)
    net.zero_grad()
    loss, correct = Compute(7).cross_entropy_backward(net, x, y)  # pieces of 7, 7, 7 and 2
    for got, expected in zip(_grads(net), whole, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y).detach())
    assert int(correct) == int((logits.argmax(dim=1) == y).sum())
    assert not loss.requires_grad


def _chunk(setting, net, device=CPU, key="k"):
    return Compute.for_net(setting, key, net, device, "train").chunk


def test_auto_splits_on_a_cpu_only_and_never_a_batch_norm_batch():
    plain, bn = _net(), _net("convnet_bn")
    assert _chunk("auto", plain) == CPU_TRAIN_CHUNK
    assert _chunk("auto", plain, torch.device("cuda")) is None
    assert _chunk(5, plain, torch.device("cuda")) == 5
    assert _chunk("auto", bn) is None
    with pytest.raises(ConfigError, match="eval.train_chunk would change the batch statistics"):
        _chunk(8, bn, key="eval.train_chunk")
    bn.eval()  # eval-mode BatchNorm uses running statistics: splitting is harmless
    assert _chunk(8, bn) == 8
    assert Compute.for_net("auto", "k", plain, CPU, "embed").chunk == 32  # no-grad pieces


def test_the_whole_batch_plan_is_the_plain_forward_and_backward():
    net, x, y = _net(), torch.randn(23, 1, 28, 28), torch.randint(0, 10, (23,))
    assert Compute().chunk is None and Compute().or_chunk(8) == Compute(8)
    assert Compute(4).or_chunk(8) == Compute(4)
    assert torch.equal(Compute().forward(net, x), net(x))
    F.cross_entropy(net(x), y, reduction="sum").div(len(x)).backward()
    plain = _grads(net)
    net.zero_grad()
    loss, _ = Compute().cross_entropy_backward(net, x, y)
    assert all(torch.equal(a, b) for a, b in zip(_grads(net), plain, strict=True))


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "all", None])
def test_a_chunk_is_auto_or_a_positive_int(bad):
    with pytest.raises(ConfigError, match="method.train_chunk must be auto or an int >= 1"):
        check_chunk(bad, "method.train_chunk")


def _trained_eval_weights(images, labels, train_chunk):
    protocol = EvalProtocol(num_models=2, epochs=2, batch_size=40, train_chunk=train_chunk)
    module = EvalModule(images, labels, None, lambda: _net(seed=1), None, protocol)
    before = [p.detach().clone() for p in module.nets.parameters()]
    trainer = L.Trainer(
        max_steps=module.total_steps, max_epochs=1, logger=False, accelerator="cpu",
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module)
    assert trainer.global_step == module.total_steps == 6
    after = [p.detach().clone() for p in module.nets.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    return after


def test_evaluation_trains_the_same_networks_in_pieces():
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(100, 1, 28, 28, generator=gen), torch.arange(100) % 10
    whole = _trained_eval_weights(images, labels, 10**6)
    pieces = _trained_eval_weights(images, labels, 6)
    again = _trained_eval_weights(images, labels, 10**6)
    assert all(torch.equal(a, b) for a, b in zip(whole, again, strict=True))  # deterministic
    for a, b in zip(pieces, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_pool_networks_train_the_same_in_pieces():
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,))
    pools = []
    for chunk in (10**6, 9):
        pool = NetPool(lr=0.01, net_decay=True)
        pool.push(copy.deepcopy(_net()), capacity=3)
        for _ in range(3):
            pool.train_step(0, x, y, chunk)
        pools.append(pool)
    whole, pieces = pools
    for a, b in zip(pieces.nets.parameters(), whole.nets.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert (pieces.correct, pieces.seen) == (whole.correct, whole.seen)
    assert whole.seen == [120]


def test_the_test_pass_in_pieces_counts_the_same_correct_predictions(fmnist_test):
    _, test_pool = fmnist_test
    images, labels = torch.randn(20, 1, 28, 28), torch.arange(20) % 10
    results = {}
    for chunk in (10**6, 7):
        # The same two untrained networks both times (seeded initialisation).
        protocol = EvalProtocol(num_models=2, epochs=1, test_chunk=chunk)
        module = EvalModule(images, labels, test_pool, lambda: _net(seed=2), None, protocol,
                            test_batch_size=100)  # fmt: skip
        forwards: list[int] = []
        for net in module.nets:
            net.register_forward_hook(lambda m, args, out, f=forwards: f.append(len(args[0])))
        trainer = L.Trainer(limit_test_batches=3, logger=False, accelerator="cpu",
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.test(module, verbose=False)
        results[chunk] = (module._correct.tolist(), module._seen, forwards)
    (whole, seen, whole_sizes), (pieces, seen_pieces, piece_sizes) = results.values()
    assert seen == seen_pieces == 300
    assert whole == pieces and len(set(whole)) == 2  # two different networks, same counts
    assert whole_sizes == [100] * 6
    assert sorted(piece_sizes) == sorted(([7] * 14 + [2]) * 6)  # pieces may run concurrently


@pytest.fixture
def piece_workers():
    """``set_piece_workers`` for one test; torch's thread count decides again afterwards."""
    yield set_piece_workers
    set_piece_workers(None)


def test_piece_workers_sum_the_gradients_of_one_thread_reproducibly(piece_workers):
    net = _net()
    x, y = torch.randn(45, 1, 28, 28), torch.randint(0, 10, (45,))
    runs = {}
    for workers in (1, 3, 3):
        piece_workers(workers)
        net.zero_grad(set_to_none=True)
        loss, correct = Compute(4).cross_entropy_backward(net, x, y)  # 12 pieces, blocks of 4
        runs.setdefault(workers, []).append((loss, correct, _grads(net)))
    (one,), (three, again) = runs.values()
    for a, b in zip(three[2], again[2], strict=True):
        assert torch.equal(a, b)  # the same sum however the threads were scheduled
    for a, b in zip(three[2], one[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(three[0], one[0])
    assert int(three[1]) == int(one[1])
    Compute(4).cross_entropy_backward(net, x, y)  # a second call adds to .grad, as backward does
    for a, b in zip(_grads(net), three[2], strict=True):
        torch.testing.assert_close(a, 2 * b, rtol=1e-4, atol=1e-6)


def test_piece_workers_have_one_thread_each_and_leave_the_callers_count(piece_workers):
    threads = torch.get_num_threads()
    piece_workers(2)
    seen = map_pieces(
        lambda _: (threading.current_thread(), torch.get_num_threads()), range(6), CPU
    )
    assert {n for _, n in seen} == {1}
    assert threading.current_thread() not in {t for t, _ in seen}
    assert torch.get_num_threads() == threads
    off_cpu = map_pieces(lambda _: threading.current_thread(), range(3), torch.device("meta"))
    assert set(off_cpu) == {threading.current_thread()}  # other devices: the calling thread
    with pytest.raises(ZeroDivisionError):
        map_pieces(lambda i: 1 // i, [1, 0, 2], CPU)


def test_pieces_run_under_the_callers_grad_inference_and_autocast_modes(piece_workers):
    piece_workers(2)
    net, x = _net(), torch.randn(10, 1, 28, 28)
    whole = net(x)
    with torch.no_grad():
        assert not Compute(3).forward(net, x).requires_grad
    with torch.inference_mode():
        assert Compute(3).forward(net, x).is_inference()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert Compute(3).forward(net, x).dtype == torch.bfloat16
    out = Compute(3).forward(net, x)
    torch.testing.assert_close(out, whole)
    y = torch.arange(10)
    F.cross_entropy(out, y).backward()  # the graph built on the workers backpropagates
    pieces_grads = _grads(net)
    net.zero_grad()
    F.cross_entropy(whole, y).backward()
    for a, b in zip(pieces_grads, _grads(net), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def _sum_on_workers(queue) -> None:
    queue.put(sum(map_pieces(lambda i: i * i, range(5), CPU)))


def test_a_forked_child_runs_pieces_on_workers_of_its_own(piece_workers):
    piece_workers(2)
    assert map_pieces(lambda i: i, range(4), CPU) == [0, 1, 2, 3]  # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sum_on_workers, args=(queue,))
    child.start()
    child.join(timeout=60)  # with the parent's pool it would wait forever for dead threads
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 30
