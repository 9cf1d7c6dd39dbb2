"""The return every algorithm reports: the mean of the last 100 finished games.

RLlib 2.60's ``episode_return_mean`` averages only the episodes finished in the current
iteration (one noisy episode for an off-policy algorithm that samples a few hundred steps), and
for Atari training envs it would see clipped rewards and per-life episodes. The Algorithm-side
window here reads the true game return that ``envs.GameStatistics`` puts into the last info of
each game, so it is the unclipped full-game return whatever the wrappers do.
"""

from __future__ import annotations

import collections
import math
from typing import Any

WINDOW = 100
GAMES_STATE_KEY = "rlgen_game_returns"  # where algorithms keep the window in checkpoints


def game_return(episode: Any) -> float | None:
    """The finished game's return from an RLlib episode (chunk), or None if no game ended.

    Uses ``info["game_return"]`` where the env reports it; otherwise, for a complete episode
    (from t=0 to its end, in one piece), the sum of its rewards.
    """
    if not episode.is_done:
        return None
    info = episode.get_infos(-1)
    if isinstance(info, dict) and "game_return" in info:
        return float(info["game_return"])
    if episode.t_started == 0 and not info_says_life_only(info):
        return float(sum(episode.get_rewards()))
    return None


def info_says_life_only(info: Any) -> bool:
    """Atari training episodes end on a life loss; their reward sums are not game returns."""
    return isinstance(info, dict) and info.get("lives", 0) > 0


class ReturnWindow:
    def __init__(self, size: int = WINDOW) -> None:
        self.returns: collections.deque[float] = collections.deque(maxlen=size)
        self.games = 0

    def add(self, episodes: list[Any]) -> None:
        for episode in episodes:
            value = game_return(episode)
            if value is not None:
                self.returns.append(value)
                self.games += 1

    @property
    def mean(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else math.nan

    def metrics(self) -> dict[str, float]:
        return {"game_return_mean": self.mean, "games_completed": float(self.games)}

    def get_state(self) -> dict:
        return {"returns": list(self.returns), "games": self.games}

    def set_state(self, state: dict) -> None:
        self.returns.clear()
        self.returns.extend(state["returns"])
        self.games = state["games"]
