"""Pure helpers shared by the RL algorithms: returns, baselines, metric names."""
