"""Tests for mage_lite.data; every dataset here is tiny and built in tmp_path."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mage_lite import data
from mage_lite.data import DatasetError, ImageDataset, load_cifar10, load_dataset, load_image_folder, make_shapes

# ---------------------------------------------------------------------------
# Official CIFAR-10 format, with a fake archive served over file://
# ---------------------------------------------------------------------------

FAKE_CLASSES = [f"class{i}" for i in range(10)]


def _fake_batch(rng: np.random.Generator, n: int) -> dict:
    # Same structure as the real pickles once loaded with encoding="bytes".
    return {
        b"batch_label": b"fake",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def _make_fake_cifar_archive(path: Path) -> dict[str, dict]:
    """Write a small cifar-10-python.tar.gz; return the batches by name."""
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _fake_batch(rng, 6) for i in range(1, 6)}
    batches["test_batch"] = _fake_batch(rng, 5)
    meta = {b"label_names": [c.encode() for c in FAKE_CLASSES], b"num_vis": 3072}
    with tarfile.open(path, "w:gz") as tf:
        for name, obj in [*batches.items(), ("batches.meta", meta)]:
            blob = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return batches


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A fake official archive behind a file:// URL, with CIFAR10_URL/MD5 pointing at it."""
    server = tmp_path / "server"
    server.mkdir()
    archive = server / "cifar-10-python.tar.gz"
    batches = _make_fake_cifar_archive(archive)
    monkeypatch.setattr(data, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    return batches


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_cifar10_download_and_load(tmp_path, fake_cifar):
    data_dir = tmp_path / "data"
    ds = load_cifar10(data_dir, progress=False)

    assert isinstance(ds, ImageDataset)
    assert ds.train_images.shape == (30, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (5, 3, 32, 32) and ds.test_images.dtype == torch.uint8
    assert ds.train_labels.dtype == torch.int64 and ds.test_labels.dtype == torch.int64
    assert ds.classes == FAKE_CLASSES

    # Images come back stably sorted by class; undo that to compare with the raw batches.
    raw = [fake_cifar[f"data_batch_{i}"] for i in range(1, 6)]
    raw_labels = torch.tensor(sum((b[b"labels"] for b in raw), []))
    raw_data = np.concatenate([b[b"data"] for b in raw])
    order = torch.sort(raw_labels, stable=True).indices
    assert torch.equal(ds.train_labels, raw_labels[order])
    assert torch.all(ds.train_labels[1:] >= ds.train_labels[:-1])

    # A known pixel: channel c, row y, column x sits at c*1024 + y*32 + x of the 3072 bytes.
    i = 7
    src = order[i].item()
    for c, y, x in [(0, 0, 0), (1, 5, 9), (2, 31, 30)]:
        assert ds.train_images[i, c, y, x].item() == raw_data[src, c * 1024 + y * 32 + x]
    assert torch.equal(ds.train_images[i].flatten(), torch.from_numpy(raw_data[src]))

    # The archive is kept, the folder is complete, and no temporary files are left.
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_cifar10_md5_mismatch_leaves_nothing(tmp_path, fake_cifar, monkeypatch):
    monkeypatch.setattr(data, "CIFAR10_MD5", "0" * 32)
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetError, match="md5"):
        load_cifar10(data_dir, progress=False)
    assert list(data_dir.iterdir()) == []


def test_cifar10_existing_files_do_not_touch_network(tmp_path, fake_cifar, monkeypatch):
    data_dir = tmp_path / "data"
    first = load_cifar10(data_dir, progress=False)
    _no_network(monkeypatch)

    again = load_cifar10(data_dir, progress=False)
    assert torch.equal(first.train_images, again.train_images)

    # Only the archive present: verified and extracted offline.
    (data_dir / "cifar-10-batches-py" / "test_batch").unlink()
    again = load_cifar10(data_dir, progress=False)
    assert torch.equal(first.test_images, again.test_images)
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]


