"""From what a user asked for (``RLRunSpec``) to a checked RLlib AlgorithmConfig.

``build_config`` applies, in order: the check of the env id (once), the Atari settings for
``ALE/`` envs, the runner counts and seed, the user's ``--config`` / ``--set`` keys (each must
be a settable config key), the env and its options (``RlgenConfig.env_options``), the env's
spaces (``check_spaces``; read once per env and options, ``env_spaces``), and ``validate()``.
Every failure is a UserError naming the key or value, raised before a run directory is written.
A run's config is built once, frozen, and handed down as that object.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import logging
from collections.abc import Callable, Collection
from typing import Any

from algorithms import ALGORITHMS
from runkit.checks import check_finite, check_seed
from runkit.errors import UserError, first_line

# The largest observation the policies take (an Atari stack is 4 x 84 x 84 = 28,224 values).
MAX_OBSERVATION_SIZE = 1 << 20

DEFAULT_MAX_ENV_STEPS = 1_000_000


@dataclasses.dataclass
class RLRunSpec:
    """Everything an RL run was asked for; saved as run.json so ``--resume`` rebuilds it."""

    algorithm: str
    env: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_env_runners: int | None = None
    num_envs_per_env_runner: int | None = None
    seed: int | None = None
    stop_reward: float | None = None
    max_env_steps: int | None = None
    time_budget_s: float | None = None
    checkpoint_every: int = 10
    video_frames: int = 600  # greedy evaluation episode into TensorBoard at the end; 0 = none
    # The encoder ``encoder`` named, as read when the run started: its layers, input and origin
    # (``jobs.export`` less the weights, which the run's checkpoints hold). A resumed or
    # evaluated run is rebuilt from this, never by reading ``encoder``'s path again.
    encoder: dict[str, Any] | None = None

    def fill_defaults(self, env_spec: Any = None) -> None:
        """The env's own ``reward_threshold`` as the stop reward; 1M env steps at most when no
        limit is given. ``env_spec``: the env's gymnasium spec where the caller has checked the
        id already (``build_config``)."""
        from envs import check_env_id

        if self.stop_reward is None:
            self.stop_reward = (env_spec or check_env_id(self.env)).reward_threshold
        if self.max_env_steps is None and self.time_budget_s is None:
            self.max_env_steps = DEFAULT_MAX_ENV_STEPS


def config_class(algorithm: str) -> type:
    if algorithm not in ALGORITHMS:
        raise UserError(f"unknown algorithm {algorithm!r}: one of {', '.join(sorted(ALGORITHMS))}")
    module, _, name = ALGORITHMS[algorithm].partition(":")
    cls = getattr(importlib.import_module(module), name)
    # RLlib resets its loggers on import; keep its advice ("new API stack ...") off the terminal.
    for logger in ("ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    return cls


# RLlib's own keys a run may set (``--set``, ``--config``, a stored run spec): the numbers and
# flags of training, sampling and fault tolerance. Every other RLlib attribute is refused:
# several name code that RLlib imports or calls (``callbacks_class``, ``*_class``, the ``type``
# of ``replay_buffer_config`` or ``model``), files it reads or writes (``input_``, ``output``),
# or environment variables of the processes it starts (``extra_python_environs_for_*``).
RLLIB_KEYS = frozenset(
    {
        "gamma", "lr", "grad_clip", "grad_clip_by", "train_batch_size_per_learner",
        "train_batch_size", "minibatch_size", "num_epochs", "shuffle_batch_per_epoch",
        "num_learners", "num_cpus_per_learner", "num_gpus_per_learner", "num_env_runners",
        "num_envs_per_env_runner", "num_cpus_per_env_runner", "num_gpus_per_env_runner",
        "num_cpus_for_main_process", "rollout_fragment_length", "batch_mode", "explore",
        "metrics_num_episodes_for_smoothing", "min_sample_timesteps_per_iteration",
        "min_train_timesteps_per_iteration", "min_time_s_per_iteration", "sample_timeout_s",
        "num_consecutive_env_runner_failures_tolerance", "restart_failed_env_runners",
        "delay_between_env_runner_restarts_s", "max_num_env_runner_restarts", "seed",
    }
)  # fmt: skip
_PLAIN = (str, int, float, bool, type(None), list, tuple, dict)


def settable_keys(config: Any) -> set[str]:
    """The keys a run may set: the algorithm's own fields (those rlgen's config classes add to
    RLlib's ``AlgorithmConfig``, and the RLlib names they reuse, ``REUSED_RLLIB_KEYS``) that
    hold plain data, and ``RLLIB_KEYS``."""
    cls: type = type(config)
    return set(_own_keys(cls)) | RLLIB_KEYS


def check_key(
    algorithm: str, key: str, value: Any, allowed: Collection[str], rllib: Callable[[str], bool]
) -> None:
    """One ``--set KEY=VALUE``: a settable key (``rllib(key)``: whether an unsettable key is
    one of RLlib's own) holding finite numbers only; else the UserError naming it. Shared by
    ``build_config`` and ``precheck``, so both refuse with the same words."""
    if key not in allowed and rllib(key):
        raise UserError(
            f"--set {key}: an RLlib setting that rlgen does not let a run set (it can name "
            "code, files or process environments)"
        )
    if key not in allowed:
        close = difflib.get_close_matches(key, sorted(allowed), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"--set {key}: unknown {algorithm} config key{hint}")
    try:
        check_finite(f"--set {key}", value)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def precheck(algorithm: str, overrides: dict[str, Any], table: dict[str, Any]) -> None:
    """``build_config``'s checks of each key on its own, from the algorithm's light key table
    (``runkit.keytable``: settable keys, RLlib's other names, each key's rule) without
    importing RLlib: bad input is refused in a fraction of a second, in the same words."""
    from runkit.checks import Rule

    keys, rllib_names = table["keys"], set(table["refused"])
    for key, value in overrides.items():
        check_key(algorithm, key, value, keys, rllib_names.__contains__)
        rule = keys[key].get("rule")
        if rule is not None:
            try:
                Rule.from_data(rule).check(key, value)
            except ValueError as exc:
                raise UserError(f"invalid {algorithm} config: {str(exc).splitlines()[0]}") from None


def rllib_names(config: Any) -> set[str]:
    """Every attribute and property name of the config's classes and of the config itself
    (deprecated properties, which raise when read, included), but Python's own ``__dunder__``
    names, which come and go (``__slotnames__`` appears once a config is copied)."""
    names = set(vars(config))
    for cls in type(config).__mro__:
        names.update(vars(cls))
    return {n for n in names if not (n.startswith("__") and n.endswith("__"))}


@functools.cache
def _own_keys(cls: type) -> frozenset[str]:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    base = set(vars(AlgorithmConfig())) - set(getattr(cls, "REUSED_RLLIB_KEYS", ()))
    return frozenset(
        k
        for k, v in vars(cls()).items()
        if k not in base and not k.startswith("_") and isinstance(v, _PLAIN)
    )


# What reads another kind of job's output: ``JobKind.imported`` (what, source) -> plain data.
Importer = Callable[[str, str], dict[str, Any]]


def build_config(spec: RLRunSpec, *, frozen: bool = False, importer: Importer | None = None) -> Any:
    """The validated config (an ``RlgenConfig``), or a UserError naming the bad key or value;
    ``frozen``: frozen once checked (a run's own config, handed down as it is). The env id is
    checked once, first, and its gymnasium spec fills the run spec's defaults
    (``RLRunSpec.fill_defaults``). ``importer`` reads what ``encoder`` names when a run starts
    (``set_encoder``); without it only a spec that holds its encoder already is built."""
    from envs import check_env_id

    env_spec = check_env_id(spec.env)
    spec.fill_defaults(env_spec)
    if spec.seed is not None:
        try:
            check_seed("--seed", spec.seed)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    config = config_class(spec.algorithm)()
    if spec.env.startswith("ALE/"):
        config.atari_defaults()
    if spec.num_env_runners is not None:
        config.env_runners(num_env_runners=spec.num_env_runners)
    if spec.num_envs_per_env_runner is not None:
        config.env_runners(num_envs_per_env_runner=spec.num_envs_per_env_runner)
    if spec.seed is not None:
        config.debugging(seed=spec.seed)
    _set_overrides(config, spec)
    set_encoder(config, spec, importer)
    _set_env(config, spec, env_spec)
    try:
        config.validate()
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"invalid {spec.algorithm} config: {str(exc).splitlines()[0]}") from None
    if frozen:
        config.freeze()
    return config


def _set_overrides(config: Any, spec: RLRunSpec) -> None:
    """The user's ``--config`` / ``--set`` keys, each checked (``check_key``), then set."""
    allowed = settable_keys(config)
    for key, value in spec.overrides.items():
        check_key(spec.algorithm, key, value, allowed, rllib_names(config).__contains__)
        try:
            setattr(config, key, value)
        except (AttributeError, TypeError, ValueError) as exc:
            raise UserError(f"--set {key}={value!r}: cannot be set ({first_line(exc)})") from None


def set_encoder(config: Any, spec: RLRunSpec, importer: Importer | None) -> None:
    """The encoder ``encoder`` names, read by ``importer`` when the run starts (its
    description, less the weights, kept in ``spec.encoder``), or taken from ``spec.encoder``
    when the run is rebuilt (resume, eval: the weights come from the checkpoint). A resumed
    run cannot change its encoder, and a stored spec never makes rlgen read a path it names."""
    source = getattr(config, "encoder", None)
    if source is None:
        if spec.encoder is not None:
            raise UserError("the run spec holds an encoder but sets no encoder key")
        return
    if spec.encoder is not None:
        if not isinstance(spec.encoder, dict) or not isinstance(spec.encoder.get("origin"), dict):
            raise UserError("the run spec's encoder is not a description of one")
        if spec.encoder["origin"].get("source") != source:
            raise UserError(
                f"--set encoder={source}: this run's encoder came from "
                f"{str(spec.encoder['origin'].get('source'))[:200]}; it cannot change on --resume"
            )
        config.set_encoder({k: v for k, v in spec.encoder.items() if k != "weights"})
        return
    if importer is None:
        raise UserError(f"--set encoder={source}: an encoder is read only when a run starts")
    export = importer("encoder", source)
    export["origin"] = {**export.get("origin", {}), "source": source}
    spec.encoder = {k: v for k, v in export.items() if k != "weights"}
    config.set_encoder(export)


def _set_env(config: Any, spec: RLRunSpec, env_spec: Any) -> None:
    """The env, its options (``RlgenConfig.env_options``) and the checks of its spaces."""
    import gymnasium as gym

    from envs import rllib_env_name

    try:
        env_config = config.env_options(spec.env)
    except ValueError as exc:
        raise UserError(f"--set {exc}") from None
    if env_config.get("backend") == "vector":
        config.env_runners(gym_env_vectorize_mode=gym.VectorizeMode.VECTOR_ENTRY_POINT)
    config.environment(rllib_env_name(spec.env, checked=True), env_config=env_config)
    obs_space, act_space = env_spaces(spec.env, env_config, env_spec)
    if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise UserError(f"--env {spec.env}: action space {act_space} is not Discrete or Box")
    check_observations(spec.env, obs_space)
    config.note_observations(obs_space)
    try:
        config.check_spaces(obs_space, act_space)
    except ValueError as exc:
        raise UserError(f"--env {spec.env}: {exc}") from None
    try:
        config.check_encoder(obs_space)
    except ValueError as exc:
        raise UserError(f"--set encoder={config.encoder}: {str(exc)[:300]}") from None


# (env id, its gymnasium spec, its options) -> (observation space, action space), of the envs
# this process has read: one instance each, built once and closed (Tune checks a config per
# candidate value, evaluation rebuilds a run's config from its checkpoint).
_SPACES: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def env_spaces(env_id: str, env_config: dict[str, Any], env_spec: Any) -> tuple[Any, Any]:
    """The observation and action spaces of the env ``make_env`` builds from these options.
    gymnasium's spec does not hold them; they are read from one instance per env, id, spec
    (a re-registered id is read anew) and options."""
    from envs import make_env

    key = (env_id, repr(env_spec), repr(sorted(env_config.items())))
    if key not in _SPACES:
        env = make_env({"env_id": env_id, **env_config})
        _SPACES[key] = (env.observation_space, env.action_space)
        env.close()
    return _SPACES[key]


def check_observations(env_id: str, space: Any) -> None:
    """The policies take one array per observation: a Box of numbers, at most
    ``MAX_OBSERVATION_SIZE`` values (Dict, Tuple, Discrete and text spaces are refused)."""
    import gymnasium as gym
    import numpy as np

    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.number):
        raise UserError(
            f"--env {env_id}: observation space {str(space)[:80]} is not supported: rlgen's "
            "policies take a Box of numbers"
        )
    size = int(np.prod(space.shape, dtype=np.int64))
    if size > MAX_OBSERVATION_SIZE:
        raise UserError(
            f"--env {env_id}: observations of {size:,} values, more than {MAX_OBSERVATION_SIZE:,}"
        )


def actor_cpus(config: Any) -> tuple[str, float]:
    """The CPUs the run's actors ask Ray for, all at once: rollout actors and Learner actors
    (RLlib's ``num_cpus_per_learner="auto"``: one each, none with a GPU). (what, how many)"""
    per_learner = config.num_cpus_per_learner
    if per_learner == "auto":
        per_learner = 0 if config.num_gpus_per_learner else 1
    what = f"{config.num_env_runners} rollout actors x {config.num_cpus_per_env_runner:g} CPU"
    if config.num_learners:
        what += f" and {config.num_learners} Learner actors x {per_learner:g} CPU"
    need = config.num_env_runners * config.num_cpus_per_env_runner
    return what, need + config.num_learners * per_learner
