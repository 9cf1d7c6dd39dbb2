"""From what a user asked for (``RLRunSpec``) to a checked RLlib AlgorithmConfig.

``build_config`` applies, in order: the Atari settings for ``ALE/`` envs, the runner counts and
seed, the user's ``--config`` / ``--set`` keys (each must be a settable config key), the env and
its options (``RlgenConfig.env_options``), the env's spaces (``check_spaces``), and
``validate()``. Every failure is a UserError naming the key or value, raised before a run
directory is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
from typing import Any

from algorithms import ALGORITHMS
from runkit.errors import UserError, first_line

DEFAULT_MAX_ENV_STEPS = 1_000_000


@dataclasses.dataclass
class RLRunSpec:
    """Everything an RL run was asked for; saved as run.json so ``--resume`` rebuilds it."""

    algorithm: str
    env: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_env_runners: int | None = None
    num_envs_per_env_runner: int | None = None
    seed: int | None = None
    stop_reward: float | None = None
    max_env_steps: int | None = None
    time_budget_s: float | None = None
    checkpoint_every: int = 10
    video_frames: int = 600  # greedy evaluation episode into TensorBoard at the end; 0 = none

    def fill_defaults(self) -> None:
        """The env's own ``reward_threshold`` as the stop reward; 1M env steps at most when no
        limit is given."""
        from envs import check_env_id

        if self.stop_reward is None:
            self.stop_reward = check_env_id(self.env).reward_threshold
        if self.max_env_steps is None and self.time_budget_s is None:
            self.max_env_steps = DEFAULT_MAX_ENV_STEPS


def config_class(algorithm: str) -> type:
    if algorithm not in ALGORITHMS:
        raise UserError(f"unknown algorithm {algorithm!r}: one of {', '.join(sorted(ALGORITHMS))}")
    module, _, name = ALGORITHMS[algorithm].partition(":")
    cls = getattr(importlib.import_module(module), name)
    # RLlib resets its loggers on import; keep its advice ("new API stack ...") off the terminal.
    for logger in ("ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    return cls


def settable_keys(config: Any) -> set[str]:
    """The config's plain data fields, plus properties with a setter (such as
    ``train_batch_size_per_learner``); deprecated names raise when read and are left out."""
    keys = {k for k, v in vars(config).items() if not k.startswith("_") and not callable(v)}
    for cls in type(config).__mro__:
        for name, attr in vars(cls).items():
            if isinstance(attr, property) and attr.fset is not None and not name.startswith("_"):
                try:
                    getattr(config, name)
                except Exception:  # noqa: BLE001 - a deprecated property raises on access
                    continue
                keys.add(name)
    return keys


def build_config(spec: RLRunSpec) -> Any:
    """The validated config (an ``RlgenConfig``), or a UserError naming the bad key or value."""
    import gymnasium as gym

    from envs import check_env_id, make_env, rllib_env_name

    check_env_id(spec.env)
    config = config_class(spec.algorithm)()
    if spec.env.startswith("ALE/"):
        config.atari_defaults()
    if spec.num_env_runners is not None:
        config.env_runners(num_env_runners=spec.num_env_runners)
    if spec.num_envs_per_env_runner is not None:
        config.env_runners(num_envs_per_env_runner=spec.num_envs_per_env_runner)
    if spec.seed is not None:
        config.debugging(seed=spec.seed)
    allowed = settable_keys(config)
    for key, value in spec.overrides.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"--set {key}: unknown {spec.algorithm} config key{hint}")
        try:
            setattr(config, key, value)
        except (AttributeError, TypeError, ValueError) as exc:
            raise UserError(f"--set {key}={value!r}: cannot be set ({first_line(exc)})") from None
    try:
        env_config = config.env_options(spec.env)
    except ValueError as exc:
        raise UserError(f"--set {exc}") from None
    if env_config.get("backend") == "vector":
        config.env_runners(gym_env_vectorize_mode=gym.VectorizeMode.VECTOR_ENTRY_POINT)
    config.environment(rllib_env_name(spec.env), env_config=env_config)
    env = make_env({"env_id": spec.env, **env_config})
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise UserError(f"--env {spec.env}: action space {act_space} is not Discrete or Box")
    try:
        config.check_spaces(obs_space, act_space)
    except ValueError as exc:
        raise UserError(f"--env {spec.env}: {exc}") from None
    try:
        config.validate()
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"invalid {spec.algorithm} config: {str(exc).splitlines()[0]}") from None
    return config
