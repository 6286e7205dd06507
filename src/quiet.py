"""Silence third-party messages a user cannot act on (Lightning's litlogger advert, its
use of a torch API that torch deprecates); everything else stays visible."""

from __future__ import annotations

import logging
import warnings

ADVERT = "💡 Tip: For seamless cloud logging"


class _DropAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(ADVERT)


def silence_third_party_noise() -> None:
    """Install the filters (idempotent)."""
    # Lightning's own internals call LeafSpec; the warning is for Lightning's authors.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvert) for f in logger.filters):
            logger.addFilter(_DropAdvert())
