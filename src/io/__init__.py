"""Files the project writes: the distilled set, atomically."""

from src.io.atomic import atomic_path, atomic_write_text
from src.io.distilled import (
    DistilledSet,
    check_matches,
    load_distilled,
    metadata_path,
    save_distilled,
)

__all__ = [
    "DistilledSet",
    "atomic_path",
    "atomic_write_text",
    "check_matches",
    "load_distilled",
    "metadata_path",
    "save_distilled",
]
