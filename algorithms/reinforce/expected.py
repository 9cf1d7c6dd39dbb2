"""Results to expect, imported by the learning tests and the benchmark so prose and code agree.

CartPole-v1 with the value baseline and the default config reaches episode_return_mean >= 475
(the mean of the last 100 episodes; 475 is the env's reward_threshold) within 200k env steps;
seeds 0-2 needed 82k-120k env steps (86-134 s) on 2 CPU cores.
"""

CARTPOLE_SOLVED_RETURN = 475.0
CARTPOLE_VALUE_BASELINE_MAX_ENV_STEPS = 200_000
