"""Issue 32, the data side: every broken dataset either loads correctly or stops with one sentence
(a DatasetError saying what is wrong and what to do), never with images quietly missing or wrong.
Every dataset here is small and built in tmp_path."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mage_lite import data
from mage_lite.artifacts import DamagedFileError, is_tracked, load_json
from mage_lite.data import DatasetError, load_cifar10, load_image_folder

CLASSES = ("cat", "dog", "emu", "yak")


def _noise_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _folder(root: Path, per_class: int = 2) -> Path:
    """train/<class>/ and test/<class>/ with ``per_class`` noise PNGs each (noise, so archives stay long)."""
    for s, split in enumerate(("train", "test")):
        for k, cls in enumerate(CLASSES):
            (root / split / cls).mkdir(parents=True)
            for j in range(per_class):
                (root / split / cls / f"{j:03d}.png").write_bytes(_noise_png(1000 * s + 100 * k + j))
    return root


def _tar(src: Path, dest: Path, mode: str = "w:gz") -> Path:
    """Like ``tar -C src -c .``: links are stored as links (tarfile.add does not follow them)."""
    with tarfile.open(dest, mode) as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
    return dest


def _zip(src: Path, dest: Path, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", compression) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    return dest


def _load(path: Path, tmp_path: Path, **kwargs):
    return load_image_folder(path, cache_dir=tmp_path / "cache", progress=False, **kwargs)


def _same(a, b) -> bool:
    return a.classes == b.classes and all(
        torch.equal(getattr(a, f), getattr(b, f)) for f in ("train_images", "train_labels", "test_images", "test_labels")
    )


def _refused(load, *fragments: str) -> str:
    """The message of the DatasetError that ``load()`` raises: one line, holding every fragment."""
    with pytest.raises(DatasetError) as e:
        load()
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# --- case 1: a damaged archive is refused whole, never loaded in part --------------------------------


@pytest.mark.parametrize("where", [0.46, 0.96])
def test_damaged_tar_gz_is_refused(tmp_path, where):
    archive = _tar(_folder(tmp_path / "pets", per_class=15), tmp_path / "pets.tar.gz")
    with open(archive, "r+b") as f:  # as in the issue: 8 zero bytes written into the compressed stream
        f.seek(int(archive.stat().st_size * where))
        f.write(b"\0" * 8)
    _refused(lambda: _load(archive, tmp_path), f"{archive} is damaged (", "download or copy it again")


def _member_offsets(archive: Path) -> list[int]:
    with tarfile.open(archive) as tf:
        return [m.offset for m in tf]


def test_plain_tar_with_a_bad_header_is_refused(tmp_path):
    # An uncompressed tar has no CRC: tarfile just stops at a header whose checksum is wrong.
    archive = _tar(_folder(tmp_path / "pets", per_class=15), tmp_path / "pets.tar", "w")
    offsets = _member_offsets(archive)
    bad = offsets[int(len(offsets) * 0.96)]
    with open(archive, "r+b") as f:
        f.seek(bad + 148)  # the header's checksum field
        f.write(b"\0" * 8)
    assert len(_member_offsets(archive)) < len(offsets)  # what used to load, quietly short
    _refused(lambda: _load(archive, tmp_path), "is damaged (its entry", "is unreadable")


def test_truncated_archives_are_refused(tmp_path):
    folder = _folder(tmp_path / "pets", per_class=15)
    plain = _tar(folder, tmp_path / "pets.tar", "w")
    with open(plain, "r+b") as f:  # cut right before a header: tarfile sees a clean end there
        f.truncate(_member_offsets(plain)[40])
    _refused(lambda: _load(plain, tmp_path), "is damaged (it ends early")

    gz = _tar(folder, tmp_path / "pets.tar.gz")
    with open(gz, "r+b") as f:
        f.truncate(gz.stat().st_size * 2 // 3)
    _refused(lambda: _load(gz, tmp_path), "is damaged (")


@pytest.mark.parametrize("member", ["train/dog/001.png", "README.txt"])
def test_damaged_zip_member_is_refused(tmp_path, member):
    folder = _folder(tmp_path / "pets")
    (folder / "README.txt").write_text("not an image, but part of the archive all the same\n" * 20)
    archive = _zip(folder, tmp_path / "pets.zip", zipfile.ZIP_STORED)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with open(archive, "r+b") as f:  # flip bytes inside the member's stored data: only its CRC can tell
        f.seek(info.header_offset + 30 + len(info.filename) + len(info.extra) + 100)
        f.write(b"\xff\x00\xff\x00")
    _refused(lambda: _load(archive, tmp_path), f"{archive} is damaged (", "CRC")


# --- the decoded-data cache keeps its key for a valid archive ---------------------------------------


def test_cache_name_and_source_key_are_unchanged(tmp_path):
    # The formulas written out: existing caches (keyed this way) must stay valid.
    folder = _folder(tmp_path / "pets")
    archive = _tar(folder, tmp_path / "pets.tar.gz").resolve()
    os.utime(archive, ns=(1_700_000_000_000_000_000,) * 2)
    st = archive.stat()
    stamp = f"\0\0{st.st_size}\0{st.st_mtime_ns}"
    key = hashlib.sha256(f"v1\0{archive}\0{32}{stamp}".encode()).hexdigest()[:20]
    assert data._cache_name(archive, None, 32) == f"pets.tar.gz-32px-{key}.pt"
    assert data.source_key(archive) == hashlib.sha256(f"{archive}{stamp}".encode()).hexdigest()
    _load(archive, tmp_path)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"pets.tar.gz-32px-{key}.pt"]

    folder = folder.resolve()
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert data._scan_directory(folder) == names
    stamps = "".join(f"\0{n}\0{(folder / n).stat().st_size}\0{(folder / n).stat().st_mtime_ns}" for n in names)
    key = hashlib.sha256(f"v1\0{folder}\0{16}{stamps}".encode()).hexdigest()[:20]
    assert data._cache_name(folder, names, 16) == f"pets-16px-{key}.pt"


# --- case 2: links count as what they point to, in folders and archives alike ------------------------


def _linked_folder(tmp_path: Path) -> tuple[Path, Path]:
    """(a dataset whose train/emu is a link to a folder elsewhere and whose test/yak/000.png is a link
    to a file, the same dataset with plain copies)."""
    plain = _folder(tmp_path / "plain")
    linked = tmp_path / "linked"
    shutil.copytree(plain, linked)
    shutil.move(linked / "train" / "emu", tmp_path / "elsewhere")
    (linked / "train" / "emu").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    # A relative link inside the dataset, which an archive can hold too.
    (linked / "pool").mkdir()
    shutil.move(linked / "test" / "yak" / "000.png", linked / "pool" / "yak0.png")
    (linked / "test" / "yak" / "000.png").symlink_to("../../pool/yak0.png")
    return linked, plain


def test_linked_class_folder_and_file_load(tmp_path):
    linked, plain = _linked_folder(tmp_path)
    ref = _load(plain, tmp_path)
    ds = _load(linked, tmp_path)
    assert ds.classes == list(CLASSES) and _same(ds, ref)


def test_link_loop_in_a_folder_is_refused(tmp_path):
    folder = _folder(tmp_path / "pets")
    (folder / "train" / "cat" / "again").symlink_to("..", target_is_directory=True)
    _refused(lambda: _load(folder, tmp_path), str(folder / "train" / "cat" / "again"), "a loop of links", "remove that link")


def test_links_in_archives_resolve_like_links_on_disk(tmp_path):
    plain = _folder(tmp_path / "plain")
    inside = tmp_path / "inside"  # links that point inside the dataset: to a folder, to a file, a hard link
    shutil.copytree(plain, inside)
    shutil.move(inside / "train" / "emu", inside / "pool")
    (inside / "train" / "emu").symlink_to("../pool", target_is_directory=True)
    (inside / "extra").mkdir()
    shutil.move(inside / "test" / "yak" / "000.png", inside / "extra" / "yak0.png")
    (inside / "test" / "yak" / "000.png").symlink_to("../../extra/yak0.png")
    (inside / "test" / "dog" / "001.png").unlink()
    os.link(inside / "train" / "dog" / "000.png", inside / "test" / "dog" / "001.png")
    shutil.copy(plain / "train" / "dog" / "000.png", plain / "test" / "dog" / "001.png")
    ref = _load(plain, tmp_path)

    tgz = _tar(inside, tmp_path / "inside.tar.gz")
    with tarfile.open(tgz) as tf:
        kinds = {m.name: m.type for m in tf}
    assert kinds["train/emu"] == tarfile.SYMTYPE and tarfile.LNKTYPE in kinds.values()

    zipped = tmp_path / "inside.zip"  # as `zip -ry` writes links: the target's path, flagged as a link
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in sorted(inside.rglob("*")):
            name = p.relative_to(inside).as_posix()
            if p.is_symlink():
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, os.readlink(p))
            elif p.is_file():
                zf.write(p, name)

    for source in (inside, tgz, zipped):
        assert _same(_load(source, tmp_path), ref), source.name


@pytest.mark.parametrize(
    "target, problem",
    [("/etc/elsewhere/0.png", "to somewhere outside the archive"), ("../nothing/0.png", "which is not in the archive")],
)
def test_unresolvable_links_in_an_archive_are_refused(tmp_path, target, problem):
    archive = tmp_path / "pets.tar.gz"
    _tar(_folder(tmp_path / "pets"), archive)
    with tarfile.open(archive, "r:gz") as src, tarfile.open(tmp_path / "linked.tar.gz", "w:gz") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        link = tarfile.TarInfo("train/cat/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, target
        dst.addfile(link)
    _refused(lambda: _load(tmp_path / "linked.tar.gz", tmp_path), "'train/cat/link.png' in", problem, "tar --dereference")


# --- case 11: a broken link, an unreadable folder -----------------------------------------------------


def test_broken_link_in_a_folder_is_named(tmp_path):
    folder = _folder(tmp_path / "pets")
    (folder / "train" / "dog" / "gone.png").symlink_to(tmp_path / "moved" / "gone.png")
    for load in (lambda: _load(folder, tmp_path), lambda: data.source_key(folder)):
        _refused(load, f"{folder / 'train' / 'dog' / 'gone.png'} is a broken link", "fix or remove the link")


def test_unreadable_folder_is_named(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "pets")
    real_scandir = os.scandir

    def scandir(path):  # what a folder without read permission gives (chmod does not stop root)
        if Path(path) == folder / "test" / "emu":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    _refused(lambda: _load(folder, tmp_path), f"Cannot read {folder / 'test' / 'emu'} (Permission denied)")


# --- case 5: 16-bit images ------------------------------------------------------------------------------


def _png_16bit_rgb(rgb16: np.ndarray) -> bytes:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    folder = _folder(tmp_path / "pets")
    grey8 = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    grey16 = Image.frombytes("I;16", (32, 32), (grey8.astype("<u2") * 257).tobytes())  # 0..255 -> 0..65535
    grey16.save(folder / "train" / "cat" / "grey16.png")
    assert Image.open(folder / "train" / "cat" / "grey16.png").mode == "I;16"
    rgb16 = np.random.default_rng(1).integers(0, 65536, (32, 32, 3)).astype(np.uint16)
    (folder / "train" / "cat" / "rgb16.png").write_bytes(_png_16bit_rgb(rgb16))

    ds = _load(folder, tmp_path)
    grey, rgb = ds.train_images[2].numpy(), ds.train_images[3].numpy()  # after cat/000.png and cat/001.png
    assert abs(grey.mean() - grey8.mean()) < 0.01 and grey.mean() < 140  # not ~254, nearly white
    assert all(np.array_equal(grey[c], grey8) for c in range(3))
    assert np.abs(rgb.astype(int) - (rgb16 / 257).transpose(2, 0, 1)).max() <= 1


def test_32_bit_images_of_unknown_range_are_refused(tmp_path):
    folder = _folder(tmp_path / "pets")
    Image.fromarray(np.full((32, 32), 0.5, dtype=np.float32)).save(folder / "train" / "cat" / "float.tif")
    _refused(lambda: _load(folder, tmp_path), "float.tif", "32-bit floating-point", "save it with 8 or 16 bits")


# --- case 8: the official download cannot happen -------------------------------------------------------

OFFLINE = "pass --dataset PATH/TO/cifar10-jpg.tar.gz (an image-folder archive)"


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_unwritable_data_dir_gets_one_advice(tmp_path, monkeypatch, code):
    def cannot_write(url, dest, md5, progress):  # what open() says in such a folder
        raise OSError(code, os.strerror(code), str(dest.with_suffix(".part")))

    monkeypatch.setattr(data, "_download", cannot_write)
    _refused(
        lambda: load_cifar10(tmp_path / "ro", progress=False),
        f"Cannot write to {tmp_path / 'ro'} ({os.strerror(code)}); set MAGE_LITE_DATA_DIR to a writable folder, or {OFFLINE}",
    )


def test_every_failed_download_names_the_offline_archive(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    _refused(lambda: load_cifar10(tmp_path / "a", progress=False), "no network access", OFFLINE)

    server = tmp_path / "server.tar.gz"
    server.write_bytes(b"not the release")
    monkeypatch.undo()
    monkeypatch.setattr(data, "CIFAR10_URL", server.as_uri())
    _refused(lambda: load_cifar10(tmp_path / "b", progress=False), "md5 mismatch", "was deleted", OFFLINE)

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / data.CIFAR10_ARCHIVE).write_bytes(b"a broken copy")
    _refused(lambda: load_cifar10(tmp_path / "c", progress=False), "md5 mismatch", "delete", OFFLINE)


# --- case 12: the content says what an archive is; files under git are restored, not deleted ------------


def test_archive_format_comes_from_the_content(tmp_path):
    folder = _folder(tmp_path / "pets")
    ref = _load(folder, tmp_path)
    zip_as_tgz = _zip(folder, tmp_path / "zip.tar.gz")
    tgz_as_zip = _tar(folder, tmp_path / "tgz.zip")
    tar_as_tgz = _tar(folder, tmp_path / "plain.tgz", "w")
    xz_no_suffix = _tar(folder, tmp_path / "dataset", "w:xz")
    for archive in (zip_as_tgz, tgz_as_zip, tar_as_tgz, xz_no_suffix):
        assert _same(_load(archive, tmp_path), ref), archive.name

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"<html>404 Not Found</html>" * 30)
    _refused(lambda: _load(garbage, tmp_path), f"{garbage} is damaged (it is neither a zip nor a tar archive)")
    other = tmp_path / "notes.txt"
    other.write_bytes(b"some notes" * 60)
    _refused(lambda: _load(other, tmp_path), "is not a directory, .zip or .tar(.gz) archive")


def _git_repo(root: Path) -> Path:
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_damaged_tracked_files_are_restored_from_git(tmp_path, monkeypatch):
    repo = _git_repo(tmp_path / "repo")
    archive = _tar(_folder(tmp_path / "pets"), repo / "pets.tar.gz")
    manifest = repo / "manifest.json"
    manifest.write_text('{"models": ')
    subprocess.run(["git", "-C", str(repo), "add", "pets.tar.gz", "manifest.json"], check=True)
    untracked = repo / "history.json"
    untracked.write_text("{")
    assert is_tracked(archive) and is_tracked(manifest)
    assert not is_tracked(untracked) and not is_tracked(tmp_path / "pets" / "train") and not is_tracked(tmp_path / "nope")

    with pytest.raises(DamagedFileError, match=rf"restore it with `git checkout -- {manifest}`"):
        load_json(manifest)
    with pytest.raises(DamagedFileError, match="it is damaged: delete it and rerun"):
        load_json(untracked)
    with open(archive, "r+b") as f:
        f.truncate(archive.stat().st_size // 2)
    _refused(lambda: _load(archive, tmp_path), f"{archive} is damaged (", f"restore it with `git checkout -- {archive}`")

    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no git at all: the advice falls back, nothing breaks
    assert not is_tracked(manifest)