def test_cifar10_damaged_local_archive(tmp_path, fake_cifar, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "cifar-10-python.tar.gz").write_bytes(b"truncated")
    _no_network(monkeypatch)
    with pytest.raises(DatasetError, match="md5 mismatch.*delete"):
        load_cifar10(data_dir, progress=False)
    assert not (data_dir / "cifar-10-batches-py").exists()


def test_cifar10_no_network(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetError, match="no network") as info:
        load_cifar10(data_dir, progress=False)
    assert str(data_dir) in str(info.value)
    assert list(data_dir.iterdir()) == []


def test_download_unreachable_url(tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DatasetError, match="no network"):
        data._download((tmp_path / "missing.bin").as_uri(), dest, "0" * 32, progress=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------


def _pattern(seed: int, size: tuple[int, int] = (32, 32)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _make_image_folder(root: Path, test_split: str = "test") -> None:
    """3 classes, 3 train + 2 test PNGs each, plus junk files that must be ignored."""
    for split, count in [("train", 3), (test_split, 2)]:
        for k, cls in enumerate(["cat", "dog", "emu"]):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for j in range(count):
                _pattern(100 * k + 10 * j + (split == "train")).save(folder / f"{j:03d}.png")
            (folder / ".DS_Store").write_bytes(b"\0junk")
            (folder / "README").write_text("not an image")
    # A non-square image larger than 32: only its green center square may survive.
    big = Image.new("RGB", (96, 64), (255, 0, 0))
    big.paste((0, 200, 0), (16, 0, 80, 64))
    big.save(root / "train" / "emu" / "999.PNG")  # PNG: JPEG chroma would bleed red over the crop edge


def _tar(src: Path, dest: Path, top: str | None) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=(f"{top}/" if top else "") + p.relative_to(src).as_posix(), recursive=False)
    return dest


def _zip(src: Path, dest: Path, top: str | None) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, (f"{top}/" if top else "") + p.relative_to(src).as_posix())
    return dest


def _load(path: Path, cache: Path, **kwargs) -> ImageDataset:
    return load_image_folder(path, cache_dir=cache, progress=False, **kwargs)


def test_image_folder_dir_zip_tar_identical(tmp_path):
    root = tmp_path / "mini"
    _make_image_folder(root)
    cache = tmp_path / "cache"
    ref = _load(root, cache)

    assert ref.classes == ["cat", "dog", "emu"]
    assert ref.train_images.shape == (10, 3, 32, 32) and ref.train_images.dtype == torch.uint8
    assert ref.test_images.shape == (6, 3, 32, 32)
    assert ref.train_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert ref.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert ref.train_labels.dtype == torch.int64
    # Files are sorted within a class: dog/001.png is the 5th train image.
    expected = torch.from_numpy(np.array(_pattern(100 + 10 + 1))).permute(2, 0, 1)
    assert torch.equal(ref.train_images[4], expected)

    archives = [
        _zip(root, tmp_path / "top.zip", top=None),
        _zip(root, tmp_path / "nested.zip", top="mini"),
        _tar(root, tmp_path / "nested.tar.gz", top="mini"),
        _tar(root, tmp_path / "top.tgz", top=None),
    ]
    for archive in archives:
        ds = _load(archive, cache)
        for field in ["train_images", "train_labels", "test_images", "test_labels"]:
            assert torch.equal(getattr(ds, field), getattr(ref, field)), (archive.name, field)
        assert ds.classes == ref.classes


