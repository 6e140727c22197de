"""``sample.npz``: a few validation images shipped in the bundle, with the host's answers.

``edgeauto deploy`` runs the bundle's ``infer.py`` on these images on the board and compares
its top-1 with the host's. The file holds ``images`` (N, H, W, C: the stored pixels, in the
dataset's units, as ``infer.py`` reads an ``.npz``), ``labels`` (the true classes) and, per
model file of the bundle, ``top1:<file>``: the class the host's runtime picks through the
same ``infer.py`` at export, so the board and the host differ only in where they run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from edgeauto.data import Dataset
from edgeauto.errors import RunDirError
from edgeauto.fileio import atomic_path

SAMPLE_FILE = "sample.npz"
#: Images in the sample: at 99% one near tie may flip between runtimes (1 of 128), more may
#: not; small enough to ship (CIFAR: 128 x 3 kB, ~400 kB before compression).
SAMPLE_SIZE = 128
TOP1 = "top1:"


def write_sample(root: Path, data: Dataset, models: Sequence[Path], n: int = SAMPLE_SIZE) -> Path:
    """Write ``root/sample.npz``: the first ``n`` validation images and labels, and each of
    ``models``' host top-1 through ``root/infer.py`` (written before, with preprocess.json)."""
    images = data.x_val.raw[:n].permute(0, 2, 3, 1).contiguous().numpy()  # NCHW -> NHWC
    infer = load_infer(root)
    arrays = {f"{TOP1}{Path(m).name}": host_top1(infer, Path(m), images) for m in models}
    path = root / SAMPLE_FILE
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, images=images, labels=data.y_val[:n].numpy(), **arrays)
    return path


def load_infer(root: Path) -> ModuleType:
    """The bundle's own ``infer.py`` as a module (it reads ``root``'s preprocess.json)."""
    spec = importlib.util.spec_from_file_location("edgeauto_bundle_infer", root / "infer.py")
    if spec is None or spec.loader is None:
        raise RunDirError(f"{root / 'infer.py'} cannot be loaded; write the bundle again")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_top1(infer: ModuleType, model: Path, images: np.ndarray) -> np.ndarray:
    """The class ``infer.py`` picks for each image with ``model`` on this machine."""
    logits = infer.open_model(model)
    return np.array(
        [int(np.argmax(logits(infer.to_input(infer.scaled(x))))) for x in images], np.int64
    )


def read_sample(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``sample.npz`` (``images``, ``labels``, ``top1:<file>``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise RunDirError(
            f"{path} is unreadable ({type(exc).__name__}); resume the run (edgeauto run or "
            "compress --resume) to write it again"
        ) from None
