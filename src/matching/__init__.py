"""Distribution-matching losses between real and synthetic features of each class."""

from src.matching.base import MatchingLoss
from src.matching.euclidean import EuclideanMeanLoss
from src.matching.lorentz import LorentzCentroidLoss

__all__ = ["EuclideanMeanLoss", "LorentzCentroidLoss", "MatchingLoss"]
