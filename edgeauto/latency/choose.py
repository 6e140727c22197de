"""Choosing a device's latency model, once, from its profile's ``cost_model``."""

from __future__ import annotations

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError
from edgeauto.latency.builder import BlockTimer
from edgeauto.latency.fusion import Predictor
from edgeauto.latency.model import LatencyModel
from edgeauto.latency.predictor import MeasuringPredictor
from edgeauto.latency.relu import ReluCost
from edgeauto.latency.table import LatencyTable

#: ``DeviceProfile.cost_model`` -> the registered model :func:`for_profile` returns.
COST_MODELS: dict[str, str] = {"latency": "measuring", "relu-count": "relu-count"}


def for_profile(
    profile: DeviceProfile,
    *,
    table: LatencyTable | None = None,
    timer: BlockTimer | None = None,
    predictor: Predictor | None = None,
    calibration: float | None = None,
) -> LatencyModel:
    """The latency model a run on ``profile``'s device prices networks with, chosen once
    from ``profile.cost_model``:

    - ``latency``: a :class:`~edgeauto.latency.predictor.MeasuringPredictor` over ``table``
      (required: the device's measured or imported table, e.g. from
      :func:`edgeauto.latency.device.open_table`), measuring missing keys with ``timer``
      (``None``: a miss raises :class:`~edgeauto.errors.TableMiss`); ``predictor`` and
      ``calibration`` default to the table's best model and its history. Unit: ms.
    - ``relu-count``: a :class:`~edgeauto.latency.relu.ReluCost` with the profile's
      ``flop_weight``; ``table`` and the rest are ignored. Unit: ReLU-equivalents.

    Example:
        >>> table, _ = open_table(profile, space, reporter)
        >>> model = for_profile(profile, table=table, timer=make_timer(profile, settings))
        >>> budget_ok = model.predict(space.blocks(arch)) <= budget  # budget in model.cost_unit
    """
    if profile.cost_model == "relu-count":
        return ReluCost(profile.flop_weight)
    if profile.cost_model != "latency":
        raise ConfigError(
            f"device {profile.name} has cost_model {profile.cost_model!r}; latency models "
            f"exist for {', '.join(COST_MODELS)}"
        )
    if table is None:
        raise ConfigError(
            f"device {profile.name} (cost_model: latency) is priced from its latency table; "
            "pass table= (edgeauto.latency.device.open_table loads it)"
        )
    return MeasuringPredictor(table, timer, predictor, calibration)
