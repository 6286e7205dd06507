"""Entry point: ``python -m src.evaluate distilled=PATH model=convnet eval.num_models=5``."""

import hydra
from omegaconf import DictConfig

from src.cli import report_errors, share_cores_in_parallel_sweeps
from src.pipelines.evaluate import run_evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Compose the config and evaluate one distilled set."""
    share_cores_in_parallel_sweeps()
    report_errors(run_evaluate, cfg)


if __name__ == "__main__":
    main()
