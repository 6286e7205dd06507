"""Progress of a run: Lightning's rich bar on a terminal, one plain line now and then in a log.

A run in the background (a study, a sweep on a cluster) writes to a file, where a bar that
redraws itself shows nothing until the end; there it prints a line every ``every`` seconds
instead: iteration, loss, seconds per iteration and the time left.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar


class LineProgress(ProgressBar):
    """One line per ``every`` seconds of training: where the run is and when it will end."""

    def __init__(self, every: float = 60.0) -> None:
        super().__init__()
        self.every = every
        self.enabled = True

    def disable(self) -> None:
        """Print nothing (Lightning calls this on ranks other than 0)."""
        self.enabled = False

    def enable(self) -> None:
        """Print again."""
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Start the clock at the iteration the run starts (or resumes) from."""
        self.started = self.last = time.monotonic()
        self.first = pl_module.completed_iterations

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        """Print a line when ``every`` seconds have passed since the last one, or at the end."""
        done, total = pl_module.completed_iterations, pl_module.iterations
        now = time.monotonic()
        if not self.enabled or (now - self.last < self.every and done < total):
            return
        self.last = now
        print(progress_line(done, total, now - self.started, done - self.first,
                            trainer.callback_metrics.get("train/loss")), flush=True)  # fmt: skip


def progress_line(done: int, total: int, seconds: float, run_here: int, loss: Any) -> str:
    """``iteration 1200/20000 (6%), loss 0.4123, 2.31 s/it, 12.1 h left``."""
    per_it = seconds / max(run_here, 1)
    parts = [f"iteration {done}/{total} ({100 * done / total:.0f}%)"]
    if loss is not None:
        parts.append(f"loss {float(loss):.4g}")
    parts += [f"{per_it:.2f} s/it", f"{per_it * (total - done) / 3600:.1f} h left"]
    return ", ".join(parts)


def progress_bar() -> ProgressBar:
    """The rich bar on a terminal, plain lines otherwise."""
    return RichProgressBar(leave=True) if sys.stdout.isatty() else LineProgress()
