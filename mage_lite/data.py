"""Datasets for mage-lite: official CIFAR-10, image-folder archives and synthetic shapes.

Every loader returns an :class:`ImageDataset` holding whole splits as uint8 tensors
of shape (N, 3, H, W); images are ordered by class, so callers must draw random
subsets themselves rather than take "the first N".

- ``load_cifar10``: the official python release, downloaded once (md5-checked) into
  the data dir and read from its pickled batches.
- ``load_image_folder``: ``train/<class>/*`` + ``test/<class>/*`` (or ``val/``) as a
  directory, .zip or .tar(.gz); decoded once with Pillow, then cached as a .pt file.
- ``make_shapes``: a small, deterministic, download-free synthetic dataset.
"""

from __future__ import annotations

import bisect
import errno
import functools
import gzip
import hashlib
import io
import lzma
import os
import pickle
import posixpath
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import uuid
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .artifacts import is_tracked

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DatasetError",
    "ImageDataset",
    "SHAPE_CLASSES",
    "default_data_dir",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "make_shapes",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
IMAGE_FOLDER_LAYOUT = "train/<class>/*.jpg and test/<class>/*.jpg (or val/)"
# Every error that stops the official download ends with this way round it.
OFFLINE_ALTERNATIVE = "pass --dataset PATH/TO/cifar10-jpg.tar.gz (an image-folder archive) to train without downloading"
# Errors that mean "this process may not write here", whatever the cause (permissions, read-only mount).
NOT_WRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# Links are followed at most this deep (Linux's own limit), so a cycle of links ends in an error.
MAX_LINK_DEPTH = 40

# Bump whenever decoding changes, so that stale caches are never reused.
CACHE_FORMAT_VERSION = 1

SHAPE_CLASSES = [
    "circle",
    "square",
    "triangle",
    "ring",
    "cross",
    "horizontal_bar",
    "vertical_bar",
    "diamond",
    "ellipse",
    "two_dots",
]


class DatasetError(Exception):
    """A dataset could not be found, downloaded or read.

    The message is one user-facing sentence: what is wrong and what to do about it.
    """


@dataclass
class ImageDataset:
    """Both splits of an image-classification dataset, held in memory.

    Attributes:
        train_images: (N, 3, H, W) uint8.
        train_labels: (N,) int64, indices into ``classes``.
        test_images: (M, 3, H, W) uint8.
        test_labels: (M,) int64.
        classes: class names; ``classes[k]`` is the name of label k.
        source: human-readable description of where the data came from.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    source: str

    @functools.cached_property
    def identity(self) -> str:
        """What the images are, not where they were read from: the split sizes and a digest of every
        pixel and label. Reuse keys use it, and through them the seeded initial weights, so a clone
        in another folder trains exactly the models this one does."""
        digest = hashlib.blake2b(digest_size=8)
        for t in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(t.contiguous().numpy().tobytes())
        return f"{len(self.train_images)} train / {len(self.test_images)} test images, {len(self.classes)} classes, {digest.hexdigest()}"


def default_data_dir() -> Path:
    """Where downloads and caches go: ``$MAGE_LITE_DATA_DIR`` if set, else ``<repo>/data``."""
    env = os.environ.get("MAGE_LITE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "data"


def load_dataset(
    name_or_path: str,
    image_size: int = 32,
    data_dir: Path | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Load a dataset by name ("shapes", "cifar10") or from an image-folder path.

    Anything other than the two names is a path to a directory, .zip, .tar or
    .tar.gz/.tgz laid out as ``train/<class>/*`` and ``test/<class>/*`` (or ``val/``).
    Caches of decoded image folders go to ``<data_dir>/cache``.
    """
    name = str(name_or_path)
    if name.lower() == "shapes":
        return make_shapes(image_size=image_size)
    if name.lower() == "cifar10":
        if image_size != 32:
            raise DatasetError(
                f"The official cifar10 release is 32x32 but image_size={image_size} was asked for; "
                "use image_size=32, or pass a path to an image-folder copy to have it resized."
            )
        return load_cifar10(data_dir, progress=progress)
    path = Path(name).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Dataset {name!r} is neither a known name nor an existing path; use 'shapes', 'cifar10', "
            f"or a path to an image-folder dataset (directory, .zip, .tar or .tar.gz with {IMAGE_FOLDER_LAYOUT})."
        )
    cache_dir = Path(data_dir) / "cache" if data_dir is not None else None
    return load_image_folder(path, image_size=image_size, cache_dir=cache_dir, progress=progress)


# ---------------------------------------------------------------------------
# Official CIFAR-10 (python pickles)
# ---------------------------------------------------------------------------


