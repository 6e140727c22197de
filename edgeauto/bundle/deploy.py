"""Deploy a run's bundle to a device and check it there: ``deploy.json``.

Through the device's runner (:mod:`edgeauto.latency.runners`: this machine, a board over SSH,
a phone over adb) it

1. asks the device for its runtime (an unreachable device or a missing runtime fails here,
   before anything else, as a one-line :class:`~edgeauto.errors.RunnerError`);
2. runs the bundle's ``infer.py`` there on ``sample.npz`` and compares its top-1 with the
   host's, recorded in the sample at export (agreement >= :data:`THRESHOLD` passes). Phones
   run no Python: there the agreement is not checked and ``deploy.json`` says why;
3. times the artifact with the device's runtime, pinned to the profile's ``cpu_affinity``.

Example:
    >>> doc = deploy_bundle(Path("runs/default"), load_profile("host"), "model.tflite",
    ...                     TimingSettings())
    >>> doc["agreement"]["ok"], doc["latency_ms"]["median"]
    (True, 0.041)
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from edgeauto.bundle import DEPLOY_FILE
from edgeauto.bundle.sample import SAMPLE_FILE, TOP1, read_sample
from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, RunDirError, RunnerError
from edgeauto.fileio import sha256_file, write_json
from edgeauto.latency.builder import TimingSettings
from edgeauto.latency.runners import DeviceInfo, Runner, get_runner, runtime_of
from edgeauto.timing import LatencyStat

#: Share of the sample whose top-1 must match the host's: runtimes differ in float rounding,
#: which may flip a near tie, but not more than about one image in a hundred.
THRESHOLD = 0.99
#: The model files of a bundle that can be deployed (``sample.npz`` has the host's answers).
ARTIFACTS = ("model.tflite", "model_int8.tflite", "model.onnx")
#: What ``infer.py`` needs beside the model on the device.
BUNDLE = ("infer.py", "preprocess.json", "labels.txt", SAMPLE_FILE)


def deploy_bundle(
    root: Path, profile: DeviceProfile, artifact: str, timing: TimingSettings
) -> dict[str, Any]:
    """Check and time ``root/artifact`` on ``profile``'s device; write and return
    ``root/deploy.json`` (whether or not the agreement passes: ``agreement.ok`` says)."""
    check_bundle(root, artifact, profile)
    # the runtime that runs this artifact, whatever the profile times its tables with
    profile = profile.model_copy(update={"runtime": runtime_of(Path(artifact))})
    with get_runner(profile) as runner:
        info = runner.describe()
        agreement = check_agreement(runner, root, artifact)
        stat = runner.measure(
            root / artifact, profile.threads, timing.runs, timing.warmup, timing.rounds
        )
        cores = list(runner.cores) if runner.cores else None
    doc = deploy_doc(profile, info, root / artifact, agreement, stat, cores)
    write_json(root / DEPLOY_FILE, doc)
    return doc


def check_bundle(root: Path, artifact: str, profile: DeviceProfile) -> None:
    """The artifact is one of the bundle's models and every file the device needs is there."""
    if artifact not in ARTIFACTS:
        raise ConfigError(
            f"artifact {artifact!r} is not a model of the bundle; pick one of "
            f"{', '.join(ARTIFACTS)} (--artifact)"
        )
    if profile.connection.kind == "adb" and not artifact.endswith(".tflite"):
        raise ConfigError(
            f"{profile.name} is a phone timed with LiteRT's benchmark_model, which runs .tflite "
            f"files, not {artifact}; pick --artifact model.tflite or model_int8.tflite"
        )
    for name in (*BUNDLE, artifact):
        if not (root / name).is_file():
            raise RunDirError(
                f"{root / name} does not exist; deploy a run directory written by edgeauto run "
                "or compress (model_int8.tflite needs --int8)"
            )


def check_agreement(runner: Runner, root: Path, artifact: str) -> dict[str, Any]:
    """``infer.py`` on the device over the sample, its top-1 against the host's."""
    sample = read_sample(root / SAMPLE_FILE)
    if TOP1 + artifact not in sample:
        raise RunDirError(
            f"{root / SAMPLE_FILE} has no host answers for {artifact}; resume the run (edgeauto "
            "run or compress --resume) to write it again"
        )
    host = [int(k) for k in sample[TOP1 + artifact]]
    out: dict[str, Any] = {"top1": None, "samples": len(host), "threshold": THRESHOLD, "ok": None}
    args = ["infer.py", SAMPLE_FILE, "--model", artifact, "--top", "1"]
    printed = runner.run_python(args, {n: root / n for n in (*BUNDLE, artifact)})
    if printed is None:
        out["reason"] = (
            f"{runner.kind} devices run no Python, so infer.py was not run there; only the "
            "latency was measured"
        )
        return out
    labels = (root / "labels.txt").read_text().split("\n")  # as infer.py reads it
    board = device_top1(printed, len(host), runner.profile.connection.target())
    top1 = sum(b == labels[h] for b, h in zip(board, host)) / len(host)
    return {**out, "top1": top1, "ok": top1 >= THRESHOLD}


def device_top1(printed: str, n: int, target: str) -> list[str]:
    """The top-1 label of each of ``infer.py``'s JSON lines; exactly ``n`` of them."""
    try:
        lines = [json.loads(ln) for ln in printed.splitlines() if ln.strip()]
        labels = [str(line["top"][0]["label"]) for line in lines]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        labels = []
    if len(labels) != n:
        raise RunnerError(
            f"infer.py on {target} answered {len(labels)} of the sample's {n} images in its "
            "JSON lines; run it there by hand (python infer.py sample.npz) to see why"
        )
    return labels


def deploy_doc(
    profile: DeviceProfile,
    info: DeviceInfo,
    artifact: Path,
    agreement: dict[str, Any],
    stat: LatencyStat,
    cores: list[int] | None,
) -> dict[str, Any]:
    """The ``deploy.json`` document (schema_version 1)."""
    return {
        "schema_version": 1, "device": profile.name, "connection": profile.connection.kind,
        "host": profile.connection.target(), "runtime": profile.runtime,
        "runtime_version": info.runtime_version, "python": info.python,
        "artifact": {"file": artifact.name, "sha256": sha256_file(artifact)},
        "agreement": agreement,
        "latency_ms": {"median": stat.median_ms, "p90": stat.p90_ms,
                       "repeatability": stat.repeatability},
        "cpu_affinity": cores,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
