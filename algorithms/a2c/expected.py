"""Results to expect from A2C, imported by its learning test and the benchmark.

CartPole-v1, default config: the mean return of the last 100 episodes reaches 475 (the env's
reward_threshold) within 300k env steps on every one of seeds 0-7 (``bench/a2c.py``; figures in
the README). The learning test runs seed 0, fixed in advance, not picked by its result.
"""

CARTPOLE_MAX_ENV_STEPS = 300_000
LEARNING_TEST_SEED = 0