def load_cifar10(data_dir: Path | None = None, progress: bool = True) -> ImageDataset:
    """Load the official CIFAR-10 python release, downloading it into ``data_dir`` if needed.

    Reuses an extracted ``cifar-10-batches-py`` folder without touching the network;
    otherwise md5-checks (downloading first if absent) ``cifar-10-python.tar.gz`` and
    extracts it. Images are returned stably sorted by class.

    Returns:
        ImageDataset with train (50000, 3, 32, 32) and test (10000, 3, 32, 32) uint8.
    """
    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = data_dir / CIFAR10_FOLDER
    if not all((folder / f).is_file() for f in CIFAR10_FILES):
        archive = data_dir / CIFAR10_ARCHIVE
        # Read the module globals at call time so tests can point them at a fake archive.
        url, md5 = CIFAR10_URL, CIFAR10_MD5
        try:
            if archive.is_file():
                got = _md5sum(archive)
                if got != md5:
                    raise DatasetError(
                        f"{archive} has an md5 mismatch (got {got}, expected {md5}); "
                        f"{_restore_or(archive, f'delete {archive} and run again')}, "
                        f"or download it by hand from {url} into {data_dir}."
                    )
            else:
                _download(url, archive, md5, progress)
            _extract_cifar10(archive, data_dir)
        except DatasetError as exc:
            raise DatasetError(_with_offline_alternative(str(exc))) from exc.__cause__
        except OSError as exc:
            # EACCES, EPERM and EROFS all mean the same to the user: this folder cannot be written.
            if exc.errno in NOT_WRITABLE_ERRNOS:
                raise DatasetError(
                    f"Cannot write to {data_dir} ({exc.strerror}); set MAGE_LITE_DATA_DIR to a writable folder, "
                    f"or {OFFLINE_ALTERNATIVE}."
                ) from None
            if exc.errno == errno.ENOSPC:
                raise DatasetError(
                    f"There is no space left in {data_dir} for the CIFAR-10 download (about 340 MB with its extracted "
                    f"copy); free some, set MAGE_LITE_DATA_DIR to a folder with room, or {OFFLINE_ALTERNATIVE}."
                ) from None
            raise
    return _read_cifar10_folder(folder)


def _with_offline_alternative(message: str) -> str:
    """``message`` (one sentence) extended by the way round the download: the offline image-folder archive."""
    if OFFLINE_ALTERNATIVE in message:
        return message
    return f"{message.rstrip('.')}; or else {OFFLINE_ALTERNATIVE}."


def _restore_or(path: Path, otherwise: str) -> str:
    """Advice for a damaged ``path``: a file git tracks is the user's to restore, anything else ``otherwise``."""
    return f"restore it with `git checkout -- {path}`" if is_tracked(path) else otherwise


def _download(url: str, dest: Path, md5: str, progress: bool) -> None:
    """Download ``url`` to ``dest`` so that ``dest`` only ever appears complete and verified.

    Streams into a temporary file in the same directory, checks its md5, then renames
    it into place; the temporary file is removed on any failure.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    manual = f"download it by hand from {url} into {dest.parent}"
    tmp = _temp_sibling(dest, ".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with open(tmp, "xb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError) as exc:
                raise DatasetError(
                    f"Could not download {url} ({_reason(exc)}), probably because there is no network access; "
                    f"{manual} (as {dest.name}) and run again."
                ) from exc
            with response, tqdm(
                total=int(response.headers.get("Content-Length") or 0) or None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"downloading {dest.name}",
                disable=not progress,
            ) as bar:
                while True:
                    try:
                        chunk = response.read(1 << 20)
                    except OSError as exc:
                        raise DatasetError(
                            f"The download of {url} broke off ({_reason(exc)}); check the network and run again, "
                            f"or {manual}."
                        ) from exc
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DatasetError(
                f"The file downloaded from {url} has an md5 mismatch (got {digest.hexdigest()}, expected {md5}) "
                f"and was deleted; run again, or {manual}."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _temp_sibling(path: Path, suffix: str) -> Path:
    """A unique hidden name next to ``path``, so that os.replace onto ``path`` is atomic.

    (tempfile.mkstemp would work too, but its 0600 mode would make shared caches unreadable.)
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc)


