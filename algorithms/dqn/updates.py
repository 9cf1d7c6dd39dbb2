"""A replay sample into DQN's gradient steps, on one Learner or on several data-parallel ones;
each row's TD error comes back in the sample's row order (for the priorities)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from algorithms.dqn.learner import DISCOUNT, NEXT_OBS, RETURNS, TD_ERROR, WEIGHTS


def update_from_sample(
    learner_group: Any,
    sample: Any,
    count: int,
    env_steps: int,
    *,
    num_learners: int,
    batch_size: int,
) -> tuple[list, np.ndarray]:
    """``count`` gradient steps on consecutive slices of the sample (a ``ReplayBatch``);
    (results, TD errors in the sample's row order). ``batch_size``: rows per Learner and step
    with several Learners (one Learner takes the sample's rows / ``count`` per step)."""
    columns = {
        Columns.OBS: sample.obs,
        Columns.ACTIONS: sample.actions,
        NEXT_OBS: sample.next_obs,
        RETURNS: sample.returns,
        DISCOUNT: sample.bootstrap_discount,
        WEIGHTS: sample.weights,
    }
    timesteps = {NUM_ENV_STEPS_SAMPLED_LIFETIME: env_steps}
    if num_learners <= 1:  # one Learner (local or remote, e.g. on a GPU): tight loop
        size = len(sample.actions) // count
        [call] = learner_group.foreach_learner(
            lambda learner: learner.update_from_replay(
                columns, minibatch_size=size, timesteps=timesteps
            )
        )
        result, td = call.get()  # re-raises a Learner's error
        return [result], td
    # Several DDP Learners: update j takes rows [j*W*B, (j+1)*W*B) of the sample, Learner i
    # the i-th B rows of them, so each gradient step averages the same rows one Learner
    # would take with a minibatch of W*B.
    learners, size = num_learners, batch_size
    layout = np.arange(count * learners * size).reshape(count, learners, size)
    batches = [
        MultiAgentBatch(
            {
                DEFAULT_MODULE_ID: SampleBatch(
                    {k: v[layout[:, i].reshape(-1)] for k, v in columns.items()}
                )
            },
            env_steps=count * size,
        )
        for i in range(learners)
    ]
    results = learner_group.update(
        batches=batches,
        timesteps=timesteps,
        minibatch_size=size,
        num_epochs=1,
        shuffle_batch_per_epoch=False,
    )
    td = np.empty(len(sample.actions), dtype=np.float64)
    for i, result in enumerate(results):  # one result per Learner, in Learner order
        series = result[DEFAULT_MODULE_ID].pop(TD_ERROR).peek()
        td[layout[:, i].reshape(-1)] = np.concatenate(
            [np.asarray(t, dtype=np.float64).reshape(-1) for t in series]
        )
    return results, td
