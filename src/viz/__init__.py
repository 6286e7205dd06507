"""Pictures of results: image grids (more views come with the geometry tools)."""

from src.viz.grid import save_image_grid

__all__ = ["save_image_grid"]
