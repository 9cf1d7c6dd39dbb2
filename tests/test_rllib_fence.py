"""The fence around RLlib (``algorithms/rllib_compat.py``): each RLlib internal it touches is
still there, with the signature and the behaviour it relies on; the fence refuses another Ray
series; and no module outside it names one of the private names it owns.

A failure here after a Ray upgrade names the internal that changed: adapt the fence (and only
the fence), then widen ``SUPPORTED_RAY`` and the pin in pyproject.toml."""

from __future__ import annotations

import ast
import inspect
import re
import runpy
import tomllib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import ray
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.learner.learner_group import LearnerGroup
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.env.env_runner import EnvRunner
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME, TIME_BETWEEN_SAMPLING
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from algorithms import rllib_compat as fence
from algorithms.a2c.algorithm import A2CConfig
from tests.conftest import ROOT

FENCE = ROOT / "algorithms" / "rllib_compat.py"
SCANNED = ("algorithms", "envs", "generative", "runkit", "tune_configs", "rlgen.py")
OBS = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
ACT = gym.spaces.Discrete(2)
ALGOS = ("a2c", "dqn", "reinforce")


# Ray adds this keyword to the signatures of a class's methods once the class is made an actor
# in the process (its tracing hook), so it appears after an earlier test in the same worker has
# started RLlib's actors: Ray's own, not part of RLlib's signature.
RAY_TRACING_PARAMETER = "_ray_trace_ctx"


def params(function: Any) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != RAY_TRACING_PARAMETER]


@pytest.mark.parametrize("version", ["2.61.0", "2.59.2", "3.60.0", "2.6.0", "2.60", "nightly"])
def test_another_version_is_refused_naming_the_supported_range(version):
    fence.check_ray_version("2.60.7")  # the supported series passes
    with pytest.raises(ImportError, match=f"ray>=2.60.0,<2.61.*Ray {version} is installed"):
        fence.check_ray_version(version)


def test_the_fence_refuses_to_import_on_another_ray(monkeypatch):
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    with pytest.raises(ImportError, match="ray>=2.60.0,<2.61"):
        runpy.run_path(str(FENCE))  # the module's code, without replacing the imported one


def test_pyproject_pins_ray_to_the_fenced_series():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray_dep,) = [d for d in deps if d.startswith("ray[")]
    assert ray_dep.endswith("]" + fence.SUPPORTED_RANGE), ray_dep
    fence.check_ray_version(ray.__version__)


SIGNATURES = [
    (Learner._make_batch_if_necessary, ["self", "training_data"]),
    (TorchLearner._set_optimizer_state, ["self", "state"]),
    (TorchLearner.apply_gradients, ["self", "gradients_dict"]),
    (EnvRunner._log_env_steps, ["self", "metric", "num_steps"]),
    (SingleAgentEnvRunner._increase_sampled_metrics,
     ["self", "num_steps", "num_episodes_completed"]),
    (SingleAgentEnvRunner._log_episode_metrics, ["self", "length", "ret", "sec"]),
    (MetricsLogger.compile, ["self"]),
    (MetricsLogger.peek, ["self", "key", "default", "compile", "throughput", "latest_merged_only"]),
    (TrainingData.shard, ["self", "num_shards", "len_lookback_buffer", "kwargs"]),
]  # fmt: skip


@pytest.mark.parametrize("function, expected", SIGNATURES, ids=[f.__name__ for f, _ in SIGNATURES])
def test_touched_methods_keep_their_signature(function, expected):
    assert params(function) == expected


def test_update_and_sample_take_the_keywords_used():
    assert "_no_metrics_reduce" in params(Learner.update)
    assert {"training_data", "timesteps", "kwargs"} <= set(params(LearnerGroup.update))
    ours = {"num_timesteps", "num_episodes", "explore", "random_actions", "force_reset"}
    assert ours <= set(params(SingleAgentEnvRunner.sample))


def test_rllib_calls_what_the_fence_overrides_or_patches():
    assert "self._make_batch_if_necessary(" in inspect.getsource(Learner)
    # The iteration's results are compiled once, at its end, through the patched logger.
    assert "compiled_metrics = self.metrics.compile()" in inspect.getsource(Algorithm)
    assert "self._learner = " in inspect.getsource(LearnerGroup.__init__)


def test_rlmodule_forward_methods_call_the_documented_hooks():
    """Not fenced: the ``_forward*`` methods RLlib's docs ask a custom RLModule to override."""

    class Probe(TorchRLModule):
        def setup(self) -> None:
            pass

        def _forward(self, batch: dict, **kwargs: Any) -> dict:
            return {"by": "_forward"}

        def _forward_train(self, batch: dict, **kwargs: Any) -> dict:
            return {"by": "_forward_train"}

    probe = Probe(observation_space=OBS, action_space=ACT, model_config={})
    assert probe.forward_inference({})["by"] == "_forward"
    assert probe.forward_exploration({})["by"] == "_forward"
    assert probe.forward_train({})["by"] == "_forward_train"


def _learner(**training: Any) -> Any:
    config = A2CConfig().training(**training).debugging(seed=0)
    return config.build_learner(spaces={DEFAULT_MODULE_ID: (OBS, ACT)})


