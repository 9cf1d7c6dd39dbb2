"""A2C Config and Algorithm (custom RLlib algorithm, new API stack).

One round: every rollout actor steps each of its M envs T times (``rollout_fragment_length``)
with the current weights and returns the episode chunks; the Learner takes one gradient step on
the joint batch; the new weights go back to every actor. Rounds repeat within an iteration
until ``min_sample_timesteps_per_iteration`` env steps have been sampled.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_SAMPLING_TIMER, TIMERS

from algorithms.common.base import RlgenAlgorithm
from algorithms.common.config import ENCODER_RULES, RlgenConfig, check_cnn_observations
from algorithms.common.pg_losses import ADVANTAGE_NORMALIZATIONS
from runkit.checks import BOOL, WIDTHS, Rule, choice, integer, number

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
    "advantage_normalization": "none",
    "vf_coeff": 0.5,
    "entropy_coeff": 0.01,
    "grad_clip": 0.5,
    "gamma": 0.99,
    "shared_torso": True,
    "min_sample_timesteps_per_iteration": 4000,
}


class A2CConfig(RlgenConfig):
    """Defaults solve CartPole-v1; ``atari_defaults()`` switches to the Atari settings."""

    # AlgorithmConfig sets ``grad_clip = None`` unannotated, so mypy takes its type as None;
    # its ``lr`` is a number or, as RLlib documents, a schedule [[timestep, lr], ...].
    grad_clip: float | None  # type: ignore[assignment]
    lr: float | list[list[float]]  # type: ignore[assignment]

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or A2C)
        # CartPole defaults: the A2C settings of Mnih et al. 2016 as the A2C baselines run them
        # (8 envs x 5 steps per update, RMSprop 7e-4, n-step advantages, no entropy bonus on
        # CartPole, global-norm clip 0.5). They solve CartPole on every seed of bench/a2c.py;
        # larger batches with Adam and a decaying lr were faster on most seeds but fell back
        # from ~300-450 on some.
        self.lambda_ = 1.0
        self.advantage_normalization = "none"
        self.vf_coeff = 0.5
        self.entropy_coeff: float | list[list[float]] = 0.0
        # Not RLlib's old-stack ``optimizer`` dict, which the new API stack does not read.
        self.optimizer = "rmsprop"  # type: ignore[assignment]
        self.shared_torso = False
        self.model_torso = "auto"
        self.model_hiddens = [64, 64]
        self.model_activation = "tanh"
        self.initial_log_std = 0.0
        # AlgorithmConfig fields with A2C defaults.
        self.rollout_fragment_length = 5
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 8
        self.lr = 7e-4
        self.gamma = 0.99
        self.grad_clip = 0.5
        self.grad_clip_by = "global_norm"
        self.batch_mode = "truncate_episodes"
        self.min_sample_timesteps_per_iteration = 1000

    ATARI_DEFAULTS = ATARI_DEFAULTS
    TAKES_ENCODER = True
    REUSED_RLLIB_KEYS = ("optimizer",)
    RULES = {
        **ENCODER_RULES,
        "rollout_fragment_length": integer(1),
        "lambda_": number(0.0, 1.0),
        "vf_coeff": number(0.0),
        "entropy_coeff": Rule("schedule"),
        "initial_log_std": number(),
        "optimizer": choice(*OPTIMIZERS),
        "advantage_normalization": choice(*ADVANTAGE_NORMALIZATIONS),
        "shared_torso": BOOL,
        "model_hiddens": WIDTHS,
        "model_torso": choice("auto", "cnn", "mlp"),
        "model_activation": choice("tanh", "relu"),
    }

    def training(
        self,
        *,
        lambda_: float | Any = NotProvided,
        advantage_normalization: str | Any = NotProvided,
        vf_coeff: float | Any = NotProvided,
        entropy_coeff: float | list[list[float]] | Any = NotProvided,
        optimizer: str | Any = NotProvided,
        shared_torso: bool | Any = NotProvided,
        model_torso: str | Any = NotProvided,
        model_hiddens: list[int] | Any = NotProvided,
        model_activation: str | Any = NotProvided,
        initial_log_std: float | Any = NotProvided,
        frame_stack: int | Any = NotProvided,
        sticky_actions: float | Any = NotProvided,
        rollout_backend: str | Any = NotProvided,
        **kwargs: Any,
    ) -> A2CConfig:
        """A2C settings (``--set KEY=VALUE`` on the CLI), plus every ``AlgorithmConfig.training``
        argument. The rollout length T per env is RLlib's ``rollout_fragment_length``.

        Args:
            lambda_: GAE lambda in [0, 1]; 1 = n-step returns bootstrapped at the chunk's end.
            advantage_normalization: ``none``, ``scale`` (divide A by its root mean square
                over the batch) or ``centre_and_scale`` (subtract its batch mean, divide by
                its batch std).
            vf_coeff: weight of the value loss mean_t (V(s_t) - target_t)^2 (0.5: the A2C
                baselines' value weight, 0.5 times the plain mean squared error).
            entropy_coeff: a number or a schedule ``[[env_step, value], ...]``, linear between.
            optimizer: ``adam`` or ``rmsprop``.
            shared_torso: one torso under both heads (True) or two.
            model_torso: ``auto``, ``cnn`` (Nature CNN) or ``mlp``.
            model_hiddens: hidden layer widths of the MLP torso.
            model_activation: ``tanh`` or ``relu``.
            initial_log_std: Gaussian policies' initial log standard deviation.
            frame_stack: Atari envs only: frames per observation.
            sticky_actions: Atari envs only: 0.0 DeepMind, 0.25 Machado.
            rollout_backend: ``python`` (one gymnasium env each) or ``vector``: ale-py's C++
                env for ALE games, the gymnasium vector env for envs that have one (CartPole).
        """
        self._set_given(dict(locals()))
        return self

    def derive(self) -> None:
        """The batch of one round is every actor's chunks: N x M x T env steps."""
        self.train_batch_size_per_learner = self.round_env_steps()

    def validate(self) -> None:
        super().validate()
        chunks = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        if chunks < self.num_learners:
            raise ValueError(
                f"num_learners={self.num_learners} is out of range: must be <= rollout actors x "
                f"envs per actor = {chunks} (each Learner trains on whole episode chunks)"
            )

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
                **self.encoder_model_config(),
            },
        )

    def get_default_learner_class(self) -> type:
        from algorithms.a2c.learner import A2CTorchLearner

        return A2CTorchLearner


