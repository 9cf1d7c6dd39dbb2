"""REINFORCE on CartPole-v1: learning rate, batch of episodes and baseline, ASHA on env steps.

Expect: the default config (lr 0.005, 8 episodes per step, learned value baseline, advantages
centred and scaled) reaches the solved return of 475 within about 80k-115k env steps
(``algorithms/reinforce/expected.py``);
a trial that has not solved by 200k env steps is a worse config than the default. ASHA
(reduction factor 2) keeps the better half at 50k and 100k env steps.
"""

from ray import tune

from algorithms.reinforce.algorithm import ReinforceConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="reinforce_cartpole",
    job="reinforce",
    target="CartPole-v1",
    doc=__doc__ or "",
    space=rl_space(
        ReinforceConfig,
        lr=tune.loguniform(3e-4, 1e-2),
        episodes_per_batch=tune.choice([4, 8, 16]),
        baseline=tune.choice(["moving_average", "batch_mean", "value"]),
    ),
    scheduler="asha",
    num_samples=8,
    max_env_steps=200_000,
)
