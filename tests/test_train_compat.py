"""The fence around Ray Train (``generative/train_compat.py``): what it relies on is still in
the installed Ray (fast); a run in the process that started Ray makes none of the helpers it
drops, with two Train workers, and leaves no placement group; a fit whose controller died
leaves none either, and one that ended touches none; a trainer anywhere else keeps Ray Train's
own set-up."""

from __future__ import annotations

import asyncio
import inspect
import os
import runpy
from collections import Counter

import pytest
import ray
from ray.train import ScalingConfig
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import (
    PlacementGroupCleanerCallback,
)
from ray.train.v2._internal.execution.controller import TrainController, controller
from ray.train.v2._internal.execution.scaling_policy import ScalingPolicy
from ray.train.v2._internal.execution.scaling_policy.factory import create_scaling_policy
from ray.train.v2._internal.execution.scaling_policy.fixed import FixedScalingPolicy
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

import rlgen
from generative import train_compat, train_controller
from tests.conftest import ROOT
from tests.test_vae_job import _small_dataset

DROPPED = {"PlacementGroupCleaner", "_AutoscalingCoordinatorActor", "DatasetManager"}
HEALTH, PREEMPTION = sorted(train_controller.READ_AT_INIT)


def test_another_ray_series_is_refused(monkeypatch):
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    with pytest.raises(ImportError, match="Ray 2.60.x; this is Ray 2.61.0"):
        runpy.run_path(str(ROOT / "generative" / "train_compat.py"))


def test_the_trainer_builds_what_the_fence_changes_where_it_changes_it():
    """``fit`` hands the scaling policy to the controller as ``scaling_policy`` (made by the
    factory, a ``FixedScalingPolicy`` for a fixed size), and the default callbacks include the
    two that are dropped, each made there."""
    fit = inspect.getsource(DataParallelTrainer.fit)
    assert "scaling_policy=create_scaling_policy(self.scaling_config)" in fit
    assert "self._initialize_and_run_controller(" in fit
    defaults = inspect.getsource(DataParallelTrainer._create_default_callbacks)
    assert "PlacementGroupCleanerCallback()" in defaults and "DatasetsCallback(" in defaults
    assert "FixedScalingPolicy(scaling_config=scaling_config)" in inspect.getsource(
        create_scaling_policy
    )


