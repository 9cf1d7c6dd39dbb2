"""Custom RLlib algorithms (new API stack): REINFORCE with baselines, DQN, A2C,
PPO.

``ALGORITHMS`` maps the CLI name to the import path of the algorithm's Config class, so the CLI
can validate a name without importing RLlib.
"""

ALGORITHMS = {
    "reinforce": "algorithms.reinforce.algorithm:ReinforceConfig",
    "dqn": "algorithms.dqn.algorithm:DQNConfig",
    "a2c": "algorithms.a2c.algorithm:A2CConfig",
    "ppo": "algorithms.ppo.algorithm:PPOConfig",
}
