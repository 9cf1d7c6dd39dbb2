"""PPO Config and Algorithm (custom RLlib algorithm, new API stack), on A2C's round.

One round is A2C's: every rollout actor steps each of its M envs T times
(``rollout_fragment_length``) with the current weights and returns the episode chunks. The
Learner then takes ``num_epochs`` passes over the batch in shuffled minibatches of about
``minibatch_size`` env steps (all Learners together), one gradient step each, before the new
weights go back to the actors.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided

from algorithms.a2c.algorithm import A2C, OPTIMIZERS, A2CConfig
from algorithms.common.config import MAX_BATCH
from algorithms.common.pg_losses import ADVANTAGE_NORMALIZATIONS
from algorithms.rllib_compat import custom_learner_connector
from runkit.checks import Rule, choice, integer, number

# The PPO paper's Atari settings as CleanRL's ppo_atari and the SB3 zoo run them, applied by
# ``atari_defaults()``: 8 envs x 128 steps, 4 minibatches of 256, 4 epochs, Adam 2.5e-4
# annealed to 0 over 10M env steps, clip 0.1, entropy 0.01, value weight 0.5, GAE 0.95,
# global-norm clip 0.5, one shared Nature-CNN torso.
ATARI_DEFAULTS: dict[str, Any] = {
    "lr": [[0, 2.5e-4], [10_000_000, 0.0]],
    "optimizer": "adam",
    "rollout_fragment_length": 128,
    "num_envs_per_env_runner": 8,
    "minibatch_size": 256,
    "num_epochs": 4,
    "clip_param": 0.1,
    "vf_clip_param": None,
    "lambda_": 0.95,
    "advantage_normalization": "centre_and_scale",
    "vf_coeff": 0.5,
    "entropy_coeff": 0.01,
    "grad_clip": 0.5,
    "gamma": 0.99,
    "shared_torso": True,
    "min_sample_timesteps_per_iteration": 4096,
}


class PPOConfig(A2CConfig):
    """Defaults solve CartPole-v1 (see ``__init__``); ``atari_defaults()`` switches
    to the Atari settings."""

    # AlgorithmConfig sets ``minibatch_size = None`` unannotated, so mypy takes its type as None.
    minibatch_size: int  # type: ignore[assignment]

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or PPO)
        # CartPole: fewer, larger gradient steps than the SB3 zoo's (16 envs x 64 steps, 5 epochs
        # of 2 minibatches of 512: 10 steps per 1,024 env steps, against the zoo's 80), Adam 3e-3
        # and clip 0.2 both linear to 0 at 300k env steps; as the zoo: gamma 0.98, GAE 0.8, no
        # entropy bonus, separate 64x64 tanh torsos, global-norm clip 0.5. Seeds 0-7 solve in
        # 87k-154k env steps (bench/ppo.py).
        self.clip_param: float | list[list[float]] = [[0, 0.2], [300_000, 0.0]]
        self.vf_clip_param: float | None = None
        self.kl_target: float | None = None
        self.lambda_ = 0.8
        self.advantage_normalization = "centre_and_scale"
        self.optimizer = "adam"  # type: ignore[assignment]
        self.rollout_fragment_length = 64
        self.num_envs_per_env_runner = 16
        self.minibatch_size = 512
        self.num_epochs = 5
        self.lr = [[0, 3e-3], [300_000, 0.0]]
        self.gamma = 0.98
        self.entropy_coeff = 0.0

    ATARI_DEFAULTS = ATARI_DEFAULTS
    RULES = {
        **A2CConfig.RULES,
        "clip_param": Rule("schedule"),
        "vf_clip_param": number(0.0, low_open=True, optional=True),
        "kl_target": number(0.0, low_open=True, optional=True),
        "minibatch_size": integer(1, MAX_BATCH),
        "num_epochs": integer(1, 1000),
        "optimizer": choice(*OPTIMIZERS),
        "advantage_normalization": choice(*ADVANTAGE_NORMALIZATIONS),
    }
    KEY_DOCS = {
        "minibatch_size": "env steps per minibatch, all Learners together (the batch is cut "
        "into round(batch / minibatch_size) shuffled parts each epoch).",
        "num_epochs": "passes over each batch, one gradient step per minibatch.",
        "advantage_normalization": "per minibatch: none, scale (divide A by its root mean "
        "square) or centre_and_scale (subtract its mean, divide by its std).",
    }

    def training(
        self,
        *,
        clip_param: float | list[list[float]] | Any = NotProvided,
        vf_clip_param: float | None | Any = NotProvided,
        kl_target: float | None | Any = NotProvided,
        **kwargs: Any,
    ) -> PPOConfig:
        """PPO settings (``--set KEY=VALUE`` on the CLI), every A2C setting and every
        ``AlgorithmConfig.training`` argument (``num_epochs``, ``minibatch_size``).
        ``advantage_normalization`` applies per minibatch (default ``centre_and_scale``).

        Args:
            clip_param: the surrogate's clip eps: a number or a schedule ``[[env_step,
                value], ...]``, linear between.
            vf_clip_param: how far a value prediction may move from the one that sampled the
                batch (null: no value clipping).
            kl_target: stop the batch's remaining epochs once an epoch's mean approximate KL
                divergence exceeds it (null: always every epoch).
        """
        given = {"clip_param": clip_param, "vf_clip_param": vf_clip_param, "kl_target": kl_target}
        super().training(**kwargs)  # A2C's keys and RLlib's
        for name, value in given.items():
            if value is not NotProvided:
                setattr(self, name, value)
        return self

    def validate(self) -> None:
        super().validate()
        if custom_learner_connector(self) is not None:
            raise ValueError(
                "ppo builds its train batch itself (advantages, old log-probabilities and "
                "values): a learner connector of your own is not supported"
            )

    def get_default_learner_class(self) -> type:
        from algorithms.ppo.learner import PPOTorchLearner

        return PPOTorchLearner


class PPO(A2C):
    @classmethod
    def get_default_config(cls) -> PPOConfig:
        return PPOConfig()