def test_the_policy_reaches_the_coordinator_only_through_the_methods_replaced():
    source = inspect.getsource(ScalingPolicy) + inspect.getsource(FixedScalingPolicy)
    assert source.count("TrainAutoscalingCoordinatorClient(") == 1  # after_controller_start
    replaced = {
        name
        for name, value in vars(train_compat.NoAutoscalerScalingPolicy).items()
        if callable(value)
    }
    assert replaced == {
        "after_controller_start", "before_controller_shutdown", "before_controller_abort",
        "_maybe_send_resource_request",
    }  # fmt: skip
    for name in replaced:
        theirs = inspect.signature(getattr(FixedScalingPolicy, name))
        ours = inspect.signature(getattr(train_compat.NoAutoscalerScalingPolicy, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        assert inspect.iscoroutinefunction(
            getattr(train_compat.NoAutoscalerScalingPolicy, name)
        ) == inspect.iscoroutinefunction(getattr(FixedScalingPolicy, name))
    # The coordinator client is made in after_controller_start; every other coordinator call
    # goes through the client it made, which the replacement never makes.
    assert "_coordinator_client = TrainAutoscalingCoordinatorClient(" in inspect.getsource(
        ScalingPolicy.after_controller_start
    )
    policy = train_compat.NoAutoscalerScalingPolicy(scaling_config=ScalingConfig(num_workers=2))
    policy.after_controller_start(None)
    policy._maybe_send_resource_request()
    asyncio.run(policy.before_controller_shutdown())
    policy.before_controller_abort()
    assert policy._coordinator_client is None


def test_the_controller_start_taken_over_is_rays_with_a_runtime_env():
    """Ray Train starts its controller on the driver's node with no CPU, its Ctrl-C handler,
    ``run`` and then ``get_result``, and hands it the Train settings as a runtime env: the steps
    ``LeanTorchTrainer._run_lean_controller`` takes, less that env."""
    theirs = inspect.getsource(DataParallelTrainer._initialize_and_run_controller)
    for step in (
        "env_vars = get_env_vars_to_propagate()", "num_cpus=0,", "label_selector={",
        "ray._raylet.RAY_NODE_ID_KEY: ray.get_runtime_context().get_node_id()",
        'runtime_env={"env_vars": env_vars}', ")(TrainController)",
        "controller_actor_cls.remote(**controller_init_kwargs)",
        "self._register_sigint_handler(controller)", "ray.get(controller.run.remote())",
        "return ray.get(controller.get_result.remote())",
    ):  # fmt: skip
        assert step in theirs, step
    ours = inspect.getsource(train_compat.LeanTorchTrainer._run_lean_controller)
    assert "runtime_env" not in ours and "self._register_sigint_handler(controller)" in ours


def test_the_settings_taken_as_arguments_are_read_in_the_controllers_init_only():
    """Restoring them after ``__init__`` is safe: nothing else in the controller reads them.
    And the flag the lean controller sets is the one ``ray.get`` checks before warning."""
    init = inspect.getsource(TrainController.__init__)
    module = inspect.getsource(controller)
    for name in ("HEALTH_CHECK_INTERVAL_S_ENV_VAR", "ENABLE_PREEMPTION_WATCHER_ENV_VAR"):
        assert module.count(name) == init.count(name) + 1 >= 2, name  # and the import
    assert train_controller.READ_AT_INIT == {HEALTH, PREEMPTION}
    assert "blocking_get_inside_async_warned" in inspect.getsource(ray._private.worker.get)


def test_the_lean_controller_sees_its_settings_only_while_its_init_runs(monkeypatch):
    seen = {}

    def init(self, **kwargs):
        seen.update(kwargs, env={n: os.environ.get(n) for n in (HEALTH, PREEMPTION)})

    monkeypatch.setattr(TrainController, "__init__", init)
    monkeypatch.setattr(ray._private.worker, "blocking_get_inside_async_warned", False)
    monkeypatch.setenv(HEALTH, "9")  # the worker's own environment has one of them
    monkeypatch.delenv(PREEMPTION, raising=False)
    train_controller.LeanTrainController(settings={HEALTH: "0.5", PREEMPTION: "0"}, run_id=7)
    assert seen == {"run_id": 7, "env": {HEALTH: "0.5", PREEMPTION: "0"}}
    assert os.environ[HEALTH] == "9" and PREEMPTION not in os.environ
    assert ray._private.worker.blocking_get_inside_async_warned is True
    with pytest.raises(ValueError, match="RAY_TRAIN_COLLECTIVE_TIMEOUT_S"):
        train_controller.LeanTrainController(settings={"RAY_TRAIN_COLLECTIVE_TIMEOUT_S": "5"})


def _callbacks(trainer_class, datasets):
    trainer = trainer_class(lambda: None, scaling_config=ScalingConfig(num_workers=2),
                            datasets=datasets)  # fmt: skip
    return {type(cb) for cb in trainer._create_default_callbacks()}


@pytest.mark.parametrize("with_dataset", [False, True])
def test_the_lean_trainer_drops_the_cleaner_and_an_unused_dataset_manager(with_dataset):
    datasets = {"train": lambda: None} if with_dataset else {}
    theirs = _callbacks(TorchTrainer, datasets)
    ours = _callbacks(train_compat.LeanTorchTrainer, datasets)
    assert {PlacementGroupCleanerCallback, DatasetsCallback} <= theirs
    dropped = {PlacementGroupCleanerCallback} | (set() if with_dataset else {DatasetsCallback})
    assert ours == theirs - dropped


def _actors() -> dict[str, str]:
    """Every actor the instance has made (dead ones too): id -> class name, from the GCS."""
    from ray._private import state

    return {aid: info["ActorClassName"] for aid, info in state.actors().items()}


def test_a_run_in_the_process_that_started_ray_makes_none_of_the_dropped_helpers(
    tmp_path, ray_local
):
    assert train_compat.lean_here()  # this test process started the session's instance
    data = _small_dataset(tmp_path / "digits", n_train=64, n_test=16)
    before = _actors()
    envs_before = _runtime_envs_made()
    result = rlgen.train(
        "vae", dataset=str(data), epochs=1, num_workers=2, overrides={"iw_samples": 2},
        output=tmp_path / "run",
    )  # fmt: skip
    made = Counter(name for aid, name in _actors().items() if aid not in before)
    assert result.epochs == 1 and result.num_workers == 2
    assert made["LeanTrainController"] == 1 and made["RayTrainWorker"] == 2
    assert not DROPPED & set(made), made
    assert train_compat.live_placement_groups() == set()
    # No actor of the run needed a runtime env, and the controller got rlgen's setting that
    # turns the preemption watcher off (Ray Train's default makes one).
    assert _runtime_envs_made() == envs_before
    assert "PreemptionWatcher" not in made


def _runtime_envs_made() -> list[str]:
    """The runtime envs the instance's agent has made, from its log."""
    from runkit import ray_compat

    log = os.path.join(ray_compat.head_started_here().get_logs_dir_path(), "runtime_env_agent.log")
    with open(log) as f:
        return [line for line in f if "Creating runtime env" in line]


def test_a_fit_whose_controller_died_leaves_no_placement_group(ray_local, monkeypatch):
    """The cleaner's one job here: a controller that died with its workers' placement group
    still held. The controller is stood in for by a function that makes the group and fails;
    it also shows which policy the controller would have been given."""
    from ray.util.placement_group import placement_group

    given = {}

    def controller_dies(self, **kwargs):
        given.update(kwargs)
        ray.get(placement_group([{"CPU": 0.01}]).ready(), timeout=60)
        raise RuntimeError("controller died")

    monkeypatch.setattr(
        train_compat.LeanTorchTrainer,
        "_run_lean_controller",
        lambda self, settings, kwargs: controller_dies(self, **kwargs),
    )
    trainer = train_compat.LeanTorchTrainer(
        lambda: None, scaling_config=ScalingConfig(num_workers=2)
    )
    kept = train_compat.live_placement_groups()
    with pytest.raises(RuntimeError, match="controller died"):
        trainer._initialize_and_run_controller(
            scaling_policy=FixedScalingPolicy(scaling_config=trainer.scaling_config)
        )
    assert train_compat.live_placement_groups() == kept
    policy = given["scaling_policy"]
    assert type(policy) is train_compat.NoAutoscalerScalingPolicy
    assert policy.scaling_config is trainer.scaling_config


def test_a_fit_that_ends_removes_no_placement_group(ray_local, monkeypatch):
    """A controller that ends, even with an error in its result, has removed its own group
    (the real run's test shows it): one alive afterwards, made meanwhile by something else in
    this process, is left alone."""
    from ray.util.placement_group import placement_group, remove_placement_group

    def controller_ends(self, **kwargs):
        other = placement_group([{"CPU": 0.01}])
        ray.get(other.ready(), timeout=60)
        return other

    monkeypatch.setattr(
        train_compat.LeanTorchTrainer,
        "_run_lean_controller",
        lambda self, settings, kwargs: controller_ends(self, **kwargs),
    )
    trainer = train_compat.LeanTorchTrainer(
        lambda: None, scaling_config=ScalingConfig(num_workers=2)
    )
    other = trainer._initialize_and_run_controller(
        scaling_policy=FixedScalingPolicy(scaling_config=trainer.scaling_config)
    )
    try:
        assert other.id.hex() in train_compat.live_placement_groups()
    finally:
        remove_placement_group(other)


def test_a_trainer_in_a_process_that_joined_ray_keeps_rays_set_up(ray_local):
    """A Tune trial's actor (and any process that joined) is not where the instance was
    started: it gets Ray Train's trainer, helpers and all."""
    assert ray.get(ray.remote(lambda: train_compat.lean_here()).remote()) is False


@pytest.mark.parametrize(
    "env, lean",
    [
        ({}, True),
        ({HEALTH: "0.5", PREEMPTION: "0"}, True),
        ({"RAY_TRAIN_COLLECTIVE_TIMEOUT_S": "5"}, False),
    ],
)
def test_train_settings_the_lean_controller_does_not_take_get_rays_own_start(
    ray_local, monkeypatch, env, lean
):
    for name in (HEALTH, PREEMPTION):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started = []
    monkeypatch.setattr(
        train_compat.LeanTorchTrainer,
        "_run_lean_controller",
        lambda self, settings, kwargs: started.append(("lean", settings)),
    )
    monkeypatch.setattr(
        TorchTrainer, "_initialize_and_run_controller", lambda self, **kw: started.append("ray")
    )
    trainer = train_compat.LeanTorchTrainer(
        lambda: None, scaling_config=ScalingConfig(num_workers=2)
    )
    trainer._initialize_and_run_controller(
        scaling_policy=FixedScalingPolicy(scaling_config=trainer.scaling_config)
    )
    assert started == ([("lean", env)] if lean else ["ray"])
