"""Third-party noise is silenced, and nothing else."""

from __future__ import annotations

import logging
import warnings

from src.quiet import ADVERT, silence_third_party_noise


def test_the_litlogger_advert_is_dropped_and_other_lightning_info_kept(caplog):
    silence_third_party_noise()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info(ADVERT + " and experiment tracking, try installing litlogger")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_lightnings_leafspec_deprecation_is_ignored_and_others_are_not():
    silence_third_party_noise()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        silence_third_party_noise()  # the filter goes in front of "default"
        warnings.warn(
            "`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1
        )
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]
