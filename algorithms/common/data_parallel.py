"""Several data-parallel Learners that compute exactly the update one Learner would.

RLlib runs ``num_learners > 1`` as torch DDP: each Learner gets a shard of the batch, and the
gradients are averaged over the Learners. Two things break that for on-policy returns:

- RLlib's episode sharding cuts episodes in two to balance the shards. A Monte-Carlo return or
  a GAE(lambda) sum over the first piece then misses the rewards of the second. ``WholeEpisodes``
  shards whole episodes (balanced by length, longest first) instead.
- Whole episodes give shards of unequal size, and the mean of per-shard means is not the batch
  mean. ``BatchStats`` reduces over the whole batch: each Learner's loss is its share of the
  batch mean, sum_(i in shard) l_i * W / N (W Learners, N steps in all), so DDP's average over
  the W Learners is sum_i l_i / N; batch statistics (the std that scales advantages, the batch
  mean baseline) are summed over every Learner with one all-reduce.

With one Learner (W = 1) every function here is the plain local computation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from ray.rllib.core.learner.training_data import TrainingData


def world_size() -> int:
    """Learners in the DDP group (1 when there is no group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This Learner's rank in the DDP group (0 when there is no group)."""
    return dist.get_rank() if world_size() > 1 else 0


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``x`` over every Learner (a detached copy; ``x`` itself as is
    when there is one Learner)."""
    if world_size() == 1:
        return x.detach()
    total = x.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


class BatchStats:
    """Reductions over the whole batch, wherever its rows are (see the module docstring).

    Every Learner must build one per update step and call the same methods in the same order:
    each call is one collective over the DDP group.
    """

    def __init__(self, num_rows: int, device: torch.device | str) -> None:
        self.world = world_size()
        self.device = device
        self.num_rows = float(all_sum(torch.tensor(float(num_rows), device=device)))

    def share_of_mean(self, x_B: torch.Tensor) -> torch.Tensor:
        """This Learner's share of the batch mean (differentiable): the shares averaged over the
        Learners, as DDP averages gradients, give mean_i x_i over the whole batch."""
        return x_B.sum() * (self.world / self.num_rows)

    def mean(self, x_B: torch.Tensor) -> torch.Tensor:
        """The batch mean of ``x_B`` (detached), the same on every Learner."""
        return all_sum(x_B.detach().sum().reshape(1))[0] / self.num_rows

    def std(self, x_B: torch.Tensor) -> torch.Tensor:
        """The batch standard deviation (unbiased, as ``torch.std``; detached); 0 for one row."""
        x = x_B.detach().double()
        sums = all_sum(torch.stack([x.sum(), x.pow(2).sum()]))
        n = self.num_rows
        if n < 2:
            return torch.zeros((), dtype=x_B.dtype, device=x_B.device)
        var = (sums[1] - sums[0] ** 2 / n) / (n - 1)
        return var.clamp_min(0.0).sqrt().to(x_B.dtype)


def shard_whole_episodes(episodes: list[Any], num_shards: int) -> list[list[Any]]:
    """Split episodes into ``num_shards`` lists, never cutting one: longest first into the
    shard with the fewest steps so far. Every shard gets at least one episode (callers
    ensure there are at least ``num_shards``)."""
    if len(episodes) < num_shards:
        raise ValueError(
            f"{len(episodes)} episodes cannot feed {num_shards} Learners: every Learner needs "
            f"at least one episode per update"
        )
    shards: list[list[Any]] = [[] for _ in range(num_shards)]
    steps = [0] * num_shards
    for episode in sorted(episodes, key=len, reverse=True):
        # An empty shard first (so none stays empty), else the one with the fewest steps.
        k = min(range(num_shards), key=lambda s: (len(shards[s]) > 0, steps[s]))
        shards[k].append(episode)
        steps[k] += len(episode)
    return shards


class WholeEpisodes(TrainingData):
    """Training data that RLlib's ``LearnerGroup.update`` shards into whole episodes."""

    def shard(self, num_shards: int, len_lookback_buffer: int | None = None, **kwargs: Any):
        if self.episodes is None:
            return super().shard(num_shards, len_lookback_buffer, **kwargs)
        return [
            (TrainingData(episodes=part), {})
            for part in shard_whole_episodes(self.episodes, num_shards)
        ]


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every Learner, in rank order (``[obj]`` when there is one Learner)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
