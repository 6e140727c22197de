"""ReLU linearization for private inference (SNL) and its layer-dropping baseline."""

from edgeauto.linearize.snl import (
    LinearizeResult,
    SNLConfig,
    count_relus,
    drop_relu_layers,
    linearize,
)

__all__ = ["LinearizeResult", "SNLConfig", "count_relus", "drop_relu_layers", "linearize"]
