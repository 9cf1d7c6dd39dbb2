"""The recording format: what an agent saw, as a Parquet image dataset.

``rlgen record`` writes a folder that the generative jobs read as it is::

    DIR/recording.json          env id, preset, policy, counts (written last: a folder
                                without it is an unfinished recording)
    DIR/train.parquet/*.parquet one or more files per rollout actor, row groups of a few
    DIR/test.parquet/*.parquet  thousand frames each

One row per observation the agent saw, in the image columns of ``generative.data`` (``image``:
the frame's uint8 bytes, ``height``, ``width``, ``channels``) and the episode's:

    episode     int64, unique in the recording (actor index << 32 | the actor's count)
    step        int32, 0 at the episode's first observation
    action      int64, the action taken at this observation; -1 on the last observation of
                an episode (nothing is taken there)
    reward      float32, the reward that action got (as the agent saw it: Atari's training
                preset clips it to its sign)
    terminated  the action ended the episode (for Atari's training preset: a lost life, or
    truncated   the game's end), or the env's time limit cut it

Frames are single frames, not stacks: the agent's stacked observation at step t of an episode is
the frames of steps t-k+1 .. t, steps before 0 standing in for step 0 (how the preset's stack
is padded after every reset); ``stacked_observations`` rebuilds it. An episode the recording
cut short (the step budget ran out) ends with a row of action -1 and neither flag set.

Episodes, not frames, are split: every tenth episode of each actor (its 1st, 11th, ...) is in
``test``, the rest in ``train``; frames of one episode never appear on both sides.
The env id, preset and policy are also in each file's Parquet metadata (key ``rlgen.recording``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

RECORDING_FILE = "recording.json"
METADATA_KEY = b"rlgen.recording"
FORMAT_VERSION = 1
TEST_EVERY = 10  # episode k of an actor goes to the test split when k % TEST_EVERY == 0
NO_ACTION = -1
COLUMNS = (
    "image", "height", "width", "channels",
    "episode", "step", "action", "reward", "terminated", "truncated",
)  # fmt: skip


def split_of(local_episode: int) -> str:
    """The split of an actor's ``local_episode``-th episode (0, 1, ...)."""
    return "test" if local_episode % TEST_EVERY == 0 else "train"


def episode_id(actor: int, local_episode: int) -> int:
    return (actor << 32) | local_episode


def schema(metadata: dict[str, Any]) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("image", pa.binary()),
            ("height", pa.int32()),
            ("width", pa.int32()),
            ("channels", pa.int32()),
            ("episode", pa.int64()),
            ("step", pa.int32()),
            ("action", pa.int64()),
            ("reward", pa.float32()),
            ("terminated", pa.bool_()),
            ("truncated", pa.bool_()),
        ],
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()},
    )


class Rows:
    """Rows gathered for one row group: frames (uint8, H x W) and their episode columns."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.columns: dict[str, list] = {k: [] for k in COLUMNS[4:]}

    def __len__(self) -> int:
        return len(self.frames)

    def add(
        self, frames: np.ndarray, *, episode: int, first_step: int, actions: np.ndarray,
        rewards: np.ndarray, terminated: bool, truncated: bool, closed: bool,
    ) -> None:  # fmt: skip
        """Frames ``first_step ..`` of one episode: one per action, and with ``closed`` one
        more, the episode's last observation (action -1). ``terminated`` / ``truncated`` go
        on the last action's row."""
        n = len(actions)
        count = n + (1 if closed else 0)
        assert len(frames) >= count, (len(frames), count)
        cols = self.columns
        self.frames.extend(np.asarray(frames[:count], np.uint8))
        cols["episode"].extend([episode] * count)
        cols["step"].extend(range(first_step, first_step + count))
        cols["action"].extend(np.asarray(actions, np.int64).tolist() + [NO_ACTION] * (count - n))
        cols["reward"].extend(np.asarray(rewards, np.float32).tolist() + [0.0] * (count - n))
        for key, flag in (("terminated", terminated), ("truncated", truncated)):
            flags = [False] * count
            if n:
                flags[n - 1] = flag  # on the last action's row
            cols[key].extend(flags)

    def table(self, schema: Any) -> Any:
        import pyarrow as pa

        frames = self.frames
        h, w = frames[0].shape[:2]
        c = 1 if frames[0].ndim == 2 else frames[0].shape[2]
        n = len(frames)
        # One contiguous buffer and its offsets: no Python bytes object per frame.
        pixels = np.ascontiguousarray(np.stack(frames)).reshape(-1)
        size = pixels.size // n
        offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
        image = pa.BinaryArray.from_buffers(
            pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(pixels)]
        )
        data = {
            "image": image,
            "height": pa.array(np.full(n, h, np.int32)),
            "width": pa.array(np.full(n, w, np.int32)),
            "channels": pa.array(np.full(n, c, np.int32)),
            **{k: pa.array(v, type=schema.field(k).type) for k, v in self.columns.items()},
        }
        return pa.table(data, schema=schema)


class ShardWriter:
    """One Parquet file of a split, written a row group at a time under a hidden temporary
    name (readers skip names starting with ``.``) and renamed when closed."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.writer = pq.ParquetWriter(str(self.tmp), schema)
        self.rows = 0

    def write(self, rows: Rows) -> None:
        if len(rows):
            self.writer.write_table(rows.table(self.schema))
            self.rows += len(rows)

    def close(self) -> None:
        self.writer.close()
        if self.rows:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink()


def stacked_observations(frames: np.ndarray, steps: np.ndarray, k: int) -> np.ndarray:
    """One episode's stacked observations (T, k, H, W) from its frames (T, H, W) and their
    steps (any order): at step t the frames of steps t-k+1 .. t, oldest first, steps below 0
    replaced by step 0."""
    order = np.argsort(steps, kind="stable")
    frames, steps = frames[order], steps[order]
    if not np.array_equal(steps, np.arange(len(steps))):
        raise ValueError("the episode's steps are not 0, 1, ..., T-1")
    t = np.arange(len(steps))[:, None]
    index = np.maximum(t - np.arange(k - 1, -1, -1)[None, :], 0)
    return frames[index]
