"""Helpers every command shares: consoles, one-line errors, argument parsers.

Imports no command module, so that every command module can import it.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer._click import exceptions as click  # typer vendors click: its errors live here
from typer._click.core import ParameterSource
from typer.core import TyperGroup

from edgeauto.errors import ConfigError, EdgeAutoError
from edgeauto.quiet import verbose

if TYPE_CHECKING:
    from edgeauto.config import RunConfig

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# -- options several commands take, declared once (``name: Tables = None``) ---------------
OutDir = Annotated[str, typer.Option("--out", help="Run directory.")]
# How to reach an ssh device instead of its profile's connection (profile, deploy).
SshHost = Annotated[
    str | None,
    typer.Option("--host", help="ssh devices: \\[user@]host\\[:port] instead of the profile's."),
]
SshKey = Annotated[str | None, typer.Option("--key", help="ssh devices: private key file.")]
SshKnownHosts = Annotated[
    str | None,
    typer.Option("--known-hosts", help="ssh devices: known_hosts file (host keys are checked)."),
]
Int8 = Annotated[
    bool, typer.Option(help="Also export a full-integer model_int8.tflite and check it.")
]
PRECISION_HELP = (
    "fp32 or int8 (full-integer .tflite, LiteRT devices only): the latency table to build or "
    "price with, and the model the verdict measures (int8: model_int8.tflite)."
)
Precision = Annotated[str, typer.Option(help=PRECISION_HELP)]
#: ``edgeauto search``: None when not given (a resumed study keeps its own).
PrecisionOrRecorded = Annotated[str | None, typer.Option("--precision", help=PRECISION_HELP)]
ScratchBaseline = Annotated[
    bool,
    typer.Option(
        help="Also train the pruned architecture from scratch, for comparison (Liu et al.): "
        "with the same epochs (Scratch-E) and the same training FLOPs (Scratch-B)."
    ),
]
Criterion = Annotated[
    str,
    typer.Option(
        help="Channel importance: l1 (filter norm, Li et al.), group-l1, l2, taylor, taylor2, "
        "hessian, ispasp, random."
    ),
]
#: one help line for ``run`` and ``search`` (the names are search/dnas.py's BUDGET_TERMS)
BUDGET_TERM_HELP = (
    "dnas: the architecture step's latency price: hinge (default; a two-sided hinge on "
    "log E(lat) around a band under the budget), fbnet (FBNet eq. 2: cross-entropy x 0.2 x "
    "log(E(lat) in us)^0.6) or fbnet-additive (cross-entropy + strength x "
    "log(1 + E(lat)/budget)^0.6)."
)
BudgetTerm = Annotated[str, typer.Option(help=BUDGET_TERM_HELP)]
Allocation = Annotated[
    str, typer.Option(help="How channels are cut to the budget: netadapt or uniform.")
]
MaxParams = Annotated[
    int | None,
    typer.Option(help="Also cap the parameter count (BN folded; checked on the result)."),
]
MaxSizeKb = Annotated[
    float | None, typer.Option(help="Also cap the float32 .tflite file size (kB).")
]
MaxActivationKb = Annotated[
    float | None,
    typer.Option(help="Also cap peak activation memory (kB; measured on the final model)."),
]
Tolerance = Annotated[float, typer.Option(help="Allowed overshoot of the measured latency.")]
Tables = Annotated[str | None, typer.Option(help="Latency tables folder (default hw_latency/).")]
Resume = Annotated[
    str | None,
    typer.Option(
        metavar="RUN_DIR",
        help="Continue the run in RUN_DIR (its --out), reusing its finished stages; options left "
        "out come from the run's config.json, and one given must match it.",
    ),
]
FinetuneEpochs = Annotated[int, typer.Option(help="Fine-tuning epochs after pruning.")]
# the splits and the training recipe (run and compress alike)
ValFraction = Annotated[
    float, typer.Option(help="Share of the data for validation (every choice reads it).")
]
TestFraction = Annotated[
    float, typer.Option(help="Share held out as the test split, read once at the end.")
]
TestDataset = Annotated[
    str | None, typer.Option(help="A separate test set (same classes), instead of a share.")
]
Cache = Annotated[bool, typer.Option(help="Keep decoded image folders in the user cache.")]
Augment = Annotated[
    bool | None,
    typer.Option(help="Random crop + flip while training (default: on for RGB images)."),
]
Optimizer = Annotated[str, typer.Option(help="adamw or sgd (momentum 0.9, Nesterov).")]
LabelSmoothing = Annotated[float, typer.Option(help="Label smoothing of the training loss.")]
TrainDevice = Annotated[str, typer.Option(help="Where to train: cpu, cuda or auto.")]

#: Set by ``edgeauto --debug`` (or ``EDGEAUTO_DEBUG=1``): errors also print
#: their traceback, and the native libraries' log lines are shown (:mod:`edgeauto.quiet`).
OPTIONS = {"debug": False}


class OneLineErrors(TyperGroup):
    """Click's usage errors (``--trials abc``, an unknown option) as one line, exit 2, like ours."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path} --help" if exc.ctx else "edgeauto --help"
            msg = " ".join(exc.format_message().split()).rstrip(".")
            err.print(f"error: UsageError: {msg}; see {where}", markup=False, highlight=False, soft_wrap=True)  # fmt: skip
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def fail(exc: EdgeAutoError) -> None:
    """Print ``exc`` on one line (after its traceback with --debug) and exit with its code."""
    if OPTIONS["debug"] or verbose():
        trace = "".join(traceback.format_exception(exc))
        err.print(trace.rstrip(), markup=False, highlight=False, soft_wrap=True)
    err.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


