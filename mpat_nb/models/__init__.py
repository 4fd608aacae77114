"""Networks: the stacked hourglass backbone, SpatialNet, Pose-Guided Grouping and TemporalNet."""

from mpat_nb.models.hourglass import Hourglass, Residual, StackedHourglass, Stem
from mpat_nb.models.pgg import GatheredPoints, PGGOutput, PoseGuidedGrouping, gather_points
from mpat_nb.models.spatialnet import SpatialNet, SpatialNetOutput, count_parameters, estimate_flops, preset_table
from mpat_nb.models.temporalnet import HumanEmbeddingBranch, TemporalInstanceBranch, TemporalNet, TemporalNetOutput

__all__ = ["Residual", "Hourglass", "Stem", "StackedHourglass", "SpatialNet", "SpatialNetOutput",
           "count_parameters", "estimate_flops", "preset_table",
           "PoseGuidedGrouping", "PGGOutput", "GatheredPoints", "gather_points",
           "TemporalNet", "TemporalNetOutput", "HumanEmbeddingBranch", "TemporalInstanceBranch"]
