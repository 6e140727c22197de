"""Peak activation memory measured through ONNX Runtime.

LiteRT does not expose its arena through the Python API, but ONNX Runtime can show what it
executes: the optimized graph it runs (fusions included, e.g. a residual add folded into a
conv) and, through its profiler, the real shape of every tensor each node produced. A
liveness walk over that execution order gives the bytes alive at once at the busiest node:
the runtime's own peak, not our block-level estimate (:func:`edgeauto.limits.estimate`).
Weights (initializers) are not activations and are left out.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: bytes per element of the type names ONNX Runtime's profiler writes
_TYPE_BYTES = {"float": 4, "float16": 2, "double": 8, "int8": 1, "uint8": 1, "int32": 4,
               "int64": 8, "bool": 1}  # fmt: skip
_KERNEL_SUFFIX = "_kernel_time"


@dataclass(frozen=True)
class ExecutedNode:
    """One node as ONNX Runtime ran it: its tensor names and the bytes of each output."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_bytes: tuple[int, ...]


def measure_peak_activations(onnx_path: str | Path) -> int:
    """Peak bytes of activations alive at once while ONNX Runtime runs ``onnx_path`` once
    (batch 1, zeros of the model's input shape, one thread)."""
    nodes, graph_inputs, graph_outputs = _executed_nodes(Path(onnx_path))
    return peak_alive_bytes(nodes, graph_inputs, graph_outputs)


def peak_alive_bytes(
    nodes: list[ExecutedNode], graph_inputs: dict[str, int], graph_outputs: set[str]
) -> int:
    """The liveness walk: a tensor lives from the node that makes it (or the start, for a
    graph input) to the last node that reads it (or the end, for a graph output)."""
    last_use = {t: i for i, n in enumerate(nodes) for t in n.inputs}
    end = len(nodes)
    live = {t: (0, last_use.get(t, 0), b) for t, b in graph_inputs.items()}
    for i, n in enumerate(nodes):
        for t, b in zip(n.outputs, n.output_bytes, strict=True):
            live[t] = (i, end if t in graph_outputs else last_use.get(t, i), b)
    return max(
        (sum(b for first, last, b in live.values() if first <= i <= last) for i in range(end)),
        default=sum(graph_inputs.values()),
    )


def _executed_nodes(path: Path) -> tuple[list[ExecutedNode], dict[str, int], set[str]]:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgeauto-mem-") as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling, opts.profile_file_prefix = True, str(Path(tmp) / "profile")
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # the "hardware specific optimizations" warning is expected
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
                for i in sess.get_inputs()}  # fmt: skip
        sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
        graph = onnx.load(opts.optimized_model_filepath).graph
    nodes = _match(graph, events)
    inputs = {i.name: 4 * int(np.prod(v.shape)) for i, v in zip(sess.get_inputs(), feed.values())}
    return nodes, inputs, {o.name for o in graph.output}


def _match(graph: Any, events: list[dict[str, Any]]) -> list[ExecutedNode]:
    """The profiler's node events, in the order they ran, joined to the optimized graph."""
    by_name = {n.name: n for n in graph.node}
    runs = [e for e in events if e.get("cat") == "Node" and e["name"].endswith(_KERNEL_SUFFIX)]
    nodes = []
    for e in sorted(runs, key=lambda e: e["ts"]):
        node = by_name.get(e["name"][: -len(_KERNEL_SUFFIX)])
        if node is None:  # a node the saved graph does not name: nothing to join, skip it
            continue
        sizes = tuple(_bytes(s) for s in e["args"].get("output_type_shape", []))
        outputs = tuple(node.output)[: len(sizes)]
        nodes.append(ExecutedNode(node.name, tuple(node.input), outputs, sizes[: len(outputs)]))
    return nodes


def _bytes(type_shape: dict[str, list[int]]) -> int:
    ((type_name, shape),) = type_shape.items()
    return _TYPE_BYTES.get(type_name, 4) * int(np.prod(shape, dtype=np.int64))
