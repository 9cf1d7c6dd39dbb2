"""Results to expect, imported by the learning tests and the benchmark so prose and code agree.

CartPole-v1 with the value baseline and the default config reaches episode_return_mean >= 475
(the env's reward_threshold) within 200k env steps; seeds 1-3 needed 63k-120k on 2 CPU cores.
"""

CARTPOLE_SOLVED_RETURN = 475.0
CARTPOLE_VALUE_BASELINE_MAX_ENV_STEPS = 200_000
