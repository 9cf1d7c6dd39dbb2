"""``rlgen data import KIND SRC DEST``: what users bring, converted to the Parquet format.

- ``mnist-idx``: a folder with the four MNIST / Fashion-MNIST IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally ``.gz``).
- ``cifar10``: the folder of CIFAR-10 python batches (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``).
- ``folder``: PNG / JPEG files, all the same size; ``SRC/train`` and ``SRC/test`` if present,
  otherwise every 10th image (sorted by name) goes to test.
"""

from __future__ import annotations

import math
import pickle
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from generative.data.images import MAX_SIDE, MAX_SPLIT_BYTES, SPLITS, write_images
from runkit.errors import UserError

KINDS = ("mnist-idx", "cifar10", "folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_IDX_BYTES = MAX_SPLIT_BYTES + 64  # one IDX file, after gunzip: a split's pixels + header
MAX_IDX_DIMS = 4  # MNIST's are 1 (labels) and 3 (images)
MAX_CIFAR_BATCH_BYTES = 64 * 2**20  # one CIFAR-10 python batch (a real one is 31 MB)
CIFAR_CLASSES = 10
MAX_IMAGE_FILE_BYTES = 16 * 2**20  # one PNG / JPEG file of at most MAX_SIDE x MAX_SIDE
MAX_IMAGE_FILES = 1_000_000  # images in one folder import


def _read_bounded(path: Path, limit: int) -> bytes:
    """A file's bytes, gunzipped if it is gzip; refused when the file or what it inflates to
    is over ``limit`` bytes (counted as it inflates: a small .gz never fills the memory)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{path}: {size} bytes; at most {limit} are read")
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    parts, total, rest = [], 0, raw
    try:
        while rest:  # one gzip member per turn (gzip files may be concatenated)
            member = zlib.decompressobj(wbits=31)
            part = member.decompress(rest, limit + 1 - total)
            total += len(part)
            if total > limit:
                raise UserError(f"{path}: inflates to over {limit} bytes (the most read)")
            if not member.eof:
                raise UserError(f"{path}: unreadable (gzip data cut short)")
            parts.append(part)
            rest = member.unused_data
    except zlib.error as exc:
        raise UserError(f"{path}: unreadable gzip ({exc})") from None
    return b"".join(parts)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (big-endian header: 0, 0, type 0x08 = uint8, ndim; then ndim uint32 dims,
    each >= 1, whose product is the body's length), read whole (<= MAX_IDX_BYTES)."""
    data = _read_bounded(path, MAX_IDX_BYTES)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of uint8 (bad magic number)")
    ndim = data[3]
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise UserError(f"{path}: IDX header gives {ndim} dimensions; 1 to {MAX_IDX_DIMS} allowed")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])  # Python ints: the product cannot wrap
    body = len(data) - header
    if min(dims) < 1:
        raise UserError(f"{path}: IDX header dims {list(dims)}; each must be >= 1")
    if math.prod(dims) != body:
        raise UserError(
            f"{path}: IDX header dims {list(dims)} make {math.prod(dims)} bytes, the body "
            f"holds {body}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(src: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (src / name).is_file():
            return src / name
    raise UserError(f"{src}: no {stem} (or {stem}.gz)")


def import_mnist_idx(src: Path, dest: Path) -> dict[str, int]:
    counts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(src, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(src, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(
                f"{src}: {prefix} images {images.shape} and labels {labels.shape} do not match"
            )
        if max(images.shape[1:]) > MAX_SIDE:
            raise UserError(
                f"{src}: {prefix} images are {images.shape[1]}x{images.shape[2]}; at most "
                f"{MAX_SIDE}x{MAX_SIDE}"
            )
        write_images(dest / f"{split}.parquet", images[..., None], labels)
        counts[split] = len(images)
    return counts


class _ArraysOnly(pickle.Unpickler):
    """Unpickles what a CIFAR-10 python batch holds (dicts, lists, bytes, numbers and numpy
    arrays) and nothing else: any other global a pickle names (a function to call, a class to
    build) is refused before it is looked up, so a crafted batch cannot run code."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),  # numpy integers in the label list
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
            ("copy_reg", "_reconstructor"),
            ("copyreg", "_reconstructor"),
            ("__builtin__", "object"),
            ("builtins", "object"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch (<= MAX_CIFAR_BATCH_BYTES): ``data`` a uint8 array N x 3072, ``labels`` N
    integers in 0..9."""
    try:
        size = path.stat().st_size
        if size > MAX_CIFAR_BATCH_BYTES:
            raise UserError(
                f"{path}: {size} bytes; a CIFAR-10 batch is at most {MAX_CIFAR_BATCH_BYTES}"
            )
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path}: not a CIFAR-10 python batch ({exc}; nothing in it was run)"
        ) from None
    except (OSError, EOFError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise UserError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__})") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        held = getattr(data, "dtype", type(data).__name__)
        raise UserError(f"{path}: data holds {held}, not a uint8 array")
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise UserError(f"{path}: data {data.shape} is not N x 3072 with N labels")
    if labels.dtype.kind not in "iu" or (
        len(labels) and not 0 <= labels.min() <= labels.max() < CIFAR_CLASSES
    ):
        raise UserError(f"{path}: labels must be integers in 0..{CIFAR_CLASSES - 1}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # -> N, H, W, C
    return images, labels.astype(np.int64)


def import_cifar10(src: Path, dest: Path) -> dict[str, int]:
    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    counts = {}
    for split, names in parts.items():
        found = [src / n for n in names if (src / n).is_file()]
        if not found:
            raise UserError(f"{src}: no CIFAR-10 {split} batch ({', '.join(names)})")
        batches = [_cifar_batch(p) for p in found]
        images = np.concatenate([b[0] for b in batches])
        write_images(dest / f"{split}.parquet", images, np.concatenate([b[1] for b in batches]))
        counts[split] = len(images)
    return counts


def _load_image(f: Path, first: tuple[int, int] | None) -> np.ndarray:
    """One image file as uint8 (H, W) or (H, W, 3). Its size is read from its header and
    checked (<= MAX_SIDE x MAX_SIDE, the same as ``first``'s) before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        if not f.is_file():
            raise UserError(f"{f}: not a regular file")
        size = f.stat().st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise UserError(f"{f}: {size} bytes; an image file is at most {MAX_IMAGE_FILE_BYTES}")
        with warnings.catch_warnings():
            # Pillow warns (then refuses) past its own pixel limit: refused here either way
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:  # reads the header only
                w, h = img.size
                if w > MAX_SIDE or h > MAX_SIDE:
                    raise UserError(f"{f}: {w}x{h} pixels; at most {MAX_SIDE}x{MAX_SIDE}")
                if first is not None and (w, h) != first:
                    raise UserError(
                        f"{f}: size {w}x{h} differs from the first image's {first[0]}x{first[1]}"
                    )
                mode = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                return np.asarray(img.convert(mode), dtype=np.uint8)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UserError(f"{f}: declares more pixels than {MAX_SIDE}x{MAX_SIDE}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise UserError(f"{f}: unreadable image ({type(exc).__name__})") from None


def _load_images(files: list[Path], src: Path) -> np.ndarray:
    """The images of one split: all the size of the first, and together at most
    MAX_SPLIT_BYTES (known from the first one's header, before the rest are read)."""
    first = _load_image(files[0], None)
    total = len(files) * first.size
    if total > MAX_SPLIT_BYTES:
        raise UserError(
            f"{src}: {len(files)} images of {first.shape} are {total} bytes; a "
            f"split holds at most {MAX_SPLIT_BYTES}"
        )
    size = (first.shape[1], first.shape[0])
    arrays = [first, *(_load_image(f, size) for f in files[1:])]
    for f, a in zip(files, arrays, strict=True):
        if a.shape != arrays[0].shape:
            raise UserError(f"{f}: size {a.shape} differs from {files[0].name}'s {arrays[0].shape}")
    stacked = np.stack(arrays)
    return stacked[..., None] if stacked.ndim == 3 else stacked


def import_folder(src: Path, dest: Path) -> dict[str, int]:
    def images_in(folder: Path) -> list[Path]:
        found = []
        for p in folder.rglob("*"):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                found.append(p)
                if len(found) > MAX_IMAGE_FILES:
                    raise UserError(f"{folder}: over {MAX_IMAGE_FILES} images; at most that many")
        return sorted(found)

    if all((src / s).is_dir() for s in SPLITS):
        files = {s: images_in(src / s) for s in SPLITS}
    else:
        every = images_in(src)
        files = {
            "train": [f for i, f in enumerate(every) if i % 10 != 9],
            "test": [f for i, f in enumerate(every) if i % 10 == 9],
        }
    for split, found in files.items():
        if not found:
            raise UserError(f"{src}: no PNG or JPEG images for the {split} split")
    loaded = {split: _load_images(found, src) for split, found in files.items()}
    if loaded["train"].shape[1:] != loaded["test"].shape[1:]:
        raise UserError(
            f"{src}: train images are {loaded['train'].shape[1:]}, test images "
            f"{loaded['test'].shape[1:]}; all must be the same size"
        )
    for split, images in loaded.items():
        write_images(dest / f"{split}.parquet", images)
    return {split: len(images) for split, images in loaded.items()}


def import_dataset(kind: str, src: str, dest: str) -> dict[str, int]:
    """Convert SRC to a dataset folder DEST (train.parquet, test.parquet); refuses to
    overwrite an existing dataset. Returns the image count per split."""
    if kind not in KINDS:
        raise UserError(f"data import: unknown kind {kind!r}; one of {', '.join(KINDS)}")
    source, target = Path(src), Path(dest)
    if not source.is_dir():
        raise UserError(f"data import {kind}: {src} is not a folder")
    if any((target / f"{s}.parquet").exists() for s in SPLITS):
        raise UserError(f"data import: {dest} already holds a dataset; choose a new folder")
    importer = {"mnist-idx": import_mnist_idx, "cifar10": import_cifar10, "folder": import_folder}
    return importer[kind](source, target)