def _episodes(n: int = 3, length: int = 6) -> list[SingleAgentEpisode]:
    rng = np.random.default_rng(0)
    return [SingleAgentEpisode(
        observations=list(rng.uniform(-1, 1, size=(length + 1, 4)).astype(np.float32)),
        actions=[int(a) for a in rng.integers(0, 2, size=length)],
        rewards=list(rng.normal(size=length)), observation_space=OBS, action_space=ACT,
        terminated=True, len_lookback_buffer=0,
    ) for _ in range(n)]  # fmt: skip


def test_learner_device_connector_and_weights_number():
    learner = _learner()
    assert isinstance(fence.device_of(learner), torch.device)
    pipeline = fence.learner_connector(learner)
    assert type(pipeline.connectors[0]).__name__ == "GeneralizedAdvantages"  # prepended
    assert fence.custom_learner_connector(learner.config) is None
    before = fence.weights_seq_no(learner)
    learner.update(training_data=TrainingData(episodes=_episodes()), timesteps={})
    assert fence.weights_seq_no(learner) == before + 1

    build = lambda *args: []  # noqa: E731 - a user's learner connector builder
    assert fence.custom_learner_connector(A2CConfig().training(learner_connector=build)) is build


def test_rllib_calls_the_batch_and_optimizer_state_hooks():
    """RLlib's ``update`` builds the batch through ``_make_batch_if_necessary``, its
    ``set_state`` loads optimizers through ``_set_optimizer_state``: the fence's hooks."""
    learner, calls = _learner(), []
    learner.batch_from_episodes = lambda data: calls.append("batch") or None  # RLlib's pipeline
    learner.optimizer_state_loaded = lambda: calls.append("state")
    learner.update(training_data=TrainingData(episodes=_episodes()), timesteps={})
    learner.set_state(learner.get_state())
    assert calls == ["batch", "state"]


def test_learning_rates_are_read_and_restored():
    learner = _learner(lr=0.003)
    assert fence.optimizer_learning_rates(learner) == {DEFAULT_MODULE_ID: pytest.approx(0.003)}
    (optimizer,) = learner.get_optimizers_for_module(DEFAULT_MODULE_ID)
    optimizer[1].param_groups[0]["lr"] = 0.5  # as a loaded state would carry it
    fence.restore_fixed_learning_rates(learner)
    assert optimizer[1].param_groups[0]["lr"] == pytest.approx(0.003)


def test_step_optimizers_steps_as_rllibs_apply_gradients():
    ours, theirs = _learner(), _learner()
    theirs.module.set_state(ours.module.get_state())
    for learner in (ours, theirs):
        # the same gradient in both, by parameter reference
        grads = {ref: torch.full_like(p, 0.1) for ref, p in learner._params.items()}
        if learner is ours:
            assert fence.step_optimizers(learner, grads)
        else:
            TorchLearner.apply_gradients(learner, grads)
    pairs = zip(ours.module[DEFAULT_MODULE_ID].parameters(),
                theirs.module[DEFAULT_MODULE_ID].parameters(), strict=True)  # fmt: skip
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ours._lr_scheduler_classes = [torch.optim.lr_scheduler.ConstantLR]
    assert not fence.step_optimizers(ours, {})  # RLlib's own must step those


def test_local_learner_and_update_without_reducing():
    config = A2CConfig().debugging(seed=0)
    group = config.build_learner_group(spaces={DEFAULT_MODULE_ID: (OBS, ACT)})
    learner = fence.local_learner(group)
    assert isinstance(learner, TorchLearner)
    for reduce in (True, False):
        data = TrainingData(episodes=_episodes())
        (results,) = fence.update_learner_group(group, training_data=data, timesteps={},
                                                reduce_metrics=reduce)  # fmt: skip
        if reduce:
            assert DEFAULT_MODULE_ID in results
        else:
            assert results is None  # left in the Learner's logger, reduced later
            assert DEFAULT_MODULE_ID in learner.metrics.reduce()


def test_metrics_patches_fold_in_and_count_pending_steps():
    metrics, pending, folded = MetricsLogger(root=True), [3], []
    key = ("env_runners", NUM_ENV_STEPS_SAMPLED_LIFETIME)
    metrics.log_value(key, 10, reduce="lifetime_sum", with_throughput=True)
    metrics.log_value("other", 1.0)
    fence.wrap_metrics_peek(metrics, key, pending=lambda: pending[0])
    fence.wrap_metrics_compile(metrics, before=lambda: folded.append(True))
    assert metrics.peek(key) == 13
    assert metrics.peek(key=key, default=0) == 13
    assert metrics.peek("other") == 1.0
    assert metrics.peek(key, throughput=True) != 13
    pending[0] = 0
    assert metrics.peek(key) == 10
    assert folded == []
    assert metrics.compile()["other"] == 1.0
    assert folded == [True]


