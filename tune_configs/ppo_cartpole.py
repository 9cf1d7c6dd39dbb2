"""PPO on CartPole-v1: learning rate, clip, epochs per batch and GAE lambda, ASHA.

Expect: the default config (16 envs x 64 steps, 5 epochs of 2 minibatches of 512, Adam 3e-3
and clip 0.2 both linear to 0 at 300k env steps, lambda 0.8) reaches 475 in 87k-154k env steps
on seeds 0-7 (``bench/ppo.py``); the search looks for a config that solves in fewer. The lr and
clip candidates are fixed numbers (no schedule).
"""

from ray import tune

from algorithms.ppo.algorithm import PPOConfig
from tune_configs.spaces import rl_space
from tuning.experiment import Experiment

EXPERIMENT = Experiment(
    name="ppo_cartpole",
    job="ppo",
    target="CartPole-v1",
    doc=__doc__ or "",
    space=rl_space(
        PPOConfig,
        lr=tune.loguniform(1e-3, 6e-3),
        clip_param=tune.choice([0.1, 0.2, 0.3]),
        num_epochs=tune.choice([3, 5, 10]),
        lambda_=tune.choice([0.8, 0.95]),
    ),
    scheduler="asha",
    num_samples=8,
    max_env_steps=300_000,
)
