"""Dataset files from other people, sized or shaped to exhaust memory or to crash a loader:
IDX / CIFAR-10 / image-folder sources and Parquet splits. Each row is refused with one
UserError line naming the file and what is wrong, before the large thing is read. Adding a
case is one row. (Checkpoints and ``rlgen sample``: test_hostile_checkpoints.py.)"""

from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from generative.data import images as gi
from generative.data import importers as imp
from runkit.errors import UserError


def _refused(call: Callable[[], Any], needle: str, named: str) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and named in message and needle in message, message
    return message


# --- IDX files -------------------------------------------------------------------------------


def _idx_bytes(dims: tuple[int, ...], body: bytes, *, magic: bytes = b"\0\0\x08") -> bytes:
    return magic + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + body


IDX_CASES: list[tuple[str, bytes, dict[str, int], str]] = [
    ("float IDX", _idx_bytes((4,), b"\0" * 16, magic=b"\0\0\x0d"), {}, "bad magic"),
    ("no dimensions", _idx_bytes((), b""), {}, "gives 0 dimensions; 1 to 4"),
    ("200 dimensions", b"\0\0\x08\xc8" + b"\0" * 800, {}, "gives 200 dimensions"),
    ("a zero dimension", _idx_bytes((0, 28, 28), b""), {}, "each must be >= 1"),
    # 2**16 ** 4 = 2**64: numpy's int64 product wraps to 0, the length of this empty body
    ("dims whose product wraps", _idx_bytes((2**16,) * 4, b""), {}, "make 18446744073709551616"),
    ("huge dims, short body", _idx_bytes((2**32 - 1,) * 3, b"\0" * 10), {}, "the body holds 10"),
    ("truncated body", _idx_bytes((2, 28, 28), b"\0" * 100), {}, "the body holds 100"),
    ("truncated header", b"\0\0\x08\x03" + b"\0" * 5, {}, "truncated IDX header"),
    ("file over the bound", _idx_bytes((64,), b"\0" * 64), {"MAX_IDX_BYTES": 32}, "bytes; at"),
    ("gzip bomb", gzip.compress(_idx_bytes((2**21,), b"\0" * 2**21)), {"MAX_IDX_BYTES": 2**20},
     "inflates to over 1048576 bytes"),
    ("gzip cut short", gzip.compress(_idx_bytes((64,), b"\1" * 64))[:-12], {}, "cut short"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "data", "bounds", "needle"), IDX_CASES, ids=[c[0] for c in IDX_CASES]
)
def test_bad_idx_is_refused(tmp_path, monkeypatch, case, data, bounds, needle):
    for name, value in bounds.items():
        monkeypatch.setattr(imp, name, value)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    _refused(lambda: imp.read_idx(path), needle, str(path))


def test_idx_images_larger_than_a_dataset_holds(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for prefix in ("train", "t10k"):
        (src / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_bytes((1, 300, 2), b"\0" * 600))
        (src / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes((1,), b"\0"))
    _refused(lambda: imp.import_mnist_idx(src, tmp_path / "ds"), "at most 256x256", str(src))
    assert not (tmp_path / "ds").exists()


# --- CIFAR-10 batches ------------------------------------------------------------------------


def _cifar(data: Any, labels: Any) -> bytes:
    return pickle.dumps({b"data": data, b"labels": labels})


U8 = np.zeros((2, 3072), np.uint8)
CIFAR_CASES: list[tuple[str, bytes, dict[str, int], str]] = [
    ("file over the bound", _cifar(U8, [0, 1]), {"MAX_CIFAR_BATCH_BYTES": 1000},
     "a CIFAR-10 batch is at most 1000"),
    ("float pixels", _cifar(U8.astype(np.float64), [0, 1]), {}, "holds float64, not a uint8"),
    ("pixels as a list", _cifar([[0] * 3072] * 2, [0, 1]), {}, "holds list, not a uint8"),
    ("rows of 100 values", _cifar(np.zeros((2, 100), np.uint8), [0, 1]), {}, "N x 3072"),
    ("fewer labels", _cifar(U8, [0]), {}, "N x 3072 with N labels"),
    ("label 11", _cifar(U8, [0, 11]), {}, "labels must be integers in 0..9"),
    ("labels as text", _cifar(U8, ["cat", "dog"]), {}, "labels must be integers"),
    ("not a dict", pickle.dumps([U8]), {}, "not a CIFAR-10 python batch"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "data", "bounds", "needle"), CIFAR_CASES, ids=[c[0] for c in CIFAR_CASES]
)
def test_bad_cifar_batch_is_refused(tmp_path, monkeypatch, case, data, bounds, needle):
    for name, value in bounds.items():
        monkeypatch.setattr(imp, name, value)
    src = tmp_path / "cifar"
    src.mkdir()
    (src / "data_batch_1").write_bytes(data)
    _refused(lambda: imp.import_cifar10(src, tmp_path / "ds"), needle, "data_batch_1")
    assert not (tmp_path / "ds").exists()


# --- image folders ---------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A 1-bit PNG that declares ``width`` x ``height`` and holds no pixels: a few dozen bytes
    that an importer decoding before it checks would inflate to width * height bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b""))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


