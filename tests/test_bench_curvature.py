"""The curvature study's bookkeeping on fabricated records (no distillation runs)."""

from __future__ import annotations

from bench.curvature import (
    CONTROL_ROW,
    DM_ROW,
    EXACT,
    RELEASED,
    best_k,
    predicted_twins,
    rows_for,
    same_set_as_capped,
    schedule,
    table,
)


def _run(acc: float, sha: str = "x") -> dict:
    return {"distilled": {"mean": acc}, "set_sha256": sha}


def test_the_grid_holds_every_lift_and_k_of_the_study():
    ipc1, ipc10 = rows_for(1), rows_for(10)
    assert len(ipc1) == 2 + 3 * 6 and len(ipc10) == 2 + 3 * 3
    assert ipc1[CONTROL_ROW][2] == ipc10[CONTROL_ROW][2] == ["loss=euclidean_unsquared"]
    assert ipc1[f"{RELEASED}, k=1"][2] == [
        "loss=lorentz", "loss.lift=expmap", "loss.max_radius=10", "loss.k=1"
    ]  # fmt: skip
    assert "loss=euclidean" in ipc1[DM_ROW][2]
    assert "project, k=64" in rows_for(10, {"project": [64]})


def test_dm_and_the_released_setting_run_on_every_seed_first():
    rows = {"1": rows_for(1), "10": rows_for(10)}
    jobs = schedule([1, 10], [0, 1, 2], rows)
    assert len(jobs) == 3 * 20 + 3 * 11 and len(set(jobs)) == len(jobs)
    assert jobs[:6] == [(1, r, s) for s in (0, 1, 2) for r in (DM_ROW, f"{RELEASED}, k=1")]
    assert all(seed == 0 for _, _, seed in jobs[6:24])  # then the IPC-1 curve on seed 0
    assert jobs[24][:2] == (10, DM_ROW)


def test_best_k_per_lift_and_bitwise_twins_are_found():
    record = {
        "ipcs": {
            "1": {
                f"{RELEASED}, k=1": {"0": _run(71.0, "a")},
                f"{RELEASED}, k=16": {"0": _run(60.0, "b"), "1": _run(62.0, "c")},
                f"{EXACT}, k=16": {"0": _run(60.0, "b"), "1": _run(62.0, "c")},
                f"{EXACT}, k=1024": {"0": _run(70.0, "d")},
            }
        }
    }
    assert best_k(record, 1) == {RELEASED: [1], EXACT: [1024]}
    rows = record["ipcs"]["1"]
    assert same_set_as_capped(rows, f"{EXACT}, k=16")
    rows[f"{EXACT}, k=16"]["1"] = _run(62.0, "other")
    assert not same_set_as_capped(rows, f"{EXACT}, k=16")
    record["rows"] = {"1": rows_for(1)}
    text = table(record, "header")
    assert "| expmap, cap 10 (released), k=16 | 61.00 ± 1.41 | 60.00 / 62.00 |" in text
    assert "| project, k=4 | not run |" in text


def test_exact_rows_that_repeated_the_capped_set_at_ipc_1_run_last():
    twin, other = f"{EXACT}, k=16", f"{EXACT}, k=1"
    record = {
        "ipcs": {
            "1": {
                f"{RELEASED}, k=16": {"0": _run(60.0, "b")},
                twin: {"0": _run(60.0, "b")},
                f"{RELEASED}, k=1": {"0": _run(71.0, "a")},
                other: {"0": _run(46.0, "e")},
            }
        }
    }
    record["ipcs"]["1"] |= {f"{RELEASED}, k=1024": {"0": _run(70.0, "d")}}
    record["ipcs"]["1"] |= {f"{EXACT}, k=1024": {"0": _run(70.0, "d")}}
    # IPC 10 runs exact k=1024 (a best IPC-1 k) without its capped twin: not deferred there.
    rows = {"1": rows_for(1), "10": rows_for(10, {EXACT: [1024]})}
    last = predicted_twins(record, rows)
    assert last == {(1, twin), (10, twin), (1, f"{EXACT}, k=1024")}
    jobs = schedule([1, 10], [0, 1, 2], rows, last)
    assert len(jobs) == 3 * 20 + 3 * 12 and set(jobs) == set(schedule([1, 10], [0, 1, 2], rows))
    assert {j[:2] for j in jobs[-9:]} == last
    assert jobs[:6] == schedule([1, 10], [0, 1, 2], rows)[:6]


def test_the_readme_block_lists_every_run_cell_with_its_seeds():
    from bench.curvature_readme import BEGIN, END, block

    record = {
        "ipcs": {
            "1": {
                DM_ROW: {"0": _run(70.0) | {"random_real": {"mean": 50.0}}, "1": _run(72.0)},
                f"{RELEASED}, k=16": {"0": _run(60.0, "b")},
                f"{EXACT}, k=16": {"0": _run(60.0, "b")},
            }
        },
        "rows": {"1": rows_for(1)},
    }
    text = block(record)
    assert text.startswith(BEGIN) and text.endswith(END)
    assert "**IPC 1** (random real 50.00)" in text
    assert "DM (euclidean): 71.00 ± 1.41 (2)." in text
    assert "| lift | k 16 |" in text  # only the k that ran
    assert f"| {RELEASED} | 60.00 (1) |" in text
    assert f"| {EXACT} | 60.00 (1, = capped) |" in text
    assert "project" not in text  # rows not run are left out


def test_rows_within_two_dm_spreads_at_ipc_1_run_first_in_each_phase():
    from bench.curvature import promising_rows

    dm = {"0": _run(71.0), "1": _run(72.0)}  # 71.5 ± 0.71: the bar is 70.09
    record = {
        "ipcs": {
            "1": {
                DM_ROW: dm,
                "project, k=256": {"0": _run(70.5)},
                f"{EXACT}, k=1": {"0": _run(46.0)},
            }
        }
    }
    promising = promising_rows(record)
    assert promising == {"project, k=256"}
    rows = {"1": rows_for(1), "10": rows_for(10)}
    jobs = schedule([1, 10], [0, 1, 2], rows, promising=promising)
    assert set(jobs) == set(schedule([1, 10], [0, 1, 2], rows))
    ipc10_seed0 = [row for ipc, row, seed in jobs if ipc == 10 and seed == 0]
    assert ipc10_seed0[:3] == [DM_ROW, f"{RELEASED}, k=1", "project, k=256"]
    pairs = (DM_ROW, f"{RELEASED}, k=1")
    seed1 = [row for _, row, seed in jobs if seed == 1 and row not in pairs]
    assert seed1[:2] == ["project, k=256", "project, k=256"]  # IPC 1 and IPC 10
    assert promising_rows({"ipcs": {"1": {DM_ROW: {"0": _run(71.0)}}}}) == set()


def test_rows_named_first_run_ahead_of_everything_else_in_their_own_order():
    rows = {"1": rows_for(1), "10": rows_for(10)}
    default = schedule([1, 10], [0, 1, 2], rows)
    chosen = {"project, k=256", DM_ROW}
    jobs = schedule([1, 10], [0, 1, 2], rows, ahead=chosen)
    assert sorted(jobs) == sorted(default)
    head = [job for job in default if job[1] in chosen]
    assert jobs[: len(head)] == head
    assert jobs[len(head) :] == [job for job in default if job[1] not in chosen]
