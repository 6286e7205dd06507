"""Entry point: ``python -m src.prepare dataset=NAME`` or ``folder=PATH`` (build a store)."""

import hydra
from omegaconf import DictConfig

from src.cli import report_errors
from src.pipelines.prepare import run_prepare


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
def main(cfg: DictConfig) -> None:
    """Compose the config and build (or verify) the store it names."""
    report_errors(run_prepare, cfg)


if __name__ == "__main__":
    main()
