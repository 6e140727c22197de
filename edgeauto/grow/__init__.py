"""Growing networks during training (GradMax and its baselines)."""

from edgeauto.grow.gradmax import GROWTH_INITS, Grower, GrowthSchedule, grow

__all__ = ["GROWTH_INITS", "GrowthSchedule", "Grower", "grow"]
