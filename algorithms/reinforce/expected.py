"""Results to expect, imported by the learning tests and the benchmark so prose and code agree.

CartPole-v1 with the value baseline and the default config reaches episode_return_mean >= 475
(the mean of the last 100 episodes; 475 is the env's reward_threshold) within 200k env steps;
seeds 0-2 needed 181k, 116k and 176k env steps on 2 CPU cores (bench/reinforce_baselines.py).
"""

CARTPOLE_VALUE_BASELINE_MAX_ENV_STEPS = 200_000
