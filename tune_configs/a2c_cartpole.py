"""A2C on CartPole-v1: learning rate, entropy bonus, GAE lambda and rollout length, ASHA.

Expect: the default config (RMSprop lr 7e-4, 8 envs x 5 steps, lambda 1) reaches 475 within
300k env steps on each of seeds 0-7 (``algorithms/a2c/expected.py``); the search looks for a
config that solves in fewer env steps. bench/tune.py reports its best next to the defaults.
"""

from ray import tune

from algorithms.a2c.algorithm import A2CConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="a2c_cartpole",
    job="a2c",
    target="CartPole-v1",
    doc=__doc__ or "",
    space=rl_space(
        A2CConfig,
        lr=tune.loguniform(2e-4, 3e-3),
        entropy_coeff=tune.choice([0.0, 0.01]),
        lambda_=tune.choice([0.95, 1.0]),
        rollout_fragment_length=tune.choice([5, 10]),
    ),
    scheduler="asha",
    num_samples=8,
    max_env_steps=300_000,
)
