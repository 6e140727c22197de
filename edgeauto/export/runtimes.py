"""Real inference runtimes (ONNX Runtime, LiteRT) behind one small role, :class:`Runtime`.

A runtime turns an ONNX file into its artifact, loads it, runs it on NCHW inputs and times it.
"""

from __future__ import annotations

import abc
import importlib.metadata
from functools import partial
from pathlib import Path

import numpy as np

from edgeauto.errors import RunnerError
from edgeauto.export.tflite import export_tflite
from edgeauto.quiet import quiet_stderr
from edgeauto.registry import Registry
from edgeauto.timing import LatencyStat, sample_calls, time_calls  # noqa: F401


class Session(abc.ABC):
    """A loaded artifact. ``run`` takes and returns NCHW/NC arrays whatever the layout inside."""

    input_shape: tuple[int, ...]  # NCHW, batch included

    @abc.abstractmethod
    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Convert an NCHW float32 batch to the runtime's native layout."""

    @abc.abstractmethod
    def run_native(self, x: np.ndarray) -> np.ndarray:
        """Run on a prepared input; return the raw output."""

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.run_native(self.prepare(x))


class Runtime(abc.ABC):
    """One inference runtime. Registered in :data:`RUNTIMES` by name."""

    name: str
    suffix: str

    @abc.abstractmethod
    def version(self) -> str:
        """The runtime's package version (recorded in tables and manifests)."""

    @abc.abstractmethod
    def from_onnx(self, onnx_path: Path, out_path: Path) -> Path:
        """Produce this runtime's artifact from an ONNX file."""

    @abc.abstractmethod
    def load(self, path: Path, threads: int) -> Session:
        """Load an artifact for inference with ``threads`` threads."""

    def measure(
        self, path: Path, threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> LatencyStat:
        """Median/p90 of batch-1 inferences on random input, pooled over the undisturbed of
        ``rounds`` sessions (:meth:`LatencyStat.from_rounds`).

        Each round loads a fresh session and times ``runs`` runs after ``warmup``. Pooling
        rounds matters for blocks of ~10 us: one session's memory layout can sit 20% off.
        """
        return LatencyStat.from_rounds(
            [self.sample(path, threads, runs, warmup) for _ in range(rounds)]
        )

    def sample(self, path: Path, threads: int, runs: int, warmup: int) -> list[float]:
        """One round: a fresh session, ``warmup`` untimed runs, then ``runs`` timed ones (ms).

        For callers that interleave rounds of many artifacts, so that a drift in the
        machine's load spreads over all of them instead of biasing one.
        """
        session = self.load(path, threads)
        x = np.random.default_rng(0).standard_normal(session.input_shape).astype(np.float32)
        native = session.prepare(x)
        return sample_calls(partial(session.run_native, native), runs, warmup)


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")


class _OrtSession(Session):
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own untyped errors
            raise RunnerError(f"onnxruntime cannot load {path}: {exc}".splitlines()[0]) from None
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(int(d) for d in inp.shape)

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def run_native(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(None, {self.input_name: x})[0]


@RUNTIMES.register("onnxruntime")
class OnnxRuntime(Runtime):
    """ONNX Runtime, CPU execution provider."""

    name = "onnxruntime"
    suffix = ".onnx"

    def version(self) -> str:
        return importlib.metadata.version("onnxruntime")

    def from_onnx(self, onnx_path: Path, out_path: Path) -> Path:
        if Path(onnx_path).resolve() != Path(out_path).resolve():
            Path(out_path).write_bytes(Path(onnx_path).read_bytes())
        return Path(out_path)

    def load(self, path: Path, threads: int) -> Session:
        return _OrtSession(path, threads)


class _LiteRTSession(Session):
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with quiet_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.it = Interpreter(model_path=str(path), num_threads=threads)
                self.it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(f"LiteRT cannot load {path}: {exc}".splitlines()[0]) from None
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]
        shape = tuple(int(d) for d in self.inp["shape"])
        self.nhwc = len(shape) == 4
        self.input_shape = (shape[0], shape[3], shape[1], shape[2]) if self.nhwc else shape

    @property
    def quantized(self) -> bool:
        """True for a full-integer model: int8/uint8 input and output tensors."""
        return np.dtype(self.inp["dtype"]).kind in "iu"

    def prepare(self, x: np.ndarray) -> np.ndarray:
        x = x.transpose(0, 2, 3, 1) if self.nhwc else x
        if self.quantized:  # real -> integer with the input tensor's own scale and zero point
            scale, zero = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])
            q = np.clip(np.round(x / scale + zero), info.min, info.max)
            return np.ascontiguousarray(q, dtype=self.inp["dtype"])
        return np.ascontiguousarray(x, dtype=np.float32)

    def run_native(self, x: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self.inp["index"], x)
        self.it.invoke()
        return self.it.get_tensor(self.out["index"])

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.run_native(self.prepare(x))
        if self.quantized:
            scale, zero = self.out["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out.transpose(0, 3, 1, 2) if out.ndim == 4 else out  # back to NCHW


@RUNTIMES.register("litert")
class LiteRT(Runtime):
    """LiteRT (TFLite) interpreter with its default XNNPACK delegate."""

    name = "litert"
    suffix = ".tflite"

    def version(self) -> str:
        return importlib.metadata.version("ai-edge-litert")

    def from_onnx(self, onnx_path: Path, out_path: Path) -> Path:
        return export_tflite(onnx_path, out_path)

    def load(self, path: Path, threads: int) -> Session:
        return _LiteRTSession(path, threads)


def get_runtime(name: str) -> Runtime:
    """Instantiate the registered runtime ``name``."""
    return RUNTIMES.get(name)()


def list_runtimes() -> list[str]:
    """Names of the registered runtimes."""
    return RUNTIMES.names()
