"""How a network goes over a batch: whole (the plain path), or in cache-sized pieces on
worker threads, which a CPU rewards.

Every module that runs networks holds a :class:`Compute` and calls its ``forward`` and
``cross_entropy_backward``; only this package knows about pieces and workers. The gains
are measured in bench/results/suite.md.
"""

from src.compute.batching import CPU_EMBED_CHUNK, CPU_TRAIN_CHUNK, Compute, check_chunk
from src.compute.workers import set_piece_workers

__all__ = ["CPU_EMBED_CHUNK", "CPU_TRAIN_CHUNK", "Compute", "check_chunk", "set_piece_workers"]