def _sample_steps(runner: Any) -> list:
    """T steps of each of the runner's M envs: RLlib counts every env's step and stops at M*T
    or up to M-1 steps past it (a sub-env's reset after an episode end takes one vector step
    that is not an env step, so that env catches up by one)."""
    steps = runner.config.rollout_fragment_length * runner.config.num_envs_per_env_runner
    return runner.sample(num_timesteps=steps)


def _sample_round(runner: Any) -> tuple[list, dict]:
    return _sample_steps(runner), runner.get_metrics()


class A2C(RlgenAlgorithm):
    @classmethod
    def get_default_config(cls) -> A2CConfig:
        return A2CConfig()

    def _sample(self) -> tuple[list, list]:
        group = self.env_runner_group
        if group.num_remote_workers() == 0:
            episodes = _sample_steps(self.env_runner)
            return episodes, self.sampled_locally(self.env_runner, episodes)
        results = self.sample_remote(lambda _: _sample_round)
        return [e for eps, _ in results for e in eps], [stats for _, stats in results]

    def _sample_for_learners(self) -> tuple[list, list]:
        """One round's chunks, enough for every Learner to get a whole one. A rollout actor lost
        mid-round returns no chunks; when fewer than ``num_learners`` came back, the healthy
        actors sample another round with the same weights (still on-policy, the batch only
        larger) rather than cut a chunk, whose advantages would then stop at the cut."""
        episodes, runner_metrics = self._sample()
        while len(episodes) < self.config.num_learners:
            more, more_metrics = self._sample()
            episodes += more
            runner_metrics += more_metrics
        return episodes, runner_metrics

    def training_step(self) -> None:
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self._sample_for_learners()
        self.record_sampling(episodes, runner_metrics)
        self.update_learners(episodes)
        self.broadcast_weights()