#: Where an option's value came from when the user gave it (not a default).
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


def given_fields(
    ctx: typer.Context, fields: dict[str, Any], options: dict[str, tuple[str, ...]]
) -> dict[str, Any]:
    """The ``fields`` (of :class:`RunConfig`) whose options were given, not defaulted.

    ``options`` names the parameters a field comes from where that is not the field's own name
    (``out``: ``out_dir``); a field is given when any of them is.
    """

    def given(field: str) -> bool:
        names = options.get(field, (field,))
        return any(ctx.get_parameter_source(name) in _GIVEN for name in names)

    return {field: value for field, value in fields.items() if given(field)}


def run_config(
    ctx: typer.Context,
    fields: dict[str, Any],
    resume: str | None,
    options: dict[str, tuple[str, ...]],
) -> RunConfig:
    """``RunConfig(**fields)``; with ``--resume RUN_DIR``, the config recorded there with the
    options given on this command line over it (each checked against the record)."""
    from edgeauto.config import RunConfig, resume_config

    if resume is None:
        return RunConfig(**fields)
    return resume_config(resume, given_fields(ctx, fields, options))


def parse_latency(value: str) -> float:
    """Parse ``--latency-ms`` here so a non-number gets our one-line error, not Click's."""
    try:
        ms = float(value)
    except ValueError:
        raise ConfigError(
            f"latency_ms must be a positive number of milliseconds, got {value!r}; fix --latency-ms"
        ) from None
    if not ms > 0 or ms == float("inf"):
        raise ConfigError(
            f"latency_ms must be a positive number of milliseconds, got {value!r}; fix --latency-ms"
        )
    return ms


def parse_shape(
    input_shape: str | None, classes: int, dataset: str
) -> tuple[tuple[int, int, int], int]:
    from edgeauto.data import dataset_shape

    if input_shape is None:
        return dataset_shape(dataset)
    try:
        c, h, w = (int(v) for v in input_shape.split(","))
    except ValueError:
        raise ConfigError(
            f"input_shape must be C,H,W (three integers), got {input_shape!r}; fix --input-shape"
        ) from None
    return (c, h, w), classes
