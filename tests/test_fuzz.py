"""Property tests (Hypothesis) for the four parsers that read user files: device profiles,
latency tables, archs and manifests.

For each: random documents and mutations of valid ones never raise anything but our typed
errors (:class:`EdgeAutoError`, one line), and a valid document round-trips exactly. The
example counts are fixed (``EXAMPLES``) so the suite stays fast and the count is known.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeauto.compress.base import PruneOp, PruneStep, PruningPlan
from edgeauto.devices.profile import load_profile, profile_from_data, profiles_dir
from edgeauto.errors import EdgeAutoError
from edgeauto.latency.table import LatencyStat, LatencyTable, Provenance
from edgeauto.manifest import Manifest
from edgeauto.spaces.base import Arch, Choice
from edgeauto.spaces.key import ACTIVATIONS, OpKey

EXAMPLES = 200
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOURCE = Path("fuzz.yaml")

# -- documents: random JSON trees, and mutations of valid ones ------------------------------
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=12)
    | (st.floats(allow_nan=True, allow_infinity=True))
)
json_docs = st.recursive(
    leaves,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON tree, the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` with 1-3 random edits: a value replaced, a key deleted or a key added."""
    doc = json.loads(json.dumps(valid))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        new = draw(json_docs)
        if not path:
            doc = new
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = new
        else:
            parent[path[-1]] = new
    return doc


def _typed_or_ok(parse: Any, doc: Any) -> None:
    """``parse(doc)`` returns, or raises an EdgeAutoError whose message is one line."""
    try:
        parse(doc)
    except EdgeAutoError as exc:
        assert "\n" not in str(exc), str(exc)


