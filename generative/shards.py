"""Each Train worker's share of the training images, read once and kept in memory.

Two ways to the same kind of shard (equal counts per worker, so every DDP step has a partner):

- **Ray Data** (``ray.data.read_parquet`` handed to the trainer, split by Ray Train): for a
  cluster of several nodes, a dataset at a URI, or one too large for one process to read.
- **Read here**: on a single-node Ray instance, a local dataset of at most ``READ_HERE_BYTES``
  is read by each worker straight from its Parquet file, keeping rows ``rank, rank + world,
  ...``. Ray Data's read tasks and split coordinator are new processes that cost a small run
  more seconds than its whole epoch.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from runkit import cluster, storage

READ_HERE_BYTES = 256 << 20


def read_here(train_split: str) -> bool:
    """Whether workers read ``train_split`` themselves (the Ray instance is this one node, the
    file is local and small); called on the driver once Ray is up."""
    if storage.is_uri(train_split) or "://" in train_split:
        return False
    if cluster.alive_nodes() != 1:
        return False
    try:
        return _bytes(train_split) <= READ_HERE_BYTES
    except OSError:
        return False


def _bytes(path: str) -> int:
    """A split's size: its file's, or the sum of the files under its folder."""
    if not os.path.isdir(path):
        return os.stat(path).st_size
    return sum(
        os.stat(os.path.join(root, name)).st_size
        for root, _, names in os.walk(path)
        for name in names
    )


def equal_rows(n: int, rank: int, world: int) -> np.ndarray:
    """Rows ``rank, rank + world, ...`` of ``n``, the remainder of ``n // world`` dropped so
    every worker gets the same count."""
    return np.arange(rank, (n // world) * world, world)


def worker_shard(
    train_split: str | None, rank: int, world: int, shape: tuple[int, int, int]
) -> np.ndarray:
    """This worker's uint8 (N, C, H, W) images: read from ``train_split`` when the driver chose
    to (``read_here``), else from the Ray Data shard Ray Train handed this worker."""
    from generative.data.images import decode, read_split

    if train_split is not None:
        images, _ = read_split(train_split)
        return np.ascontiguousarray(images[equal_rows(len(images), rank, world)])
    import ray.train

    shard: Any = ray.train.get_dataset_shard("train")
    # Batches of a few hundred images through Ray Data's iterator cost more than the VAE's own
    # step, so the shard is decoded once (MNIST: 47 MB, CIFAR-10: 150 MB over all workers).
    return np.concatenate(
        [
            decode(batch["image"], shape)
            for batch in shard.iter_batches(batch_size=4096, batch_format="numpy")
        ]
    )
