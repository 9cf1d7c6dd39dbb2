"""``RlgenConfig``: what the three algorithms' configs share.

- The Atari preset's keys (``frame_stack``, ``sticky_actions``, ``rollout_backend``) and
  ``atari_defaults()``, which applies the subclass's ``ATARI_DEFAULTS``; ``env_options()`` turns
  them into the env's options for the rollout actors and for evaluation.
- ``validate()`` checks what RLlib leaves to the user (lr, gamma, runner counts, grad_clip) and
  the preset keys; each subclass adds its own fields' checks, so a bad value is refused while the
  config is built, before a run directory exists.
- ``check_spaces()``: the env's spaces against the config (none by default).
- ``_set_given()``: the body of every subclass's ``training()``, whose keyword arguments are
  written out so an IDE shows them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided

from envs import PRESET_OPTIONS, has_vector_backend
from runkit.checks import Rule, check_rules, choice, integer, number, text

ROLLOUT_BACKENDS = ("python", "vector")
# Upper bounds on counts a config may ask for (a config or a run spec is a file from elsewhere:
# a few bytes must not start a million processes or allocate a million frames per env).
MAX_RUNNERS = 1024  # rollout actors, envs per actor, Learners
MAX_FRAME_STACK = 16
MAX_BATCH = 1 << 22  # env steps in one train batch
ENV_RUNNERS = ("rlgen", "rllib")  # rlgen's lean rollout engine, or RLlib's own
ENCODER_MODES = ("frozen", "finetune")


class DriverOnly:
    """A value a config holds in the process that built it and carries nowhere else: a copy
    of the config keeps it, a pickled one (to a Ray actor, into RLlib's checkpoint files)
    holds None. For the pretrained encoder's weights: tens of MB that the rollout actors and
    Learners get once through a weight sync, not with every copy of the config."""

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __reduce__(self) -> tuple[type, tuple]:
        return (DriverOnly, ())

    def __deepcopy__(self, memo: dict) -> DriverOnly:
        return self

    def __eq__(self, other: object) -> bool:  # configs compare equal when they hold the same
        return isinstance(other, DriverOnly) and other.value is self.value

    __hash__ = object.__hash__


class RlgenConfig(AlgorithmConfig):
    ATARI_DEFAULTS: ClassVar[dict[str, Any]] = {}
    # RLlib attribute names the algorithm gives a meaning of its own (settable like its own).
    REUSED_RLLIB_KEYS: ClassVar[tuple[str, ...]] = ()
    # Each key's rule (``runkit.checks.Rule``), checked by ``validate()`` and, before RLlib is
    # imported, by the light key tables (``runkit.keytable``); subclasses add their own.
    RULES: ClassVar[dict[str, Rule]] = {
        "lr": number(0.0, low_open=True, or_list=True),
        "gamma": number(0.0, 1.0, low_open=True),
        "num_env_runners": integer(0, MAX_RUNNERS),
        "num_envs_per_env_runner": integer(1, MAX_RUNNERS),
        "num_learners": integer(0, MAX_RUNNERS),
        "train_batch_size_per_learner": integer(1, MAX_BATCH, optional=True),
        "grad_clip": number(0.0, low_open=True, optional=True),
        "max_nonfinite_updates": integer(1),
        "frame_stack": integer(1, MAX_FRAME_STACK),
        "sticky_actions": number(0.0, 1.0, high_open=True),
        "rollout_backend": choice(*ROLLOUT_BACKENDS),
        "env_runner": choice(*ENV_RUNNERS),
    }
    # One line per key for ``rlgen keys`` and docs/keys.md (a subclass's ``training()``
    # docstring documents its own keys).
    KEY_DOCS: ClassVar[dict[str, str]] = {
        "frame_stack": "Atari envs only: frames per observation.",
        "sticky_actions": "Atari envs only: 0.0 DeepMind, 0.25 Machado.",
        "rollout_backend": "python (one gymnasium env each) or vector: ale-py's C++ env for "
        "ALE games, the gymnasium vector env for envs that have one (CartPole).",
        "env_runner": "rlgen (the lean rollout engine) or rllib (RLlib's own EnvRunner).",
        "max_nonfinite_updates": "non-finite gradient steps are skipped; this many in a row "
        "end the run.",
        "delay_between_env_runner_restarts_s": "seconds before a failed rollout actor is "
        "restarted.",
        "encoder": "a VAE run or checkpoint whose encoder (its mean, on each frame) replaces "
        "the Nature CNN (Atari; a2c, dqn and ppo).",
        "encoder_mode": "frozen (the VAE's weights kept) or finetune (trained at encoder_lr).",
        "encoder_lr": "the encoder's learning rate with encoder_mode=finetune (null: lr).",
    }
    # Whether the algorithm's networks take an encoder torso (``encoder``) for image frames:
    # its config then has the ``ENCODER_RULES`` keys.
    TAKES_ENCODER: ClassVar[bool] = False
    # AlgorithmConfig sets ``env_runner_cls = None`` unannotated, so mypy takes its type as None.
    env_runner_cls: type | None  # type: ignore[assignment]

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class)
        self.frame_stack = 4  # Atari envs only
        self.sticky_actions = 0.0  # Atari envs only: 0.0 DeepMind, 0.25 Machado
        self.rollout_backend = "python"  # Atari envs only: Python wrappers or ale-py's C++ one
        # Which EnvRunner samples: rlgen's LeanEnvRunner or RLlib's SingleAgentEnvRunner.
        self.env_runner = "rlgen"
        # A failed rollout actor is restarted by Ray (RLlib's default); RLlib's own delay before
        # the failed process exits is 60 s, which on a small run costs more than the crash.
        self.delay_between_env_runner_restarts_s = 2.0
        # Non-finite gradient steps are skipped; this many in a row end the run.
        self.max_nonfinite_updates = 20
        if self.TAKES_ENCODER:
            # Another job's encoder as the torso (Atari): where it comes from, frozen or
            # fine-tuned, and its learning rate (None: lr). ``_encoder_export`` is what
            # ``algorithms.configure`` read from it: layers and, when a run starts, weights.
            self.encoder: str | None = None
            self.encoder_mode = "frozen"
            self.encoder_lr: float | None = None
        self._encoder_export: dict[str, Any] | None = None  # layers, shape, input, origin
        self._encoder_weights = DriverOnly()
        self._image_torso = False  # set from the env's observations (``note_observations``)

    def atari_defaults(self) -> RlgenConfig:
        """The algorithm's Atari settings (its ``ATARI_DEFAULTS``), applied for ``ALE/`` envs
        before the user's own keys."""
        for key, value in self.ATARI_DEFAULTS.items():
            setattr(self, key, value)
        return self

    def _set_given(self, given: dict[str, Any]) -> None:
        """Set this algorithm's own fields from ``training()``'s ``locals()``, skipping the
        ones not given; RLlib's own arguments go to ``AlgorithmConfig.training``."""
        kwargs = given.pop("kwargs", {})
        super().training(**kwargs)
        for name, value in given.items():
            if name not in ("self", "__class__") and value is not NotProvided:
                setattr(self, name, value)

    def env_options(self, env_id: str) -> dict[str, Any]:
        """The env options of a training env: the preset keys, and the vector backend."""
        options: dict[str, Any] = {"training": True}
        options.update({key: getattr(self, key) for key in PRESET_OPTIONS})
        if self.rollout_backend == "vector":
            if not has_vector_backend(env_id):
                raise ValueError(
                    f"rollout_backend=vector is for ALE/... envs and envs with a gymnasium "
                    f"vector implementation (CartPole-v1), not {env_id}"
                )
            options["backend"] = "vector"
        return options

    def check_spaces(self, observation_space: Any, action_space: Any) -> None:
        """Raise ValueError when the env's spaces do not fit this config."""

    def note_observations(self, observation_space: Any) -> None:
        """What the networks will be, from the env's observations (``build_config``): an image
        torso (the Nature CNN or an encoder) or an MLP. Algorithms without ``model_torso``
        (REINFORCE) always build an MLP."""
        from algorithms.common.networks import uses_cnn

        torso = getattr(self, "model_torso", "mlp")
        self._image_torso = uses_cnn(torso, tuple(observation_space.shape))

    def learner_gpu_pays(self) -> bool:
        """Whether a GPU speeds the Learner up, so that ``auto`` puts it on one: for an image
        torso it does, for the small MLPs of vector observations it does not (the copies to and
        from the GPU cost more than their products save). Measured on one H200 against its
        16 CPU cores: DQN on CartPole-v1 trained 2.5x slower on the GPU, PPO 1.6x slower; DQN
        and PPO on Pong 1.4x and 1.8x faster (docs/benchmarks.md, learner_device)."""
        return self._image_torso

    def set_encoder(self, export: dict[str, Any]) -> None:
        """The encoder ``encoder`` names, as ``jobs.export`` gives it: its description goes to
        the RLModules (which build it with fresh weights), its weights, when a run starts,
        stay here (``encoder_weights``) until the run loop loads them into the built
        Algorithm; a run rebuilt from its spec gets them from its checkpoint instead."""
        self._encoder_export = {k: v for k, v in export.items() if k != "weights"}
        self._encoder_weights = DriverOnly(export.get("weights"))

    def encoder_weights(self) -> dict[str, Any] | None:
        """The pretrained encoder's arrays by parameter name, in the process that read them
        (None elsewhere, and without an encoder)."""
        return self._encoder_weights.value

    def check_encoder(self, observation_space: Any) -> None:
        """The encoder torso built once for this env's frames (ValueError of one line): a
        layer, size or weight that does not fit is found here, before a run directory."""
        if getattr(self, "encoder", None) is None:
            return
        if getattr(self, "model_torso", "auto") == "mlp":
            raise ValueError("encoder replaces the image torso; model_torso=mlp asks for none")
        from algorithms.common.frame_encoder import FrameEncoderTorso

        shape = tuple(observation_space.shape)
        if len(shape) != 3:
            raise ValueError(f"encoder needs stacked frames (k, H, W), this env gives {shape}")
        assert self._encoder_export is not None, "build_config sets the encoder's export"
        export = dict(self._encoder_export)
        if self.encoder_weights() is not None:
            export["weights"] = self.encoder_weights()
        FrameEncoderTorso(export, frames=shape[0], frame_shape=(shape[1], shape[2]))

    def encoder_model_config(self) -> dict[str, Any]:
        """The RLModule's model config entries of the encoder torso (none without one)."""
        if getattr(self, "encoder", None) is None:
            return {}
        return {"encoder": self._encoder_export, "encoder_mode": self.encoder_mode}

    def validate(self) -> None:
        check_rules(self)
        self.env_runner_cls = self.env_runner_class()
        self.derive()
        super().validate()

    def env_runner_class(self) -> type | None:
        """The EnvRunner class RLlib's EnvRunnerGroup builds (None: RLlib's default)."""
        if self.env_runner == "rllib":
            return None
        from algorithms.common.env_runner import LeanEnvRunner

        return LeanEnvRunner

    def derive(self) -> None:
        """Set the RLlib fields that follow from this algorithm's own (checked before RLlib's
        ``validate`` reads them); nothing by default."""


# The keys of an algorithm that takes an encoder torso (``TAKES_ENCODER``).
ENCODER_RULES: dict[str, Rule] = {
    "encoder": text("a VAE run directory or checkpoint", optional=True),
    "encoder_mode": choice(*ENCODER_MODES),
    "encoder_lr": number(0.0, low_open=True, optional=True),
}


def check_cnn_observations(model_torso: str, shape: tuple[int, ...]) -> None:
    """``model_torso=cnn`` (the Nature CNN) needs (C, 84, 84) observations."""
    if model_torso == "cnn" and (len(shape) != 3 or tuple(shape[1:]) != (84, 84)):
        raise ValueError(
            f"model_torso=cnn needs image observations (C, 84, 84), this env gives {shape}"
        )
