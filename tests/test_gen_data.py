"""Tier 1-2: the generative data pipeline. Each importer on small files written here, every
bad-data case (exit 2, one line naming the file), binarization, the embedded mnist5k split,
and the Parquet format read back through Ray Data."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from generative.data import images as gi
from generative.data.importers import import_dataset, read_idx
from runkit.errors import UserError
from tests.conftest import run_cli


def _idx(path, array, *, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _mnist_files(folder, *, gz, n_train=6, n_test=3):
    rng = np.random.default_rng(0)
    folder.mkdir()
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", imgs, gz=gz)
        _idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
        out[prefix] = (imgs, labels)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_import_round_trip(tmp_path, gz):
    written = _mnist_files(tmp_path / "src", gz=gz)
    counts = import_dataset("mnist-idx", str(tmp_path / "src"), str(tmp_path / "ds"))
    assert counts == {"train": 6, "test": 3}
    specs = gi.check_dataset(str(tmp_path / "ds"))
    assert specs["train"].shape == (28, 28, 1)
    images, labels = gi.read_split(gi.split_path(str(tmp_path / "ds"), "test"))
    np.testing.assert_array_equal(images[:, 0], written["t10k"][0])
    np.testing.assert_array_equal(labels, written["t10k"][1])


def test_cifar10_import_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "cifar"
    src.mkdir()
    batches = {}
    for name, n in (("data_batch_1", 4), ("data_batch_2", 3), ("test_batch", 2)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=n))
        with open(src / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
        batches[name] = (data, labels)
    counts = import_dataset("cifar10", str(src), str(tmp_path / "ds"))
    assert counts == {"train": 7, "test": 2}
    images, labels = gi.read_split(gi.split_path(str(tmp_path / "ds"), "test"))
    assert images.shape == (2, 3, 32, 32)  # N, C, H, W after decoding
    # CIFAR stores planes R, G, B of 1024 pixels each: the decoded C axis is that order.
    np.testing.assert_array_equal(images.reshape(2, 3072), batches["test_batch"][0])
    assert list(labels) == batches["test_batch"][1]


def test_folder_import_with_holdout(tmp_path):
    from PIL import Image

    src = tmp_path / "pngs"
    src.mkdir()
    rng = np.random.default_rng(2)
    for i in range(20):
        pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"{i:02d}.png")
    counts = import_dataset("folder", str(src), str(tmp_path / "ds"))
    assert counts == {"train": 18, "test": 2}  # every 10th image held out
    assert gi.check_dataset(str(tmp_path / "ds"))["test"].shape == (12, 10, 3)


def _bad(path):
    with pytest.raises(UserError) as info:
        gi.check_split(str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_bad_data_is_named_in_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # unreadable
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    assert "unreadable" in _bad(junk)
    # missing
    assert "no such" in _bad(tmp_path / "absent.parquet")
    # empty
    gi.write_images(tmp_path / "empty.parquet", np.zeros((0, 4, 4, 1), np.uint8))
    assert "empty" in _bad(tmp_path / "empty.parquet")

    def table(path, images, hs, ws, cs):
        pq.write_table(pa.table({"image": images, "height": hs, "width": ws, "channels": cs}), path)

    # mixed sizes
    table(tmp_path / "mixed.parquet", [b"\0" * 16, b"\0" * 25], [4, 5], [4, 5], [1, 1])
    assert "mixed image sizes" in _bad(tmp_path / "mixed.parquet")
    # wrong byte count for the stated shape
    table(tmp_path / "short.parquet", [b"\0" * 16, b"\0" * 15], [4, 4], [4, 4], [1, 1])
    assert "15 bytes" in _bad(tmp_path / "short.parquet")
    # wrong channel count
    table(tmp_path / "chan.parquet", [b"\0" * 32], [4], [4], [2])
    assert "C = 1 or 3" in _bad(tmp_path / "chan.parquet")
    # NaN in an image stored as a list of numbers
    table(tmp_path / "nan.parquet", [[0.0, float("nan"), 1.0, 2.0]], [2], [2], [1])
    assert "NaN" in _bad(tmp_path / "nan.parquet")
    # a missing column
    pq.write_table(pa.table({"image": [b"\0"]}), tmp_path / "cols.parquet")
    assert "missing column" in _bad(tmp_path / "cols.parquet")


def test_bad_idx_and_mismatched_splits(tmp_path):
    bad = tmp_path / "x-idx"
    bad.write_bytes(b"\x00\x00\x0d\x01" + b"\0" * 8)  # type 0x0d = float, not uint8
    with pytest.raises(UserError, match="bad magic"):
        read_idx(bad)
    gi.write_images(tmp_path / "ds" / "train.parquet", np.zeros((2, 4, 4, 1), np.uint8))
    gi.write_images(tmp_path / "ds" / "test.parquet", np.zeros((2, 5, 5, 1), np.uint8))
    with pytest.raises(UserError, match="must match"):
        gi.check_dataset(str(tmp_path / "ds"))


def test_cli_bad_dataset_exits_2_and_writes_nothing(tmp_path, rlgen_here):
    """``rlgen train`` through ``rlgen_cli.main`` in this process (a fresh interpreter's run of
    ``rlgen train vae`` with bad input: test_vae_job), ``rlgen data import`` as a user runs it."""
    junk = tmp_path / "ds"
    junk.mkdir()
    (junk / "train.parquet").write_bytes(b"garbage")
    (junk / "test.parquet").write_bytes(b"garbage")
    out = tmp_path / "run"
    proc = rlgen_here("train", "vae", "--dataset", str(junk), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "train.parquet" in lines[0] and "unreadable" in lines[0]
    assert not out.exists()
    # An importer never overwrites an existing dataset.
    gi.write_images(tmp_path / "kept" / "train.parquet", np.zeros((1, 2, 2, 1), np.uint8))
    before = (tmp_path / "kept" / "train.parquet").read_bytes()
    src = tmp_path / "src"
    _mnist_files(src, gz=False)
    proc = run_cli("data", "import", "mnist-idx", str(src), str(tmp_path / "kept"))
    assert proc.returncode == 2 and "already holds a dataset" in proc.stderr
    assert (tmp_path / "kept" / "train.parquet").read_bytes() == before


def test_binarization_threshold_fixed_dynamic_resampled():
    x = torch.tensor([[0, 127, 128, 255]], dtype=torch.uint8)
    torch.testing.assert_close(gi.binarize(x, "threshold"), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    assert torch.equal(gi.binarize(x, "none"), x)
    g = torch.Generator().manual_seed(0)
    grey = torch.full((1, 4000), 64, dtype=torch.uint8)
    a, b = gi.binarize(grey, "dynamic", generator=g), gi.binarize(grey, "dynamic", generator=g)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)  # resampled on every call (every epoch)
    assert abs(float(a.mean()) - 64 / 255) < 0.03
    assert float(gi.binarize(torch.full((1, 9), 255, dtype=torch.uint8), "dynamic").min()) == 1.0


def test_mnist5k_split_is_fixed_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RLGEN_DATA_DIR", str(tmp_path))
    root = gi.mnist5k()
    specs = gi.check_dataset(root)
    assert (specs["train"].rows, specs["test"].rows) == (4000, 1000)
    assert specs["train"].shape == (28, 28, 1)
    train, train_labels = gi.read_split(gi.split_path(root, "train"))
    test, _ = gi.read_split(gi.split_path(root, "test"))
    assert set(np.unique(train_labels)) == set(range(10))
    stamp = (tmp_path / "mnist5k" / "train.parquet").stat().st_mtime_ns
    assert gi.mnist5k() == root  # cached: not rebuilt
    assert (tmp_path / "mnist5k" / "train.parquet").stat().st_mtime_ns == stamp
    # Real digits: dark background, bright strokes; train and test are disjoint sets.
    assert 20 < train.mean() < 50
    train_keys = {img.tobytes() for img in train}
    assert not any(img.tobytes() in train_keys for img in test)


def test_ray_data_reads_the_format(ray_local, tmp_path):
    import ray.data

    imgs = np.arange(5 * 3 * 2 * 1, dtype=np.uint8).reshape(5, 3, 2, 1)
    gi.write_images(tmp_path / "train.parquet", imgs, np.arange(5))
    ds = ray.data.read_parquet(str(tmp_path / "train.parquet")).select_columns(["image"])
    batch = next(iter(ds.iter_batches(batch_size=5, batch_format="numpy")))
    decoded = gi.decode(batch["image"], (3, 2, 1))
    np.testing.assert_array_equal(decoded, imgs.transpose(0, 3, 1, 2))
