"""The budget noun: derived numbers and the verdict in one place; a job that misses its budget
raises :class:`OverBudget` carrying the written manifest, and the CLI exits 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgeauto
from edgeauto.budget import ACCEPT, HEADROOM, LANDING, Budget
from edgeauto.config import RunConfig
from edgeauto.errors import ConfigError, OverBudget, VerificationFailed
from edgeauto.limits import Limits

EXAMPLE = Path(__file__).parents[1] / "examples" / "custom_cnn.py"


def test_derived_numbers() -> None:
    b = Budget(2.0, tolerance=0.1, headroom=1.25)
    assert b.limit_ms == pytest.approx(2.2) and b.search_ms == pytest.approx(2.5)
    assert b.floor_ms == 2.0 and b.landing_ms == pytest.approx(2.0 * LANDING)
    assert Budget(2.0).floor_ms == 0.0 and Budget(2.0).search_ms == 2.0  # joint: no headroom
    assert b.accepts(ACCEPT[0] * 2.0) and b.accepts(ACCEPT[1] * 2.0)
    assert not b.accepts(1.0) and not b.accepts(2.0)
    assert b.within(2.2) and not b.within(2.21)
    assert b.at(4.0).limit_ms == pytest.approx(4.4) and b.at(4.0).headroom == 1.25


def test_run_config_builds_the_budget() -> None:
    cfg = RunConfig(latency_ms=3.0, tolerance=0.2, max_params=10)
    assert cfg.budget == Budget(3.0, 0.2, HEADROOM, Limits(max_params=10))
    assert RunConfig(mode="joint").budget.headroom == 1.0


def test_the_verdict_says_every_reason() -> None:
    b = Budget(1.0, tolerance=0.1)
    assert b.reasons(1.1) == []
    other = {"name": "pi", "budget_ms": 5.0, "within_budget": False, "measured_ms": None,
             "predicted_ms": 6.0}  # fmt: skip
    reasons = b.reasons(1.5, ["parameters 20 > 10"], [other])
    assert reasons == [
        "over budget: measured 1.5000 ms > 1 ms + 10%",
        "over a limit: parameters 20 > 10",
        "over budget on pi: 6.0000 ms > 5 ms + 10%",
    ]


@pytest.mark.parametrize("bad", [{"latency_ms": 0.0}, {"headroom": 0.5}, {"tolerance": -1.0}])
def test_bad_budgets_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Budget(**{"latency_ms": 1.0, **bad})


def test_over_budget_is_typed_and_carries_the_manifest(tmp_path: Path) -> None:
    """A limit no model can meet (a 1-byte file): the job writes its manifest and report,
    then raises OverBudget (a VerificationFailed, exit code 3); ``check=False`` returns it."""
    args = {
        "model": f"{EXAMPLE}:build", "device": "host", "latency_ms": 50.0, "dataset": "digits",
        "epochs": 1, "finetune_epochs": 0, "int8": False, "measure_runs": 20,
        "max_size_kb": 0.001, "out": str(tmp_path / "c"),
    }  # fmt: skip
    with pytest.raises(OverBudget) as info:
        edgeauto.compress(**args)
    exc = info.value
    assert isinstance(exc, VerificationFailed) and exc.exit_code == 3
    assert [r.split(":")[0] for r in exc.reasons] == ["over a limit"]
    assert exc.manifest is not None and not exc.manifest.within_budget
    assert (tmp_path / "c" / "report.md").exists()
    doc = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert doc["budget"]["latency_ms"] == 50.0 and doc["budget"]["violations"]
    again = edgeauto.compress(**{**args, "resume": True}, check=False)
    assert again.data["budget"]["violations"] == doc["budget"]["violations"]


def test_cli_exits_3_and_says_why(cli, tmp_path: Path) -> None:
    out = tmp_path / "c"
    r = cli("compress", "--model", f"{EXAMPLE}:build", "--dataset", "digits", "--epochs", "1",
            "--finetune-epochs", "0", "--no-int8", "--latency-ms", "50", "--out", str(out),
            "--max-size-kb", "0.001")  # fmt: skip
    assert r.exit_code == 3, r.stdout + r.stderr
    assert "over a limit:" in r.stderr and "Traceback" not in r.stderr
    assert (out / "manifest.json").exists()
