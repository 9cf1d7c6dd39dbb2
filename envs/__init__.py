"""Environments: checking gymnasium ids (ALE games included) and registering them for RLlib
and Tune under stable names, ``rlgen/<gymnasium id>`` (e.g. ``rlgen/ALE/Breakout-v5``).

Every env built through these names reports its true, unclipped return in ``info["game_return"]``
on the step where the game ends (``GameStatistics``), which the algorithms average over the last
100 games. ALE ids get the DeepMind/Machado preset of ``envs/atari.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from envs.ids import check_env_id, module_permitted, permit_env_module, register_ale
from envs.statistics import GameStatistics, VectorGameStatistics

__all__ = [
    "GameStatistics",
    "check_env_id",
    "has_vector_backend",
    "make_env",
    "module_permitted",
    "permit_env_module",
    "register_ale",
    "rllib_env_name",
]

PREFIX = "rlgen/"
# The Atari preset's options, as config keys of every algorithm and as ``env_config`` keys.
PRESET_OPTIONS = ("frame_stack", "sticky_actions")


def make_env(env_config: dict[str, Any]) -> gym.Env | gym.vector.VectorEnv:
    """The env for ``env_config["env_id"]``: the Atari preset for ALE ids (options
    ``training``, ``frame_stack``, ``sticky_actions``), else the plain gymnasium env; both with
    ``GameStatistics`` (innermost for Atari, so it sees raw rewards and whole games).
    ``backend="vector"`` with ``num_envs`` (RLlib's vector entry point) gives a vector env
    instead: ale-py's C++ one with the same preset for ALE ids, else the env's own gymnasium
    vector implementation (``has_vector_backend``; CartPole-v1's steps all envs in numpy)."""
    env_id = env_config["env_id"]
    if env_config.get("backend") == "vector" and "num_envs" in env_config:
        if not env_id.startswith("ALE/"):
            vector = gym.make_vec(
                env_id, env_config["num_envs"], vectorization_mode="vector_entry_point"
            )
            if vector.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.NEXT_STEP:
                raise ValueError(f"{env_id}'s vector env does not reset on the next step")
            return VectorGameStatistics(vector)
        from envs.atari_vector import make_atari_vector_env

        return make_atari_vector_env(
            env_id,
            env_config["num_envs"],
            training=env_config.get("training", True),
            frame_stack=env_config.get("frame_stack", 4),
            sticky_actions=env_config.get("sticky_actions", 0.0),
        )
    if env_id.startswith("ALE/"):
        from envs.atari import make_atari_env

        return make_atari_env(
            env_id,
            training=env_config.get("training", True),
            frame_stack=env_config.get("frame_stack", 4),
            sticky_actions=env_config.get("sticky_actions", 0.0),
            render_mode=env_config.get("render_mode"),
        )
    return GameStatistics(
        gym.make(
            env_id,
            render_mode=env_config.get("render_mode"),
            disable_env_checker=ships_with_gymnasium(env_id),
        )
    )


def ships_with_gymnasium(env_id: str) -> bool:
    """Whether the env is one of gymnasium's own (CartPole, Pendulum, ...). gymnasium's tests
    check those against its API; its passive checker, a wrapper around every step of every
    env, is left off them (a tenth of a CartPole step) and kept on everything else."""
    try:  # "module:Env-v0" ids are registered only when gym.make imports their module
        entry_point = gym.spec(env_id).entry_point
    except gym.error.Error:
        return False
    return isinstance(entry_point, str) and entry_point.startswith("gymnasium.envs.")


def has_vector_backend(env_id: str) -> bool:
    """Whether ``rollout_backend=vector`` exists for ``env_id``: ALE games, and gymnasium envs
    registered with a vector entry point."""
    if env_id.startswith("ALE/"):
        return True
    spec = gym.spec(env_id)
    return spec.vector_entry_point is not None


def rllib_env_name(env_id: str, *, checked: bool = False) -> str:
    """Register ``env_id`` with Ray Tune / RLlib as ``rlgen/<env_id>`` and return that name;
    ``checked``: the caller has just checked the id (``check_env_id``)."""
    from ray.tune.registry import register_env

    if not checked:
        check_env_id(env_id)
    name = PREFIX + env_id
    register_env(name, lambda cfg, env_id=env_id: make_env({**cfg, "env_id": env_id}))
    return name


def register_all_atari() -> list[str]:
    """Register every ALE game (``rlgen/ALE/<Game>-v5``) for RLlib and Tune."""
    register_ale()
    return [rllib_env_name(i) for i in gym.registry if i.startswith("ALE/") and i.endswith("-v5")]
