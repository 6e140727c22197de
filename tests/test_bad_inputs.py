"""One table of bad inputs across the CLI, profiles, tables, datasets, models and run
directories. Each must end in exit 2 with one line ``error: <Type>: ...`` naming the field
and the fix, and no traceback; ``edgeauto --debug`` shows the traceback as well.

Other test files check single bad inputs in depth (test_cli, test_compress_cli, test_data,
test_devices, test_latency); this table adds the rest, so ``len(CASES)`` is the count of bad
inputs this file covers. Every case builds its input for real (files on disk, arrays, a
torch checkpoint) and runs the real command.
"""

from __future__ import annotations

import json
import pickle  # only to craft a hostile payload; the package itself never uses pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import MICRO, assert_one_line_error, micro_table_path
from PIL import Image

from edgeauto.devices.profile import profiles_dir

EXAMPLE_MODEL = f"{Path(__file__).parents[1] / 'examples' / 'custom_cnn.py'}:build"
Build = Callable[[Path, Path], list[str]]  # (tmp_path, tables root) -> argv


def run_args(tmp: Path, tables: Path, *extra: str, dataset: str = "digits") -> list[str]:
    return [
        "run", "--dataset", dataset, "--space", MICRO, "--out", str(tmp / "out"),
        "--trials", "1", "--epochs", "1", "--latency-ms", "1", "--tables", str(tables), *extra,
    ]  # fmt: skip


def _profile(tmp: Path, edit: Callable[[dict], object], name: str = "bad.yaml") -> Path:
    data = yaml.safe_load((profiles_dir() / "host.yaml").read_text())
    data = edit(data) or data
    path = tmp / name
    path.write_text(yaml.safe_dump(data))
    return path


def _with_profile(edit: Callable[[dict], object]) -> Build:
    return lambda tmp, tables: run_args(tmp, tables, "--device", str(_profile(tmp, edit)))


def _raw_profile(text: bytes) -> Build:
    def build(tmp: Path, tables: Path) -> list[str]:
        (tmp / "raw.yaml").write_bytes(text)
        return run_args(tmp, tables, "--device", str(tmp / "raw.yaml"))

    return build


def _table(edit: Callable[[dict], object]) -> Build:
    """The measured micro table, edited, in a private --tables folder."""

    def build(tmp: Path, tables: Path) -> list[str]:
        mine = tmp / "tables"
        shutil.copytree(tables, mine)
        path = micro_table_path(mine)
        data = json.loads(path.read_text())
        out = edit(data)
        path.write_text(out if isinstance(out, str) else json.dumps(data))
        return run_args(tmp, mine)

    return build


def _npz(**arrays: np.ndarray) -> Build:
    def build(tmp: Path, tables: Path) -> list[str]:
        np.savez(tmp / "data.npz", **arrays)
        return run_args(tmp, tables, dataset=f"npz:{tmp / 'data.npz'}")

    return build


def _folder(corrupt: bool) -> Build:
    def build(tmp: Path, tables: Path) -> list[str]:
        for c in range(2):
            (tmp / "imgs" / f"c{c}").mkdir(parents=True)
            for i in range(6):
                img = np.full((8, 8), 40 * i + c, np.uint8)
                Image.fromarray(img, mode="L").save(tmp / "imgs" / f"c{c}" / f"{i}.png")
        if corrupt:
            (tmp / "imgs" / "c1" / "zz-broken.png").write_bytes(b"\x89PNG not really")
            return run_args(tmp, tables, dataset=f"folder:{tmp / 'imgs'}")
        return run_args(tmp, tables, dataset=f"folder:{tmp / 'imgs' / 'c0' / '0.png'}")

    return build


