"""A2C Config and Algorithm (custom RLlib algorithm, new API stack).

One round: every rollout actor steps each of its M envs T times (``rollout_fragment_length``)
with the current weights and returns the episode chunks; the Learner takes one gradient step on
the joint batch; the new weights go back to every actor. Rounds repeat within an iteration
until ``min_sample_timesteps_per_iteration`` env steps have been sampled.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_SAMPLING_TIMER, TIMERS

from algorithms.common.base import RlgenAlgorithm
from algorithms.common.config_checks import (
    check_bool,
    check_choice,
    check_cnn_observations,
    check_common,
    check_range,
    check_schedule,
    check_widths,
    set_given_fields,
)

OPTIMIZERS = ("adam", "rmsprop")

# Mnih et al. 2016 / the A2C baselines for Atari, applied by ``atari_defaults()``: 16 envs x 5
# steps per update, RMSprop lr 7e-4, entropy 0.01, value coefficient 0.5, global-norm clip 0.5,
# n-step advantages (lambda = 1), one shared Nature-CNN torso.
ATARI_DEFAULTS: dict[str, Any] = {
    "lr": 7e-4,
    "optimizer": "rmsprop",
    "rollout_fragment_length": 5,
    "num_envs_per_env_runner": 16,
    "lambda_": 1.0,
    "normalize_advantages": False,
    "vf_coeff": 0.5,
    "entropy_coeff": 0.01,
    "grad_clip": 0.5,
    "gamma": 0.99,
    "shared_torso": True,
    "min_sample_timesteps_per_iteration": 4000,
}

A2C_FIELDS = (
    "lambda_", "normalize_advantages", "vf_coeff", "entropy_coeff", "optimizer",
    "shared_torso", "model_torso", "model_hiddens", "model_activation", "initial_log_std",
    "frame_stack", "sticky_actions", "rollout_backend",
)  # fmt: skip


class A2CConfig(AlgorithmConfig):
    """Defaults solve CartPole-v1; ``atari_defaults()`` switches to the Atari settings."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or A2C)
        # CartPole defaults: the A2C settings of Mnih et al. 2016 as the A2C baselines run them
        # (8 envs x 5 steps per update, RMSprop 7e-4, n-step advantages, no entropy bonus on
        # CartPole, global-norm clip 0.5). They solve CartPole on every seed of bench/a2c.py;
        # larger batches with Adam and a decaying lr were faster on most seeds but fell back
        # from ~300-450 on some.
        self.lambda_ = 1.0
        self.normalize_advantages = False
        self.vf_coeff = 0.5
        self.entropy_coeff: float | list[list[float]] = 0.0
        self.optimizer = "rmsprop"
        self.shared_torso = False
        self.model_torso = "auto"
        self.model_hiddens = [64, 64]
        self.model_activation = "tanh"
        self.initial_log_std = 0.0
        self.frame_stack = 4  # Atari envs only
        self.sticky_actions = 0.0  # Atari envs only: 0.0 DeepMind, 0.25 Machado
        self.rollout_backend = "python"  # Atari envs only: python wrappers or ale-py's C++ one
        # AlgorithmConfig fields with A2C defaults.
        self.rollout_fragment_length = 5
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 8
        self.lr: float | list[list[float]] = 7e-4
        self.gamma = 0.99
        self.grad_clip = 0.5
        self.grad_clip_by = "global_norm"
        self.batch_mode = "truncate_episodes"
        self.min_sample_timesteps_per_iteration = 1000

    def training(self, **kwargs: Any) -> A2CConfig:
        """A2C settings, set as attributes (``--set KEY=VALUE`` on the CLI), plus every
        ``AlgorithmConfig.training`` argument:

        lambda_ (GAE lambda in [0, 1]; 1 = n-step returns bootstrapped at the chunk's end),
        normalize_advantages (divide A by its batch std; never centred), vf_coeff,
        entropy_coeff (a number or a schedule ``[[env_step, value], ...]``, linear in
        between), optimizer (adam|rmsprop),
        shared_torso (one torso under both heads, or two), model_torso (auto|cnn|mlp),
        model_hiddens, model_activation (tanh|relu), initial_log_std (Gaussian policies),
        frame_stack, sticky_actions, rollout_backend (python|vector; Atari envs only).
        The rollout length T per env is RLlib's ``rollout_fragment_length``.
        """
        set_given_fields(self, A2C_FIELDS, kwargs)
        super().training(**kwargs)
        return self

    def atari_defaults(self) -> A2CConfig:
        for key, value in ATARI_DEFAULTS.items():
            setattr(self, key, value)
        return self

    def validate(self) -> None:
        check_common(self)
        check_range("rollout_fragment_length", self.rollout_fragment_length, low=1, integer=True)
        self.train_batch_size_per_learner = self.round_env_steps()
        super().validate()
        check_range("lambda_", self.lambda_, low=0.0, high=1.0)
        chunks = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        if chunks < self.num_learners:
            raise ValueError(
                f"num_learners={self.num_learners} is out of range: must be <= rollout actors x "
                f"envs per actor = {chunks} (each Learner trains on whole episode chunks)"
            )
        check_range("vf_coeff", self.vf_coeff, low=0.0)
        check_schedule("entropy_coeff", self.entropy_coeff)
        check_range("initial_log_std", self.initial_log_std)
        check_range("frame_stack", self.frame_stack, low=1, integer=True)
        check_range("sticky_actions", self.sticky_actions, low=0.0, high=1.0, high_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_bool("normalize_advantages", self.normalize_advantages)
        check_bool("shared_torso", self.shared_torso)
        check_widths("model_hiddens", self.model_hiddens)
        check_choice("model_torso", self.model_torso, ("auto", "cnn", "mlp"))
        check_choice("model_activation", self.model_activation, ("tanh", "relu"))
        check_choice("rollout_backend", self.rollout_backend, ("python", "vector"))

    def round_env_steps(self) -> int:
        """Env steps per round, all actors: N actors (1 when sampling locally) x M envs x T."""
        actors = max(1, self.num_env_runners)
        return actors * self.num_envs_per_env_runner * self.rollout_fragment_length

    def check_spaces(self, observation_space: Any, action_space: Any) -> None:
        """The CNN needs (C, 84, 84) frames."""
        check_cnn_observations(self.model_torso, tuple(observation_space.shape))

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from algorithms.a2c.module import A2CTorchRLModule

        return RLModuleSpec(
            module_class=A2CTorchRLModule,
            model_config={
                "torso": self.model_torso,
                "hiddens": list(self.model_hiddens),
                "activation": self.model_activation,
                "shared_torso": self.shared_torso,
                "initial_log_std": self.initial_log_std,
            },
        )

    def get_default_learner_class(self) -> type:
        from algorithms.a2c.learner import A2CTorchLearner

        return A2CTorchLearner


def _sample_round(runner: Any) -> tuple[list, dict]:
    """T steps of each of the runner's M envs: RLlib counts every env's step and stops at M*T
    or up to M-1 steps past it (a sub-env's reset after an episode end takes one vector step
    that is not an env step, so that env catches up by one)."""
    steps = runner.config.rollout_fragment_length * runner.config.num_envs_per_env_runner
    return runner.sample(num_timesteps=steps), runner.get_metrics()


class A2C(RlgenAlgorithm):
    @classmethod
    def get_default_config(cls) -> A2CConfig:
        return A2CConfig()

    def _sample(self) -> tuple[list, list]:
        group = self.env_runner_group
        if group.num_remote_workers() == 0:
            episodes, stats = _sample_round(self.env_runner)
            return episodes, [stats]
        results = group.foreach_env_runner(_sample_round, local_env_runner=False)
        return [e for eps, _ in results for e in eps], [stats for _, stats in results]

    def training_step(self) -> None:
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self._sample()
        self.record_sampling(episodes, runner_metrics)
        self.update_learners(episodes)
        self.broadcast_weights()
