"""Datasets: the built-ins, npz and image folders, the seeded split, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import shared_data
from PIL import Image
from sklearn.datasets import load_digits

from edgeauto.data import Dataset, dataset_shape, load_dataset
from edgeauto.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def sk_digits():
    d = load_digits()
    return d.images, d.target  # (1797, 8, 8) floats 0..16, labels 0..9


def _check_split(d: Dataset, n: int, n_val: int, n_test: int | None = None) -> None:
    n_test = n_val if n_test is None else n_test  # the default fractions are equal
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == n
    assert len(d.x_val) == n_val and len(d.x_test) == n_test
    assert len(d.y_train) == len(d.x_train) and len(d.y_val) == len(d.x_val)
    assert len(d.y_test) == len(d.x_test)
    assert d.x_train[:4].dtype == torch.float32 and d.y_train.dtype == torch.int64
    for x in (d.x_train, d.x_val, d.x_test):  # stored as scaled pixels in [0, 1]
        assert float(x.raw.min()) >= 0.0 and float(x.raw.max()) / d.pixel_max <= 1.0
    # normalised with the training split's per-channel statistics: mean 0, std 1 there
    batch = d.x_train[:]
    assert batch.mean().abs() < 1e-3 and abs(float(batch.std()) - 1.0) < 1e-2


def _pixels(x) -> torch.Tensor:
    """Stored pixels scaled to [0, 1] (what the tests below compare with the source)."""
    return x.raw.to(torch.float32) / x.scale


def _all(d: Dataset) -> torch.Tensor:
    return torch.cat([_pixels(d.x_train), _pixels(d.x_val), _pixels(d.x_test)])


def _labels(d: Dataset) -> torch.Tensor:
    return torch.cat([d.y_train, d.y_val, d.y_test])


def test_mnist5k() -> None:
    d = load_dataset("mnist5k")
    assert d.name == "mnist5k"
    assert d.input_shape == (1, 28, 28)
    assert d.num_classes == 10 and d.classes == [str(i) for i in range(10)]
    _check_split(d, 5000, 500)
    assert len(d.x_train) == 4000
    assert float(_pixels(d.x_train).max()) == 1.0  # scaled from 0..255, not left raw
    # real digits: every class is present in every split, each image has ink and background
    assert set(d.y_train.tolist()) == set(range(10)) == set(d.y_val.tolist())
    assert set(d.y_test.tolist()) == set(range(10))
    ink = (_pixels(d.x_val) > 0.5).flatten(1).float().mean(1)
    assert float(ink.min()) > 0.0 and float(ink.max()) < 0.6
    assert dataset_shape("mnist5k") == (d.input_shape, d.num_classes)


def test_digits(sk_digits) -> None:
    images, target = sk_digits
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    _check_split(d, 1797, 180)
    assert float(_pixels(d.x_train).max()) == 1.0  # 16 is white
    # same images, scaled by 1/16: compare sorted per-image sums
    ours = _all(d).flatten(1).sum(1).sort().values.numpy()
    ref = np.sort(images.reshape(len(images), -1).sum(1) / 16.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    assert np.bincount(_labels(d).numpy()).tolist() == np.bincount(target).tolist()
    assert dataset_shape("digits") == ((1, 8, 8), 10)


def test_split_is_deterministic() -> None:
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    assert torch.equal(a.x_train[:], b.x_train[:]) and torch.equal(a.y_val, b.y_val)
    assert torch.equal(a.x_test.raw, b.x_test.raw)
    c = load_dataset("digits", seed=4)
    assert not torch.equal(a.x_val.raw, c.x_val.raw)
    assert not torch.equal(a.y_train, c.y_train)
    # a different split of the same data
    assert len(c.x_val) == len(a.x_val)
    assert float(_all(a).sum()) == pytest.approx(float(_all(c).sum()))


def test_val_fraction() -> None:
    d = load_dataset("digits", val_fraction=0.5)
    assert len(d.x_val) == round(1797 * 0.5)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(DatasetError, match="val_fraction"):
            load_dataset("digits", val_fraction=bad)
    for bad in (-0.1, 0.85, 1.0):  # nothing left to train on, or a negative share
        with pytest.raises(DatasetError, match=r"test_fraction.*--test-fraction"):
            load_dataset("digits", test_fraction=bad)
    assert load_dataset("digits", test_fraction=0.0).x_test is None


def _as_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(images * 255.0 / 16.0), 0, 255).astype(np.uint8)


def test_npz_nhw(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    x = _as_uint8(images)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=target)
    d = load_dataset(f"npz:{path}")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    _check_split(d, 1797, 180)
    assert d.x_train.raw.dtype == torch.uint8  # held as stored: 4x smaller than float
    # pixel values come back as x / 255, exactly
    allx = _all(d).numpy()
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
    _check_split(d, 300, 30)
    # channels were moved to NCHW, not mixed up with rows
    x = _all(d)
    assert torch.allclose(x[:, 2], 1.0 - x[:, 0], atol=1e-6)


def test_npz_float_in_unit_range_is_not_rescaled(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    path = tmp_path / "f.npz"
    np.savez(path, x=(images / 16.0).astype(np.float32), y=target)
    d = load_dataset(f"npz:{path}")
    assert float(_all(d).max()) == 1.0


def test_npz_string_labels_are_mapped(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    names = np.array(["cat", "dog", "eel"])[target[:200] % 3]
    path = tmp_path / "s.npz"
    np.savez(path, x=_as_uint8(images[:200]), y=names)
    d = load_dataset(f"npz:{path}")
    assert d.classes == ["cat", "dog", "eel"]
    assert set(_labels(d).tolist()) == {0, 1, 2}


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
    _check_split(d, 120, 12)
    # every loaded image is one of the PNGs of its class, byte for byte
    xs = torch.cat([d.x_train.raw, d.x_val.raw, d.x_test.raw])
    for x, y in zip(xs, _labels(d)):
        pixels = x[0].numpy()
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
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 12


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


# -- image folders as zips, the decode cache, the held-out test split ---------------------


def _zip_folder(root: Path, zpath: Path, top: str = "train") -> None:
    import zipfile

    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                z.write(f, f"{top}/{f.relative_to(root).as_posix()}")


def test_zip_of_a_folder_is_the_folder(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    _write_folder(tmp_path / "data", images, target, per_class=12)
    _zip_folder(tmp_path / "data", tmp_path / "data.zip")
    a = load_dataset(f"folder:{tmp_path / 'data'}")
    b = load_dataset(f"folder:{tmp_path / 'data.zip'}")  # train/<class>/<image> inside
    assert a.classes == b.classes and torch.equal(_all(a), _all(b))
    assert torch.equal(_labels(a), _labels(b)) and b.x_train.raw.dtype == torch.uint8


def test_decoded_folder_is_cached_by_content(tmp_path: Path, sk_digits) -> None:
    from edgeauto.fileio import cache_dir

    images, target = sk_digits
    _write_folder(tmp_path / "data", images, target, per_class=5)
    spec = f"folder:{tmp_path / 'data'}"
    first = load_dataset(spec)
    cached = sorted((cache_dir() / "datasets").glob("*.npz"))
    assert len(cached) >= 1
    newest = max(cached, key=lambda p: p.stat().st_mtime_ns)
    # the cache answers the second load: poison it, and the poisoned pixels come back
    with np.load(newest, allow_pickle=False) as f:
        x, y, classes = f["x"].copy(), f["y"], f["classes"]
    np.savez(newest, x=np.full_like(x, 7), y=y, classes=classes)
    assert float(load_dataset(spec).x_train.raw.float().mean()) == 7.0
    # --no-cache decodes again; changed content is a new key, decoded afresh
    assert torch.equal(load_dataset(spec, cache=False).x_train.raw, first.x_train.raw)
    img = tmp_path / "data" / "class_0" / "extra.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(img)
    grown = load_dataset(spec)
    assert len(_labels(grown)) == len(_labels(first)) + 1
    assert float(grown.x_train.raw.float().mean()) != 7.0


def test_damaged_cache_is_decoded_again(tmp_path: Path, sk_digits) -> None:
    from edgeauto.fileio import cache_dir

    images, target = sk_digits
    _write_folder(tmp_path / "d2", images, target, per_class=3)
    spec = f"folder:{tmp_path / 'd2'}"
    first = load_dataset(spec)
    for f in (cache_dir() / "datasets").glob("*.npz"):
        f.write_bytes(b"garbage")
    assert torch.equal(load_dataset(spec).x_train.raw, first.x_train.raw)


def test_test_dataset_replaces_the_test_share(tmp_path: Path, sk_digits) -> None:
    images, target = sk_digits
    _write_folder(tmp_path / "train", images[:900], target[:900], per_class=8)
    _write_folder(tmp_path / "test", images[900:], target[900:], per_class=3)
    d = load_dataset(f"folder:{tmp_path / 'train'}", test_dataset=f"folder:{tmp_path / 'test'}")
    assert len(d.x_test) == 30 and len(d.x_train) + len(d.x_val) == 80
    assert set(d.y_test.tolist()) == set(range(10))
    assert d.x_test.mean == d.mean  # read with the training split's statistics
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    (other / "b").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(other / name / "0.png")
    with pytest.raises(DatasetError, match="fix --test-dataset"):
        load_dataset(f"folder:{tmp_path / 'train'}", test_dataset=f"folder:{other}")


def test_folder_with_nested_folders_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "data" / "cats" / "more"
    deep.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(deep / "0.png")
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "data" / "cats" / "1.png")
    with pytest.raises(DatasetError, match="<class>/<image>"):
        load_dataset(f"folder:{tmp_path / 'data'}")


def test_cifar10_zip() -> None:
    d = load_dataset(f"folder:{shared_data() / 'cifar10' / 'cifar10-train.zip'}")
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10
    assert d.classes[:3] == ["airplane", "automobile", "bird"]
    _check_split(d, 50_000, 5_000)
    assert d.x_train.raw.dtype == torch.uint8
    # CIFAR-10's well-known channel means (0.491, 0.482, 0.447), from these re-encoded JPEGs
    assert d.mean == pytest.approx((0.491, 0.482, 0.447), abs=0.005)
    assert np.bincount(d.y_test.numpy()).min() > 400  # every class in the held-out split
