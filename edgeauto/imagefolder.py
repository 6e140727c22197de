"""Image folders and zips of ``<class>/<image>``: decoded in parallel, cached by content.

A folder (or a ``.zip`` of one) is decoded once into a uint8 ``(N, C, H, W)`` array and kept
in the user's cache (:func:`edgeauto.fileio.cache_dir`), keyed by the SHA-256 of the files'
bytes, so a second load reads one ``.npz`` instead of decoding 50,000 JPEGs. The cache holds
numbers and class names only and is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgeauto.errors import DatasetError
from edgeauto.fileio import atomic_path, cache_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
CHUNK = 2048  # images per decoding task: large enough that process overhead is noise


@dataclass(frozen=True)
class ImageSet:
    """Decoded images (uint8, NCHW), their class indices and the class names."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]


def load_image_set(path: Path, cache: bool = True) -> ImageSet:
    """The images under ``path`` (a folder or a ``.zip``), from the cache when it has them."""
    members = _members(path)
    key = _content_key(path, [m for m, _ in members])
    cached = cache_dir() / "datasets" / f"{key}.npz"
    if cache and (found := _read_cache(cached)) is not None:
        return found
    classes = sorted({c for _, c in members})
    index = {c: i for i, c in enumerate(classes)}
    x = _decode_all(path, [m for m, _ in members])
    found = ImageSet(x, np.array([index[c] for _, c in members], dtype=np.int64), classes)
    if cache:
        _write_cache(cached, found)
    return found


def _members(path: Path) -> list[tuple[str, str]]:
    """``(member, class)`` for every image, sorted; a member is a path inside ``path``."""
    if path.suffix.lower() == ".zip":
        names = _zip_names(path)
    else:
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    images = [PurePosixPath(n) for n in names if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
    # a zip of a folder has one top directory (``train/<class>/<image>``): look inside it
    tops = {p.parts[0] for p in images}
    strip = 1 if len(tops) == 1 and all(len(p.parts) == 3 for p in images) else 0
    if not images:
        raise DatasetError(
            f"dataset folder:{path} holds no images; expected {path}/<class>/<image> "
            f"({'|'.join(IMAGE_SUFFIXES)})"
        )
    if any(len(p.parts) - strip != 2 for p in images):
        raise DatasetError(
            f"dataset folder:{path} must hold <class>/<image> files "
            f"({'|'.join(IMAGE_SUFFIXES)}), one folder per class; found "
            f"{len(images)} images, e.g. {[str(p) for p in images[:2]]}"
        )
    return [(str(p), p.parts[strip]) for p in images]


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as z:
            return sorted(n for n in z.namelist() if not n.endswith("/"))
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"dataset folder:{path} is not a readable zip ({exc})") from None


def _content_key(path: Path, members: Sequence[str]) -> str:
    """SHA-256 of the images' names and bytes (of the whole zip for a zip)."""
    h = hashlib.sha256(b"edgeauto-images-v1")
    if path.suffix.lower() == ".zip":
        with path.open("rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        return h.hexdigest()
    for m in members:
        h.update(m.encode() + b"\0" + (path / m).read_bytes())
    return h.hexdigest()


def _decode_all(path: Path, members: list[str]) -> np.ndarray:
    """Decode every member, in parallel on the cores this process may use."""
    mode, size = _first_format(path, members[0])
    chunks = [members[i : i + CHUNK] for i in range(0, len(members), CHUNK)]
    workers = min(len(chunks), len(os.sched_getaffinity(0)))
    if workers <= 1:
        parts = [_decode(path, c, mode, size) for c in chunks]
    else:
        # fork: the children only need PIL and this module, already loaded here
        with ProcessPoolExecutor(workers, multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_decode, [path] * len(chunks), chunks,
                                  [mode] * len(chunks), [size] * len(chunks)))  # fmt: skip
    x = np.concatenate(parts)
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2).copy()


def _first_format(path: Path, member: str) -> tuple[str, tuple[int, int]]:
    """Mode and size of the first image: every image is converted to them."""
    image = _open(path, member, _reader(path))
    return ("L" if image.mode in ("L", "1", "I;16") else "RGB"), image.size


def _decode(path: Path, members: list[str], mode: str, size: tuple[int, int]) -> np.ndarray:
    read = _reader(path)
    return np.stack([np.asarray(_open(path, m, read).convert(mode).resize(size)) for m in members])


Reader = Callable[[str], bytes]


def _reader(path: Path) -> Reader:
    if path.suffix.lower() == ".zip":
        return zipfile.ZipFile(path).read
    return lambda m: (path / m).read_bytes()


def _open(path: Path, member: str, read: Reader) -> Any:
    """``PIL.Image.open`` with the image decoded now, so a corrupt one is a DatasetError."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(read(member)))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(
            f"dataset folder:{path}: image {member} cannot be decoded "
            f"({type(exc).__name__}); delete or replace the file"
        ) from None
    return image


def _read_cache(path: Path) -> ImageSet | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return ImageSet(f["x"], f["y"], [str(c) for c in f["classes"]])
    except (OSError, ValueError, KeyError):
        return None  # absent or damaged: decode again


def _write_cache(path: Path, found: ImageSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, x=found.x, y=found.y, classes=np.array(found.classes))
