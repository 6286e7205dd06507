"""Entry point: ``python -m src.analyze distilled=PATH`` (Poincaré disk, hierarchy levels)."""

import hydra
from omegaconf import DictConfig

from src.cli import report_errors, share_cores_in_parallel_sweeps
from src.pipelines.analyze import run_analyze


@hydra.main(version_base="1.3", config_path="../conf", config_name="analyze")
def main(cfg: DictConfig) -> None:
    """Compose the config and render the geometry views of one distilled set."""
    share_cores_in_parallel_sweeps()
    report_errors(run_analyze, cfg)


if __name__ == "__main__":
    main()
