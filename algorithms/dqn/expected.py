"""Results to expect from DQN, imported by its learning test.

CartPole-v1, default config, 100-game mean return >= 475 within 100k env steps (seed 0 needs
75k env steps, about 100 s on 2 CPU cores).
"""

CARTPOLE_MAX_ENV_STEPS = 100_000
