"""The one place where rlgen reaches into RLlib's private parts (Ray 2.60.x).

rlgen stays one level below RLlib's Algorithm, Learner and EnvRunner, and in a few places it
needs what RLlib keeps to itself: a private attribute, a private method to override, a public
method patched on one object. Every such touch is here, behind a small named function or mixin;
the rest of rlgen calls those and names no private RLlib attribute (``OWNED_NAMES``;
``tests/test_rllib_fence.py`` scans the packages for them). That test also checks each touched
internal against the installed RLlib (it exists, with the signature and the behaviour used
here), so an upgrade that changes one fails there, loudly, not somewhere inside a run.

Written against Ray 2.60.0 (RLlib's new API stack). Importing this module on a Ray outside
``SUPPORTED_RAY`` raises ``ImportError``; ``pyproject.toml`` pins the same series.

What is touched, why, and the name rlgen uses for it here:

- ``Learner._device``, ``EnvRunner._device``: tensors onto the device (``device_of``).
- ``Learner._learner_connector``: REINFORCE and A2C prepend their returns connector
  (``learner_connector``); ``AlgorithmConfig._learner_connector``: a user's own learner
  connector (``custom_learner_connector``).
- ``Learner._make_batch_if_necessary``: A2C builds its train batch from the episodes' arrays
  (``EpisodeBatchHook``).
- ``TorchLearner._set_optimizer_state``, ``_optimizer_lr_schedules``: the configured learning
  rate back right after a restore (``OptimizerStateHook``, ``restore_fixed_learning_rates``).
- ``TorchLearner.apply_gradients`` with its ``_params``, ``_module_optimizers``,
  ``_grad_scalers``, ``_lr_scheduler_classes``: the optimizers stepped without RLlib's
  per-tensor finiteness scans (``step_optimizers``); ``_named_optimizers``: the learning rate a
  step uses (``optimizer_learning_rates``).
- ``LearnerGroup._learner`` and ``Learner.update(_no_metrics_reduce=)``: the local Learner's
  weights, and its metrics reduced once per iteration (``local_learner``,
  ``update_learner_group``).
- ``_weights_seq_no``: a local weight copy advances the runner's weights number as a sync
  would (``weights_seq_no``, ``copy_weights_seq_no``).
- ``MetricsLogger.compile`` and ``peek``, patched on the Algorithm's logger: deferred results
  folded in, env steps not yet folded in counted (``wrap_metrics_compile``,
  ``wrap_metrics_peek``).
- ``EnvRunner._seed``, ``_time_after_sampling``, ``_log_env_steps``,
  ``_metrics_num_env_steps_sampled``, ``SingleAgentEnvRunner._increase_sampled_metrics``,
  ``_log_episode_metrics``: rlgen's EnvRunner replaces RLlib's sampling loop and logs what it
  logs (``run_seed``, ``log_time_between_samples``, ``mark_sampled``, ``log_sampled_steps``,
  ``log_finished_episode``).
- ``TorchCategorical.sample`` (``torch.multinomial``'s use of the random stream): the runner
  draws the same actions from the same numbers without a distribution object
  (``categorical_draw``).

Not fenced: ``RLModule._forward``, ``_forward_train``, ``_forward_inference`` and
``_forward_exploration``. They are the methods RLlib's RLModule documentation asks a custom
module to override (its public forward methods call them); the fence test checks that they
still are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import ray
import torch
from ray.rllib.utils.metrics import TIME_BETWEEN_SAMPLING

SUPPORTED_RAY = (2, 60)  # the minor series this module was written against and tested on
SUPPORTED_RANGE = (
    f">={SUPPORTED_RAY[0]}.{SUPPORTED_RAY[1]}.0,<{SUPPORTED_RAY[0]}.{SUPPORTED_RAY[1] + 1}"
)

# The private RLlib names this module owns: nothing else in rlgen names them.
OWNED_NAMES = frozenset(
    {
        "_device",
        "_learner_connector",
        "_make_batch_if_necessary",
        "_set_optimizer_state",
        "_params",
        "_module_optimizers",
        "_named_optimizers",
        "_optimizer_lr_schedules",
        "_grad_scalers",
        "_lr_scheduler_classes",
        "_learner",
        "_no_metrics_reduce",
        "_weights_seq_no",
        "_seed",
        "_time_after_sampling",
        "_log_env_steps",
        "_metrics_num_env_steps_sampled",
        "_increase_sampled_metrics",
        "_log_episode_metrics",
    }
)


def check_ray_version(version: str) -> None:
    """Raise ``ImportError`` (one line naming the supported range) unless ``version`` is in
    the Ray minor series this module was written against."""
    match = re.match(r"(\d+)\.(\d+)\.", version)
    if match is None or (int(match[1]), int(match[2])) != SUPPORTED_RAY:
        raise ImportError(
            f"rlgen needs ray{SUPPORTED_RANGE} (algorithms/rllib_compat.py fences the RLlib "
            f"internals of that series); Ray {version} is installed"
        )


check_ray_version(ray.__version__)


# -- Learners ------------------------------------------------------------------------------


def device_of(learner_or_runner: Any) -> torch.device:
    """The torch device a Learner trains on, or an EnvRunner's module acts on."""
    return learner_or_runner._device