SMALL = _png(np.zeros((8, 8), np.uint8))
FOLDER_CASES: list[tuple[str, bytes, dict[str, int], str]] = [
    ("300x300", _png_header(300, 300), {}, "300x300 pixels; at most 256x256"),
    ("past Pillow's warning", _png_header(10_000, 10_000), {}, "declares more pixels than"),
    ("past Pillow's limit", _png_header(20_000, 20_000), {}, "declares more pixels than"),
    ("another size", _png(np.zeros((8, 9), np.uint8)), {}, "differs from the first image's"),
    ("file over the bound", SMALL + b"\0" * 2000, {"MAX_IMAGE_FILE_BYTES": 1000},
     "an image file is at most 1000"),
    ("too many images", SMALL, {"MAX_IMAGE_FILES": 5}, "over 5 images"),
    ("split over the bound", SMALL, {"MAX_SPLIT_BYTES": 500}, "a split holds at most 500"),
    ("not an image", b"GIF89a" + b"\0" * 20, {}, "unreadable image"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "last", "bounds", "needle"), FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES]
)
def test_bad_image_folder_is_refused(tmp_path, monkeypatch, case, last, bounds, needle):
    for name, value in bounds.items():
        monkeypatch.setattr(imp, name, value)
    src = tmp_path / "pngs"
    src.mkdir()
    for i in range(10):
        (src / f"{i:02d}.png").write_bytes(SMALL)
    (src / "10.png").write_bytes(last)  # the 11th: a train image, read after the first
    _refused(lambda: imp.import_folder(src, tmp_path / "ds"), needle, str(src))
    assert not (tmp_path / "ds").exists()


# --- Parquet splits --------------------------------------------------------------------------


def _split(**columns: Any) -> dict[str, Any]:
    """Two 4x4 grey images with labels; ``columns`` replace or (None) drop columns."""
    import pyarrow as pa

    table: dict[str, Any] = {
        "image": pa.array([b"\0" * 16, b"\1" * 16]),
        "height": pa.array([4, 4], pa.int32()),
        "width": pa.array([4, 4], pa.int32()),
        "channels": pa.array([1, 1], pa.int32()),
        "label": pa.array([0, 1], pa.int64()),
    }
    table.update(columns)
    return {k: v for k, v in table.items() if v is not None}


def _arr(values: list, kind: Any = None) -> Any:
    import pyarrow as pa

    return pa.array(values, kind)


