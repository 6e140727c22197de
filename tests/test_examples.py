"""The examples run as a user would run them (the shell ones need a board or phone: syntax only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.sh")))
def test_shell_examples_parse(script: str) -> None:
    r = subprocess.run(["bash", "-n", str(EXAMPLES / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_own_dataset_example(tmp_path: Path, micro_tables: Path) -> None:
    tables = tmp_path / "tables"
    shutil.copytree(micro_tables, tables)
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "own_dataset.py"), "--out", str(out), "--tables",
         str(tables), "--latency-ms", "1.0"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "accuracy" in r.stdout and "'label'" in r.stdout, r.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["dataset"]["name"].startswith("folder:") and m["dataset"]["classes"][0] == "0"
    assert len(list((tmp_path / "run-data").rglob("*.png"))) == 400