def learner_connector(learner: Any) -> Any:
    """The Learner's built learner connector pipeline (None where the config adds none)."""
    return learner._learner_connector


def custom_learner_connector(config: Any) -> Any:
    """The learner connector a config was given with ``training(learner_connector=...)``
    (None: RLlib's default pipeline only)."""
    return config._learner_connector


class EpisodeBatchHook:
    """Learner mixin (before ``TorchLearner`` in the bases): the train batch comes from the
    Learner's ``batch_from_episodes(training_data)`` where that returns one, from RLlib's
    learner connector pipeline where it returns None."""

    def batch_from_episodes(self, training_data: Any) -> Any:
        return None

    def _make_batch_if_necessary(self, training_data: Any) -> Any:
        batch = self.batch_from_episodes(training_data)
        if batch is not None:
            return batch
        return super()._make_batch_if_necessary(training_data)  # type: ignore[misc]


class OptimizerStateHook:
    """Learner mixin (before ``TorchLearner``): ``optimizer_state_loaded()`` runs right after
    RLlib has loaded the optimizers' state (a restore, a PBT exploit)."""

    def optimizer_state_loaded(self) -> None:
        pass

    def _set_optimizer_state(self, state: Any) -> None:
        super()._set_optimizer_state(state)  # type: ignore[misc]
        self.optimizer_state_loaded()


def restore_fixed_learning_rates(learner: Any) -> None:
    """Every optimizer whose learning rate is fixed (not scheduled) back to its configured rate
    (a loaded optimizer state carries the rate of the run that saved it)."""
    for optimizer, schedule in learner._optimizer_lr_schedules.items():
        if not schedule.use_schedule:
            for group in optimizer.param_groups:
                group["lr"] = float(schedule.get_current_value())


def optimizer_learning_rates(learner: Any) -> dict[str, float]:
    """Per module, the learning rate its first optimizer steps with now."""
    return {
        module_id: float(learner._named_optimizers[names[0]].param_groups[0]["lr"])
        for module_id, names in learner._module_optimizers.items()
    }


def step_optimizers(learner: Any, gradients_dict: dict) -> bool:
    """``TorchLearner.apply_gradients`` without its finiteness scan of every gradient tensor:
    set each parameter's gradient and step every optimizer. False (nothing done) where RLlib's
    own must run instead: with gradient scalers or learning-rate scheduler classes."""
    if learner._grad_scalers is not None or learner._lr_scheduler_classes is not None:
        return False
    for param_id, grad in gradients_dict.items():
        learner._params[param_id].grad = grad
    for module_id, names in learner._module_optimizers.items():
        for name in names:
            learner.get_optimizer(module_id, name).step()
    return True


def local_learner(learner_group: Any) -> Any:
    """The Learner in this process (None where the Learners are remote actors)."""
    return learner_group._learner


