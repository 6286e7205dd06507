"""bench.released: the released script's copy runs as a user would make it run, unchanged
otherwise."""

from __future__ import annotations

import gzip

from bench.released import commands, per_iteration, prepare_released


def _fake_release(root):
    code = root / "DM-HDD"
    (code / "geoopt" / "manifolds").mkdir(parents=True)
    (code / "geoopt" / "__init__.py").write_text("")
    (code / "main_DM.py").write_text("print('released')\n")
    (code / "networks.py").write_text("def embed(out):\n    return out.view(out.size(0), -1)\n")
    data = root / "fmnist"
    data.mkdir()
    with gzip.open(data / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x01\x02")
    return data


def test_the_copy_moves_geoopt_reshapes_and_unpacks_the_data(tmp_path):
    data = _fake_release(tmp_path / "src")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    root = prepare_released(tmp_path / "src", scratch, data)
    assert (root / "lib" / "geoopt" / "__init__.py").is_file() and not (root / "geoopt").exists()
    assert "out.reshape(out.size(0), -1)" in (root / "networks.py").read_text()
    raw = root / "data" / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").read_bytes() == b"\x00\x01\x02"
    assert (raw / "train-images-idx3-ubyte.gz").is_file()
    # The original is untouched.
    assert "out.view" in (tmp_path / "src" / "DM-HDD" / "networks.py").read_text()


def test_per_iteration_time_removes_the_start_up():
    times = {"5": [30.0, 32.0], "25": [70.0, 92.0]}
    assert per_iteration(times, (5, 25)) == [2.0, 3.0]


def test_the_commands_differ_only_in_what_is_compared(tmp_path):
    cmds = commands(tmp_path / "DM-HDD", tmp_path, ["eager/fp32", "compiled/bf16"])
    assert "--Iteration" in cmds["released"] and "{n}" in cmds["released"]
    eager, compiled = cmds["ours/eager/fp32"], cmds["ours/compiled/bf16"]
    assert "method.compile_net=false" in eager and "trainer=cpu" in eager
    assert "method.compile_net=true" in compiled and "trainer=cpu_bf16" in compiled
    assert "loss=lorentz" in eager and "method.batch_real=256" in eager