class _Payload:
    """Unpickling this runs a command: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _weights(kind: str) -> Build:
    def build(tmp: Path, tables: Path) -> list[str]:
        path = tmp / "w.pt"
        if kind == "pickle":
            path.write_bytes(pickle.dumps({"conv.weight": _Payload(tmp / "PWNED")}))
        else:  # a torch checkpoint of the right kind, for another model
            torch.save({"fc.weight": torch.zeros(3, 3)}, path)
        return [
            "compress", "--model", EXAMPLE_MODEL, "--weights", str(path), "--dataset", "digits",
            "--out", str(tmp / "out"), "--latency-ms", "1", "--tables", str(tables),
        ]  # fmt: skip

    return build


def _from_run(edit: Callable[[dict], None]) -> Build:
    """A run directory whose manifest was edited after the run."""

    def build(tmp: Path, tables: Path) -> list[str]:
        run = tmp / "run"
        (run / "checkpoints").mkdir(parents=True)
        doc = {
            "space": MICRO, "arch": {"widths": [8, 16], "layers": [["k3_e1"], ["k3_e1"]]},
            "config": {"dataset": "digits"},
            "artifacts": {"checkpoint": {"path": str(run / "checkpoints" / "finetune.pt")}},
        }  # fmt: skip
        edit(doc)
        (run / "manifest.json").write_text(json.dumps(doc))
        return [
            "compress", "--from", str(run), "--out", str(tmp / "out"), "--latency-ms", "1",
            "--tables", str(tables),
        ]  # fmt: skip

    return build


def _resume(files: dict[str, str], *extra: str) -> Build:
    """``--resume DIR`` of a run directory holding its config.json and ``files`` (name -> text)."""

    def build(tmp: Path, tables: Path) -> list[str]:
        out = tmp / "out"
        out.mkdir()
        config = {"device": "host", "dataset": "digits", "space": MICRO, "seed": 0,
                  "trials": 1, "epochs": 1, "latency_ms": 1.0, "tables": str(tables)}  # fmt: skip
        for name, text in {"config.json": "CONFIG", **files}.items():
            (out / name).write_text(text.replace("CONFIG", json.dumps(config)))
        return ["run", "--resume", str(out), *extra]

    return build


def _cli(*args: str) -> Build:
    return lambda tmp, tables: [a.replace("TMP", str(tmp)) for a in args]


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def _out_is_a_file(tmp: Path, tables: Path) -> list[str]:
    (tmp / "f").write_text("x")
    return [*run_args(tmp, tables), "--out", str(tmp / "f")]  # the last --out wins


def _entry_kind(data: dict) -> None:
    data["entries"][0]["key"]["kind"] = "attention"


def _entry_ms(data: dict) -> None:
    data["entries"][3]["median_ms"] = -0.5


@dataclass(frozen=True)
class Bad:
    """One bad input: how to build it, the error type and fragments the line must hold."""

    id: str
    build: Build
    error: str
    fragments: tuple[str, ...]


TRIAL = '{"number": 0, "arch": {"widths": [8], "layers": [["k3_e1"]]}}'
CASES = [
    # -- the command line: Click's own errors become one line too
    Bad("cli-int-not-a-number", _cli("run", "--trials", "abc", "--out", "TMP/o"), "UsageError",
        ("'--trials'", "run --help")),
    Bad("cli-unknown-option", _cli("run", "--budget", "3"), "UsageError",
        ("No such option: --budget", "run --help")),
    Bad("cli-unknown-command", _cli("serch"), "UsageError", ("No such command 'serch'",)),
    Bad("cli-missing-argument", _cli("devices", "show"), "UsageError",
        ("Missing argument 'name'", "devices show --help")),
    Bad("cli-run-bad-calibration", _cli("run", "--calibration", "always", "--out", "TMP/o"),
        "ConfigError", ("calibration must be one of fresh, history", "--calibration")),
    Bad("cli-run-bad-budget-term",
        _cli("run", "--strategy", "dnas", "--budget-term", "fbnet2", "--out", "TMP/o"),
        "ConfigError", ("budget_term must be one of hinge, fbnet, fbnet-additive",
                        "--budget-term")),
    Bad("cli-run-budget-term-needs-dnas", _cli("run", "--budget-term", "fbnet", "--out", "TMP/o"),
        "ConfigError", ("--budget-term belongs to --strategy dnas", "drop it")),
    Bad("cli-search-bad-budget", _cli("search", "--latency-ms", "-2", "--out", "TMP/s"),
        "ConfigError", ("latency_ms must be a positive number", "--latency-ms")),
    # -- device profiles
    Bad("profile-python-tag", _raw_profile(b"!!python/object/apply:os.system ['touch PWNED']\n"),
        "ConfigError", ("invalid YAML", "fix the YAML")),
    Bad("profile-top-level-list", _raw_profile(b"- host\n- litert\n"), "ConfigError",
        ("top level must be a mapping", "schema_version: 1")),
    Bad("profile-empty-file", _raw_profile(b""), "ConfigError", ("an empty file",)),
    Bad("profile-not-utf8", _raw_profile(b"name: \xff\xfe\x00host\n"), "ConfigError",
        ("cannot be read",)),
    Bad("profile-unknown-field", _with_profile(_set("gpu_mhz", 900)), "ConfigError",
        ("field 'gpu_mhz'", "fix the field in the YAML")),
    Bad("profile-unknown-runtime", _with_profile(_set("runtime", "tensorrt")), "ConfigError",
        ("field 'runtime'", "'tensorrt'")),
    Bad("profile-ssh-option-injection",
        _with_profile(_set("connection", {"kind": "ssh", "host": "-oProxyCommand=touch PWNED"})),
        "ConfigError", ("connection.host", "not start with '-'")),
    Bad("profile-schema-version", _with_profile(_set("schema_version", 2)), "ConfigError",
        ("field 'schema_version'", "got 2")),
    # -- latency tables
    Bad("table-truncated", _table(lambda d: json.dumps(d)[:200]), "ConfigError",
        ("not valid JSON", "truncated", "re-run edgeauto profile")),
    Bad("table-negative-latency", _table(_entry_ms), "ConfigError",
        ("median_ms -0.5", "positive finite milliseconds")),
    Bad("table-unknown-kind", _table(_entry_kind), "ConfigError",
        ("bad entry key", "'attention'", "re-run edgeauto profile")),
    Bad("table-future-schema", _table(_set("schema_version", 7)), "ConfigError",
        ("schema_version must be 1", "got 7")),
    Bad("table-not-an-object", _table(lambda d: "[1, 2, 3]"), "ConfigError",
        ("must be a JSON object", "got list")),
    # -- datasets
    Bad("npz-length-mismatch", _npz(x=np.zeros((100, 8, 8)), y=np.arange(50) % 2),
        "DatasetError", ("holds 100 images but 'y' 50 labels", "one label per image")),
    Bad("npz-object-array", _npz(x=np.array([{"a": 1}] * 20, dtype=object), y=np.arange(20)),
        "DatasetError", ("not a readable .npz",)),
    Bad("npz-text-images", _npz(x=np.array([["a"] * 8] * 20), y=np.arange(20) % 2),
        "DatasetError", ("field 'x' must be a non-empty numeric",)),
    Bad("folder-corrupt-image", _folder(corrupt=True), "DatasetError",
        ("zz-broken.png cannot be decoded", "delete or replace the file")),
    Bad("folder-is-a-file", _folder(corrupt=False), "DatasetError",
        ("neither a folder nor a .zip", "folder:DIR")),
    # -- models and weights
    Bad("weights-hostile-pickle", _weights("pickle"), "ConfigError",
        ("is not a state dict saved with torch.save",)),
    Bad("weights-other-model", _weights("torch"), "ConfigError",
        ("does not match the model",)),
    Bad("from-arch-layer-not-a-string",
        _from_run(lambda d: d["arch"].__setitem__("layers", [[3], [5]])), "ConfigError",
        ("no readable manifest.json", "block choice 3")),
    Bad("from-checkpoint-outside-run",
        _from_run(lambda d: d["artifacts"]["checkpoint"].__setitem__("path", "/etc/passwd")),
        "RunDirError", ("'/etc/passwd'", "relative path inside")),
    Bad("from-checkpoint-climbs-out",
        _from_run(lambda d: d["artifacts"]["checkpoint"].__setitem__("path", "../../w.pt")),
        "RunDirError", ("'../../w.pt'", "no '..'")),
    # -- run directories
    Bad("resume-stages-not-an-object", _resume({"stages.json": "[1, 2]"}), "RunDirError",
        ("stages.json is corrupt", "drop --resume")),
    Bad("resume-damaged-search-record",
        _resume({"stages.json": '{"search": {"arch": {"widths": [8], "layers": [[3]]}}}'}),
        "RunDirError", ("search record is damaged", "drop --resume")),
    Bad("resume-trial-journal-garbage",
        _resume({"trials.jsonl": "not json\n" + TRIAL + "\n"}), "RunDirError",
        ("trials.jsonl line 1 is not a trial record", "start a new --out")),
    Bad("resume-another-config", _resume({}, "--seed", "3"),
        "RunDirError", ("belongs to another config", "seed: 0 in the run, 3 now")),
    Bad("resume-no-such-directory", _cli("run", "--resume", "TMP/none"), "RunDirError",
        ("no such directory", "--out of an earlier run")),
    Bad("resume-empty-config", _resume({"config.json": ""}), "RunDirError",
        ("is corrupt", "drop --resume")),
    Bad("out-is-a-file", _out_is_a_file, "RunDirError", ("cannot be written", "--out")),
]  # fmt: skip


def test_the_table_covers_at_least_twenty_bad_inputs() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)
    kinds = {c.id.split("-")[0] for c in CASES}
    assert {"cli", "profile", "table", "npz", "folder", "weights", "from", "resume"} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(cli, case: Bad, micro_tables: Path, tmp_path: Path) -> None:
    args = case.build(tmp_path, micro_tables)
    before = micro_table_path(micro_tables).read_bytes()
    assert_one_line_error(cli(*args), case.error, *case.fragments)
    assert not (tmp_path / "PWNED").exists(), "a hostile input ran code"
    assert micro_table_path(micro_tables).read_bytes() == before


DEBUG = ("cli-int-not-a-number", "table-truncated", "npz-length-mismatch", "resume-another-config")


@pytest.mark.parametrize("case", [c for c in CASES if c.id in DEBUG], ids=lambda c: c.id)
def test_debug_shows_the_traceback(cli, case: Bad, micro_tables: Path, tmp_path: Path) -> None:
    result = cli("--debug", *case.build(tmp_path, micro_tables))
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {case.error}: ")
    if case.error != "UsageError":  # ours carry a traceback; Click's are parse errors
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.count("\n") > 3
