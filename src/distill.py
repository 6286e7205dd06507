"""Entry point: ``python -m src.distill dataset=cifar10 ipc=10``."""

import hydra
from omegaconf import DictConfig

from src.cli import report_errors, share_cores_in_parallel_sweeps
from src.pipelines.distill import record_failure, run_distill
from src.pruning import FeatureCache

# One per process: the jobs of a sweep over prune.keep_ratio or prune.criterion that Hydra's
# basic launcher runs here embed the real pool once.
FEATURES = FeatureCache()


@hydra.main(version_base="1.3", config_path="../conf", config_name="distill")
def main(cfg: DictConfig) -> None:
    """Compose the config and run one distillation."""
    share_cores_in_parallel_sweeps()
    report_errors(run_distill, cfg, FEATURES, in_sweep=lambda exc: record_failure(cfg, exc))


if __name__ == "__main__":
    main()
