"""DQN on CartPole-v1: learning rate, n-step, target period and replay ratio, ASHA.

Expect: the default config (double, dueling, 3-step, lr 5e-4) solves within the learning
test's budget (``algorithms/dqn/expected.py``); the search looks for fewer env steps to 475,
and a replay ratio of 1 costs about twice the wall time per env step of 0.5.
"""

from ray import tune

from algorithms.dqn.algorithm import DQNConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="dqn_cartpole",
    job="dqn",
    target="CartPole-v1",
    doc=__doc__ or "",
    space=rl_space(
        DQNConfig,
        lr=tune.loguniform(1e-4, 2e-3),
        n_step=tune.choice([1, 3]),
        target_update_period=tune.choice([100, 250, 500]),
        replay_ratio=tune.choice([0.25, 0.5, 1.0]),
    ),
    scheduler="asha",
    num_samples=8,
    max_env_steps=200_000,
)
