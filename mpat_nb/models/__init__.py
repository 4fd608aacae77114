"""Networks: the stacked hourglass backbone and SpatialNet (TemporalNet and PGG live beside them)."""

from mpat_nb.models.hourglass import Hourglass, Residual, StackedHourglass, Stem
from mpat_nb.models.spatialnet import SpatialNet, SpatialNetOutput, count_parameters, estimate_flops, preset_table

__all__ = ["Residual", "Hourglass", "Stem", "StackedHourglass", "SpatialNet", "SpatialNetOutput",
           "count_parameters", "estimate_flops", "preset_table"]
