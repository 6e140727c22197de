"""Native libraries' chatter kept off the terminal, unless ``--debug`` (or ``EDGEAUTO_DEBUG=1``).

TensorFlow (loaded only to convert ONNX to TFLite), its converter and the LiteRT interpreter
write to the process's stderr from C++, under the progress bars:

- TensorFlow's import: absl's ``WARNING: All log messages before absl::InitializeLog() ...``
  and oneDNN's ``I0000 ... port.cc] oneDNN custom operations are on ...`` banner, twice (two
  libraries), and ``cpu_feature_guard`` INFO lines;
- the converter: ``fully_quantize: 0, inference_type: 6, ...`` on every int8 conversion;
- LiteRT: ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` on the first interpreter.

The import lines are silenced by the environment, set before TensorFlow loads
(:func:`before_tensorflow`); the others are printed straight to file descriptor 2 whatever
the environment says, so :func:`quiet_stderr` points it at a temp file around those calls
only (never around a whole stage: Rich draws the progress bars on the same stderr).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

#: ``EDGEAUTO_DEBUG=1`` (or ``edgeauto --debug``): tracebacks and every native line are shown.
DEBUG_ENV = "EDGEAUTO_DEBUG"

#: Set before TensorFlow loads, unless the user set them. TF_CPP_MIN_LOG_LEVEL alone does not
#: stop the oneDNN banner (logged before TensorFlow reads it); oneDNN only speeds TensorFlow's
#: own kernels, which here run nothing but the conversion: the .tflite files (float32 and int8)
#: came out byte-identical with it on and off (TensorFlow 2.21).
TENSORFLOW_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
#: Python loggers of those libraries, set to ERROR when quiet.
LOGGERS = ("tensorflow", "absl", "onnx2tf")

_STATE = {"verbose": False}
_FD2 = threading.RLock()  # one redirect of the process-wide fd 2 at a time


def set_verbose(on: bool) -> None:
    """Show (True) or hide (False) the native lines from now on; ``edgeauto --debug`` sets it.

    Takes effect for TensorFlow's import-time lines only if TensorFlow is not loaded yet.
    """
    _STATE["verbose"] = on


def verbose() -> bool:
    """True under ``--debug`` or ``EDGEAUTO_DEBUG`` (not empty, not ``0``)."""
    return _STATE["verbose"] or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def before_tensorflow() -> None:
    """Quiet TensorFlow's C++ and Python logging; call before importing it (or onnx2tf).

    A value the user set in the environment is kept; nothing is changed when verbose.
    """
    if verbose():
        return
    for name, value in TENSORFLOW_ENV.items():
        os.environ.setdefault(name, value)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 captured for the length of a native call, dropped if it returns.

    If the call raises, the captured text is written to stderr before the exception goes on
    (the native error message is often only there). Verbose: nothing is captured. Threads
    take turns (fd 2 is the process's); keep the block short, as progress bars drawn on
    stderr meanwhile are captured too.
    """
    if verbose():
        yield
        return
    with _FD2, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()  # what Python buffered before belongs on the terminal
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
        except BaseException:
            sink.seek(0)
            os.write(2, sink.read())
            raise
