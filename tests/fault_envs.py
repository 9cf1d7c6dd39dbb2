"""Envs that fail on purpose, for the fault tests; imported by gymnasium from the env id
``tests.fault_envs:Corridor-v0`` (in the rollout actors too).

``Corridor``: every game lasts exactly ``LENGTH`` steps with reward 1 per step, so every
finished game returns exactly ``LENGTH``; a partial game counted as finished would show as a
smaller return. Faults are armed by files in the directory named by the environment variable
``FAULT_DIR_ENV`` (read when the env is made, a link resolved then; no variable, or no such
directory: no faults, nothing written): a file ``<kind>-<k>`` is claimed (renamed, atomically,
so exactly one env anywhere takes it) by the next env to start a game, which at step ``k`` of
that game raises (``raise``), SIGKILLs its own process (``kill``), returns a NaN reward
(``nan``), or returns NaN rewards from then on, in every later game too (``nanforever``).
Every env writes its process id to ``pid-<pid>`` there when made, so a test can see which
processes stepped envs.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

LENGTH = 20
FAULT_DIR_ENV = "RLGEN_TEST_FAULT_DIR"

KINDS = ("raise", "kill", "nan", "nanforever")


class EnvFault(RuntimeError):
    """The injected failure."""


def arm(fault_dir: Path, kind: str, step: int, count: int = 1) -> None:
    """Arm ``count`` faults of ``kind`` (one of ``KINDS``) at step ``step`` of a game."""
    for i in range(count):
        (fault_dir / f"{kind}-{step}.{i}").write_text("")


def claimed(fault_dir: Path) -> list[str]:
    return sorted(p.name for p in fault_dir.glob("claimed-*"))


class Corridor(gym.Env):
    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        root = os.environ.get(FAULT_DIR_ENV)
        self.fault_dir = Path(root).resolve() if root else None
        if self.fault_dir is not None and self.fault_dir.is_dir():
            (self.fault_dir / f"pid-{os.getpid()}").write_text("")
        else:
            self.fault_dir = None
        self.t = 0
        self.fault: tuple[str, int] | None = None
        self.nan_forever = False

    def _obs(self) -> np.ndarray:
        x = self.t / LENGTH
        return np.array([x, 1.0 - x, 0.5 * x, -x], np.float32)

    def _claim(self) -> tuple[str, int] | None:
        if self.fault_dir is None:
            return None
        armed_now = [p for p in self.fault_dir.iterdir() if p.name.split("-")[0] in KINDS]
        for armed in sorted(armed_now):
            kind, _, rest = armed.name.partition("-")
            target = self.fault_dir / f"claimed-{os.getpid()}-{armed.name}"
            try:
                armed.rename(target)
            except FileNotFoundError:
                continue  # another env took it first
            return kind, int(rest.split(".")[0])
        return None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.fault = None if self.nan_forever else self._claim()
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        reward = math.nan if self.nan_forever else 1.0
        if self.fault is not None and self.t == self.fault[1]:
            kind = self.fault[0]
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == "raise":
                raise EnvFault(f"injected failure at step {self.t} of a game")
            reward = math.nan
            self.nan_forever = kind == "nanforever"
        return self._obs(), reward, self.t >= LENGTH, False, {}


gym.register("Corridor-v0", entry_point=f"{__name__}:Corridor", max_episode_steps=LENGTH + 5)
