"""Load the example model of ``examples/custom_cnn.py`` the way ``--model`` does."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgeauto.data import Dataset
from edgeauto.jobs.compress import load_user_model

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_cnn.py"


def build_example(data: Dataset) -> nn.Module:
    return load_user_model(f"{EXAMPLE}:build", data)
