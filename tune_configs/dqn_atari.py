"""DQN on Atari Breakout: Population Based Training over learning rate and n-step.

Expect: a long run for a GPU cluster (4 trials of 2M env steps; Nature-DQN figures need ~10M).
Every 50 iterations the worst quarter copies a top-quarter trial's weights and perturbs its lr
(x0.8 or x1.2). On a 2-core laptop one trial runs at a time at a few dozen env steps/s: try it
with ``--max-env-steps``; no figure from a full run yet.
"""

from ray import tune

from algorithms.dqn.algorithm import DQNConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="dqn_atari",
    job="dqn",
    target="ALE/Breakout-v5",
    doc=__doc__ or "",
    space=rl_space(
        DQNConfig,
        lr=tune.loguniform(3e-5, 3e-4),
        n_step=tune.choice([1, 3]),
        target_update_period=tune.choice([1_000, 2_000]),
    ),
    scheduler="pbt",
    num_samples=4,
    max_env_steps=2_000_000,
    perturbation_interval=50,
    checkpoint_every=50,
)
