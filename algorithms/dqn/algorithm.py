"""DQN Config and Algorithm (custom RLlib algorithm, new API stack).

The replay memory lives in the Algorithm process (``FrameReplay``: single uint8 frames, stacked
at sample time, n-step windows, optional prioritized sampling); env runners only act and return
episode chunks; the Learner gets ready-made batches (``updates.py``), so no learner connector
touches frames.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    TIMERS,
)

from algorithms.common import metrics as M
from algorithms.common.base import RlgenAlgorithm
from algorithms.common.config import ENCODER_RULES, MAX_BATCH, RlgenConfig, check_cnn_observations
from algorithms.common.schedules import linear_schedule
from algorithms.dqn.replay import FrameReplay
from algorithms.dqn.updates import update_from_sample
from runkit.checks import BOOL, WIDTHS, choice, integer, items, number

REPLAY_STATE_KEY = "rlgen_replay"

# Settings close to Mnih et al. 2015 / CleanRL for Atari, applied by ``atari_defaults()``.
ATARI_DEFAULTS: dict[str, Any] = {
    "lr": 1e-4,
    "replay_capacity": 100_000,
    "learning_starts": 20_000,
    "replay_ratio": 0.25,
    "train_batch_size_per_learner": 32,
    # CleanRL's dqn_atari copies the target every 1,000 env steps and trains every 4th step:
    # with one update per 4 env steps (replay_ratio 0.25) that is every 250 updates (the
    # earlier 1,000 updates were 4,000 env steps). CleanRL's period rather than Nature DQN's
    # 10,000 updates: bench/dqn_atari_long.py judges this preset by CleanRL's scores, and the
    # preset's runs (1-3M env steps) are far shorter than Nature DQN's 50M.
    "target_update_period": 250,
    "epsilon": [1.0, 0.01, 250_000],
    "n_step": 1,
    "gamma": 0.99,
    "rollout_steps_per_iteration": 400,
}


class DQNConfig(RlgenConfig):
    """Defaults solve CartPole-v1; ``atari_defaults()`` switches to the Atari settings."""

    # AlgorithmConfig sets ``grad_clip = None`` unannotated, so mypy takes its type as None.
    grad_clip: float | None  # type: ignore[assignment]

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DQN)
        self.replay_capacity = 50_000
        self.learning_starts = 1_000
        self.replay_ratio = 0.5
        self.rollout_steps_per_iteration = 200
        self.updates_per_learner_call = 32
        self.target_update_period = 250
        self.tau = 1.0
        self.double_q = True
        self.dueling = True
        self.n_step = 3
        self.epsilon = [1.0, 0.02, 10_000]
        self.prioritized_replay = False
        self.per_alpha = 0.6
        self.per_beta = [0.4, 100_000]  # initial beta, env steps to anneal it to 1
        self.huber_delta = 1.0
        self.store_replay_in_checkpoint = False
        self.model_torso = "auto"
        self.model_hiddens = [128, 128]
        self.lr = 5e-4
        self.gamma = 0.99
        self.grad_clip = 10.0
        self.grad_clip_by = "global_norm"
        self.train_batch_size_per_learner = 64
        self.num_env_runners = 0

    ATARI_DEFAULTS = ATARI_DEFAULTS
    TAKES_ENCODER = True
    REUSED_RLLIB_KEYS = ("learning_starts", "prioritized_replay")
    RULES = {
        **ENCODER_RULES,
        "replay_ratio": number(0.0, low_open=True),
        "n_step": integer(1),
        "updates_per_learner_call": integer(1),
        "replay_capacity": integer(100, 10**8),
        "learning_starts": integer(0),
        "target_update_period": integer(1),
        "tau": number(0.0, 1.0, low_open=True),
        "rollout_steps_per_iteration": integer(1),
        "per_alpha": number(0.0),
        "per_beta": items(
            "[start, env steps to 1]", ("start", number(0.0, 1.0)), ("env steps", integer(0))
        ),
        "huber_delta": number(0.0, low_open=True),
        "epsilon": items(
            "[start, end, env steps]",
            ("start", number(0.0, 1.0)),
            ("end", number(0.0, 1.0)),
            ("env steps", integer(0)),
        ),
        "train_batch_size_per_learner": integer(1, MAX_BATCH),
        "double_q": BOOL,
        "dueling": BOOL,
        "prioritized_replay": BOOL,
        "store_replay_in_checkpoint": BOOL,
        "model_hiddens": WIDTHS,
        "model_torso": choice("auto", "cnn", "mlp"),
    }

    def training(
        self,
        *,
        replay_capacity: int | Any = NotProvided,
        learning_starts: int | Any = NotProvided,
        replay_ratio: float | Any = NotProvided,
        rollout_steps_per_iteration: int | Any = NotProvided,
        updates_per_learner_call: int | Any = NotProvided,
        target_update_period: int | Any = NotProvided,
        tau: float | Any = NotProvided,
        double_q: bool | Any = NotProvided,
        dueling: bool | Any = NotProvided,
        n_step: int | Any = NotProvided,
        epsilon: list[float] | Any = NotProvided,
        prioritized_replay: bool | Any = NotProvided,
        per_alpha: float | Any = NotProvided,
        per_beta: list[float] | Any = NotProvided,
        huber_delta: float | Any = NotProvided,
        store_replay_in_checkpoint: bool | Any = NotProvided,
        frame_stack: int | Any = NotProvided,
        sticky_actions: float | Any = NotProvided,
        rollout_backend: str | Any = NotProvided,
        model_torso: str | Any = NotProvided,
        model_hiddens: list[int] | Any = NotProvided,
        **kwargs: Any,
    ) -> DQNConfig:
        """DQN settings (``--set KEY=VALUE`` on the CLI), plus every ``AlgorithmConfig.training``
        argument.

        Args:
            replay_capacity: transitions kept in the replay memory.
            learning_starts: env steps before the first update.
            replay_ratio: gradient updates per env step (0.25 = one per 4 steps).
            rollout_steps_per_iteration: env steps sampled per training_step, all runners.
            updates_per_learner_call: gradient steps batched into one Learner call.
            target_update_period: updates between hard copies (ignored when tau < 1).
            tau: Polyak coefficient per update; 1 = hard updates.
            double_q: the online net picks the next action, the target net values it.
            dueling: value and advantage streams.
            n_step: steps of the n-step return.
            epsilon: ``[start, end, env steps]`` of the linear exploration schedule.
            prioritized_replay: draw transitions by |TD error|^alpha.
            per_alpha: the priority exponent.
            per_beta: ``[start, env steps to reach 1]`` of the importance-weight exponent.
            huber_delta: where the Huber loss turns linear.
            store_replay_in_checkpoint: keep the replay memory in checkpoints.
            frame_stack: Atari envs only: frames per observation.
            sticky_actions: Atari envs only: 0.0 DeepMind, 0.25 Machado.
            rollout_backend: ``python`` (one gymnasium env each) or ``vector``: ale-py's C++
                env for ALE games, the gymnasium vector env for envs that have one (CartPole).
            model_torso: ``auto``, ``cnn`` (Nature CNN) or ``mlp``.
            model_hiddens: hidden layer widths of the MLP torso.
        """
        self._set_given(dict(locals()))
        return self

    def check_spaces(self, observation_space: Any, action_space: Any) -> None:
        """DQN needs discrete actions; the CNN needs (C, 84, 84) frames."""
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {action_space}")
        check_cnn_observations(self.model_torso, tuple(observation_space.shape))

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from algorithms.dqn.module import DQNTorchRLModule

        return RLModuleSpec(
            module_class=DQNTorchRLModule,
            model_config={
                "torso": self.model_torso,
                "hiddens": list(self.model_hiddens),
                "dueling": self.dueling,
                "epsilon": list(self.epsilon),
                **self.encoder_model_config(),
            },
        )

    def get_default_learner_class(self) -> type:
        from algorithms.dqn.learner import DQNTorchLearner

        return DQNTorchLearner


def _sample_steps(runner: Any, *, steps: int) -> tuple[list, dict]:
    return runner.sample(num_timesteps=max(1, steps)), runner.get_metrics()


class DQN(RlgenAlgorithm):
    @classmethod
    def get_default_config(cls) -> DQNConfig:
        return DQNConfig()

    def setup(self, config: Any) -> None:
        super().setup(config)
        obs_space = self.env_runner_group.get_spaces()[DEFAULT_MODULE_ID][0]
        image = len(obs_space.shape) == 3
        self.replay = FrameReplay(
            self.config.replay_capacity,
            tuple(obs_space.shape[1:]) if image else tuple(obs_space.shape),
            stack=obs_space.shape[0] if image else 1,
            n_step=self.config.n_step,
            gamma=self.config.gamma,
            obs_dtype=obs_space.dtype,
            prioritized=self.config.prioritized_replay,
            alpha=self.config.per_alpha,
            seed=self.config.seed,
        )
        self.update_credit = 0.0

    def _sample(self) -> tuple[list, list]:
        group, total = self.env_runner_group, self.config.rollout_steps_per_iteration
        if group.num_remote_workers() == 0:
            return self.env_runner.sample(num_timesteps=total), [self.env_runner.get_metrics()]
        results = self.sample_remote(lambda actors: partial(_sample_steps, steps=total // actors))
        return [e for eps, _ in results for e in eps], [m for _, m in results]

    def _learn(self, env_steps: int, num_updates: int) -> list:
        """``num_updates`` gradient steps, each on ``train_batch_size_per_learner`` rows per
        Learner drawn over the whole replay memory; TD errors go back to the priorities.

        Uniform replay draws every row independently, so one sample holds all the minibatches
        of the call. Prioritized replay draws each minibatch from the priorities as the last
        update left them (a stratified draw over the whole memory per minibatch) and refreshes
        them right after that update."""
        cfg = self.config
        beta = linear_schedule(env_steps, start=cfg.per_beta[0], end=1.0, steps=cfg.per_beta[1])
        rows = cfg.train_batch_size_per_learner * max(1, cfg.num_learners)  # per update, in all
        per_draw = 1 if cfg.prioritized_replay else num_updates
        results = []
        for start in range(0, num_updates, per_draw):
            count = min(per_draw, num_updates - start)
            sample = self.replay.sample(rows * count, beta=beta)
            result, td = update_from_sample(
                self.learner_group,
                sample,
                count,
                env_steps,
                num_learners=cfg.num_learners,
                batch_size=cfg.train_batch_size_per_learner,
            )
            self.replay.update_priorities(sample.indices, td)
            results += result
        return results

    def store(self, episodes: list) -> int:
        """Add the actors' episode chunks to the replay; returns the env steps they hold."""
        for e in episodes:
            self.replay.add_chunk(
                e.id_,
                np.asarray(e.get_observations()),
                np.asarray(e.get_actions()),
                np.asarray(e.get_rewards(), dtype=np.float32),
                terminated=e.is_terminated,
                truncated=e.is_truncated,
            )
        return sum(len(e) for e in episodes)

    def training_step(self) -> None:
        cfg = self.config
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self._sample()
        self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        new_steps = self.store(episodes)
        self.game_returns.add(episodes)
        env_steps = int(self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)))
        self.metrics.log_dict(
            {
                **self.game_returns.metrics(),
                M.REPLAY_SIZE: len(self.replay),
                M.REPLAY_BYTES_PER_TRANSITION: self.replay.bytes_per_transition,
                M.EPSILON: linear_schedule(
                    env_steps, start=cfg.epsilon[0], end=cfg.epsilon[1], steps=cfg.epsilon[2]
                ),
            },
            window=1,
        )
        if env_steps < cfg.learning_starts or self.replay.num_sampleable == 0:
            return
        self.update_credit += new_steps * cfg.replay_ratio
        updates, self.update_credit = int(self.update_credit), self.update_credit % 1.0
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            for start in range(0, updates, cfg.updates_per_learner_call):
                count = min(cfg.updates_per_learner_call, updates - start)
                self.metrics.aggregate(self._learn(env_steps, count), key=LEARNER_RESULTS)
        self.broadcast_weights()

    def get_state(self, *args: Any, **kwargs: Any) -> dict:
        state = super().get_state(*args, **kwargs)
        if self.config.store_replay_in_checkpoint:
            state[REPLAY_STATE_KEY] = self.replay.get_state()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if REPLAY_STATE_KEY in state:
            self.replay.set_state(state[REPLAY_STATE_KEY])
