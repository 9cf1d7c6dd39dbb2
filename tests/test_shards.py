"""Each Train worker's images (generative/shards.py): read by the worker itself on a one-node
Ray instance, or from Ray Data's split; both give every worker the same count and every image
to at most one worker."""

from __future__ import annotations

import json

import numpy as np
import pytest

import generative.data.images as gi
from generative import shards


@pytest.mark.parametrize("n,world", [(10, 1), (10, 2), (10, 3), (7, 4), (3, 4)])
def test_equal_rows_split_without_overlap(n, world):
    parts = [shards.equal_rows(n, rank, world) for rank in range(world)]
    assert len({len(p) for p in parts}) == 1  # DDP steps need a partner on every worker
    assert len(parts[0]) == n // world
    joined = np.concatenate(parts)
    assert len(set(joined.tolist())) == len(joined)  # no image on two workers
    assert set(joined.tolist()) <= set(range(n))


def _dataset(root, n=11):
    images = np.arange(n * 16, dtype=np.uint8).reshape(n, 4, 4, 1)
    gi.write_images(root / "train.parquet", images, np.arange(n))
    gi.write_images(root / "test.parquet", images[:3], np.arange(3))
    return root, images.transpose(0, 3, 1, 2)


def test_a_worker_reads_its_own_rows(tmp_path):
    root, images = _dataset(tmp_path)
    for rank in range(2):
        got = shards.worker_shard(str(root / "train.parquet"), rank, 2, (4, 4, 1))
        np.testing.assert_array_equal(got, images[[rank, rank + 2, rank + 4, rank + 6, rank + 8]])


def test_who_reads_the_images(ray_local, tmp_path, monkeypatch):
    root, _ = _dataset(tmp_path)
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes((root / "train.parquet").read_bytes())
    assert shards.read_here(str(root / "train.parquet"))  # one node, local, small
    assert shards.read_here(str(folder))
    assert not shards.read_here("s3://bucket/data/train.parquet")
    monkeypatch.setattr(shards, "READ_HERE_BYTES", 100)
    assert not shards.read_here(str(root / "train.parquet"))  # too large for one process
    assert not shards.read_here(str(folder))


def test_both_ways_train_on_the_same_number_of_images(ray_local, tmp_path, monkeypatch):
    """Two Train workers on 203 images (an odd count): read by the workers, and through Ray
    Data's split; each epoch trains on 2 x 101 images either way."""
    import rlgen

    digits, _ = gi.read_split(gi.split_path(gi.mnist5k(), "train"), limit=203)
    gi.write_images(tmp_path / "d" / "train.parquet", digits.transpose(0, 2, 3, 1))
    gi.write_images(tmp_path / "d" / "test.parquet", digits[:20].transpose(0, 2, 3, 1))
    seen = {}
    for way, limit in (("here", shards.READ_HERE_BYTES), ("ray data", 0)):
        monkeypatch.setattr(shards, "READ_HERE_BYTES", limit)
        out = tmp_path / way.replace(" ", "_")
        rlgen.train(
            "vae", dataset=str(tmp_path / "d"), epochs=1, num_workers=2, output=out,
            overrides={"grid_n": 4, "iw_samples": 2, "hidden": 32},
        )  # fmt: skip
        seen[way] = json.loads((out / "result.json").read_text())["metrics"]["train_images"]
    assert seen == {"here": 202, "ray data": 202}
