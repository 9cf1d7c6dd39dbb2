"""What every rlgen algorithm shares around its own ``training_step``: the window of the last 100
game returns (kept in checkpoints), and the update and broadcast steps of a round (REINFORCE
and A2C update through the Learners' connectors; DQN updates from its replay itself)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core import DEFAULT_MODULE_ID
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
from algorithms.rllib_compat import (
    copy_weights_seq_no,
    local_learner,
    update_learner_group,
    wrap_metrics_compile,
    wrap_metrics_peek,
)

SAMPLED_LIFETIME = (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)


def copy_local_weights(learner: Any, runner: Any) -> bool:
    """Copy the local Learner's module tensors into the local EnvRunner's (inference-only)
    module and advance its weights number as a sync would; False (nothing copied) where the
    runner's module has a tensor the Learner's lacks under the same name and shape."""
    source = learner.module[DEFAULT_MODULE_ID].unwrapped().state_dict(keep_vars=True)
    target = runner.module.state_dict(keep_vars=True)
    if any(k not in source or source[k].shape != v.shape for k, v in target.items()):
        return False
    with torch.no_grad():
        for key, tensor in target.items():
            tensor.copy_(source[key])
    copy_weights_seq_no(learner, runner)
    return True


class RlgenAlgorithm(Algorithm):
    # Set by ``Algorithm.setup`` on the new API stack (Optional in RLlib's annotations); the
    # config is the algorithm's own RlgenConfig subclass.
    config: Any
    metrics: Any
    learner_group: Any
    env_runner_group: Any

    # Sampling in this process (0 rollout actors): the EnvRunner's metrics are reduced once per
    # iteration, not after every round (see ``sampled_locally``).
    defer_local_runner_metrics = True

    def setup(self, config: Any) -> None:
        super().setup(config)
        self.game_returns = ReturnWindow()
        # A local Learner's and a local EnvRunner's metrics are reduced once per iteration,
        # not after every round: RLlib compiles the iteration's results with
        # ``self.metrics.compile()``, and their pending results are folded in first.
        self._learner_results_pending = False
        self._unreported_env_steps = 0
        wrap_metrics_compile(self.metrics, before=self.fold_in_pending_results)
        # RLlib's iteration loop (and the Learners' schedules) read the lifetime env-step
        # count between rounds: it includes the steps not yet folded in.
        wrap_metrics_peek(self.metrics, SAMPLED_LIFETIME, pending=self.unreported_env_steps)

    def unreported_env_steps(self) -> int:
        """Env steps sampled in this process and not yet folded into the metrics."""
        return self._unreported_env_steps

    def fold_in_pending_results(self) -> None:
        """The deferred metrics of this process's EnvRunner and Learner into the iteration's
        results (run as RLlib compiles them)."""
        self.fold_in_runner_results()
        self.fold_in_learner_results()

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

    def sample_remote(self, make_call: Callable[[int], Any]) -> list[Any]:
        """``make_call(number of healthy actors)`` run on every healthy rollout actor (one
        callable for all, or a list with one per actor); the results of the calls that came
        back. When none came back (every actor in service failed mid-call, e.g. the only one
        was killed while another was still being replaced), wait for one to be back and sample
        again rather than end a round without steps; up to
        ``num_consecutive_env_runner_failures_tolerance`` times in a row, then raise."""
        group = self.env_runner_group
        tries = max(1, self.config.num_consecutive_env_runner_failures_tolerance)
        for _ in range(tries):
            ids = self.healthy_runner_ids()
            results = group.foreach_env_runner(
                make_call(len(ids)), local_env_runner=False, remote_worker_ids=ids
            )
            if results:
                return list(results)
        raise RuntimeError(
            f"every rollout actor's sample call failed, {tries} times in a row "
            "(num_consecutive_env_runner_failures_tolerance)"
        )

    def sampled_locally(self, runner: Any, episodes: list[Any]) -> list[dict]:
        """The metrics of a sample call in this process, for ``record_sampling``: the runner's
        own (reduced now), or none where they are deferred to the iteration's end (the runner
        keeps logging; reducing its metrics every round cost as much as the policy's forward
        passes of a small CartPole round). Deferred only where RLlib's loop counts env steps
        (the call's steps are counted here until then) and ends no iteration on trained
        steps (see ``update_learners``)."""
        if not (
            self.defer_local_runner_metrics
            and self.config.count_steps_by == "env_steps"
            and not self.config.min_train_timesteps_per_iteration
        ):
            return [runner.get_metrics()]
        self._unreported_env_steps += sum(len(e) for e in episodes)
        return []

    def fold_in_runner_results(self) -> None:
        """Reduce the local EnvRunner's metrics of the rounds since the last call into this
        iteration's results."""
        if self._unreported_env_steps:
            self._unreported_env_steps = 0
            self.metrics.aggregate([self.env_runner.get_metrics()], key=ENV_RUNNER_RESULTS)

    def record_sampling(self, episodes: list[Any], runner_metrics: list[dict]) -> None:
        """Fold the rollout actors' metrics in and count the games that ended."""
        if runner_metrics:
            self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        self.game_returns.add(episodes)
        self.metrics.log_dict(self.game_returns.metrics(), window=1)

    def update_learners(self, episodes: list[Any]) -> None:
        """One ``LearnerGroup.update`` on the episodes (the Learners' connectors build the
        batch), with the lifetime env-step count that schedules read. Several Learners each
        get whole episodes (``WholeEpisodes``): returns never stop at a shard boundary."""
        # RLlib's iteration loop reads the trained-step count between rounds only when
        # ``min_train_timesteps_per_iteration`` is set; then every round is folded in at once.
        local = self.learner_group.is_local and not self.config.min_train_timesteps_per_iteration
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            results = update_learner_group(
                self.learner_group,
                training_data=WholeEpisodes(episodes=episodes),
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                        (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0
                    )
                },
                reduce_metrics=not local,  # local: reduced once per iteration instead
            )
        if local:
            self._learner_results_pending = True
        else:
            self.metrics.aggregate(results, key=LEARNER_RESULTS)

    def fold_in_learner_results(self) -> None:
        """Reduce the local Learner's metrics of the rounds since the last call into this
        iteration's results (sums summed over the rounds, window-1 values the last round's,
        as when each round's results were aggregated one by one)."""
        if self._learner_results_pending:
            self._learner_results_pending = False
            results = local_learner(self.learner_group).metrics.reduce()
            self.metrics.aggregate([results], key=LEARNER_RESULTS)

    def broadcast_weights(self) -> None:
        """The Learner's new weights to every rollout actor (their inference-only part).

        Sampling in this process from a Learner in this process (0 rollout actors, 0 remote
        Learners) copies the tensors straight across; RLlib's sync would gather the state into
        numpy, put it into the object store and load it back, every round."""
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            group = self.env_runner_group
            if group.num_remote_workers() == 0 and self.learner_group.is_local:
                if copy_local_weights(local_learner(self.learner_group), self.env_runner):
                    return
            group.sync_weights(from_worker_or_learner_group=self.learner_group, inference_only=True)

    def get_state(self, *args: Any, **kwargs: Any) -> dict:
        state = super().get_state(*args, **kwargs)
        state[GAMES_STATE_KEY] = self.game_returns.get_state()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if GAMES_STATE_KEY in state:
            self.game_returns.set_state(state[GAMES_STATE_KEY])
