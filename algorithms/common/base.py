"""What every rlgen algorithm shares around its own ``training_step``: the window of the last 100
game returns (kept in checkpoints), and the update and broadcast steps of a round (REINFORCE
and A2C update through the Learners' connectors; DQN updates from its replay itself)."""

from __future__ import annotations

import time
from typing import Any

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from algorithms.common.data_parallel import WholeEpisodes
from algorithms.common.episodes import GAMES_STATE_KEY, ReturnWindow


class RlgenAlgorithm(Algorithm):
    # Set by ``Algorithm.setup`` on the new API stack (Optional in RLlib's annotations); the
    # config is the algorithm's own RlgenConfig subclass.
    config: Any
    metrics: Any
    learner_group: Any
    env_runner_group: Any

    def setup(self, config: Any) -> None:
        super().setup(config)
        self.game_returns = ReturnWindow()

    def healthy_runner_ids(self) -> list[int]:
        """The rollout actors able to sample now. A failed actor is restarted by Ray and
        brought back (weights and state synced) by RLlib before each training step; when none
        is healthy, wait for one to come back (up to ``env_runner_restore_timeout_s``) rather
        than train on nothing."""
        group = self.env_runner_group
        deadline = time.monotonic() + self.config.env_runner_restore_timeout_s
        while not (ids := group.healthy_worker_ids()):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no rollout actor came back within {self.config.env_runner_restore_timeout_s}"
                    " s (env_runner_restore_timeout_s)"
                )
            time.sleep(0.5)
            self.restore_env_runners(group)
        return list(ids)

    def record_sampling(self, episodes: list[Any], runner_metrics: list[dict]) -> None:
        """Fold the rollout actors' metrics in and count the games that ended."""
        self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        self.game_returns.add(episodes)
        self.metrics.log_dict(self.game_returns.metrics(), window=1)

    def update_learners(self, episodes: list[Any]) -> None:
        """One ``LearnerGroup.update`` on the episodes (the Learners' connectors build the
        batch), with the lifetime env-step count that schedules read. Several Learners each
        get whole episodes (``WholeEpisodes``): returns never stop at a shard boundary."""
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            results = self.learner_group.update(
                training_data=WholeEpisodes(episodes=episodes),
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                        (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0
                    )
                },
            )
        self.metrics.aggregate(results, key=LEARNER_RESULTS)

    def broadcast_weights(self) -> None:
        """The Learner's new weights to every rollout actor (their inference-only part)."""
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, inference_only=True
            )

    def get_state(self, *args: Any, **kwargs: Any) -> dict:
        state = super().get_state(*args, **kwargs)
        state[GAMES_STATE_KEY] = self.game_returns.get_state()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if GAMES_STATE_KEY in state:
            self.game_returns.set_state(state[GAMES_STATE_KEY])