# -- device profiles --------------------------------------------------------------------------
HOST = yaml.safe_load((profiles_dir() / "raspberry-pi-4.yaml").read_text())
ADB = yaml.safe_load((profiles_dir() / "pixel-7.yaml").read_text())
token = st.from_regex(r"[a-z0-9][a-z0-9._]{0,10}", fullmatch=True)
positive = st.floats(0.01, 1e4, allow_nan=False)


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid profile document (what a YAML file would hold)."""
    kind = draw(st.sampled_from(["local", "ssh", "adb"]))
    conn: dict[str, Any] = {"kind": kind}
    if kind == "ssh":
        conn |= {"host": draw(token), "port": draw(st.integers(1, 65535)), "workdir": "/tmp/e"}
        conn |= draw(st.fixed_dictionaries({}, optional={"user": token, "python": token}))
    elif kind == "adb":
        conn |= draw(st.fixed_dictionaries({}, optional={"serial": token}))
    spec = {
        "soc": draw(st.text(max_size=10)), "cpu": draw(st.text(max_size=10)),
        "cores": draw(st.integers(1, 128)), "isa": draw(st.sampled_from(["x86-64", "armv8-a"])),
        "simd": draw(st.lists(st.sampled_from(["neon", "avx2", "fma"]), max_size=3)),
        "clock_ghz": draw(positive), "ram_gb": draw(positive),
    }  # fmt: skip
    spec |= draw(st.fixed_dictionaries({}, optional={"peak_gflops_fp32": positive, "gpu": token}))
    doc = {
        "schema_version": 1, "name": draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}", fullmatch=True)),
        "description": draw(st.text(max_size=30)), "spec": spec,
        "runtime": draw(st.sampled_from(["litert", "onnxruntime"])),
        "threads": draw(st.integers(1, 256)), "connection": conn,
    }  # fmt: skip
    return doc | draw(st.fixed_dictionaries({}, optional={"channel_multiple": st.integers(1, 256)}))


@FUZZ
@given(doc=json_docs | mutated(HOST) | mutated(ADB))
def test_profile_parser_raises_only_typed_errors(doc: Any) -> None:
    _typed_or_ok(lambda d: profile_from_data(d, SOURCE), doc)


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_profile_file_of_random_text(text: str, tmp_path_factory: Any) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-profile.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    _typed_or_ok(load_profile, path)


@FUZZ
@given(doc=profiles())
def test_profile_round_trips_exactly(doc: dict[str, Any]) -> None:
    profile = profile_from_data(doc, SOURCE)
    dumped = profile.model_dump(mode="json", exclude={"source"})
    again = profile_from_data(yaml.safe_load(yaml.safe_dump(dumped)), SOURCE)
    assert again == profile
    assert again.model_dump(mode="json", exclude={"source"}) == dumped


# -- latency tables ---------------------------------------------------------------------------
ms = st.floats(1e-6, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def op_keys(draw: st.DrawFn) -> OpKey:
    kind = draw(st.sampled_from(["stem", "mbconv", "head", "conv", "pool", "linear", "resize"]))
    small = st.integers(1, 64)
    return OpKey(
        kind, draw(small), draw(st.integers(0, 64)), draw(small), draw(small), draw(small),
        draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([1, 2])), draw(st.booleans()),
        draw(st.booleans()), draw(st.sampled_from(ACTIVATIONS)), draw(st.sampled_from([1, 2])),
        draw(small) if kind == "resize" else 0,
    )  # fmt: skip


@st.composite
def tables(draw: st.DrawFn) -> LatencyTable:
    prov = Provenance(
        draw(token), draw(st.text(max_size=12)), draw(st.sampled_from(["litert", "onnxruntime"])),
        draw(token), draw(st.integers(1, 8)), draw(st.integers(1, 500)), draw(st.integers(1, 50)),
        draw(token), "2025-01-01T00:00:00+00:00", "0.1.0",
    )  # fmt: skip
    stat = st.builds(lambda a, b, n: LatencyStat(a, a + b, n), ms, ms, st.integers(1, 1000))
    entries = draw(st.dictionaries(op_keys(), stat, max_size=8))
    return LatencyTable(prov, draw(st.none() | stat), entries)


VALID_TABLE = LatencyTable(
    Provenance("host", "cpu", "litert", "2.3", 1, 300, 30, "fbnet-micro", "2025", "0.1.0"),
    LatencyStat(0.01, 0.02, 300),
    {OpKey("mbconv", 8, 24, 16, 8, 8, 3, 2): LatencyStat(0.05, 0.06, 300),
     OpKey("stem", 1, 0, 8, 8, 8, 3, 1): LatencyStat(0.02, 0.03, 300)},
).to_json()  # fmt: skip


@FUZZ
@given(doc=json_docs | mutated(VALID_TABLE))
def test_table_parser_raises_only_typed_errors(doc: Any) -> None:
    _typed_or_ok(LatencyTable.from_json, doc)


@FUZZ
@given(table=tables())
def test_table_round_trips_exactly(table: LatencyTable) -> None:
    text = json.dumps(table.to_json())
    again = LatencyTable.from_json(json.loads(text))
    assert again.to_json() == table.to_json()
    assert again.entries == table.entries and again.sha256() == table.sha256()


# -- archs ------------------------------------------------------------------------------------
choices = st.sampled_from([Choice(0, 0), Choice(3, 1), Choice(5, 6), Choice(3, 3, 2)]) | (
    st.builds(Choice, st.integers(1, 9), st.integers(1, 9))
)
archs = st.integers(1, 5).flatmap(
    lambda n: st.builds(
        Arch,
        st.tuples(*[st.integers(1, 512)] * n),
        st.tuples(*[st.lists(choices, min_size=1, max_size=4).map(tuple)] * n),
        st.integers(0, 320),
    )
)
VALID_ARCH = {"widths": [8, 16], "layers": [["k3_e1", "skip"], ["k5_e6_g2"]], "resolution": 160}


@FUZZ
@given(doc=json_docs | mutated(VALID_ARCH))
def test_arch_parser_raises_only_typed_errors(doc: Any) -> None:
    _typed_or_ok(Arch.from_json, doc)


@FUZZ
@given(arch=archs)
def test_arch_round_trips_exactly(arch: Arch) -> None:
    doc = json.loads(json.dumps(arch.to_json()))
    assert Arch.from_json(doc) == arch
    assert Arch.from_json(doc).to_json() == doc


# -- manifests --------------------------------------------------------------------------------
def _manifest(arch: Arch, plan: PruningPlan, budget: float) -> dict[str, Any]:
    return {
        "config": {"seed": 0}, "device": {"name": "host"}, "space": "fbnet-micro",
        "budget": {"latency_ms": budget, "tolerance": 0.1}, "arch": arch.to_json(),
        "pruning": plan.to_json(), "accuracy": {"val": 0.9}, "artifacts": {},
        "latency": {"predicted_ms": budget, "measured_ms": budget, "within_budget": True},
    }  # fmt: skip


ops = st.builds(PruneOp, token, st.booleans(), st.lists(st.integers(0, 99), max_size=5).map(tuple),
                st.sampled_from(["channels", "remove"]))  # fmt: skip
plans = st.builds(
    PruningPlan, token, ms, st.sampled_from(["netadapt", "uniform"]), st.just("ms"),
    st.lists(ops, max_size=4),
    st.lists(st.builds(PruneStep, st.integers(0, 9), ms, st.integers(0, 10**6), token), max_size=3),
    st.lists(st.tuples(ms, ms), max_size=2), st.sampled_from(["met", "already", "floor"]),
    st.text(max_size=20),
)  # fmt: skip
VALID_MANIFEST = _manifest(Arch.from_json(VALID_ARCH), PruningPlan("l1", 0.5), 0.5)


@FUZZ
@given(doc=json_docs | mutated(VALID_MANIFEST))
def test_manifest_parser_raises_only_typed_errors(doc: Any) -> None:
    def parse(d: Any) -> None:
        m = Manifest.from_json(d)
        m.arch if d.get("arch") is not None else None
        assert m.pruning.to_json() is not None and math.isfinite(m.budget_ms)

    _typed_or_ok(parse, doc)


@FUZZ
@given(text=st.text(max_size=300))
def test_manifest_file_of_random_text(text: str, tmp_path_factory: Any) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-manifest.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    _typed_or_ok(Manifest.load, path)


@FUZZ
@given(arch=archs, plan=plans, budget=ms)
def test_manifest_round_trips_exactly(arch: Arch, plan: PruningPlan, budget: float) -> None:
    doc = _manifest(arch, plan, budget)
    m = Manifest.from_json(json.loads(json.dumps(doc)))
    assert m.data == doc and m.arch == arch and m.budget_ms == budget
    assert m.pruning == plan and m.pruning.to_json() == plan.to_json()
