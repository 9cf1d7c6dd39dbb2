"""A2C on Atari Breakout: Population Based Training over learning rate and entropy bonus.

Expect: a long run for a GPU cluster (4 trials of 5M env steps, 16 envs per trial). Every 25
iterations the worst quarter copies a top-quarter trial's weights and perturbs lr and entropy
bonus. On a 2-core laptop try it with ``--max-env-steps``; no figure from a full run yet.
"""

from ray import tune

from algorithms.a2c.algorithm import A2CConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="a2c_atari",
    job="a2c",
    target="ALE/Breakout-v5",
    doc=__doc__ or "",
    space=rl_space(
        A2CConfig,
        lr=tune.loguniform(2e-4, 2e-3),
        entropy_coeff=tune.choice([0.005, 0.01, 0.02]),
    ),
    scheduler="pbt",
    num_samples=4,
    max_env_steps=5_000_000,
    perturbation_interval=25,
    checkpoint_every=25,
)