def update_learner_group(
    learner_group: Any, *, training_data: Any, timesteps: dict, reduce_metrics: bool
) -> list[dict]:
    """``LearnerGroup.update``; ``reduce_metrics=False`` leaves a local Learner's metrics
    unreduced (its results are then to be reduced later, from ``local_learner``)."""
    return learner_group.update(
        training_data=training_data, timesteps=timesteps, _no_metrics_reduce=not reduce_metrics
    )


def weights_seq_no(learner_or_runner: Any) -> int:
    """The number of the weights a Learner or an EnvRunner holds (RLlib counts updates)."""
    return learner_or_runner._weights_seq_no


def copy_weights_seq_no(learner: Any, runner: Any) -> None:
    """Advance the runner's weights number to the Learner's, as RLlib's weight sync does."""
    runner._weights_seq_no = learner._weights_seq_no


# -- the Algorithm's metrics ---------------------------------------------------------------


def wrap_metrics_compile(metrics: Any, before: Callable[[], None]) -> None:
    """Patch ``metrics.compile`` (RLlib calls it once, at an iteration's end, to build the
    iteration's results) on this logger to run ``before()`` first."""
    compile_results = metrics.compile

    def compile_after(*args: Any, **kwargs: Any) -> Any:
        before()
        return compile_results(*args, **kwargs)

    metrics.compile = compile_after


def wrap_metrics_peek(metrics: Any, key: tuple, pending: Callable[[], int]) -> None:
    """Patch ``metrics.peek`` on this logger so that a peek at ``key`` (not at its throughput)
    adds ``pending()``, a count logged later."""
    peek = metrics.peek

    def peek_with_pending(*args: Any, **kwargs: Any) -> Any:
        value = peek(*args, **kwargs)
        extra = pending()
        asked = args[0] if args else kwargs.get("key")
        if extra and asked == key and not kwargs.get("throughput"):
            return (value or 0) + extra
        return value

    metrics.peek = peek_with_pending


# -- EnvRunners ----------------------------------------------------------------------------


def run_seed(runner: Any) -> int | None:
    """The seed RLlib gave this EnvRunner's envs (the run's seed and the runner's index)."""
    return runner._seed


def log_time_between_samples(runner: Any) -> None:
    """Log the time since the runner's last sample call ended, as RLlib's runner does."""
    if runner._time_after_sampling is not None:
        elapsed = time.perf_counter() - runner._time_after_sampling
        runner.metrics.log_value(TIME_BETWEEN_SAMPLING, elapsed)


def mark_sampled(runner: Any) -> None:
    """A sample call ended now (read by ``log_time_between_samples``)."""
    runner._time_after_sampling = time.perf_counter()


def log_sampled_steps(runner: Any, env_steps: int, episodes_done: int) -> None:
    """Count a sample call's env steps and finished episodes as RLlib's runner does (its
    metrics and its Prometheus counter)."""
    runner._log_env_steps(metric=runner._metrics_num_env_steps_sampled, num_steps=env_steps)
    runner._increase_sampled_metrics(env_steps, episodes_done)


def log_finished_episode(runner: Any, length: int, episode_return: float, seconds: float) -> None:
    """Log a finished episode's length, return and duration with RLlib's windows."""
    runner._log_episode_metrics(length, episode_return, seconds)


def categorical_draw(logits: torch.Tensor) -> torch.Tensor:
    """Actions from (B, A) logits, drawn as RLlib's ``TorchCategorical`` draws them: its
    ``torch.multinomial(probs, 1)`` takes, per row, argmax_a p_a / E_a with E_a ~ Exp(1) drawn
    from the generator (row by row), which is what this computes, with the same numbers: the
    same actions, and the generator left where multinomial leaves it (the tests compare both);
    without a distribution object and multinomial's scans of its argument, which cost more
    than the CartPole step itself.

    TorchCategorical takes the softmax of the logits minus their logsumexp; this takes it of
    the logits themselves. The probabilities agree to float rounding, so a draw could differ
    only where p_a / E_a of two actions tie within rounding (about 1e-7 per draw)."""
    probs = torch.softmax(logits, dim=-1)
    return (probs / torch.empty_like(probs).exponential_(1.0)).argmax(dim=-1)