def test_env_runner_internals_the_lean_runner_uses():
    from algorithms.common.env_runner import LeanEnvRunner

    config = A2CConfig().environment("CartPole-v1").debugging(seed=3)
    runner = LeanEnvRunner(config=config.env_runners(num_envs_per_env_runner=2))
    assert fence.run_seed(runner) == 3
    assert isinstance(fence.device_of(runner), torch.device)
    assert fence.weights_seq_no(runner) == 0
    fence.log_time_between_samples(runner)  # no sample call ended yet: nothing logged
    assert TIME_BETWEEN_SAMPLING not in runner.metrics.reduce()
    runner.sample(num_timesteps=8)
    runner.sample(num_timesteps=8)
    fence.log_sampled_steps(runner, 5, 1)
    fence.log_finished_episode(runner, 7, 7.0, 0.1)
    metrics = runner.get_metrics()
    assert metrics[TIME_BETWEEN_SAMPLING] > 0
    assert metrics[NUM_ENV_STEPS_SAMPLED_LIFETIME] == 21
    assert metrics["num_episodes"] >= 1 and 7.0 <= metrics["episode_return_max"]
    learner = _learner()
    learner.update(training_data=TrainingData(episodes=_episodes()), timesteps={})
    fence.copy_weights_seq_no(learner, runner)
    assert fence.weights_seq_no(runner) == fence.weights_seq_no(learner) == 1


def test_categorical_draw_takes_torch_categoricals_random_stream():
    logits = torch.randn(300, 4, generator=torch.Generator().manual_seed(1)) * 2
    torch.manual_seed(5)
    theirs, their_next = TorchCategorical.from_logits(logits).sample(), torch.rand(3)
    torch.manual_seed(5)
    ours, our_next = fence.categorical_draw(logits), torch.rand(3)
    assert torch.equal(ours, theirs) and torch.equal(our_next, their_next)


# rlgen's own private names must shadow none of RLlib's.
RLMODULE_HOOKS = {"_forward", "_forward_train", "_forward_inference", "_forward_exploration"}
SUBCLASSES = [  # (rlgen files, the RLlib class their classes extend)
    (["common/env_runner.py"], SingleAgentEnvRunner),
    (["common/gradients.py", "common/optim.py"] + [f"{a}/learner.py" for a in ALGOS], TorchLearner),
    (["common/base.py"] + [f"{a}/algorithm.py" for a in ALGOS], Algorithm),
    ([f"{a}/module.py" for a in ALGOS], TorchRLModule),
    (["common/config.py"], AlgorithmConfig),
]  # fmt: skip


def own_private_names(source: str) -> set[str]:
    """``self._x`` attributes set and ``_x`` methods or class attributes defined."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def rllib_private_names(cls: type) -> set[str]:
    sources = [inspect.getsource(c) for c in cls.__mro__ if c.__module__.startswith("ray.")]
    return set(re.findall(r"(?:self\.|def )(_[A-Za-z]\w*)", "\n".join(sources)))


@pytest.mark.parametrize("files, base", SUBCLASSES, ids=lambda x: getattr(x, "__name__", ""))
def test_own_private_names_shadow_none_of_rllibs(files, base):
    """A private name of ours that RLlib's base class also uses would silently change one of
    them (as ``_needs_initial_reset`` in the runner did before it was renamed)."""
    ours = set().union(*(own_private_names((ROOT / "algorithms" / f).read_text()) for f in files))
    assert ours & rllib_private_names(base) - RLMODULE_HOOKS == set()


def private_touches(source: str, names: frozenset[str] = fence.OWNED_NAMES) -> list[str]:
    """Where ``source`` names one of ``names``: an attribute, a method defined (an override),
    a keyword argument, or a string (``getattr(x, "_learner")``); as 'line: name'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = node.name
        elif isinstance(node, ast.keyword):
            name = node.arg or ""
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
        else:
            continue
        if name in names:
            found.append((getattr(node, "lineno", 0), name))
    return [f"{line}: {name}" for line, name in sorted(found)]


def _scanned_files() -> list[Path]:
    """Every module of the project (packages, top-level modules, bench/, cluster/); not the
    tests, not the fence."""
    tops = [p for p in ROOT.iterdir() if not p.name.startswith(".") and p.name != "tests"]
    files = [f for top in tops for f in ([top] if top.suffix == ".py" else top.rglob("*.py"))]
    return sorted(f for f in files if f != FENCE)


def test_the_scanner_sees_each_kind_of_touch():
    planted = (
        "x = group._learner\ndef _make_batch_if_necessary(self, data): pass\n"
        "g.update(_no_metrics_reduce=True)\ngetattr(r, '_seed')\nself._learner_pending = 1\n"
    )
    expected = ["1: _learner", "2: _make_batch_if_necessary", "3: _no_metrics_reduce", "4: _seed"]
    assert private_touches(planted) == expected


def test_no_module_outside_the_fence_names_a_private_rllib_name():
    files = _scanned_files()
    assert {ROOT / part for part in SCANNED} <= {f.parent for f in files} | set(files)
    touches = {}
    for f in files:
        if hits := private_touches(f.read_text()):
            touches[str(f.relative_to(ROOT))] = hits
    assert touches == {}, f"use algorithms/rllib_compat.py instead: {touches}"
