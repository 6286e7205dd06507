"""A CSV metrics logger that a resumed run continues instead of wiping."""

from __future__ import annotations

import csv
import io
import os

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from src.io.atomic import atomic_write_text


class _ContinuingWriter(ExperimentWriter):
    """Keeps the rows of ``metrics.csv`` logged before iteration ``keep_before``.

    Lightning's writer deletes an existing ``metrics.csv``; a resumed run would lose the
    curve of its first part. Rows from iteration ``keep_before`` on were logged after the
    checkpoint the run resumes from and are logged again, so they are dropped.
    """

    def __init__(self, log_dir: str, keep_before: int | None) -> None:
        self.keep_before = keep_before
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.keep_before is None or not os.path.isfile(self.metrics_file_path):
            super()._check_log_dir_exists()
            return
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            fields = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(r["step"]) < self.keep_before]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, buf.getvalue())
        # Later saves append under this header (and rewrite it if new keys appear).
        self.metrics_keys = fields


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` whose ``metrics.csv`` survives a resumption (``resume_at``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keep_before: int | None = None

    def resume_at(self, iteration: int) -> None:
        """Continue the existing metrics file: keep its rows of iterations before ``iteration``."""
        if self._experiment is not None:
            raise RuntimeError("resume_at must be called before anything is logged")
        self._keep_before = iteration

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer, created on first use (continuing the file after ``resume_at``)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self._keep_before)
        return self._experiment
