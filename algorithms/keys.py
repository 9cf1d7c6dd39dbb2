"""Each algorithm's settable keys as plain data (name, default, Atari default, type, rule, one
line of meaning), read from its config class: the source of the light key table
(``runkit.key_table``), ``rlgen keys`` and docs/keys.md. Imports RLlib."""

from __future__ import annotations

import inspect
import re
from typing import Any

from algorithms.configure import config_class, rllib_names, settable_keys
from runkit.checks import class_rules

# One line for each RLlib key a run may set (``configure.RLLIB_KEYS``).
RLLIB_KEY_DOCS = {
    "gamma": "discount factor.",
    "lr": "learning rate (or RLlib's [[step, lr], ...] schedule).",
    "grad_clip": "clip gradients at this value (null: no clipping).",
    "grad_clip_by": "global_norm, norm or value.",
    "train_batch_size_per_learner": "env steps per Learner per update.",
    "train_batch_size": "env steps per update, all Learners (RLlib's old name).",
    "minibatch_size": "RLlib's minibatch size (algorithms that use minibatches).",
    "num_epochs": "RLlib's epochs per batch (algorithms that use them).",
    "shuffle_batch_per_epoch": "shuffle the batch each epoch (RLlib).",
    "num_learners": "data-parallel Learner actors (0: one Learner in the driver).",
    "num_cpus_per_learner": "CPUs reserved by each Learner actor.",
    "num_gpus_per_learner": "GPUs per Learner (auto: 1 for an image torso on a cluster with GPUs).",
    "num_env_runners": "rollout actors (0: sample in the driver); also --num-env-runners.",
    "num_envs_per_env_runner": "envs stepped together in each rollout actor.",
    "num_cpus_per_env_runner": "CPUs reserved by each rollout actor.",
    "num_gpus_per_env_runner": "GPUs reserved by each rollout actor.",
    "num_cpus_for_main_process": "CPUs reserved by the driver.",
    "rollout_fragment_length": "env steps per env per sampling call.",
    "batch_mode": "truncate_episodes or complete_episodes.",
    "explore": "sample actions (true) or act greedily while training.",
    "metrics_num_episodes_for_smoothing": "episodes in the running return mean.",
    "min_sample_timesteps_per_iteration": "env steps sampled at least per iteration.",
    "min_train_timesteps_per_iteration": "env steps trained on at least per iteration.",
    "min_time_s_per_iteration": "seconds an iteration lasts at least.",
    "sample_timeout_s": "seconds a rollout actor may take per sampling call.",
    "num_consecutive_env_runner_failures_tolerance": "failed sampling calls in a row tolerated.",
    "restart_failed_env_runners": "restart a rollout actor that died.",
    "delay_between_env_runner_restarts_s": "seconds before a failed actor is restarted.",
    "max_num_env_runner_restarts": "restarts allowed per rollout actor.",
    "seed": "seed of the run; also --seed.",
}


def describe(algorithm: str) -> dict[str, Any]:
    """The algorithm's light key table: its keys and RLlib's other names (refused)."""
    cls = config_class(algorithm)
    config = cls()
    atari = getattr(cls, "ATARI_DEFAULTS", {})
    allowed = settable_keys(config)
    rules = class_rules(cls)
    docs = {**RLLIB_KEY_DOCS, **class_docs(cls)}
    keys = {}
    for key in sorted(allowed):
        row: dict[str, Any] = {"default": plain(getattr(config, key, None))}
        if key in atari:
            row["atari"] = plain(atari[key])
        if key in rules:
            row["rule"] = rules[key].to_data()
        row["doc"] = docs.get(key, "")
        keys[key] = row
    return {
        "precheck": "algorithms.configure:precheck",
        "keys": keys,
        "refused": sorted(rllib_names(config) - allowed),
    }


def class_docs(cls: type) -> dict[str, str]:
    """``KEY_DOCS`` of the class and its bases, and the ``Args:`` of their ``training()``
    docstrings (each key's text up to its first full stop; a subclass's over its base's)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(vars(klass).get("KEY_DOCS", {}))
        if not klass.__module__.startswith("algorithms."):
            continue  # RLlib's own (its keys have RLLIB_KEY_DOCS)
        text = inspect.getdoc(vars(klass).get("training")) or ""
        args = text.partition("Args:")[2]
        pattern = r"^    (\w+): (.*?)(?=^    \w+: |\Z)"
        for name, body in re.findall(pattern, args, flags=re.M | re.S):
            sentence = " ".join(body.split())
            docs[name] = sentence.split(". ")[0].rstrip(".") + "."
    return docs


def plain(value: Any) -> Any:
    """A default as JSON-like data (tuples as lists; anything else as its text)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
