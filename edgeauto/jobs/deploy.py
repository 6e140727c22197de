"""``edgeauto deploy``'s job: copy a run's bundle to a device, check its answers there against
the host's, time it with the device's runtime, write ``deploy.json`` and re-render the report.

The checking is :func:`edgeauto.bundle.deploy.deploy_bundle`; this job resolves the device
(with the ``--host`` override), says how to get a missing ``sample.npz``, renders the report
and turns a failed agreement into :class:`AgreementFailed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeauto.bundle.deploy import deploy_bundle
from edgeauto.bundle.sample import SAMPLE_FILE
from edgeauto.devices.profile import DeviceProfile, load_profile, with_overrides
from edgeauto.errors import AgreementFailed, RunDirError
from edgeauto.latency.builder import TimingSettings
from edgeauto.manifest import Manifest
from edgeauto.report import write_report
from edgeauto.rundir import recorded_config


def deploy(
    run_dir: str | Path,
    device: str | Path | DeviceProfile,
    *,
    host: str | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    artifact: str = "model.tflite",
    runs: int = 100,
    warmup: int = 30,
    rounds: int = 3,
    check: bool = True,
) -> dict[str, Any]:
    """Check the bundle of ``run_dir`` on ``device`` and time it there; ``deploy.json``'s dict.

    ``device``: a profile name, YAML path or :class:`DeviceProfile`; ``host``, ``key`` and
    ``known_hosts`` override an ssh profile's. ``infer.py`` runs there on ``sample.npz``
    against the host's top-1 (not on phones: no Python; deploy.json says so); ``artifact``
    is timed ``runs`` x ``rounds`` after ``warmup``. Writes ``deploy.json`` and the report's
    Deploy section, then raises :class:`AgreementFailed` (exit 3) under 99% agreement unless
    ``check=False``. An unreachable device or a missing runtime: :class:`RunnerError`.

    Example:
        >>> doc = edgeauto.deploy("runs/default", "raspberry-pi-4", host="pi@10.0.0.5")
        >>> doc["agreement"]["top1"], doc["latency_ms"]["median"]
        (1.0, 2.31)
    """
    root = Path(run_dir).expanduser()
    if not (root / "manifest.json").is_file():
        raise RunDirError(
            f"{root} holds no manifest.json; pass the --out of a finished edgeauto run or compress"
        )
    profile = device if isinstance(device, DeviceProfile) else load_profile(device)
    profile = with_overrides(profile, host, key, known_hosts)
    timing = TimingSettings(runs, warmup, rounds)
    if not (root / SAMPLE_FILE).is_file():
        raise no_sample(root)
    doc = deploy_bundle(root, profile, artifact, timing)
    write_report(root / "report.md", Manifest.load(root / "manifest.json"))
    if check and doc["agreement"]["ok"] is False:
        raise AgreementFailed(root, doc)
    return doc


def no_sample(root: Path) -> RunDirError:
    """The error for a run written before ``sample.npz`` was part of the bundle: resuming
    it rewrites the bundle (sample.npz and the infer.py that reads it) from its stages."""
    config = recorded_config(root)
    job = "compress" if config.get("model") or config.get("from_run") else "run"
    return RunDirError(
        f"{root} has no {SAMPLE_FILE} (it predates edgeauto deploy); `edgeauto {job} --resume "
        f"{root}` writes it, with the host's answers, from the run's finished stages"
    )
