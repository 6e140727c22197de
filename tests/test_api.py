"""Python API parity: every command is one documented call in ``edgeauto`` with an example,
and the calls the CLI is a thin shell over (``search``, ``import_table``) work for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import MICRO, shared_data

import edgeauto
from edgeauto.errors import UnknownComponent
from edgeauto.latency.table import LatencyTable

CALLS = ("run", "compress", "search", "profile", "import_table")


@pytest.mark.parametrize("name", CALLS)
def test_each_command_is_one_documented_call(name: str) -> None:
    call = getattr(edgeauto, name)
    assert callable(call) and name in edgeauto.__all__
    doc = call.__doc__ or ""
    assert "Example:" in doc and f"edgeauto.{name}(" in doc, f"{name}: no example"


def test_api_page_shows_one_example_per_call() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    for name in (*CALLS, "deploy"):
        assert f"## `edgeauto.{name}`" in page and f"edgeauto.{name}(" in page


def test_search_runs_and_resumes(tables_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    settings = {
        "space": MICRO, "dataset": "digits", "latency_ms": 1.0, "strategy": "random",
        "trials": 2, "search_epochs": 1, "search_batches": 5, "tables": str(tables_copy),
    }  # fmt: skip
    summary = edgeauto.search(out=str(out), **settings)
    assert summary == json.loads((out / "search.json").read_text())
    assert summary["trials"] == 2 and summary["failed"] == 0
    assert summary["best"]["predicted_ms"] <= 1.0
    journal = (out / "trials.jsonl").read_text()
    # resumed: every trial is recorded, so none runs again and the answer is the same
    again = edgeauto.search(resume=str(out))
    assert (out / "trials.jsonl").read_text() == journal
    assert again["best"]["arch"] == summary["best"]["arch"]


def test_search_bad_strategy_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownComponent, match="smob"):
        edgeauto.search(strategy="smob", out=str(tmp_path / "x"))


def test_import_table_writes_the_device_table(tmp_path: Path) -> None:
    src = shared_data() / "luts" / "ofa-note10"
    out = tmp_path / "ofa-mbv3.json"
    result = edgeauto.import_table(
        src, "ofa-yaml", "samsung-note10", "ofa-mbv3", input_shape=(3, 224, 224),
        classes=1000, out=out,
    )  # fmt: skip
    assert result.path == out and out.is_file()
    loaded = LatencyTable.load(out)
    assert len(loaded.entries) == len(result.table.entries) > 0
    assert loaded.provenance.imported and result.report.mapped > 0


def test_import_table_needs_a_format(tmp_path: Path) -> None:
    with pytest.raises(edgeauto.ConfigError, match="--format is required"):
        edgeauto.import_table(tmp_path, None, "samsung-note10", "ofa-mbv3")
