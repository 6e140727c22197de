"""Typed errors. Every message states the invariant, the offending value and the fix.

The CLI maps :class:`EdgeAutoError` subclasses to exit code 2 (bad input) and prints the
message on one line, with no traceback. :class:`VerificationFailed` (:class:`OverBudget`,
:class:`AgreementFailed`) maps to exit code 3.
"""

from __future__ import annotations

from typing import Any


class EdgeAutoError(Exception):
    """Base of every error edgeauto raises on purpose.

    A message is one line whatever it quotes: a line break inside a quoted value (a JSON key,
    a file name) is written as ``\\n``.
    """

    exit_code: int = 2

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (args[0].replace("\r", "\\r").replace("\n", "\\n"),)
        super().__init__(*args)


class ConfigError(EdgeAutoError):
    """A configuration value (CLI flag, YAML field, API argument) is invalid."""


class UnknownComponent(ConfigError):
    """A registry name (device, space, strategy, pruner, runtime) does not exist."""


class TableMiss(EdgeAutoError):
    """A latency table has no entry for a block key."""


class BudgetInfeasible(EdgeAutoError):
    """No architecture of the space can meet the latency budget."""


class TableImportError(ConfigError):
    """A published latency table cannot be imported: wrong format, truncated or bad values."""


class DatasetError(ConfigError):
    """A dataset spec points at missing or unusable data."""


class ExportError(EdgeAutoError):
    """An exported artifact failed to convert or disagrees with PyTorch."""


class RunnerError(EdgeAutoError):
    """A runtime or device could not run or time an artifact."""


class RunDirError(ConfigError):
    """The run directory cannot be created, written or resumed."""


class VerificationFailed(EdgeAutoError):
    """The measured latency of the final artifact exceeds the budget beyond tolerance."""

    exit_code = 3


class OverBudget(VerificationFailed):
    """The final model fails its budget on the device (latency over tolerance, a limit
    exceeded, or another ``--one-model`` device over its budget).

    Raised by a job after its manifest and report are written: ``manifest`` holds them and
    ``reasons`` says what failed, one line each. The CLI maps it to exit code 3.
    """

    def __init__(self, reasons: list[str], manifest: Any = None) -> None:
        super().__init__("; ".join(reasons) or "over budget")
        self.reasons = list(reasons)
        self.manifest = manifest


class AgreementFailed(VerificationFailed):
    """``edgeauto deploy``: the device's top-1 on the bundle's sample agrees with the host's on
    fewer images than the threshold (the model, runtime or preprocessing differs there).

    Raised after ``deploy.json`` and the report are written; ``deploy`` holds the document.
    The CLI maps it to exit code 3, like a latency over budget.
    """

    def __init__(self, run_dir: Any, deploy: dict[str, Any]) -> None:
        a = deploy["agreement"]
        super().__init__(
            f"{deploy['device']} agrees with this machine on {a['top1']:.1%} of the "
            f"{a['samples']} sample images with {deploy['artifact']['file']}, under the "
            f"{a['threshold']:.0%} required; compare runtime {deploy['runtime_version']} there "
            f"with this machine's, and the files on the board with {run_dir}"
        )
        self.deploy = deploy
