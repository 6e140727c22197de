"""Calibration: the factor a latency model's predictions are multiplied by, measured ÷
predicted on whole networks of the device, so that search and pruning aim at what the
device measures.

- :mod:`.history`: the median over earlier runs' verified artifacts (any device, remote too);
- :mod:`.fresh`: a few whole networks near the budget timed when a run starts (a device this
  machine can time; the default).

Nothing else in edgeauto is called calibration: pruning *lands* on a measured budget
(:mod:`edgeauto.compress.landing`) and an unreachable device is *emulated*
(:mod:`edgeauto.latency.emulation`).
"""
