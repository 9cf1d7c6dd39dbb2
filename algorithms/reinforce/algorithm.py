"""REINFORCE Config and Algorithm (custom RLlib algorithm, new API stack)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_SAMPLING_TIMER, TIMERS

from algorithms.common import metrics as M
from algorithms.common import returns as mc
from algorithms.common.base import RlgenAlgorithm
from algorithms.common.config import RlgenConfig
from algorithms.common.pg_losses import ADVANTAGE_NORMALIZATIONS
from runkit.checks import BOOL, WIDTHS, choice, integer, number

BASELINES = ("none", "moving_average", "batch_mean", "value")
MA_STATE_KEY = "rlgen_moving_average_baseline"
# What ``advantage_normalization=auto`` means for each baseline: centring after a learned V(s)
# adds the batch's mean advantage as a second baseline (standard practice; on seeds 0-7 it
# took the median env steps to 475 from 187k, two seeds unsolved at 200k, to 122k, and with
# lr 0.005 to 89k: bench/reinforce_default.py); after a constant b it would replace b by the
# batch mean, so the constant baselines are scaled only and keep their meaning.
AUTO_NORMALIZATION = {
    "none": "scale",
    "moving_average": "scale",
    "batch_mean": "scale",
    "value": "centre_and_scale",
}


class ReinforceConfig(RlgenConfig):
    """Defaults solve CartPole-v1 (return >= 475) with the value baseline."""

    RULES = {
        "baseline": choice(*BASELINES),
        "episodes_per_batch": integer(1),
        "baseline_decay": number(0.0, 1.0, high_open=True),
        "vf_coeff": number(0.0),
        "entropy_coeff": number(0.0),
        "advantage_normalization": choice("auto", *ADVANTAGE_NORMALIZATIONS),
        "reward_to_go": BOOL,
        "bootstrap_truncated": BOOL,
        "model_hiddens": WIDTHS,
        "model_activation": choice("tanh", "relu"),
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or Reinforce)
        self.episodes_per_batch = 8
        self.baseline = "value"
        self.reward_to_go = True
        self.baseline_decay = 0.9
        self.bootstrap_truncated = True
        self.advantage_normalization = "auto"
        self.vf_coeff = 1.0
        self.entropy_coeff = 0.0
        # AlgorithmConfig fields with REINFORCE defaults.
        # 0.005: with centring after V(s), the median env steps to 475 over seeds 0-7 went
        # from 122k (0.003) to 89k, all eight solving (bench/reinforce_default.py).
        self.lr = 0.005
        self.gamma = 0.99
        self.grad_clip = None
        self.grad_clip_by = "global_norm"
        self.num_env_runners = 0
        self.batch_mode = "complete_episodes"
        self.model_hiddens = [64, 64]
        self.model_activation = "tanh"

    def training(
        self,
        *,
        episodes_per_batch: int | Any = NotProvided,
        baseline: str | Any = NotProvided,
        reward_to_go: bool | Any = NotProvided,
        baseline_decay: float | Any = NotProvided,
        bootstrap_truncated: bool | Any = NotProvided,
        advantage_normalization: str | Any = NotProvided,
        vf_coeff: float | Any = NotProvided,
        entropy_coeff: float | Any = NotProvided,
        model_hiddens: list[int] | Any = NotProvided,
        model_activation: str | Any = NotProvided,
        **kwargs: Any,
    ) -> ReinforceConfig:
        """REINFORCE settings (plus every ``AlgorithmConfig.training`` argument).

        Args:
            episodes_per_batch: complete episodes per gradient step, split over the rollout
                actors as evenly as possible (none lost when the count does not divide).
            baseline: ``none``, ``moving_average`` (one constant b, an exponential moving
                average of earlier batches' returns), ``batch_mean`` (the mean return of the
                batch itself, over every Learner) or ``value`` (learned V(s)).
            reward_to_go: weight log pi(a_t|s_t) by the return from t on (True) or by the
                whole episode's return (False).
            baseline_decay: the moving average's decay, in [0, 1).
            bootstrap_truncated: add gamma^(T-t) V(s_T) to the returns of truncated episodes
                (value baseline only).
            advantage_normalization: ``none``; ``scale`` (divide G_t - b by its root mean
                square over the batch: never centred, so every baseline keeps its meaning);
                ``centre_and_scale`` (subtract the batch mean of G_t - b, divide by the batch
                std: one more baseline on top of b); ``auto`` (the default):
                ``centre_and_scale`` with the value baseline, ``scale`` with the others.
            vf_coeff: weight of the value regression loss, mean_t (V(s_t) - G_t)^2.
            entropy_coeff: weight of the entropy bonus (subtracted from the loss).
            model_hiddens: hidden layer widths of the policy and value MLPs.
            model_activation: ``tanh`` or ``relu``.
        """
        self._set_given(dict(locals()))
        return self

    def validate(self) -> None:
        super().validate()
        if self.episodes_per_batch < self.num_learners:
            raise ValueError(
                f"episodes_per_batch={self.episodes_per_batch} is out of range: must be >= "
                f"num_learners={self.num_learners} (each Learner trains on whole episodes)"
            )

    def normalization(self) -> str:
        """The advantage normalization the Learner applies (``auto`` resolved by baseline)."""
        if self.advantage_normalization == "auto":
            return AUTO_NORMALIZATION[self.baseline]
        return self.advantage_normalization

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from algorithms.reinforce.module import ReinforceTorchRLModule

        return RLModuleSpec(
            module_class=ReinforceTorchRLModule,
            model_config={
                "hiddens": list(self.model_hiddens),
                "activation": self.model_activation,
                "value_head": self.baseline == "value",
            },
        )

    def get_default_learner_class(self) -> type:
        from algorithms.reinforce.learner import ReinforceTorchLearner

        return ReinforceTorchLearner


def split_evenly(total: int, parts: int) -> list[int]:
    """``split_evenly(10, 3) == [4, 3, 3]``: every unit assigned, sizes differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _sample_episodes(runner: Any, *, num_episodes: int) -> tuple[list, dict]:
    if num_episodes == 0:
        return [], runner.get_metrics()
    return runner.sample(num_episodes=num_episodes), runner.get_metrics()


