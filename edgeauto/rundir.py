"""The run directory: atomic files, a stage record for resume, and a lock per directory.

Only one process works in a run directory at a time: :meth:`RunDir.start` takes an exclusive
``flock`` on the directory itself (released by :func:`release`, or by the kernel when the
process dies, so ``kill -9`` leaves no stale lock). Names that come from files (a manifest's
artifact, a record's checkpoint) are resolved with :func:`inside`, which refuses ``..`` and
absolute paths, so a crafted record cannot make a run read or write outside its directory.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from edgeauto.errors import RunDirError
from edgeauto.fileio import write_json

CONFIG_FILE = "config.json"
#: Suffix of the per-epoch training state (``checkpoints/train.epoch.pt``) a resume continues.
EPOCH_SUFFIX = ".epoch.pt"
# Run directories this process holds, by resolved root: the open descriptor carries the lock.
_HELD: dict[Path, int] = {}


def inside(root: Path, name: str | Path, what: str = "path") -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root``, else RunDirError."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not str(name).strip():
        raise RunDirError(
            f"{what} {str(name)!r} must be a relative path inside {root} (no '..', not "
            "absolute); fix the record or start a new --out"
        )
    return root / rel


def recorded_config(root: Path) -> dict[str, Any]:
    """The ``config.json`` a run recorded in ``root``, which ``--resume ROOT`` continues.

    :class:`RunDirError` when ``root`` is no directory, holds no config or a corrupt one.
    """
    if not root.is_dir():
        raise RunDirError(f"--resume {root}: no such directory; pass the --out of an earlier run")
    p = root / CONFIG_FILE
    if not p.is_file():
        raise RunDirError(
            f"--resume {root}: no {CONFIG_FILE} there{_device_dirs(root)}; pass the --out of an "
            "earlier run, or start this one again without --resume"
        )
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise RunDirError(f"{p} is corrupt; delete it or drop --resume")
    return doc


def _device_dirs(root: Path) -> str:
    """A hint for ``--resume`` of a run per device: each device's directory is its own run."""
    try:
        runs = sorted(str(d) for d in root.iterdir() if (d / CONFIG_FILE).is_file())
    except OSError:  # an unreadable directory: the error without the hint
        runs = []
    return f" (a run per device: resume one of {', '.join(runs)})" if runs else ""


def release(root: str | Path) -> None:
    """Give up this process's lock on the run directory ``root`` (no-op when not held)."""
    fd = _HELD.pop(Path(root).expanduser().resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


class RunDir:
    """``runs/<name>/``: config, stages, trials, checkpoints, artifacts, manifest, report."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(
                f"output directory {self.root} cannot be written ({exc.strerror}); pass a "
                "writable --out"
            ) from None
        (self.root / "checkpoints").mkdir(exist_ok=True)

    def path(self, name: str) -> Path:
        """``root/name``; ``name`` must be relative and must not climb out with ``..``."""
        return inside(self.root, name)

    def lock(self) -> None:
        """Hold the directory for this process; another process gets a RunDirError."""
        if self.root in _HELD:
            return
        fd = os.open(self.root, os.O_RDONLY)  # the folder itself: no lock file to leave
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"run directory {self.root} is in use by another edgeauto process; wait for "
                "it to finish or pass another --out"
            ) from None
        _HELD[self.root] = fd

    def start(self, resume: bool, config: dict[str, Any] | None = None) -> None:
        """Lock the directory and begin a run: unless resuming, forget the stages and trials
        of an earlier one; when resuming, ``config`` must match the one recorded."""
        self.lock()
        if not resume:
            for name in ("stages.json", "trials.jsonl"):
                self.path(name).unlink(missing_ok=True)
            for partial in (self.root / "checkpoints").glob(f"*{EPOCH_SUFFIX}"):
                partial.unlink()  # an earlier run's unfinished training must not be resumed
        elif config is not None:
            self._check_config(config)

    def _check_config(self, now: dict[str, Any]) -> None:
        """A resumed run must be the same run: name every setting that differs."""
        p = self.path(CONFIG_FILE)
        if not p.exists():
            return  # killed before the config was written: nothing finished to reuse
        try:
            recorded = json.loads(p.read_text())
            # the directory itself is what is resumed, whichever way its path is spelled
            keys = [k for k in now if k not in ("resume", "out") and k in recorded]
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
            raise RunDirError(f"{p} is corrupt; delete it or drop --resume") from None
        diffs = [f"{k}: {recorded[k]!r} in the run, {now[k]!r} now" for k in keys if recorded[k] != now[k]]  # fmt: skip
        if diffs:
            raise RunDirError(
                f"--resume {self.root} belongs to another config ({'; '.join(diffs)}); leave "
                "those options out to resume with the run's settings, or drop --resume to start over"
            )

    # -- stages -----------------------------------------------------------------------------
    def stages(self) -> dict[str, Any]:
        """Finished stages and what each recorded."""
        p = self.path("stages.json")
        try:
            data = json.loads(p.read_text()) if p.exists() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise RunDirError(f"{p} is corrupt; delete it to rerun every stage, or drop --resume")
        return data

    def done(self, stage: str) -> bool:
        return stage in self.stages()

    def record(self, stage: str, info: dict[str, Any]) -> None:
        """Mark ``stage`` finished with ``info`` (atomic)."""
        stages = self.stages()
        stages[stage] = info
        write_json(self.path("stages.json"), stages)

    def append_jsonl(self, name: str, obj: dict[str, Any]) -> None:
        """Append one JSON line, flushed to disk (trial logs)."""
        with open(self.path(name), "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_json(self, name: str, obj: Any) -> Path:
        write_json(self.path(name), obj)
        return self.path(name)