def test_image_folder_center_crop_and_resize(tmp_path):
    root = tmp_path / "mini"
    _make_image_folder(root)
    # 40x32: one crop, no resize; the 4 columns either side are red.
    wide = Image.new("RGB", (40, 32), (255, 0, 0))
    wide.paste((0, 0, 255), (4, 0, 36, 32))
    wide.save(root / "test" / "cat" / "zzz.png")
    ds = _load(root, tmp_path / "cache")

    blue = ds.test_images[2]  # after cat/000.png and cat/001.png
    assert torch.equal(blue, torch.tensor([0, 0, 255], dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32))
    green = ds.train_images[9]  # emu/999.PNG: 96x64 -> 64x64 center -> 32x32
    assert torch.equal(green, torch.tensor([0, 200, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32))


def test_image_folder_val_split_accepted(tmp_path):
    root = tmp_path / "mini"
    _make_image_folder(root, test_split="val")
    ds = _load(_tar(root, tmp_path / "val.tar.gz", top="mini"), tmp_path / "cache")
    assert ds.test_images.shape == (6, 3, 32, 32)
    assert ds.test_labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_image_folder_corrupt_image_named(tmp_path):
    root = tmp_path / "mini"
    _make_image_folder(root)
    (root / "train" / "dog" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DatasetError, match=r"bad\.jpg.*remove or replace"):
        _load(root, tmp_path / "cache")
    archive = _tar(root, tmp_path / "mini.tar.gz", top="mini")
    with pytest.raises(DatasetError, match=r"mini/train/dog/bad\.jpg"):
        _load(archive, tmp_path / "cache")


def test_image_folder_wrong_layout(tmp_path):
    root = tmp_path / "flat"
    for cls in ["cat", "dog"]:
        (root / cls).mkdir(parents=True)
        _pattern(0).save(root / cls / "0.png")
    with pytest.raises(DatasetError, match=r"train/<class>/\*\.jpg and test/<class>/\*\.jpg") as info:
        _load(root, tmp_path / "cache")
    assert str(root) in str(info.value)

    (root / "train" / "cat").mkdir(parents=True)  # train/ but neither test/ nor val/
    _pattern(1).save(root / "train" / "cat" / "0.png")
    with pytest.raises(DatasetError, match="expected image-folder layout"):
        _load(root, tmp_path / "cache")


def test_image_folder_test_classes_must_be_train_classes(tmp_path):
    root = tmp_path / "mini"
    _make_image_folder(root)
    (root / "test" / "yak").mkdir()
    _pattern(5).save(root / "test" / "yak" / "0.png")
    with pytest.raises(DatasetError, match="yak"):
        _load(root, tmp_path / "cache")


def test_nonexistent_path(tmp_path):
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(DatasetError, match="'shapes', 'cifar10'"):
        load_dataset(str(missing), data_dir=tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_image_folder(missing, cache_dir=tmp_path, progress=False)


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------


def _write_noise_archive(path: Path, n: int, seed: int) -> None:
    """n 64x48 JPEGs in 4 classes, so decoding has real work to do."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tf:
        for i in range(n):
            split = "train" if i % 5 else "test"
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
            info = tarfile.TarInfo(f"noise/{split}/c{i % 4}/{i:04d}.jpg")
            info.size = buf.tell()
            buf.seek(0)
            tf.addfile(info, buf)


def test_cache_is_read_without_decoding_and_invalidated(tmp_path, monkeypatch):
    src = tmp_path / "readonly"
    src.mkdir()
    archive = src / "noise.tar.gz"
    _write_noise_archive(archive, 200, seed=0)
    cache = tmp_path / "cache"

    first = _load(archive, cache)
    decoded = []
    real_decode = data._decode_image
    monkeypatch.setattr(data, "_decode_image", lambda *a: decoded.append(1) or real_decode(*a))
    again = _load(archive, cache)
    assert torch.equal(first.train_images, again.train_images)
    assert decoded == []  # the second load read the cache: not one image decoded

    # Nothing was written next to the source; exactly one cache file exists.
    assert [p.name for p in src.iterdir()] == ["noise.tar.gz"]
    assert len(list(cache.glob("*.pt"))) == 1

    # A changed archive has a new key and is decoded again.
    _write_noise_archive(archive, 200, seed=1)
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # even on coarse-mtime filesystems
    changed = _load(archive, cache)
    assert not torch.equal(changed.train_images, first.train_images)
    assert len(decoded) == 200  # every image of the changed archive, once
    assert len(list(cache.glob("*.pt"))) == 2

    # A different image size is a different cache entry too.
    assert _load(archive, cache, image_size=16).train_images.shape == (160, 3, 16, 16)


def test_damaged_cache_is_ignored(tmp_path):
    root = tmp_path / "mini"
    _make_image_folder(root)
    cache = tmp_path / "cache"
    ref = _load(root, cache)
    (cache_file,) = cache.glob("*.pt")
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = _load(root, cache)
    assert torch.equal(again.train_images, ref.train_images)


# ---------------------------------------------------------------------------
# Synthetic shapes and dispatch
# ---------------------------------------------------------------------------


def test_shapes_deterministic_and_balanced():
    a = make_shapes(n_train=400, n_test=100, seed=3)
    b = make_shapes(n_train=400, n_test=100, seed=3)
    for field in ["train_images", "train_labels", "test_images", "test_labels"]:
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert a.train_images.shape == (400, 3, 32, 32) and a.train_images.dtype == torch.uint8
    assert a.test_images.shape == (100, 3, 32, 32)
    assert a.train_labels.dtype == torch.int64
    assert len(a.classes) == 10 and len(set(a.classes)) == 10
    assert torch.bincount(a.train_labels, minlength=10).tolist() == [40] * 10
    assert torch.bincount(a.test_labels, minlength=10).tolist() == [10] * 10
    assert a.source == "synthetic shapes (seed 3)"

    # Train and test are different draws, and so is another seed.
    assert not torch.equal(a.train_images[:100], a.test_images)
    assert not torch.equal(make_shapes(n_train=400, n_test=100, seed=4).train_images, a.train_images)
    # Not blank: images use a wide range of values.
    assert a.train_images.float().std() > 40


def test_load_dataset_dispatch(tmp_path, monkeypatch):
    ds = load_dataset("shapes", image_size=16, progress=False)
    assert ds.train_images.shape[1:] == (3, 16, 16)

    root = tmp_path / "mini"
    _make_image_folder(root)
    ds = load_dataset(str(root), image_size=8, data_dir=tmp_path / "d", progress=False)
    assert ds.train_images.shape == (10, 3, 8, 8)
    assert len(list((tmp_path / "d" / "cache").glob("*.pt"))) == 1


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MAGE_LITE_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    monkeypatch.delenv("MAGE_LITE_DATA_DIR")
    assert data.default_data_dir() == Path(data.__file__).resolve().parents[1] / "data"


def test_identity_is_the_images_not_their_path():
    # Reuse keys (and the initial weights seeded from them) use it: a clone elsewhere trains the same models.
    a = make_shapes(60, 20, seed=0)
    moved = dataclasses.replace(a, source="image folder /elsewhere/cifar10-jpg.tar.gz")
    assert moved.identity == a.identity
    other = a.train_images.clone()
    other[0, 0, 0, 0] ^= 1
    assert dataclasses.replace(a, train_images=other).identity != a.identity
    assert "60 train / 20 test images" in a.identity


def test_source_key_follows_the_files(tmp_path):
    from mage_lite.data import source_key

    folder = tmp_path / "folder"
    for split, cls in (("train", "a"), ("train", "b"), ("test", "a")):
        (folder / split / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / split / cls / "0.png")
    key = source_key(folder)
    assert source_key(folder) == key == source_key(str(folder))
    image = folder / "train" / "a" / "0.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = source_key(folder)
    assert touched != key
    Image.new("RGB", (8, 8)).save(folder / "train" / "b" / "1.png")
    assert source_key(folder) not in (key, touched)
    (folder / "notes.txt").write_text("not an image: the dataset does not read it")
    added_text = source_key(folder)
    Image.new("RGB", (8, 8)).save(folder / "test" / "a" / "1.png")
    assert source_key(folder) != added_text
