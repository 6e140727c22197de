"""Latency timer that edgeauto copies to a device and runs there.

    python3 remote_timer.py describe
    python3 remote_timer.py time --threads 4 --runs 100 --warmup 30 --rounds 3 a.tflite b.onnx

Prints one JSON object on stdout. Exit codes: 0 done; 3 numpy or the runtime a model needs is
missing; 4 a model cannot be loaded or run. Stand-alone on purpose: it imports nothing from
edgeauto and needs only numpy plus ai_edge_litert / tflite_runtime / tensorflow (for .tflite)
or onnxruntime (for .onnx), and it avoids syntax newer than Python 3.7, since boards run
whatever Python their OS ships. It times the way edgeauto times locally
(``edgeauto.export.runtimes.Runtime.measure``): per round a fresh session, ``warmup`` untimed runs,
then ``runs`` timed runs of set-input + invoke + get-output on random normal input.
"""

import argparse
import importlib
import json
import os
import platform
import sys
import time

MISSING = 3
BAD_MODEL = 4
BAD_CORES = 5
# (module to import, distribution name) in order of preference for .tflite models.
LITERT_MODULES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow", "tensorflow"),
)


def emit(obj, code=0):
    """Print ``obj`` as one JSON line and exit with ``code``."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def fail(code, kind, message):
    emit({"error": kind, "message": message}, code)


def dist_version(dist, module):
    """Installed version of ``dist``, else the module's ``__version__``, else 'unknown'."""
    try:
        from importlib import metadata  # Python 3.8+

        return metadata.version(dist)
    except Exception:  # no importlib.metadata, or not installed as a distribution
        return str(getattr(module, "__version__", "unknown"))


def find_litert():
    """(Interpreter class, distribution, version) of the first LiteRT package, or None."""
    for name, dist in LITERT_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if dist == "tensorflow":
            return module.lite.Interpreter, dist, dist_version(dist, module)
        return module.Interpreter, dist, dist_version(dist, module)
    return None


def find_onnxruntime():
    """(onnxruntime module, distribution, version), or None."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime, "onnxruntime", dist_version("onnxruntime", onnxruntime)


def cpu_model():
    """The CPU's name from /proc/cpuinfo (first of the usual keys), else the platform's."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    for key in ("model name", "Model", "Hardware", "Processor", "cpu model"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine() or "unknown"


def describe():
    runtimes = {}
    for name, finder in (("litert", find_litert), ("onnxruntime", find_onnxruntime)):
        found = finder()
        runtimes[name] = {"package": found[1], "version": found[2]} if found else None
    try:
        import numpy

        np_version = numpy.__version__
    except ImportError:
        np_version = None
    emit({
        "cpu_model": cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(),
        "python": platform.python_version(), "numpy": np_version, "runtimes": runtimes,
    })  # fmt: skip


class LiteRTSession:
    def __init__(self, interpreter_cls, path, threads):
        self.it = interpreter_cls(model_path=path, num_threads=threads)
        self.it.allocate_tensors()
        inp = self.it.get_input_details()[0]
        self.index, self.shape, self.dtype = inp["index"], tuple(inp["shape"]), inp["dtype"]
        self.out = self.it.get_output_details()[0]["index"]

    def run(self, x):
        self.it.set_tensor(self.index, x)
        self.it.invoke()
        return self.it.get_tensor(self.out)


class OrtSession:
    def __init__(self, ort, path, threads):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.name = inp.name
        self.shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)
        self.dtype = "float32"

    def run(self, x):
        return self.sess.run(None, {self.name: x})[0]


def session_factory(path):
    """A function (path, threads) -> session for the runtime of ``path``'s suffix."""
    if path.endswith(".tflite"):
        found = find_litert()
        if found is None:
            fail(MISSING, "missing_runtime", "no LiteRT: pip install ai-edge-litert")
        return lambda p, t: LiteRTSession(found[0], p, t)
    if path.endswith(".onnx"):
        found = find_onnxruntime()
        if found is None:
            fail(MISSING, "missing_runtime", "no ONNX Runtime: pip install onnxruntime")
        return lambda p, t: OrtSession(found[0], p, t)
    fail(BAD_MODEL, "bad_model", "unknown model suffix: " + path)


def random_input(np, shape, dtype):
    try:
        rng = np.random.default_rng(0)
    except AttributeError:  # numpy < 1.17
        rng = np.random.RandomState(0)
    return np.ascontiguousarray(rng.standard_normal(shape).astype(dtype))


def sample(np, make, path, args):
    """Milliseconds of every timed run, over ``args.rounds`` fresh sessions."""
    samples = []
    for _ in range(args.rounds):
        session = make(path, args.threads)
        x = random_input(np, session.shape, session.dtype)
        for _ in range(args.warmup):
            session.run(x)
        for _ in range(args.runs):
            t0 = time.perf_counter_ns()
            session.run(x)
            samples.append(round((time.perf_counter_ns() - t0) / 1e6, 6))
    return samples


def time_models(args):
    try:
        import numpy as np
    except ImportError:
        fail(MISSING, "missing_runtime", "no numpy: pip install numpy")
    makers = [session_factory(p) for p in args.models]  # a missing runtime fails before timing
    if args.cores:  # sessions created from here on, and their threads, run on these cores
        try:
            os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
        except (AttributeError, OSError, ValueError) as exc:
            fail(BAD_CORES, "bad_cores", "cannot pin to cores " + args.cores + ": " + str(exc))
    results = []
    for path, make in zip(args.models, makers):
        try:
            results.append(
                {"file": os.path.basename(path), "samples_ms": sample(np, make, path, args)}
            )
        except Exception as exc:  # runtimes raise their own untyped errors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            fail(BAD_MODEL, "bad_model", os.path.basename(path) + ": " + first)
    emit({"results": results})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("describe")
    t = sub.add_parser("time")
    t.add_argument("--threads", type=int, required=True)
    t.add_argument("--runs", type=int, required=True)
    t.add_argument("--warmup", type=int, required=True)
    t.add_argument("--rounds", type=int, default=1)
    t.add_argument("--cores", default="")
    t.add_argument("models", nargs="+")
    args = parser.parse_args()
    if args.command == "describe":
        describe()
    elif args.command == "time":
        time_models(args)
    else:
        parser.error("a command is required: describe or time")


if __name__ == "__main__":
    main()