def _sample_calls(missing: int, actors: int) -> list:
    """One ``_sample_episodes`` call per healthy actor, sharing ``missing`` episodes evenly."""
    return [partial(_sample_episodes, num_episodes=n) for n in split_evenly(missing, actors)]


class Reinforce(RlgenAlgorithm):
    @classmethod
    def get_default_config(cls) -> ReinforceConfig:
        return ReinforceConfig()

    def setup(self, config: Any) -> None:
        super().setup(config)
        self.moving_average_baseline: float | None = None

    def _sample_complete_episodes(self) -> tuple[list, list]:
        """``episodes_per_batch`` complete, on-policy episodes from all rollout actors."""
        group = self.env_runner_group
        if group.num_remote_workers() == 0:
            runner = self.env_runner
            return runner.sample(num_episodes=self.config.episodes_per_batch), [
                runner.get_metrics()
            ]
        episodes: list = []
        stats: list = []
        # A rollout actor that fails mid-batch returns nothing (its partial episode is lost);
        # the healthy ones make up its share, so every batch has episodes_per_batch episodes.
        while (missing := self.config.episodes_per_batch - len(episodes)) > 0:
            results = self.sample_remote(partial(_sample_calls, missing))
            episodes += [e for eps, _ in results for e in eps]
            stats += [s for _, s in results]
        return episodes, stats

    def training_step(self) -> None:
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self._sample_complete_episodes()
        self.record_sampling(episodes, runner_metrics)

        if self.config.baseline == "moving_average":
            b = 0.0 if self.moving_average_baseline is None else self.moving_average_baseline
            for call in self.learner_group.foreach_learner(
                lambda learner: learner.set_moving_average_baseline(b)
            ):
                if not call.ok:
                    raise call.get()

        self.update_learners(episodes)

        if self.config.baseline == "moving_average":
            # Update b only after the step: b never depends on the batch it is subtracted from.
            batch_returns = np.concatenate(
                [
                    mc.episode_returns(
                        e.get_rewards(),
                        gamma=self.config.gamma,
                        reward_to_go=self.config.reward_to_go,
                    )
                    for e in episodes
                ]
            )
            self.moving_average_baseline = mc.moving_average(
                self.moving_average_baseline,
                float(batch_returns.mean()),
                decay=self.config.baseline_decay,
            )
            self.metrics.log_value(
                M.MOVING_AVERAGE_BASELINE, self.moving_average_baseline, window=1
            )

        self.broadcast_weights()

    def get_state(self, *args: Any, **kwargs: Any) -> dict:
        state = super().get_state(*args, **kwargs)
        state[MA_STATE_KEY] = self.moving_average_baseline
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if MA_STATE_KEY in state:
            self.moving_average_baseline = state[MA_STATE_KEY]
