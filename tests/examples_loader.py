"""Load the example model of ``examples/custom_cnn.py`` the way ``--model`` does."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeauto.compression import load_user_model
from edgeauto.data import Dataset

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_cnn.py"


def build_example(data: Dataset) -> nn.Module:
    return load_user_model(f"{EXAMPLE}:build", data)