PARQUET_CASES: list[tuple[str, dict[str, Any], dict[str, int], str]] = [
    ("image column of text", _split(image=_arr(["a" * 16, "b" * 16])), {},
     "column image holds string, not bytes"),
    ("null image", _split(image=_arr([b"\0" * 16, None])), {}, "row 1 has no image (null)"),
    ("short image", _split(image=_arr([b"\0" * 16, b"\0" * 15])), {}, "row 1 holds 15 bytes"),
    ("long image", _split(image=_arr([b"\0" * 17, b"\0" * 16])), {}, "row 0 holds 17 bytes"),
    ("label of text", _split(label=_arr(["cat", "dog"])), {}, "column label holds string"),
    ("null label", _split(label=_arr([0, None])), {}, "column label has null values"),
    ("null height", _split(height=_arr([4, None])), {}, "column height has null values"),
    ("height as floats", _split(height=_arr([4.0, 4.0])), {}, "column height holds double"),
    ("no width column", _split(width=None), {}, "missing column(s) width"),
    ("images taller than allowed", _split(height=_arr([300, 300]), width=_arr([1, 1]),
     image=_arr([b"\0" * 300] * 2)), {}, "image shape 300x1x1 (need 1 <= H, W <= 256"),
    ("negative height", _split(height=_arr([-4, -4])), {}, "image shape -4x4x1"),
    ("huge channels", _split(channels=_arr([2**40] * 2, "int64")), {}, "C = 1 or 3"),
    ("rows over the bound", _split(), {"MAX_ROWS": 1}, "2 images; at most 1 per split"),
    ("split over the bound", _split(), {"MAX_SPLIT_BYTES": 31}, "are 32 bytes; a split holds"),
    # 1 MiB per row that the shape columns call 4x4: refused from the metadata, before reading
    ("image column that inflates", _split(image=_arr([b"\0" * 2**20, b"\1" * 2**20])), {},
     "the image column inflates to"),
    ("null inside an image list", _split(image=_arr([[0.0] * 16, [0.0] * 15 + [None]])), {},
     "NaN or nulls"),
    ("image lists of text", _split(image=_arr([["0"] * 16] * 2)), {},
     "holds list<element: string>"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "columns", "bounds", "needle"), PARQUET_CASES, ids=[c[0] for c in PARQUET_CASES]
)
def test_bad_split_is_refused(tmp_path, monkeypatch, case, columns, bounds, needle):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, value in bounds.items():
        monkeypatch.setattr(gi, name, value)
    path = tmp_path / "test.parquet"
    pq.write_table(pa.table(columns), path)
    _refused(lambda: gi.check_split(str(path)), needle, str(path))
    _refused(lambda: gi.read_split(str(path)), needle, str(path))


def test_one_large_value_on_every_row_is_not_copied_per_row(tmp_path):
    """256 rows that all name one 1 MiB value of a dictionary page (a 1 MiB file): the check
    reads the column as a dictionary, so it never holds 256 MiB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = pa.DictionaryArray.from_arrays(pa.array(np.zeros(256, np.int32)), [b"\0" * 2**20])
    ones = pa.array(np.ones(256, np.int32))
    table = pa.table({"image": big, "height": ones, "width": ones, "channels": ones})
    path = tmp_path / "test.parquet"
    pq.write_table(table, path, store_schema=False)  # read back as plain bytes
    del table, big
    pool = pa.default_memory_pool()
    peak = pool.max_memory()
    _refused(lambda: gi.check_split(str(path)), "row 0 holds 1048576 bytes, not 1", str(path))
    assert pool.max_memory() < peak + 64 * 2**20


def test_a_folder_split_names_the_bad_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "train.parquet"
    folder.mkdir()
    pq.write_table(pa.table(_split()), folder / "part-0.parquet")
    pq.write_table(pa.table(_split(label=_arr(["a", "b"]))), folder / "part-1.parquet")
    _refused(lambda: gi.check_split(str(folder)), "(part-1.parquet): column label", str(folder))


@pytest.mark.parametrize(
    ("rows", "needle"),
    [([b"\0" * 16, None], "image row 1 holds nothing"), ([b"\0" * 15], "row 0 holds 15 values")],
)
def test_decode_refuses_rows_of_another_size(rows, needle):
    # What each Ray Train worker decodes from its shard, after check_split ran on the driver.
    _refused(lambda: gi.decode(rows, (4, 4, 1), source="dataset d"), needle, "dataset d")


def test_read_split_limit_reads_the_first_rows(tmp_path):
    images = np.arange(5 * 16, dtype=np.uint8).reshape(5, 4, 4, 1)
    gi.write_images(tmp_path / "t.parquet", images, np.arange(5))
    got, labels = gi.read_split(str(tmp_path / "t.parquet"), limit=2)
    np.testing.assert_array_equal(got[:, 0], images[:2, ..., 0])
    assert list(labels) == [0, 1]
