"""The Train controller of a lean run: part of the fence in ``generative/train_compat.py``,
kept in a module of its own because the controller's process imports it (and that module
imports torch, which the controller never needs).

Ray Train hands the driver's Train settings to its controller as a runtime env, and the
controller hands them on to every actor it makes. A Ray worker with a runtime env is started
through Ray's set-up process, which imports Ray once more before it becomes the worker: about a
second of CPU for each of the controller, its synchronization actor and every Train worker, on
the path from ``fit()`` to the first step. ``LeanTrainController`` takes the two settings rlgen
sets (``READ_AT_INIT``) as an argument instead, sets them only while Ray's ``__init__`` reads
them, and so neither it nor anything it makes needs a runtime env.
"""

from __future__ import annotations

import os
from typing import Any

from ray._private import worker as ray_worker
from ray.train.v2._internal.constants import (
    ENABLE_PREEMPTION_WATCHER_ENV_VAR,
    HEALTH_CHECK_INTERVAL_S_ENV_VAR,
)
from ray.train.v2._internal.execution.controller import TrainController

# The Train settings that TrainController reads from its environment in ``__init__`` and
# nowhere else (tests/test_train_compat.py checks both against the installed Ray).
READ_AT_INIT = frozenset({HEALTH_CHECK_INTERVAL_S_ENV_VAR, ENABLE_PREEMPTION_WATCHER_ENV_VAR})


class LeanTrainController(TrainController):  # type: ignore[misc]
    """Ray Train's controller, given ``settings`` (some of ``READ_AT_INIT``, the values the
    driver had) as an argument instead of through its environment."""

    def __init__(self, *, settings: dict[str, str], **kwargs: Any) -> None:
        unknown = set(settings) - READ_AT_INIT
        if unknown:
            raise ValueError(f"not read by the controller's __init__: {sorted(unknown)}")
        # What Ray Train's RAY_WARN_BLOCKING_GET_INSIDE_ASYNC=0 does for its controller: no
        # warning that the (async) controller calls ray.get.
        ray_worker.blocking_get_inside_async_warned = True
        saved = {name: os.environ.get(name) for name in settings}
        os.environ.update(settings)
        try:
            super().__init__(**kwargs)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
