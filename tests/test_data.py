"""Datasets: the built-ins, npz and image folders, the seeded split, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from edgeauto.data import Dataset, dataset_shape, load_dataset
from edgeauto.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def sk_digits():
    d = load_digits()
    return d.images, d.target  # (1797, 8, 8) floats 0..16, labels 0..9


def _check_split(d: Dataset, n: int, n_val: int) -> None:
    assert len(d.x_train) + len(d.x_val) == n
    assert len(d.x_val) == n_val
    assert len(d.y_train) == len(d.x_train) and len(d.y_val) == len(d.x_val)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    for x in (d.x_train, d.x_val):
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_mnist5k() -> None:
    d = load_dataset("mnist5k")
    assert d.name == "mnist5k"
    assert d.input_shape == (1, 28, 28)
    assert d.num_classes == 10 and d.classes == [str(i) for i in range(10)]
    _check_split(d, 5000, 1000)
    assert len(d.x_train) == 4000
    assert float(d.x_train.max()) == 1.0  # scaled from 0..255, not left raw
    # real digits: every class is present in both splits, each image has ink and background
    assert set(d.y_train.tolist()) == set(range(10)) == set(d.y_val.tolist())
    ink = (d.x_val > 0.5).flatten(1).float().mean(1)
    assert float(ink.min()) > 0.0 and float(ink.max()) < 0.6
    assert dataset_shape("mnist5k") == (d.input_shape, d.num_classes)


def test_digits(sk_digits) -> None:
    images, target = sk_digits
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    _check_split(d, 1797, 359)
    assert float(d.x_train.max()) == 1.0  # 16 is white
    # same images, scaled by 1/16: compare sorted per-image sums
    ours = torch.cat([d.x_train, d.x_val]).flatten(1).sum(1).sort().values.numpy()
    ref = np.sort(images.reshape(len(images), -1).sum(1) / 16.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    assert (
        np.bincount(torch.cat([d.y_train, d.y_val]).numpy()).tolist()
        == np.bincount(target).tolist()
    )
    assert dataset_shape("digits") == ((1, 8, 8), 10)


def test_split_is_deterministic() -> None:
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    c = load_dataset("digits", seed=4)
    assert not torch.equal(a.x_val, c.x_val)
    assert not torch.equal(a.y_train, c.y_train)
    # a different split of the same data
    assert len(c.x_val) == len(a.x_val)
    assert float(a.x_val.sum() + a.x_train.sum()) == pytest.approx(
        float(c.x_val.sum() + c.x_train.sum())
    )


def test_val_fraction() -> None:
    d = load_dataset("digits", val_fraction=0.5)
    assert len(d.x_val) == round(1797 * 0.5)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(DatasetError, match="val_fraction"):
            load_dataset("digits", val_fraction=bad)


def _as_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(images * 255.0 / 16.0), 0, 255).astype(np.uint8)


def test_npz_nhw(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    x = _as_uint8(images)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=target)
    d = load_dataset(f"npz:{path}")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    _check_split(d, 1797, 359)
    # pixel values come back as x / 255, exactly
    allx = torch.cat([d.x_train, d.x_val]).numpy()
    np.testing.assert_allclose(
        np.sort(allx.sum((1, 2, 3))), np.sort(x.astype(np.float32).sum((1, 2)) / 255), rtol=1e-5
    )
    # the same split as digits for the same seed (same N)
    ref = load_dataset("digits")
    assert torch.equal(d.y_val, ref.y_val)


def test_npz_nhwc_rgb(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    gray = _as_uint8(images[:300])
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)  # (N, H, W, 3)
    path = tmp_path / "rgb.npz"
    np.savez(path, images=rgb, labels=target[:300])
    d = load_dataset(f"npz:{path}", seed=1)
    assert d.input_shape == (3, 8, 8)
    _check_split(d, 300, 60)
    # channels were moved to NCHW, not mixed up with rows
    x = torch.cat([d.x_train, d.x_val])
    assert torch.allclose(x[:, 2], 1.0 - x[:, 0], atol=1e-6)


def test_npz_float_in_unit_range_is_not_rescaled(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    path = tmp_path / "f.npz"
    np.savez(path, x=(images / 16.0).astype(np.float32), y=target)
    d = load_dataset(f"npz:{path}")
    assert float(torch.cat([d.x_train, d.x_val]).max()) == 1.0


def test_npz_string_labels_are_mapped(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    names = np.array(["cat", "dog", "eel"])[target[:200] % 3]
    path = tmp_path / "s.npz"
    np.savez(path, x=_as_uint8(images[:200]), y=names)
    d = load_dataset(f"npz:{path}")
    assert d.classes == ["cat", "dog", "eel"]
    assert set(torch.cat([d.y_train, d.y_val]).tolist()) == {0, 1, 2}


def _write_folder(root: Path, images: np.ndarray, target: np.ndarray, per_class: int) -> dict:
    written: dict[str, list[np.ndarray]] = {}
    for label in range(10):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        idx = np.flatnonzero(target == label)[:per_class]
        for i in idx:
            img = _as_uint8(images[i])
            Image.fromarray(img, mode="L").save(folder / f"{i:04d}.png")
            written.setdefault(f"class_{label}", []).append(img)
    (root / "class_0" / "notes.txt").write_text("not an image")
    return written


def test_folder(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    written = _write_folder(tmp_path / "data", images, target, per_class=12)
    d = load_dataset(f"folder:{tmp_path / 'data'}")
    assert d.classes == [f"class_{i}" for i in range(10)]
    assert d.input_shape == (1, 8, 8)
    _check_split(d, 120, 24)
    # every loaded image is one of the PNGs of its class, byte for byte
    xs = torch.cat([d.x_train, d.x_val])
    ys = torch.cat([d.y_train, d.y_val])
    for x, y in zip(xs, ys):
        pixels = np.round(x[0].numpy() * 255).astype(np.uint8)
        assert any(np.array_equal(pixels, w) for w in written[d.classes[int(y)]])


def test_folder_rgb_resized(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    root = tmp_path / "rgb"
    for label in (0, 1):
        (root / str(label)).mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(target == label)[:6]):
            g = _as_uint8(images[i])
            img = Image.fromarray(np.stack([g, g, g], -1), mode="RGB")
            if n == 0:
                img = img.resize((16, 16))  # odd one out: resized to the first image's size
            img.save(root / str(label) / f"{i}.png")
    d = load_dataset(f"folder:{root}")
    assert d.input_shape[0] == 3 and d.num_classes == 2
    assert len(d.x_train) + len(d.x_val) == 12


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError) as exc:
        load_dataset(f"npz:{missing}")
    assert str(missing) in str(exc.value) and "does not exist" in str(exc.value)
    assert "--dataset" in str(exc.value)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nodir'}")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "cats" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="holds no images") as exc:
        load_dataset(f"folder:{tmp_path / 'empty'}")
    assert "<class>/<image>" in str(exc.value)
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset(f"folder:{tmp_path / 'flat'}")


def test_npz_without_x_y(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, data=np.zeros((20, 8, 8)), target=np.arange(20) % 2)
    with pytest.raises(
        DatasetError, match=r"needs arrays 'x' and 'y'; it has \['data', 'target'\]"
    ):
        load_dataset(f"npz:{path}")


def test_npz_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "fake.npz"
    path.write_text("hello")
    with pytest.raises(DatasetError, match=r"not a readable \.npz"):
        load_dataset(f"npz:{path}")


def test_npz_bad_shape(tmp_path: Path) -> None:
    path = tmp_path / "flat.npz"
    np.savez(path, x=np.zeros((20, 64)), y=np.arange(20) % 2)
    with pytest.raises(DatasetError, match=r"got shape \(20, 64\)"):
        load_dataset(f"npz:{path}")


def test_too_few_classes_or_images(tmp_path: Path) -> None:
    path = tmp_path / "one.npz"
    np.savez(path, x=np.zeros((20, 8, 8)), y=np.zeros(20))
    with pytest.raises(DatasetError, match=">= 2 classes and >= 10 images, got 1 and 20"):
        load_dataset(f"npz:{path}")
    np.savez(path, x=np.zeros((5, 8, 8)), y=np.arange(5) % 2)
    with pytest.raises(DatasetError, match="got 2 and 5"):
        load_dataset(f"npz:{path}")


@pytest.mark.parametrize(
    ("spec", "hint"),
    [("digit", "'digits'"), ("mnist", "'mnist5k'"), ("npz", None), ("csv:/x", None)],
)
def test_unknown_dataset(spec: str, hint: str | None) -> None:
    with pytest.raises(DatasetError) as exc:
        load_dataset(spec)
    msg = str(exc.value)
    assert f"unknown dataset {spec!r}" in msg
    assert "npz:PATH or folder:PATH" in msg
    if hint:
        assert f"did you mean {hint}" in msg
    assert isinstance(exc.value, ConfigError)


# -- bad data: each is a DatasetError naming the problem ------------------------------------


def test_npz_length_mismatch(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    path = tmp_path / "mismatch.npz"
    np.savez(path, x=_as_uint8(images[:100]), y=target[:50])
    with pytest.raises(DatasetError, match="100"):
        load_dataset(f"npz:{path}")


def test_folder_with_corrupt_image(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    _write_folder(tmp_path / "data", images, target, per_class=2)
    (tmp_path / "data" / "class_3" / "zz-broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"zz-broken\.png"):
        load_dataset(f"folder:{tmp_path / 'data'}")


def test_folder_spec_pointing_at_a_file(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(path)
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        load_dataset(f"folder:{path}")
