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

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from generative.data.images import SPLITS, write_images
from runkit.errors import UserError

KINDS = ("mnist-idx", "cifar10", "folder")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _open(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__})") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (big-endian header: 0, 0, type 0x08 = uint8, ndim; then the dims)."""
    data = _open(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of uint8 (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{path}: IDX body holds {body.size} bytes, header says {dims}")
    return body.reshape(dims)


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
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path}: not a CIFAR-10 python batch ({exc}; nothing in it was run)"
        ) from None
    except (OSError, EOFError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise UserError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise UserError(f"{path}: data {data.shape} is not N x 3072 with N labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels  # -> N, H, W, C


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


def _load_images(files: list[Path]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for f in files:
        try:
            with Image.open(f) as img:
                mode = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                arrays.append(np.asarray(img.convert(mode), dtype=np.uint8))
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"{f}: unreadable image ({type(exc).__name__})") from None
    for f, a in zip(files, arrays, strict=True):
        if a.shape != arrays[0].shape:
            raise UserError(f"{f}: size {a.shape} differs from {files[0].name}'s {arrays[0].shape}")
    stacked = np.stack(arrays)
    return stacked[..., None] if stacked.ndim == 3 else stacked


def import_folder(src: Path, dest: Path) -> dict[str, int]:
    def images_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)

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
    loaded = {split: _load_images(found) for split, found in files.items()}
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
