"""Emulation of a device that cannot be reached.

With the device out of reach, its latency is estimated from the artifact
measured on this machine, mapped by a device/host law fitted on the blocks both tables share
(:func:`fit_emulation`): ``device = fixed + scale x host``, a ratio plus the difference in
per-invocation cost. A ratio alone was tried first and failed on real tables (this machine's
ONNX Runtime vs LiteRT: a whole network emulated 71% off with the ratio's block error at
36%), since a block timed alone is mostly invocation cost and a network is mostly compute.
The fit's error (RMSPE of the shared blocks) goes with every emulated number, and so does
the error measured on whole networks (:func:`expected_error`), the figure to trust; reports
label it ``emulated``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeauto.errors import ConfigError
from edgeauto.latency.table import LatencyStat, LatencyTable, WholeModelRun

#: Shared blocks a device/host law needs: a plain ratio from MIN_SHARED, the affine law
#: (fixed cost + ratio) from MIN_AFFINE.
MIN_SHARED = 3
MIN_AFFINE = 6


@dataclass(frozen=True)
class EmulationFit:
    """``device ms ≈ fixed_ms + scale x host ms``, fitted on the blocks both tables share.

    A block timed alone is one model invocation: a fixed cost (setting the input, invoking,
    reading the output out) plus its compute. Devices and runtimes differ in both, and not
    in proportion, so the law has a fixed part as well as a ratio. It carries over from
    blocks to whole networks unchanged: a network is one invocation plus its blocks'
    compute, and summing ``fixed + scale x block`` over its blocks, minus the invocations
    a network does not repeat, leaves ``fixed + scale x network``. ``rmspe`` is the fit's
    error: the root-mean-square relative error of the ``shared`` blocks (and the overhead)
    predicted by the law. ``ratio`` marks a plain ratio fit (``fixed_ms == 0``), used when
    the affine one is not determined (too few blocks, or a law that is not increasing).
    """

    fixed_ms: float
    scale: float
    rmspe: float
    shared: int
    ratio: bool = False

    def predict_ms(self, host_ms: float) -> float:
        """The device's ms for something that takes ``host_ms`` on the host."""
        return self.fixed_ms + self.scale * host_ms

    def emulate(self, host: LatencyStat) -> LatencyStat:
        """The device's stat estimated from the host's stat of the same artifact."""
        return LatencyStat(self.predict_ms(host.median_ms), self.predict_ms(host.p90_ms), host.runs)

    def to_json(self) -> dict[str, float | int | bool]:
        """Plain JSON (for manifests)."""
        return asdict(self)


def _pairs(device: LatencyTable, host: LatencyTable) -> tuple[np.ndarray, np.ndarray]:
    """(device ms, host ms) of every block both tables measured, and of their overheads.

    Estimated entries (an import's guesses) are never used.
    """
    shared = [k for k in device.entries if k in host.entries and k not in device.estimated]
    d = [device.entries[k].median_ms for k in shared]
    h = [host.entries[k].median_ms for k in shared]
    if device.overhead and host.overhead:  # an invocation with no compute: pins the fixed part
        d.append(device.overhead.median_ms)
        h.append(host.overhead.median_ms)
    return np.asarray(d), np.asarray(h)


def fit_emulation(device: LatencyTable, host: LatencyTable) -> EmulationFit:
    """Least squares, in relative error, of ``device = fixed + scale x host`` over the blocks
    both tables share; a plain ratio (least squares on the log ratios) when the affine law is
    not determined. See :class:`EmulationFit` for why the law has a fixed part."""
    d, h = _pairs(device, host)
    if len(d) < MIN_SHARED:
        p = device.provenance
        raise ConfigError(
            f"cannot fit a device/host law: the tables of {p.device} and "
            f"{host.provenance.device} share {len(d)} measured blocks, need >= {MIN_SHARED}; "
            f"measure both for the same space and input shape (edgeauto profile --space "
            f"{p.space})"
        )
    if len(d) >= MIN_AFFINE:
        a = np.c_[np.ones_like(h), h] / d[:, None]  # rows scaled by 1/d: relative errors
        (fixed, scale), *_ = np.linalg.lstsq(a, np.ones_like(d), rcond=None)
        if scale > 0 and fixed + scale * h.min() > 0:
            return EmulationFit(float(fixed), float(scale), _rmspe(d, fixed + scale * h), len(d))
    ratio = float(np.exp(np.mean(np.log(d / h))))
    return EmulationFit(0.0, ratio, _rmspe(d, ratio * h), len(d), ratio=True)


def _rmspe(measured: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean(((predicted - measured) / measured) ** 2)))


#: Whole networks, timed here, that emulation's expected error is measured on (at least).
MIN_NETWORKS = 5


def _device_ms(device: LatencyTable, run: WholeModelRun) -> float:
    """The device's time of ``run``'s network: measured there when its table has the same
    network among its validation runs, else the table's prediction."""
    for own in device.validation:
        if own.keys == run.keys:
            return own.measured_ms
    return device.predict(run.keys)


def expected_error(fit: EmulationFit, device: LatencyTable, host: LatencyTable) -> float:
    """The error to expect of an emulated whole network, measured on whole networks: the RMS
    relative gap, over this machine's whole networks of the space (``host.validation``,
    timed end to end), between the law applied to each and the device's time of the same
    network (measured there where its table has it, else its table's prediction).

    The law's block error (``fit.rmspe``) is no such figure: on the FBNet Pi 4 table timed
    with TensorFlow 2 eager it was 16% while table and emulation differed by +216% on a
    whole network. Needs :data:`MIN_NETWORKS` validation runs of the host (``edgeauto
    profile --validate``; the measure stage times them when missing)."""
    runs = [r for r in host.validation if not device.missing(r.keys)]
    if len(runs) < MIN_NETWORKS:
        raise ConfigError(
            f"emulation's expected error is measured on >= {MIN_NETWORKS} whole networks; "
            f"{host.path} has {len(runs)}: run edgeauto profile --device host --space "
            f"{host.provenance.space} --validate {MIN_NETWORKS}"
        )
    emulated = np.array([fit.predict_ms(r.measured_ms) for r in runs])
    return _rmspe(np.array([_device_ms(device, r) for r in runs]), emulated)