def _md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_cifar10(archive: Path, data_dir: Path) -> None:
    """Extract the batch files into ``data_dir/cifar-10-batches-py`` all-or-nothing.

    Only the known member names are read (no path from the archive touches the disk),
    into a temporary folder that is renamed into place once every file is written.
    """
    folder = data_dir / CIFAR10_FOLDER
    tmp = _temp_sibling(folder, ".part")
    tmp.mkdir()
    try:
        try:
            with tarfile.open(archive, "r:*") as tf:
                for name in CIFAR10_FILES:
                    member = tf.extractfile(f"{CIFAR10_FOLDER}/{name}")
                    if member is None:
                        raise KeyError(name)
                    with member, open(tmp / name, "wb") as out:
                        shutil.copyfileobj(member, out)
        # Only errors of the archive itself: one writing the folder (read-only, full disk) is the caller's to explain.
        except (tarfile.TarError, KeyError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DatasetError(
                f"Could not extract {CIFAR10_FOLDER}/ from {archive} ({exc!r}); "
                f"{_restore_or(archive, f'delete {archive} and run again')}, "
                f"or download it by hand from {CIFAR10_URL} into {data_dir}."
            ) from exc
        if folder.exists():
            # An incomplete folder (we only get here if files are missing) would block the rename.
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_cifar10_folder(folder: Path) -> ImageDataset:
    """Read the pickled batches: b"data" is (N, 3072) uint8 = 3 x 32 x 32 row-major."""

    def unpickle(name: str) -> dict:
        path = folder / name
        try:
            with open(path, "rb") as f:
                return pickle.load(f, encoding="bytes")
        except Exception as exc:  # any unpickling failure means the file is damaged
            raise DatasetError(
                f"Could not read {path} ({exc!r}); delete the folder {folder} and run again to re-extract it."
            ) from exc

    def split(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batches = [unpickle(n) for n in names]
        data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[b"labels"], dtype=np.int64) for b in batches])
        images = torch.from_numpy(data.reshape(-1, 3, 32, 32))
        labels = torch.from_numpy(labels)
        # The official batches are shuffled; order by class like the other loaders.
        order = torch.sort(labels, stable=True).indices
        return images[order].contiguous(), labels[order].contiguous()

    train_images, train_labels = split([f"data_batch_{i}" for i in range(1, 6)])
    test_images, test_labels = split(["test_batch"])
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in unpickle("batches.meta")[b"label_names"]]
    return ImageDataset(
        train_images, train_labels, test_images, test_labels, classes,
        source=f"official CIFAR-10 python release ({folder})",
    )


# ---------------------------------------------------------------------------
# Image folders: directory, .zip, .tar(.gz)
# ---------------------------------------------------------------------------


