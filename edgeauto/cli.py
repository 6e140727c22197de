"""The ``edgeauto`` command: thin. Parses, builds a config, calls the pipeline, maps errors.

Exit codes: 0 ok, 2 bad input (any :class:`EdgeAutoError`), 3 measured latency over budget.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer._click import exceptions as click  # typer vendors click: its errors live here
from typer.core import TyperGroup

from edgeauto.cli_analyze import analyze_app
from edgeauto.cli_linearize import linearize_command
from edgeauto.cli_lut import lut_app
from edgeauto.cli_search import search_command
from edgeauto.errors import ConfigError, EdgeAutoError

if TYPE_CHECKING:
    from edgeauto.devices.profile import DeviceProfile
    from edgeauto.latency.table import LatencyTable


class _OneLineErrors(TyperGroup):
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


app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0], cls=_OneLineErrors
)
devices_app = typer.Typer(help="List and show device profiles.", invoke_without_command=True)
app.add_typer(devices_app, name="devices")
app.add_typer(lut_app, name="lut")
app.add_typer(analyze_app, name="analyze")
app.command("search")(search_command)
app.command("linearize")(linearize_command)
out = Console()
err = Console(stderr=True)


#: Set by ``edgeauto --debug`` (or ``EDGEAUTO_DEBUG=1``): errors also print their traceback.
DEBUG_ENV = "EDGEAUTO_DEBUG"
_options = {"debug": False}


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, also print its traceback.")
    ] = False,
) -> None:
    _options["debug"] = debug


def _fail(exc: EdgeAutoError) -> None:
    """Print ``exc`` on one line (after its traceback with --debug) and exit with its code."""
    if _options["debug"] or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        trace = "".join(traceback.format_exception(exc))
        err.print(trace.rstrip(), markup=False, highlight=False, soft_wrap=True)
    err.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _latency(value: str) -> float:
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


@app.command()
def run(
    device: Annotated[
        list[str] | None,
        typer.Option(help="Device profile name or YAML path; repeat for one model per device."),
    ] = None,
    latency_ms: Annotated[
        list[str] | None,
        typer.Option("--latency-ms", help="Budget in ms (batch 1); one, or one per --device."),
    ] = None,
    dataset: Annotated[
        str, typer.Option(help="mnist5k, digits, npz:PATH or folder:PATH.")
    ] = "mnist5k",
    out_dir: Annotated[str, typer.Option("--out", help="Run directory.")] = "runs/default",
    seed: Annotated[int, typer.Option(help="Seed for split, search and training.")] = 0,
    epochs: Annotated[int, typer.Option(help="Epochs of final training.")] = 5,
    space: Annotated[str, typer.Option(help="Search space name.")] = "fbnet-lite",
    strategy: Annotated[
        str, typer.Option(help="Search strategy: random, evolution, smbo, dnas, noisy.")
    ] = "random",
    mode: Annotated[
        str,
        typer.Option(
            help="search-then-compress (search above the budget, prune onto it) "
            "or joint (widths searched at the budget)."
        ),
    ] = "search-then-compress",
    calibration: Annotated[
        str,
        typer.Option(
            help="fresh (time whole networks near the budget now, on a local device) or "
            "history (earlier runs' verified artifacts)."
        ),
    ] = "fresh",
    criterion: Annotated[
        str,
        typer.Option(help="Channel importance: l1, l2, taylor, taylor2, hessian, ispasp, random."),
    ] = "l1",
    allocation: Annotated[
        str, typer.Option(help="How channels are cut to the budget: netadapt or uniform.")
    ] = "netadapt",
    max_params: Annotated[
        int | None, typer.Option(help="Also cap the parameter count (BN folded).")
    ] = None,
    max_size_kb: Annotated[
        float | None, typer.Option(help="Also cap the float32 .tflite file size (kB).")
    ] = None,
    max_activation_kb: Annotated[
        float | None,
        typer.Option(help="Also cap peak activation memory (kB; measured on the final model)."),
    ] = None,
    int8: Annotated[
        bool, typer.Option(help="Also export a full-integer model_int8.tflite and check it.")
    ] = True,
    scratch_baseline: Annotated[
        bool, typer.Option(help="Also train the pruned architecture from scratch, for comparison.")
    ] = False,
    trials: Annotated[int, typer.Option(help="Architectures trained during search.")] = 6,
    tolerance: Annotated[
        float, typer.Option(help="Allowed overshoot of the measured latency.")
    ] = 0.10,
    tables: Annotated[
        str | None, typer.Option(help="Latency tables folder (default hw_latency/).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Reuse finished stages of --out.")] = False,
    inherit_weights: Annotated[
        bool, typer.Option(help="dnas: train from the supernet's weights, not from scratch.")
    ] = False,
    one_model: Annotated[
        bool,
        typer.Option(help="With several --device: one model meeting every device's budget."),
    ] = False,
    relu_budget: Annotated[
        int | None,
        typer.Option(help="Private inference (--device pi-relu): ReLUs per inference, at most."),
    ] = None,
) -> None:
    """Search, compress, export (ONNX, TFLite) and verify a model for DEVICE within a budget."""
    from edgeauto.config import RunConfig
    from edgeauto.pipeline import run as run_pipeline
    from edgeauto.progress import RichReporter

    try:
        pairs = _device_budgets(device or ["host"], latency_ms or ["0.5"])
        cfg = RunConfig(
            device=pairs[0][0], latency_ms=pairs[0][1], dataset=dataset, out=out_dir, seed=seed,
            epochs=epochs, space=space, strategy=strategy, criterion=criterion, trials=trials,
            allocation=allocation, scratch_baseline=scratch_baseline, int8=int8,
            max_params=max_params, max_size_kb=max_size_kb, max_activation_kb=max_activation_kb,
            mode=mode, calibration=calibration,
            tolerance=tolerance, tables=tables, resume=resume, inherit_weights=inherit_weights,
            also=tuple(pairs[1:]) if one_model else (), relu_budget=relu_budget,
        )  # fmt: skip
        if _relu_costed(cfg):
            return _run_private(cfg)
        if len(pairs) > 1 and not one_model:
            return _run_per_device(cfg, pairs)
        manifest = run_pipeline(cfg, RichReporter())
    except EdgeAutoError as exc:
        _fail(exc)
    _finish(manifest, cfg.tolerance)


def _relu_costed(cfg) -> bool:
    """A ReLU-budget job: the device counts ReLUs (a --relu-budget on a latency device is
    refused by the pipeline's setup, with the fix)."""
    from edgeauto.devices.profile import load_profile

    return load_profile(cfg.device).cost_model == "relu-count" and cfg.relu_budget is not None


def _run_private(cfg) -> None:
    """``--device pi-relu --relu-budget N``: search, train, SNL, export; the counts."""
    from edgeauto.linearize.run import run_private
    from edgeauto.progress import RichReporter

    r = run_private(cfg, RichReporter())
    out.print(f"ReLUs {r['relus_before']:,} -> {r['relus_after']:,} (budget {r['budget']:,})")
    out.print(f"accuracy {r['trained_accuracy']:.4f} trained -> {r['accuracy']:.4f} linearized")
    out.print(f"cost on {r['device']}: {r['cost']:,.1f} ReLU-equivalents ({r['macs']:,} MACs)")
    out.print(f"run directory: {cfg.out}\n  onnx: {r['onnx']}\n  tflite: {r['tflite']}")


def _device_budgets(devices: list[str], budgets: list[str]) -> list[tuple[str, float]]:
    """Pair each --device with its --latency-ms (one budget may serve every device)."""
    if len(budgets) not in (1, len(devices)):
        raise ConfigError(
            f"got {len(devices)} --device and {len(budgets)} --latency-ms; give one budget for "
            "all devices or one per device, in the same order"
        )
    if len(set(devices)) != len(devices):
        raise ConfigError(f"--device names a device twice: {', '.join(devices)}; name each once")
    values = [_latency(b) for b in budgets] * (len(devices) if len(budgets) == 1 else 1)
    return list(zip(devices, values))


def _run_per_device(cfg, pairs: list[tuple[str, float]]) -> None:
    """One search-and-compress per device, each in ``<out>/<device>``; exit 3 if any is over."""
    from edgeauto.devices.profile import load_profile
    from edgeauto.pipeline import run as run_pipeline
    from edgeauto.progress import RichReporter

    names = [load_profile(device).name for device, _ in pairs]  # bad names fail before work
    over = False
    for (device, budget), name in zip(pairs, names):
        out.print(f"[bold]== {name}: {budget:g} ms ==[/]")
        sub = dataclasses.replace(
            cfg, device=device, latency_ms=budget, out=str(Path(cfg.out) / name)
        )
        manifest = run_pipeline(sub, RichReporter())
        _summary(manifest)
        over = over or not manifest.within_budget
    if over:
        err.print("[bold red]over budget on at least one device[/] (see the summaries above)")
        raise typer.Exit(3)


def _finish(manifest, tolerance: float) -> None:
    """Print the summary; exit 3 when the measured latency is over budget."""
    _summary(manifest)
    if not manifest.within_budget:
        if manifest.measured_ms > manifest.budget_ms * (1 + tolerance):
            err.print(
                f"[bold red]over budget:[/] measured {manifest.measured_ms:.4f} ms > "
                f"{manifest.budget_ms:g} ms + {tolerance:.0%}", highlight=False,
            )  # fmt: skip
        for broken in manifest.violations:
            err.print(f"[bold red]over a limit:[/] {broken}", highlight=False)
        for d in manifest.data.get("devices") or []:
            if not d["within_budget"]:
                got = d["measured_ms"] if d["measured_ms"] is not None else d["predicted_ms"]
                err.print(f"[bold red]over budget on {d['name']}:[/] {got:.4f} ms > "
                          f"{d['budget_ms']:g} ms + {tolerance:.0%}", highlight=False)  # fmt: skip
        raise typer.Exit(3)


@app.command()
def compress(
    model: Annotated[
        str | None, typer.Option(help="Your model: module:function or file.py:function.")
    ] = None,
    from_run: Annotated[
        str | None, typer.Option("--from", help="Or the --out directory of an edgeauto run.")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="state_dict file (torch.save) for --model or --from.")
    ] = None,
    device: Annotated[str, typer.Option(help="Device profile name or YAML path.")] = "host",
    latency_ms: Annotated[
        str, typer.Option("--latency-ms", help="Budget in ms (batch 1).")
    ] = "0.5",
    dataset: Annotated[
        str, typer.Option(help="Data for fine-tuning and criteria (--from: the run's).")
    ] = "mnist5k",
    out_dir: Annotated[str, typer.Option("--out", help="Run directory.")] = "runs/compress",
    criterion: Annotated[
        str, typer.Option(help="l1, l2, taylor, taylor2, hessian, ispasp or random.")
    ] = "l1",
    allocation: Annotated[str, typer.Option(help="netadapt or uniform.")] = "netadapt",
    method: Annotated[
        str | None,
        typer.Option(
            help="Unstructured sparse training instead of pruning: imp, lottery, snip, rigl, static, "
            "ctre, colt, gibbs, gibbs-filter, hessian, activation."
        ),
    ] = None,
    sparsity: Annotated[
        float, typer.Option(help="Fraction of weights at zero (with --method).")
    ] = 0.9,
    int8: Annotated[
        bool, typer.Option(help="Also export a full-integer model_int8.tflite and check it.")
    ] = True,
    scratch_baseline: Annotated[
        bool, typer.Option(help="Also train the pruned architecture from scratch.")
    ] = False,
    epochs: Annotated[int, typer.Option(help="Training epochs when no --weights.")] = 5,
    finetune_epochs: Annotated[int, typer.Option(help="Fine-tuning epochs after pruning.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    tolerance: Annotated[float, typer.Option(help="Allowed measured overshoot.")] = 0.10,
    tables: Annotated[str | None, typer.Option(help="Latency tables folder.")] = None,
    resume: Annotated[bool, typer.Option(help="Reuse finished stages of --out.")] = False,
) -> None:
    """Prune an existing model to a latency budget on DEVICE, then export and verify it."""
    from edgeauto.compression import compress as compress_model
    from edgeauto.config import RunConfig
    from edgeauto.progress import RichReporter

    try:
        cfg = RunConfig(
            device=device, latency_ms=_latency(latency_ms), dataset=dataset, out=out_dir,
            seed=seed, epochs=epochs, finetune_epochs=finetune_epochs, criterion=criterion,
            allocation=allocation, scratch_baseline=scratch_baseline, int8=int8, tolerance=tolerance,
            tables=tables, resume=resume, model=model, from_run=from_run, weights=weights,
            sparse_method=method, sparsity=sparsity,
        )  # fmt: skip
        manifest = compress_model(cfg, RichReporter())
    except EdgeAutoError as exc:
        _fail(exc)
    plan = manifest["pruning"]
    if plan.get("status") in ("already", "floor"):
        err.print(f"pruning: {plan['message']}", markup=False, highlight=False)
    _finish(manifest, cfg.tolerance)


def _summary(manifest) -> None:
    lat = manifest["latency"]
    t = Table(title=f"edgeauto run: {manifest.device}", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("validation accuracy", f"{manifest.accuracy:.4f}")
    t.add_row("budget (ms)", f"{manifest.budget_ms:g}")
    t.add_row(f"predicted {lat['runtime']} (ms)", f"{manifest.predicted_ms:.4f}")
    emulated = lat.get("measured_on") == "emulated"
    for key, value in lat["measured"].items():
        if not key.endswith("_p90_ms"):
            t.add_row(f"{'EMULATED' if emulated else 'measured'} {key[:-3]} (ms)", f"{value:.4f}")
    if emulated:  # the device was out of reach: the number is this machine's x a fitted ratio
        e = lat["emulation"]
        t.add_row("emulation fit error (blocks)", f"{e['rmspe']:.1%} ({e['shared']} blocks)")
        t.add_row("emulation expected error", f"{e['expected_error']:.1%}")
    for d in manifest.data.get("devices") or []:  # --one-model: the same file elsewhere
        ms = "unreachable" if d["measured_ms"] is None else f"{d['measured_ms']:.4f}"
        t.add_row(f"{d['name']} {d['runtime']} (ms, budget {d['budget_ms']:g})", ms)
    t.add_row("within budget", "yes" if manifest.within_budget else "NO")
    out.print(t)
    out.print(f"run directory: {manifest.path.parent}")
    for name in ("onnx", "tflite"):
        out.print(f"  {name}: {manifest.artifact(name)}")
    out.print(f"  report: {manifest.path.parent / 'report.md'}")


@devices_app.callback()
def devices(ctx: typer.Context) -> None:
    """List device profiles: name, runtime, threads, connection, and whether a table exists."""
    if ctx.invoked_subcommand:
        return
    from edgeauto.devices.profile import list_profiles, load_profile
    from edgeauto.latency.store import has_table

    t = Table("name", "runtime", "threads", "connection", "has table")
    try:
        for name in list_profiles():
            p = load_profile(name)
            t.add_row(
                name, p.runtime, str(p.threads), p.connection.kind, "yes" if has_table(p) else "no"
            )
    except EdgeAutoError as exc:
        _fail(exc)
    out.print(t)


@devices_app.command("show")
def devices_show(name: Annotated[str, typer.Argument(help="Profile name or YAML path.")]) -> None:
    """Print one device profile (with ``auto`` fields resolved)."""
    import yaml

    from edgeauto.devices.profile import load_profile

    try:
        p = load_profile(name)
    except EdgeAutoError as exc:
        _fail(exc)
    typer.echo(
        yaml.safe_dump(p.model_dump(mode="json", exclude={"source"}), sort_keys=False), nl=False
    )
    typer.echo(f"# source: {p.source}")


@app.command()
def profile(
    device: Annotated[str, typer.Option(help="Device profile name or YAML path.")] = "host",
    space: Annotated[str, typer.Option(help="Search space to profile.")] = "fbnet-lite",
    dataset: Annotated[
        str, typer.Option(help="Dataset whose input shape to profile for.")
    ] = "mnist5k",
    input_shape: Annotated[
        str | None, typer.Option(help="C,H,W instead of a dataset's shape.")
    ] = None,
    classes: Annotated[int, typer.Option(help="Class count with --input-shape.")] = 10,
    tables: Annotated[
        str | None, typer.Option(help="Latency tables folder (default hw_latency/).")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="ssh devices: \\[user@]host\\[:port] instead of the profile's."),
    ] = None,
    key: Annotated[str | None, typer.Option(help="ssh devices: private key file.")] = None,
    known_hosts: Annotated[
        str | None, typer.Option(help="ssh devices: known_hosts file (host keys are checked).")
    ] = None,
    validate: Annotated[
        int,
        typer.Option(
            help="Also measure N random whole networks end to end and store them with the table "
            "(validation data; trains the residual correction of the predictor)."
        ),
    ] = 0,
) -> None:
    """Time every block of SPACE on DEVICE (local, ssh, adb); write or extend its table."""
    # Blocks are converted here and timed on the device by its runner. An interrupted run
    # keeps every finished batch: the same command again measures only what is missing.
    from edgeauto.devices.profile import load_profile

    try:
        prof = _with_overrides(load_profile(device), host, key, known_hosts)
        shape, n = _shape(input_shape, classes, dataset)
        if validate < 0:
            raise ConfigError(f"--validate must be >= 0 networks, got {validate}; fix --validate")
        root = Path(tables) if tables else None
        table = _profile_table(prof, space, shape, n, root, validate)
    except EdgeAutoError as exc:
        _fail(exc)
    out.print(f"{len(table.entries)} entries, overhead {table.overhead_ms():.4f} ms: {table.path}")
    if validate:
        _print_validation(table)


def _with_overrides(
    prof: DeviceProfile, host: str | None, key: str | None, known_hosts: str | None
) -> DeviceProfile:
    """The profile with ``--host/--key/--known-hosts`` applied (ssh devices only)."""
    from edgeauto.devices.profile import parse_host, with_connection

    given = [f for f, v in (("--host", host), ("--key", key), ("--known-hosts", known_hosts)) if v]
    if given and prof.connection.kind != "ssh":
        raise ConfigError(
            f"only ssh devices take {', '.join(given)}; {prof.name} is reached over "
            f"{prof.connection.kind}; drop {given[0]} or pick an ssh device"
        )
    fields = parse_host(host) if host else {}
    return with_connection(prof, **fields, key=key, known_hosts=known_hosts)


def _profile_table(
    prof: DeviceProfile,
    space_name: str,
    shape: tuple[int, int, int],
    n: int,
    root: Path | None,
    validate: int = 0,
) -> LatencyTable:
    """Open or start the device's table and measure the space's missing keys through its
    runner; then ``validate`` random whole networks end to end."""
    from edgeauto.latency.profiler import (
        ProfileSettings,
        fill_table,
        make_timer,
        open_device_table,
        validate_table,
    )
    from edgeauto.progress import RichReporter
    from edgeauto.spaces import get_space

    sp = get_space(space_name, shape, n)
    timer = make_timer(prof, ProfileSettings())
    where = f"{prof.runtime}, {prof.connection.target()}"
    try:
        table = open_device_table(prof, sp.name, timer, root)
        missing = table.missing(sp.all_keys())
        if missing or table.overhead is None or validate:
            timer.runner.describe()  # reach the device before converting anything
        if missing or table.overhead is None:
            desc = f"profiling {len(missing)} blocks on {prof.name} ({where})"
            with RichReporter().task(desc, len(missing)) as task:
                fill_table(table, missing, timer, lambda d, t, _k: task.update(d, t))
        if validate:
            desc = f"timing {validate} whole networks on {prof.name} ({where})"
            with RichReporter().task(desc, validate) as task:
                validate_table(table, sp, timer, validate, lambda d, t, _k: task.update(d, t))
    finally:
        timer.close()
    return table


def _print_validation(table: LatencyTable) -> None:
    """How the predictors do on the table's whole networks (in-sample for the residual)."""
    from edgeauto.latency.fusion import MIN_TRAIN, Score, cross_validated, get_predictor

    runs = [r for r in table.validation if not table.missing(r.keys)]
    measured = [r.measured_ms for r in runs]
    out.print(f"{len(runs)} whole networks measured end to end (validation data)")
    if len(runs) < 2:
        return
    for name in ("naive", "fusion"):
        s = Score.of([get_predictor(name, table).predict(r.keys) for r in runs], measured)
        out.print(f"  {name:16s} within 10% {s.within_10pct:6.1%}  RMSPE {s.rmspe:6.1%}")
    if len(runs) >= MIN_TRAIN + 2:  # cross-validated: each net predicted by a model without it
        folds = min(5, len(runs))
        pred = cross_validated(lambda: get_predictor("fusion+residual", table), runs, folds)
        s = Score.of(pred, measured)
        out.print(f"  fusion+residual  within 10% {s.within_10pct:6.1%}  RMSPE {s.rmspe:6.1%} (CV)")


def _shape(input_shape: str | None, classes: int, dataset: str) -> tuple[tuple[int, int, int], int]:
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


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; re-run with --resume to continue")
        sys.exit(130)


if __name__ == "__main__":
    main()
