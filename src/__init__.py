"""HDD-Lightning: hyperbolic dataset distillation with PyTorch Lightning and Hydra."""
