"""The one place where rlgen reaches into Ray core's private parts (Ray 2.60.x).

An embedded instance (``runkit.cluster.connect`` starting Ray for one run) lives exactly as long
as that run, and nobody attaches to it. Ray's local start still launches, besides the GCS,
the raylet and its agents, three Python processes that such an instance never uses:

- the autoscaler monitor (one node that never scales);
- the log monitor (rlgen starts Ray with ``log_to_driver=False``: nothing reads what it sends);
- the API server, which with ``include_dashboard=False`` loads only the usage-stats module,
  and which ``ray.init`` waits for until it answers (about 2.5 s on two busy cores).

Together they cost about 3.4 s of CPU and 2.5 s of wall time per start (measured on this
project's 2-core machine). ``lean_local_start`` skips them while Ray starts an instance here.
It also turns off the raylet's start of one idle Python worker per CPU when the first driver
connects (Ray's ``prestart_worker_first_driver`` setting, which the raylet reads from
``RAY_prestart_worker_first_driver``): those start while the run is still importing and
building its job, and compete with it for the cores (enabling them again once a lean Train
job's actors no longer carried a runtime env made ``rlgen train vae`` no faster). Ray then
starts workers when the first task or actor asks for them.
Measured back to back, alternating: ``rlgen train reinforce`` (1,000 steps) 11.3 s -> 10.1 s
(means of 7, faster in 6), ``rlgen train vae`` (500 images) 22.7 s -> 21.4 s (means of 3).
A user's own setting of the variable is kept.
One user of the API server remains: Ray Train's placement-group cleaner asks Ray's state API
whether the Train controller is alive, and without the server that call retries for 40 s
instead of failing at once. A trainer in the process that started the instance goes without
the cleaner (``generative/train_compat.py``); a Tune experiment of Train jobs, whose trials
keep it, asks for the server (``connect(api_server=True)``), and an instance started lean in
this process gets it late (``start_api_server``) when such an experiment follows a run.

What is touched: ``ray._private.node.Node.start_monitor``, ``start_log_monitor`` and
``start_api_server`` (the methods ``Node.start_head_processes`` and
``Node.start_ray_processes`` call), replaced on the class only for the duration of the
``ray.init`` call; ``ray._private.worker._global_node``, the head node this process started,
with its ``head`` flag and its ``all_processes`` (``PROCESS_TYPE_DASHBOARD``: the API server);
``ray._private.worker.print_to_stdstream`` (``messages_to_stderr``).
``tests/test_ray_compat.py`` checks each against the installed Ray. Joining a cluster
(``RAY_ADDRESS``, a head started with ``ray start --head``) starts none of these processes
here and is unchanged.

Importing this module on a Ray outside ``SUPPORTED_RAY`` raises ``ImportError``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

import ray
from ray._private import node as ray_node
from ray._private import ray_constants

SUPPORTED_RAY = re.compile(r"2\.60\.\d+")
if not SUPPORTED_RAY.fullmatch(ray.__version__):
    raise ImportError(
        f"rlgen's Ray start was written against Ray 2.60.x; this is Ray {ray.__version__}"
    )

# The Node methods a lean start replaces, by what each would start.
SKIPPED = {
    "autoscaler monitor": "start_monitor",
    "log monitor": "start_log_monitor",
    "API server": "start_api_server",
}
API_SERVER = "API server"
# Ray's setting for the idle workers started when the first driver connects, as the raylet
# reads it from its environment.
PRESTART_ENV = "RAY_prestart_worker_first_driver"


def _not_started(_node: Any, *args: Any, **kwargs: Any) -> None:
    """Stands in for a skipped ``Node.start_*`` method while Ray starts."""


@contextlib.contextmanager
def lean_local_start(*, api_server: bool) -> Iterator[None]:
    """While inside, a Ray instance started in this process starts without the processes in
    ``SKIPPED`` (the API server too unless ``api_server``) and without prestarted workers
    (unless the user set ``PRESTART_ENV``). The methods and the environment are back on
    leaving."""
    names = [m for what, m in SKIPPED.items() if not (api_server and what == API_SERVER)]
    saved = {name: ray_node.Node.__dict__[name] for name in names}
    for name in names:
        setattr(ray_node.Node, name, _not_started)
    users_prestart = PRESTART_ENV in os.environ
    if not users_prestart:
        os.environ[PRESTART_ENV] = "0"
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(ray_node.Node, name, method)
        if not users_prestart:
            os.environ.pop(PRESTART_ENV, None)


def messages_to_stderr() -> None:
    """Ray prints what its raylets send a driver ("N PYTHON worker processes have been
    started", a worker that died) on the driver's standard output, from a thread, at any moment;
    rlgen's standard output is the run's result, one JSON document, so once a raylet warned in
    the middle of it. From now on in this process they go to standard error: the listener
    thread calls ``print_to_stdstream`` by its module-level name, replaced here by one that
    marks every message as an error line. Idempotent."""
    from ray._private import worker

    original = worker.print_to_stdstream
    if getattr(original, "rlgen_to_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.rlgen_to_stderr = True  # type: ignore[attr-defined]
    to_stderr.__wrapped__ = original  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def head_started_here() -> Any | None:
    """The head node of the instance this process started, or None (joined, or not started)."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return node if node is not None and getattr(node, "head", False) else None


def start_api_server() -> None:
    """Start the API server of a lean instance this process started (see the module's
    docstring); nothing where it runs already or Ray was joined (a joined cluster keeps its
    own)."""
    node = head_started_here()
    if node is not None and ray_constants.PROCESS_TYPE_DASHBOARD not in node.all_processes:
        node.start_api_server(include_dashboard=False, raise_on_failure=False)
