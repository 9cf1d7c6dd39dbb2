"""PPO on Atari Breakout: Population Based Training over learning rate, clip and entropy bonus.

Expect: a long run for a GPU cluster (4 trials of 10M env steps, the Atari preset's 8 envs x
128 steps per trial). Every 25 iterations the worst quarter copies a top-quarter trial's
weights and perturbs lr, clip and entropy bonus (fixed numbers here, where the preset anneals
lr and clip). On a 2-core laptop try it with ``--max-env-steps``; no figure from a full run yet.
"""

from ray import tune

from algorithms.ppo.algorithm import PPOConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="ppo_atari",
    job="ppo",
    target="ALE/Breakout-v5",
    doc=__doc__ or "",
    space=rl_space(
        PPOConfig,
        lr=tune.loguniform(1e-4, 5e-4),
        clip_param=tune.choice([0.1, 0.2]),
        entropy_coeff=tune.choice([0.005, 0.01, 0.02]),
    ),
    scheduler="pbt",
    num_samples=4,
    max_env_steps=10_000_000,
    perturbation_interval=25,
    checkpoint_every=25,
)
