"""HDD-Lightning: hyperbolic dataset distillation with PyTorch Lightning and Hydra."""

from src.quiet import silence_third_party_noise

silence_third_party_noise()