def load_image_folder(
    path: Path,
    image_size: int = 32,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Load ``train/<class>/*`` and ``test/<class>/*`` (or ``val/``) images.

    ``path`` is a directory, .zip or .tar/.tar.gz/.tgz (told by its content, not its
    name); inside it the layout may sit at the top or inside one top-level folder.
    Archives are read in place, never extracted, and checked whole (CRCs, end of
    archive): a damaged one is refused, never loaded in part. Links count as what they
    point to, in a folder and in an archive alike. Images are decoded to RGB (16-bit
    greyscale scaled to 8 bits), center-cropped to a square and resized (bicubic) to
    ``image_size``. The decoded tensors are cached in ``cache_dir`` (default
    ``default_data_dir()/cache``) under a key that changes whenever the source files change.

    Returns:
        ImageDataset with (N, 3, image_size, image_size) uint8 images, ordered by class
        and then by file name; classes are the sorted train folder names.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Image-folder dataset {path} does not exist; pass a directory, .zip or .tar.gz "
            f"containing {IMAGE_FOLDER_LAYOUT}."
        )
    path = path.resolve()
    kind = _source_kind(path)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_data_dir() / "cache"
    dir_names = _scan_directory(path) if kind == "dir" else None
    cache_file = cache_dir / _cache_name(path, dir_names, image_size)
    source = f"image folder {path}"

    cached = _load_cache(cache_file)
    if cached is not None:
        return ImageDataset(**cached, source=source)

    names, read = _read_source(path, kind, dir_names, progress)
    prefix, test_split = _resolve_layout(names, path)
    train, classes = _collect_split(names, prefix, "train", None, path)
    if len(classes) < 2:
        raise DatasetError(
            f"{path} has one class folder in train/ ({classes[0]}), but a classification dataset needs at least "
            "two; add a folder per class."
        )
    test, _ = _collect_split(names, prefix, test_split, classes, path)
    train_images = _decode_all([n for n, _ in train], read, image_size, path, progress, "train")
    test_images = _decode_all([n for n, _ in test], read, image_size, path, progress, test_split)

    tensors = {
        "train_images": train_images,
        "train_labels": torch.tensor([label for _, label in train], dtype=torch.int64),
        "test_images": test_images,
        "test_labels": torch.tensor([label for _, label in test], dtype=torch.int64),
        "classes": classes,
    }
    _save_cache(cache_file, tensors)
    return ImageDataset(**tensors, source=source)


# The first bytes of each compression a tar comes in, and the tarfile mode that reads it.
TAR_COMPRESSIONS = ((b"\x1f\x8b", "r:gz"), (b"BZh", "r:bz2"), (b"\xfd7zXZ\x00", "r:xz"))
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _source_kind(path: Path) -> str:
    """'dir', 'zip', or the tarfile mode that reads a tar ('r:gz', 'r:bz2', 'r:xz', 'r:').

    The content decides, not the suffix: a zip saved as data.tar.gz is the zip it is. A
    file whose name says archive but whose content is none is damaged.
    """
    if path.is_dir():
        return "dir"
    kind = _archive_format(path)
    if kind is not None:
        return kind
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise DatasetError(_damaged(path, "it is neither a zip nor a tar archive"))
    raise DatasetError(
        f"{path} is not a directory, .zip or .tar(.gz) archive; pass an image-folder dataset "
        f"containing {IMAGE_FOLDER_LAYOUT}."
    )


def _archive_format(path: Path) -> str | None:
    """'zip', a tarfile mode for a tar, or None, from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(tarfile.BLOCKSIZE)
    except OSError as exc:
        raise DatasetError(f"Cannot read {path} ({exc.strerror or exc}); make it readable and rerun.") from None
    for magic, mode in TAR_COMPRESSIONS:
        if head.startswith(magic):
            return mode  # that a tar is inside is checked as it is read
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[257:262] == b"ustar":  # the magic of POSIX and GNU tar headers
        return "r:"
    # Rarer forms: a zip behind a preamble (self-extracting), a tar from before POSIX.
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "r:"
    return None


def _damaged(path: Path, reason: str) -> str:
    """The one sentence for an archive that cannot be read whole."""
    return f"{path} is damaged ({reason}); {_restore_or(path, 'download or copy it again, or re-create it, and rerun')}."


def _short_reason(exc: BaseException) -> str:
    """An exception's message on one short line (tarfile's can span several)."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


def _is_hidden(name: str) -> bool:
    """Hidden files and folders (.DS_Store, macOS '._x.jpg') and __MACOSX/ are junk, never data."""
    return any(p.startswith(".") or p == "__MACOSX" for p in name.split("/"))


def _is_image_name(name: str) -> bool:
    """Image files by extension, junk (see :func:`_is_hidden`) excluded."""
    return not _is_hidden(name) and os.path.splitext(name.rsplit("/", 1)[-1])[1].lower() in IMAGE_EXTENSIONS


def _member_name(name: str) -> str:
    """An archive member's path without leading './' (``tar czf x.tar.gz -C folder .`` writes them)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _scan_directory(root: Path) -> list[str]:
    """Relative posix paths of the image files under ``root``, sorted.

    Links are followed, to files and to folders alike (``train/bird -> /elsewhere/bird``
    is a class like any other), as links inside an archive are resolved. A broken link,
    a link back to a folder that contains it, or a folder that cannot be listed is an
    error: skipping it would quietly drop images.
    """
    names: list[str] = []

    def visit(folder: Path, rel: str, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            entries = list(os.scandir(folder))
            for entry in entries:
                if entry.name.startswith("."):  # hidden: .DS_Store, ._x.jpg, .git/
                    continue
                child = rel + entry.name
                if entry.is_dir():  # follows links
                    real = entry.stat()
                    if (real.st_dev, real.st_ino) in ancestors:
                        raise DatasetError(
                            f"{entry.path} leads back to {os.path.realpath(entry.path)}, a folder that contains it "
                            "(a loop of links); remove that link and rerun."
                        )
                    visit(Path(entry.path), child + "/", ancestors | {(real.st_dev, real.st_ino)})
                elif entry.is_file():
                    if _is_image_name(child):
                        names.append(child)
                elif entry.is_symlink() and not os.path.exists(entry.path):
                    raise DatasetError(
                        f"{entry.path} is a broken link (it points to {os.readlink(entry.path)}, which does not exist); "
                        "fix or remove the link and rerun."
                    )
        except OSError as exc:
            raise DatasetError(
                f"Cannot read {exc.filename or folder} ({exc.strerror or exc}); make it readable (or remove it) and rerun."
            ) from None

    top = root.stat()
    visit(root, "", frozenset({(top.st_dev, top.st_ino)}))
    return sorted(names)


def _read_source(
    path: Path, kind: str, dir_names: list[str] | None, progress: bool
) -> tuple[list[str], Callable[[str], bytes]]:
    """(image names, read(name) -> bytes) for a directory or archive.

    An archive is read whole and checked here, before its names are used: a damaged one
    must be reported as damaged, not as a dataset with images or classes missing.
    """
    if kind == "dir":
        return dir_names, functools.partial(_read_file, path)
    try:
        images = _read_zip(path, progress) if kind == "zip" else _read_tar(path, kind, progress)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        # OSError covers gzip's bad CRC or length (BadGzipFile) and bz2's damaged stream.
        raise DatasetError(_damaged(path, _short_reason(exc))) from exc
    return list(images), images.__getitem__


def _read_file(root: Path, name: str) -> bytes:
    try:
        return (root / name).read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {root / name} ({exc.strerror or exc}); make it readable or remove it, and rerun."
        ) from None


def _read_tar(path: Path, mode: str, progress: bool) -> dict[str, bytes]:
    """The bytes of every image in a tar, links resolved, after checking the archive is whole.

    A compressed tar can only be read front to back, so all image bytes are taken in one pass.
    """
    images: dict[str, bytes] = {}
    members: set[str] = set()  # every file and folder, images or not: what a link may point to
    links: dict[str, str | None] = {}
    with tarfile.open(path, mode) as tf, tqdm(desc=f"reading {path.name}", unit=" files", disable=not progress) as bar:
        for member in tf:
            name = _member_name(member.name).rstrip("/")
            if member.issym() or member.islnk():
                if not _is_hidden(name):
                    links[name] = _link_target(name, member.linkname, symbolic=member.issym())
                continue
            members.add(name)
            if member.isfile() and _is_image_name(name):
                images[name] = tf.extractfile(member).read()
                bar.update()
        _check_tar_end(tf)
    return _resolve_links(images, members, links, path)


def _check_tar_end(tf: tarfile.TarFile) -> None:
    """Raise tarfile.ReadError unless ``tf`` (read to its last member) ended where the archive ends.

    tarfile stops without a word at a damaged or missing header, as if the archive ended
    there. So the block it stopped at must have been read whole, and all that follows it
    must be the zero padding of a real end. Reading to the end also makes gzip, bz2 and xz
    check their CRC and length, which catches damage inside the members' data too.
    """
    stream, stopped_at = tf.fileobj, tf.offset
    position = stream.tell()
    if position < stopped_at + tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"it ends early, {position} bytes into the unpacked archive, in the middle of an entry")
    only_zeros = True
    while chunk := stream.read(1 << 20):  # read on even after stray bytes: a CRC error says more
        only_zeros = only_zeros and chunk.count(0) == len(chunk)
    if not only_zeros:
        raise tarfile.ReadError(
            f"its entry {stopped_at} bytes into the unpacked archive is unreadable, and so is everything after it"
        )


def _read_zip(path: Path, progress: bool) -> dict[str, bytes]:
    """The bytes of every image in a zip, links resolved.

    Every member is read, images or not, so that zipfile checks each one's CRC and a
    damaged archive is refused whole rather than loaded in part.
    """
    images: dict[str, bytes] = {}
    members: set[str] = set()
    links: dict[str, str | None] = {}
    with zipfile.ZipFile(path) as zf, tqdm(desc=f"reading {path.name}", unit=" files", disable=not progress) as bar:
        for info in zf.infolist():
            name = _member_name(info.filename).rstrip("/")
            if stat.S_ISLNK(info.external_attr >> 16):  # zip -y stores a link as its target's path
                if not _is_hidden(name):
                    links[name] = _link_target(name, zf.read(info).decode("utf-8", "replace"), symbolic=True)
                continue
            members.add(name)
            if info.is_dir():
                continue
            if _is_image_name(name):
                images[name] = zf.read(info)  # zipfile checks the CRC as it reads
                bar.update()
            else:
                with zf.open(info) as member:  # only for its CRC: read in pieces, however big it is
                    while member.read(1 << 20):
                        pass
    return _resolve_links(images, members, links, path)


def _link_target(name: str, linkname: str, symbolic: bool) -> str | None:
    """The archive path that the link member ``name`` points to; None if that is outside the archive."""
    if symbolic:  # relative to the link's own folder, like a link on disk
        if linkname.startswith("/"):
            return None
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), linkname))
    else:  # a tar hard link names an earlier member by its path in the archive
        target = posixpath.normpath(_member_name(linkname))
    return None if target in (".", "..") or target.startswith("../") else target


def _names_under(sorted_names: list[str], folder: str) -> list[str]:
    """The names in ``sorted_names`` inside ``folder``: a slice, as '0' sorts right after '/'."""
    start = bisect.bisect_left(sorted_names, folder + "/")
    return sorted_names[start:bisect.bisect_left(sorted_names, folder + "0", start)]


def _resolve_links(
    images: dict[str, bytes], members: set[str], links: dict[str, str | None], path: Path
) -> dict[str, bytes]:
    """``images`` plus the images that the archive's links stand for, as following them on disk gives.

    A link to an image is that image under the link's name; a link to a folder holds, under
    its name, every image of that folder; links to links are followed. A link the archive
    cannot resolve (it points outside, at nothing, or round in a loop) is refused.
    """
    if not links:
        return images

    def refuse(link: str, problem: str) -> DatasetError:
        return DatasetError(
            f"{link!r} in {path} is a link {problem}; re-create the archive with links replaced by what they point to "
            "(tar --dereference, or zip without --symlinks) and rerun."
        )

    for link, target in links.items():
        if target is None:
            raise refuse(link, "to somewhere outside the archive")
        if link == target or link.startswith(target + "/"):
            raise refuse(link, f"to {target}, a folder that contains it (a loop)")
    resolved = dict(images)
    for _ in range(MAX_LINK_DEPTH):  # each round follows one more link in a chain of links
        names = sorted(resolved)
        found: dict[str, bytes] = {}
        for link, target in links.items():
            if target in resolved:
                found[link] = resolved[target]
            for name in _names_under(names, target):
                found[link + name[len(target):]] = resolved[name]
        new = {name: data for name, data in found.items() if name not in resolved}
        if not new:
            break
        resolved.update(new)
    else:
        raise refuse(next(iter(links)), f"in a loop of links more than {MAX_LINK_DEPTH} deep")

    known = sorted(members | set(links) | set(resolved))
    for link, target in links.items():
        if target not in members and target not in links and not _names_under(known, target):
            raise refuse(link, f"to {target}, which is not in the archive")
        if _is_image_name(link) and link not in resolved:
            raise refuse(link, f"to {target}, which is not an image file in the archive")
    return resolved


def _resolve_layout(names: list[str], path: Path) -> tuple[str, str]:
    """Find where train/ lives (archive top or one top-level folder) and the test split name.

    Returns:
        (prefix, test_split): prefix is "" or "<top>/", test_split is "test" or "val".
    """
    layout_error = DatasetError(
        f"{path} does not have the expected image-folder layout: {IMAGE_FOLDER_LAYOUT}, "
        "either at the top or inside a single top-level folder."
    )
    tops = {n.split("/", 1)[0] for n in names}
    if "train" in tops:
        prefix = ""
    elif len(tops) == 1:
        prefix = next(iter(tops)) + "/"
    else:
        raise layout_error

    def has_split(split: str) -> bool:
        # A usable split has at least one file inside a class folder: <split>/<class>/<file>.
        start = prefix + split + "/"
        return any(n.startswith(start) and n.count("/") - prefix.count("/") >= 2 for n in names)

    if not has_split("train"):
        raise layout_error
    for test_split in ("test", "val"):
        if has_split(test_split):
            return prefix, test_split
    raise layout_error


def _collect_split(
    names: list[str], prefix: str, split: str, classes: list[str] | None, path: Path
) -> tuple[list[tuple[str, int]], list[str]]:
    """List (member name, label) of one split, ordered by class then file name.

    With ``classes=None`` (the train split) the classes are the sorted class folder
    names found; otherwise every folder must be one of ``classes``.
    """
    start = prefix + split + "/"
    by_class: dict[str, list[str]] = {}
    for name in names:
        if name.startswith(start):
            parts = name[len(start):].split("/")
            if len(parts) >= 2:  # files directly inside <split>/ belong to no class
                by_class.setdefault(parts[0], []).append(name)
    if classes is None:
        classes = sorted(by_class)
    unknown = sorted(set(by_class) - set(classes))
    if unknown:
        raise DatasetError(
            f"{path}: the {split}/ split has class folders {unknown} that train/ does not have; "
            "rename or remove them so that every test class is also a train class."
        )
    index = {c: i for i, c in enumerate(classes)}
    items = [(n, index[c]) for c in sorted(by_class, key=index.__getitem__) for n in sorted(by_class[c])]
    return items, classes


def _decode_all(
    names: list[str],
    read: Callable[[str], bytes],
    image_size: int,
    path: Path,
    progress: bool,
    split: str,
) -> torch.Tensor:
    """Decode ``names`` into one (len(names), 3, image_size, image_size) uint8 tensor.

    Decoding stays in this process: a pool only gained ~30% on two cores for tiny
    JPEGs, and the result is cached, so robustness wins over the one-off speed-up.
    """
    out = np.empty((len(names), image_size, image_size, 3), dtype=np.uint8)
    is_dir = path.is_dir()
    for i, name in enumerate(tqdm(names, desc=f"decoding {split}", unit=" img", disable=not progress)):
        data = read(name)  # outside the try: a file that cannot be read is not an image that cannot be decoded
        try:
            out[i] = _decode_image(data, image_size)
        except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
            display = str(path / name) if is_dir else f"{name!r} in {path}"
            raise DatasetError(
                f"Could not decode image {display} ({exc}); remove or replace that file and run again."
            ) from exc
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _decode_image(data: bytes, image_size: int) -> np.ndarray:
    """Decode bytes to RGB, center-crop to a square, resize (bicubic): (S, S, 3) uint8."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        img = _to_rgb(img)
    w, h = img.size
    if w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(img)


# Pillow's modes for 16-bit greyscale. (16-bit colour PNGs it decodes to 8-bit "RGB" itself.)
SIXTEEN_BIT_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB, deep greyscale scaled into 0..255 rather than clipped.

    Pillow's convert("RGB") clips 16-bit values at 255, so a 16-bit greyscale image would
    come out nearly white; 0..65535 is scaled to 0..255 instead. Older Pillows open a 16-bit
    greyscale PNG as 32-bit "I", which for a PNG can only hold 16-bit values. Other 32-bit
    integer or float images have no known range, so they are refused rather than guessed at.
    """
    if img.mode in SIXTEEN_BIT_GREY_MODES or (img.mode == "I" and img.format == "PNG"):
        grey = np.rint(np.asarray(img).astype(np.float64) / 257)  # 65535 / 257 = 255
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if img.mode in ("I", "F"):
        kind = "integers" if img.mode == "I" else "floating-point numbers"
        raise ValueError(f"its pixels are 32-bit {kind}, whose brightness range is unknown; save it with 8 or 16 bits")
    return img.convert("RGB") if img.mode != "RGB" else img.copy()


# ---------------------------------------------------------------------------
# Cache of decoded image folders
# ---------------------------------------------------------------------------


def _file_stamps(path: Path, dir_names: list[str] | None) -> list[str]:
    """One stamp per file the dataset is read from (the archive, or each image file of a
    directory): its name, size and mtime_ns."""
    entries = [(n, path / n) for n in dir_names] if dir_names is not None else [("", path)]
    return [f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}" for rel, file in entries for st in [file.stat()]]


def source_key(path: str | Path) -> str:
    """A key of the image-folder dataset at ``path`` as its files stand now: it changes when a
    file the dataset is read from changes size or modification time, or is added or removed.
    The same stamps key the decoded cache; callers use it to memoise work on the data."""
    path = Path(path).expanduser().resolve()
    stamps = _file_stamps(path, _scan_directory(path) if path.is_dir() else None)
    return hashlib.sha256(f"{path}{''.join(stamps)}".encode()).hexdigest()


def _cache_name(path: Path, dir_names: list[str] | None, image_size: int) -> str:
    """File name keyed by everything that can change the decoded tensors.

    The key covers the resolved path, the size and mtime_ns of the archive (or of
    every image file of a directory), the image size and the cache format version.
    """
    h = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}\0{path}\0{image_size}".encode())
    for entry in _file_stamps(path, dir_names):
        h.update(entry.encode())
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)
    return f"{stem}-{image_size}px-{h.hexdigest()[:20]}.pt"


def _load_cache(cache_file: Path) -> dict | None:
    if not cache_file.is_file():
        return None
    try:
        cached = torch.load(cache_file, weights_only=True)
        return {k: cached[k] for k in ("train_images", "train_labels", "test_images", "test_labels", "classes")}
    except Exception as exc:  # a damaged cache only costs a re-decode
        warnings.warn(f"Ignoring unreadable cache {cache_file} ({exc!r}); decoding the images again.")
        return None


def _save_cache(cache_file: Path, tensors: dict) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a truncated cache."""
    tmp = _temp_sibling(cache_file, ".tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensors, tmp)
        os.replace(tmp, cache_file)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        # Caching is an optimisation; a read-only or full disk must not stop training.
        warnings.warn(f"Could not write the dataset cache {cache_file} ({exc}); the next load will decode again.")
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Synthetic shapes
# ---------------------------------------------------------------------------


def make_shapes(n_train: int = 5000, n_test: int = 1000, image_size: int = 32, seed: int = 0) -> ImageDataset:
    """A deterministic synthetic dataset of 10 shape classes (no download needed).

    Each image shows one shape (the class) with random position, size and
    foreground/background colours, plus a random texture (stripes, checker or noise)
    and pixel noise, so the task is easy to learn but not trivial.

    Returns:
        ImageDataset with train (n_train, 3, S, S) and test (n_test, 3, S, S) uint8,
        S = image_size; labels are balanced and ordered by class.
    """
    # Distinct derived seeds keep train and test independent but reproducible.
    train_images, train_labels = _shapes_split(n_train, image_size, _generator(2 * seed))
    test_images, test_labels = _shapes_split(n_test, image_size, _generator(2 * seed + 1))
    return ImageDataset(
        train_images, train_labels, test_images, test_labels,
        classes=list(SHAPE_CLASSES), source=f"synthetic shapes (seed {seed})",
    )


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shape_mask(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Mask of shape ``kind`` in unit coordinates; u: (n, 1, S) across, v: (n, S, 1) down.

    The shape spans roughly [-1, 1] in both coordinates. Returns (n, S, S) bool.
    """
    au, av = u.abs(), v.abs()
    r2 = u**2 + v**2
    if kind == 0:  # circle
        m = r2 <= 1.0
    elif kind == 1:  # square
        m = (au <= 0.8) & (av <= 0.8)
    elif kind == 2:  # triangle, apex up
        m = (v <= 0.8) & (au <= 0.55 * (v + 0.9))
    elif kind == 3:  # ring
        m = (r2 <= 1.0) & (r2 >= 0.55**2)
    elif kind == 4:  # plus-shaped cross
        m = ((au <= 0.28) & (av <= 1.0)) | ((av <= 0.28) & (au <= 1.0))
    elif kind == 5:  # horizontal bar
        m = (au <= 1.0) & (av <= 0.28)
    elif kind == 6:  # vertical bar
        m = (au <= 0.28) & (av <= 1.0)
    elif kind == 7:  # diamond
        m = au + av <= 1.0
    elif kind == 8:  # ellipse, wide and flat
        m = u**2 + (v / 0.55) ** 2 <= 1.0
    else:  # two dots side by side
        m = ((u - 0.55) ** 2 + v**2 <= 0.4**2) | ((u + 0.55) ** 2 + v**2 <= 0.4**2)
    return m.expand(u.shape[0], v.shape[1], u.shape[2])


def _shapes_split(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Render n images: returns images (n, 3, size, size) uint8 and labels (n,) int64."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    labels = torch.arange(n, dtype=torch.int64) * len(SHAPE_CLASSES) // max(n, 1)

    # Random geometry in pixels, keeping the shape (about radius r) inside the canvas.
    radius = size * (0.22 + 0.16 * rand(n))
    cx = radius + (size - 2 * radius) * rand(n)
    cy = radius + (size - 2 * radius) * rand(n)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    u = (coords.view(1, 1, size) - cx.view(n, 1, 1)) / radius.view(n, 1, 1)  # (n, 1, S)
    v = (coords.view(1, size, 1) - cy.view(n, 1, 1)) / radius.view(n, 1, 1)  # (n, S, 1)
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for kind in range(len(SHAPE_CLASSES)):
        idx = (labels == kind).nonzero().squeeze(1)
        if len(idx):
            mask[idx] = _shape_mask(kind, u[idx], v[idx])

    # Foreground differs from background by 0.35..0.65 per channel (circularly), so shapes stay visible.
    background = rand(n, 3)
    foreground = (background + 0.35 + 0.3 * rand(n, 3)) % 1.0
    images = torch.where(mask[:, None], foreground[:, :, None, None], background[:, :, None, None])

    # One texture per image (0 stripes, 1 checker, 2 noise) so colour alone does not give the class away.
    x = coords.view(1, 1, size)
    y = coords.view(1, size, 1)
    angle = (torch.pi * rand(n)).view(n, 1, 1)
    period = (3.0 + 5.0 * rand(n)).view(n, 1, 1)
    phase = (2 * torch.pi * rand(n)).view(n, 1, 1)
    stripes = torch.sin(2 * torch.pi * (x * angle.cos() + y * angle.sin()) / period + phase)
    cell = (2 + (3 * rand(n)).floor()).view(n, 1, 1)
    checker = (torch.div(x, cell, rounding_mode="floor") + torch.div(y, cell, rounding_mode="floor")) % 2 * 2 - 1
    noise = torch.randn(n, size, size, generator=gen)
    texture_kind = torch.randint(0, 3, (n, 1, 1), generator=gen)
    texture = torch.where(texture_kind == 0, stripes, torch.where(texture_kind == 1, checker, noise.clamp(-2, 2) / 2))
    amplitude = (0.05 + 0.15 * rand(n)).view(n, 1, 1, 1)
    images = images + amplitude * texture[:, None] + 0.03 * torch.randn(n, 3, size, size, generator=gen)

    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels
