"""Gymnasium env ids: checking them (ALE games included) with close-match hints."""

from __future__ import annotations

import difflib
import importlib

import gymnasium as gym

from runkit.errors import UserError, first_line

_ALE_REGISTERED = False
# The modules an env id may name (``package.module:EnvId``) that rlgen will import: only those a
# user named in a command or an API call (``permit_env_module``). An id read from a file, such
# as a checkpoint's run spec, never makes rlgen import anything.
_PERMITTED_MODULES: set[str] = set()
# "Solved" for CartPole-v1: the mean return of the last 100 games reaches its reward_threshold.
CARTPOLE_SOLVED_RETURN = float(gym.spec("CartPole-v1").reward_threshold or 475.0)


def register_ale() -> None:
    """Make the ``ALE/<Game>-v5`` ids known to gymnasium (ale-py ships its ROMs)."""
    global _ALE_REGISTERED
    if not _ALE_REGISTERED:
        import ale_py

        # The emulator's banner (its version, "Powered by Stella") on stderr at every first
        # game of a process: kept off the terminal, where a refused command prints one line.
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
        gym.register_envs(ale_py)
        _ALE_REGISTERED = True


def env_module(env_id: str) -> str | None:
    """The module a ``package.module:EnvId`` id names (None for a registered id)."""
    return env_id.rpartition(":")[0] or None


def permit_env_module(env_id_or_module: str) -> None:
    """Let ``check_env_id`` import this module (or the module this env id names): called with
    what the user gave on the command line or to the API, never with a value from a file."""
    module = env_module(env_id_or_module) if ":" in env_id_or_module else env_id_or_module
    if module:
        _PERMITTED_MODULES.add(module)


def module_permitted(env_id: str) -> bool:
    module = env_module(env_id)
    return module is None or module in _PERMITTED_MODULES


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """Return the gymnasium spec of ``env_id`` or raise a UserError naming close matches.
    ``package.module:EnvId`` (gymnasium's form for an env registered by importing a module, as
    ``gym.make`` accepts it) imports the module first, if the user named it
    (``permit_env_module``); rollout actors import it again."""
    if env_id.startswith("ALE/"):
        register_ale()
    module, _, name = env_id.rpartition(":")
    if module:
        if module not in _PERMITTED_MODULES:
            raise UserError(
                f"env {env_id}: rlgen imports the module {module} only when you name it "
                f"yourself (rlgen eval: --env-module {module})"
            )
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
            raise UserError(
                f"--env {env_id}: cannot import {module} ({type(exc).__name__}: {first_line(exc)})"
            ) from None
        env_id = name
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"--env {env_id}: unknown gymnasium environment id{hint}") from None
