"""A run outside a terminal reports its progress in plain lines."""

from __future__ import annotations

from src.pipelines.distill import run_distill
from src.pipelines.progress import LineProgress, progress_bar, progress_line
from tests.helpers import TINY, compose_cfg


def test_a_progress_line_says_where_the_run_is_and_what_is_left():
    line = progress_line(1200, 20000, 2400.0, 1000, 0.41234)
    assert line == "iteration 1200/20000 (6%), loss 0.4123, 2.40 s/it, 12.5 h left"
    # A resumed run's speed counts only the iterations it ran itself.
    assert "1.00 s/it" in progress_line(1500, 2000, 300.0, 300, None)


def test_outside_a_terminal_a_run_prints_lines_not_a_bar(tmp_path, capsys):
    assert isinstance(progress_bar(), LineProgress)  # pytest's stdout is no terminal
    overrides = [*TINY, "iterations=3", "eval.final=false", "eval.random_baseline=false",
                 "geometry.enabled=false", f"paths.output_dir={tmp_path}"]  # fmt: skip
    run_distill(compose_cfg("distill", overrides))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iteration")]
    assert lines and lines[-1].startswith("iteration 3/3 (100%), loss ")
