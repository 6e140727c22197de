"""L1-norm filter pruning (Li et al., 2017): drop the filters with the smallest L1 norm."""

from __future__ import annotations

import torch_pruning as tp

from edgeauto.compress.base import PRUNERS, Pruner


@PRUNERS.register("l1")
class L1Pruner(Pruner):
    """Group L1 magnitude: a coupled group's score sums its tensors' per-channel L1 norms."""

    name = "l1"

    def importance(self) -> tp.importance.Importance:
        return tp.importance.MagnitudeImportance(p=1)
