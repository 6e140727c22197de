"""Quiet by default: a run's terminal shows edgeauto's lines only, not TensorFlow's, absl's,
oneDNN's, LiteRT's (XNNPACK) or the TFLite converter's; ``--debug`` shows them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MICRO

from edgeauto.quiet import DEBUG_ENV, TENSORFLOW_ENV, before_tensorflow, quiet_stderr, set_verbose

#: What TensorFlow, absl, oneDNN, LiteRT, the converter and onnx2tf print on their own.
NATIVE = (
    "oneDNN", "tensorflow", "TensorFlow", "absl", "XNNPACK", "fully_quantize", "inference_type",
    "W0000", "I0000", "E0000", "port.cc", "cpu_feature_guard", "onnx2tf", "INFO:", "WARNING:",
)  # fmt: skip
#: One line of each source the normal run hides: TensorFlow's import, LiteRT, the converter.
SOURCES = ("oneDNN custom operations", "XNNPACK delegate", "fully_quantize: 0")


def cli_run(out: Path, tables: Path, *global_options: str) -> subprocess.CompletedProcess[str]:
    """The cheapest real ``edgeauto run`` that loads TensorFlow, converts to float32 and int8
    .tflite and times them with LiteRT, in a fresh process (TensorFlow not yet loaded)."""
    argv = [sys.executable, "-m", "edgeauto.cli", *global_options, "run", "--device", "host"]
    argv += ["--dataset", "digits", "--space", MICRO, "--trials", "1", "--epochs", "1"]
    argv += ["--finetune-epochs", "1", "--latency-ms", "1", "--tables", str(tables)]
    argv += ["--out", str(out)]
    # nothing the user could have set for us: the quiet environment must be edgeauto's doing
    unset = {DEBUG_ENV, *TENSORFLOW_ENV}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
def test_a_run_prints_only_its_own_lines(tables_copy: Path, tmp_path: Path, debug: bool) -> None:
    out = tmp_path / "run"
    proc = cli_run(out, tables_copy, *(["--debug"] if debug else []))
    both = proc.stdout + proc.stderr
    assert proc.returncode == 0, both
    assert "edgeauto run: host" in proc.stdout and "within budget" in proc.stdout
    assert f"tflite: {out / 'model.tflite'}" in proc.stdout
    assert (out / "model_int8.tflite").is_file()  # the converter's int8 path ran
    if debug:  # the same run prints every source's lines when not quiet
        for line in SOURCES:
            assert line in proc.stderr, line
    else:
        assert [s for s in NATIVE if s in both] == [], both
        assert proc.stderr.strip(), "the progress bars (stderr) must stay visible"


def _speak_natively(text: str) -> None:
    os.write(2, text.encode())  # as C++ does: straight to file descriptor 2


def test_quiet_stderr_drops_a_call_output(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_stderr():
        _speak_natively("INFO: chatter\n")
    print("after", file=sys.stderr)
    _speak_natively("native after\n")
    assert capfd.readouterr().err == "after\nnative after\n"


def test_quiet_stderr_shows_the_output_of_a_call_that_fails(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(RuntimeError, match="conversion failed"), quiet_stderr():
        _speak_natively("ERROR: the real reason\n")
        raise RuntimeError("conversion failed")
    _speak_natively("then the terminal as before\n")
    assert capfd.readouterr().err == "ERROR: the real reason\nthen the terminal as before\n"


def test_verbose_captures_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    set_verbose(True)
    try:
        with quiet_stderr():
            _speak_natively("INFO: shown\n")
    finally:
        set_verbose(False)
    assert capfd.readouterr().err == "INFO: shown\n"


def test_the_user_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    before_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"  # set by the user: kept
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"  # not set: ours
    monkeypatch.setenv(DEBUG_ENV, "1")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    before_tensorflow()
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ  # verbose: nothing set
