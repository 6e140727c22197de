"""The run directory: atomic files and a stage record for resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgeauto.errors import RunDirError
from edgeauto.fileio import write_json


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
        return self.root / name

    def start(self, resume: bool) -> None:
        """Begin a run: unless resuming, forget the stages and trials of an earlier one."""
        if not resume:
            for name in ("stages.json", "trials.jsonl"):
                self.path(name).unlink(missing_ok=True)

    # -- stages -----------------------------------------------------------------------------
    def stages(self) -> dict[str, Any]:
        """Finished stages and what each recorded."""
        p = self.path("stages.json")
        try:
            return json.loads(p.read_text()) if p.exists() else {}
        except json.JSONDecodeError:
            raise RunDirError(
                f"{p} is corrupt; delete it to rerun every stage, or drop --resume"
            ) from None

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
