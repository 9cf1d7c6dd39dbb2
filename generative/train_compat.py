"""The one place where rlgen reaches into Ray Train's private parts (Ray 2.60.x).

When the trainer runs in the process that started the Ray instance (``rlgen train vae`` on an
embedded instance, which ends with that process), Ray Train still starts three helpers that
such a run never uses. Each is an actor in a new Python process, on the job's path from
``fit()`` to the first step:

- the placement-group cleaner, a detached actor that removes the workers' placement group if
  the Train controller dies without removing it. Here a dead process takes the whole instance
  with it; the case left, a controller that dies while this process lives on, is covered by
  ``LeanTorchTrainer`` removing the placement groups made during a fit that failed that way
  (fits in one process run one after the other: ``rlgen.train`` returns when its run ends).
  The cleaner is also the one part of a Train job that asks Ray's state API, and so needs
  Ray's API server.
- the autoscaling coordinator, to which the controller sends its resource requests for the
  cluster's autoscaler. An embedded instance has no autoscaler (``runkit.ray_compat``).
- the dataset manager, made even when the job passes no dataset (small datasets are read by
  the workers themselves: ``generative/shards.py``).

Measured on this project's 2-core machine (a 1-worker ``TorchTrainer`` whose loop returns at
once): ``fit()`` took 19.4 s with them and 12.6 s without, and ``ray.init`` 1.1 s less
without the API server.

Such a trainer also starts the controller itself (``_run_lean_controller``, Ray Train's steps
less one): Ray Train hands the driver's Train settings to it as a runtime env, which it hands
on to its synchronization actor and every Train worker, and a worker with a runtime env is
started through Ray's set-up process, which imports Ray once more first.
``generative/train_controller.py`` takes the settings as an argument instead. When the driver
has Train settings that controller does not take, Ray Train's own start is used.
Measured, ``rlgen train vae`` with 500 images: 20.4 s -> 18.8 s (means of 9 alternating
pairs, faster in each).

A trainer anywhere else (a Tune trial's actor; a cluster joined with ``RAY_ADDRESS`` or
started with ``ray start --head``) keeps all of Ray Train's helpers: ``lean_here()`` is false
there.

What is touched: ``DataParallelTrainer._create_default_callbacks`` (its list filtered),
``DataParallelTrainer._initialize_and_run_controller`` (its ``scaling_policy`` keyword, and
its steps, taken over), ``FixedScalingPolicy``'s coordinator methods, the classes
``PlacementGroupCleanerCallback`` and ``DatasetsCallback``, ``get_env_vars_to_propagate``,
``TrainController.__init__`` (the settings it reads) and
``ray._private.worker.blocking_get_inside_async_warned``. ``tests/test_train_compat.py`` checks
each against the installed Ray.
Importing this module on a Ray outside ``SUPPORTED_RAY`` raises ``ImportError``.
"""

from __future__ import annotations

import threading
from typing import Any

import ray
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import (
    PlacementGroupCleanerCallback,
)
from ray.train.v2._internal.constants import get_env_vars_to_propagate
from ray.train.v2._internal.execution.scaling_policy.fixed import FixedScalingPolicy
from ray.util.placement_group import (
    PlacementGroup,
    placement_group_table,
    remove_placement_group,
)

from generative.train_controller import READ_AT_INIT, LeanTrainController
from runkit import ray_compat

SUPPORTED_RAY = ray_compat.SUPPORTED_RAY
if not SUPPORTED_RAY.fullmatch(ray.__version__):
    raise ImportError(
        f"rlgen's Ray Train set-up was written against Ray 2.60.x; this is Ray {ray.__version__}"
    )


def lean_here() -> bool:
    """Whether a trainer made now runs in the process that started this Ray instance (so the
    instance ends when it does)."""
    return ray_compat.head_started_here() is not None


class NoAutoscalerScalingPolicy(FixedScalingPolicy):
    """Ray Train's fixed-size policy without the resource requests to the autoscaling
    coordinator (no actor is made for it)."""

    def after_controller_start(self, train_run_context: Any) -> None:
        """No coordinator to register with."""

    async def before_controller_shutdown(self) -> None:
        """No request to cancel."""

    def before_controller_abort(self) -> None:
        """No request to cancel."""

    def _maybe_send_resource_request(self) -> None:
        """No coordinator to send to."""


class LeanTorchTrainer(TorchTrainer):  # type: ignore[misc]
    """``TorchTrainer`` for a run in the process that started its Ray instance: without the
    placement-group cleaner, the autoscaling coordinator, and (with no dataset passed) the
    dataset manager. See the module's docstring."""

    def _create_default_callbacks(self) -> list[Any]:
        dropped: tuple[type, ...] = (PlacementGroupCleanerCallback,)
        if not self.datasets:
            dropped += (DatasetsCallback,)
        # Ray Train 2.60's TorchTrainer at run time is its v2 trainer, which mypy does not see.
        made = super()._create_default_callbacks()  # type: ignore[misc]
        return [cb for cb in made if not isinstance(cb, dropped)]

    def _initialize_and_run_controller(self, **controller_init_kwargs: Any) -> Any:
        policy = controller_init_kwargs.get("scaling_policy")
        if type(policy) is FixedScalingPolicy:
            controller_init_kwargs["scaling_policy"] = NoAutoscalerScalingPolicy(
                scaling_config=policy.scaling_config
            )
        before = live_placement_groups()
        try:
            settings = get_env_vars_to_propagate()
            if set(settings) <= READ_AT_INIT:
                return self._run_lean_controller(settings, controller_init_kwargs)
            # Train settings the lean controller does not take: Ray Train's own start.
            return super()._initialize_and_run_controller(**controller_init_kwargs)  # type: ignore[misc]
        except BaseException:
            # The controller died (or the fit was interrupted) before it removed the workers'
            # placement group; one that ends, even with an error, removes it itself.
            remove_placement_groups(live_placement_groups() - before)
            raise

    def _run_lean_controller(self, settings: dict[str, str], kwargs: dict[str, Any]) -> Any:
        """Ray Train's start of its controller (``_initialize_and_run_controller``: on this
        node, no CPU, Ctrl-C handled, run, result) with the settings as an argument instead
        of a runtime env (``generative/train_controller.py``)."""
        node_key: str = ray._raylet.RAY_NODE_ID_KEY  # type: ignore[attr-defined]
        here = {node_key: ray.get_runtime_context().get_node_id()}
        actor_class: Any = ray.remote(num_cpus=0, label_selector=here)(LeanTrainController)
        controller = actor_class.remote(settings=settings, **kwargs)
        if threading.current_thread() is threading.main_thread():
            self._register_sigint_handler(controller)  # type: ignore[attr-defined]
        ray.get(controller.run.remote())
        return ray.get(controller.get_result.remote())


def live_placement_groups() -> set[str]:
    """The ids of the instance's placement groups not yet removed."""
    return {
        pg_id for pg_id, info in placement_group_table().items() if info.get("state") != "REMOVED"
    }


def remove_placement_groups(ids: set[str]) -> None:
    """Remove each placement group in ``ids`` (those a fit left: its controller died)."""
    for pg_id in ids:
        remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id))))
