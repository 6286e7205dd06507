"""Pictures of results: image grids, Poincaré-disk plots, hierarchy-level histograms."""

from src.viz.geometry import poincare_2d, save_level_histogram, save_poincare_plot
from src.viz.grid import save_image_grid

__all__ = ["poincare_2d", "save_image_grid", "save_level_histogram", "save_poincare_plot"]
