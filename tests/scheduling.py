"""How the suite's tests are dealt to its two xdist workers (``-n 2 --dist loadgroup``).

Each test is a unit of its own, except the modules in ``GROUPS``: their tests share something
made once per worker process (a module-scoped fixture, or tests/gen_runs.py's learning runs),
so all of them go to one worker. Units are dealt longest first, by the seconds ``COST_S`` expects
of their tests, so that the last tests to start are short ones and the two workers end
together: xdist's own order (units with the most tests first) left the few-test modules with
the longest runs for the end.

``COST_S`` is a module's mean seconds per test in a full run on 2 cores; refresh it from a run's
``--junitxml`` with ``python -m tests.scheduling JUNIT.xml``. A module it lacks counts
``DEFAULT_COST_S`` per test. (pytest 9.2 ignores the ``item._nodeid`` that xdist's own
``xdist_group`` marks rely on, so the grouping is done here, from the module in each test id.)
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable

# Modules whose tests must share a worker, and the name of the unit they form.
GROUPS = {
    "test_vae_job": "gen_runs",  # the generative learning runs of tests/gen_runs.py
    "test_pixelcnn_job": "gen_runs",
    "test_cluster_live": "test_cluster_live",  # module-scoped fixtures
    "test_cluster_policy": "test_cluster_policy",
    "test_eval_policies": "test_eval_policies",
    "test_gen_checkpoints": "test_gen_checkpoints",
    "test_run_limits": "test_run_limits",
    "test_security": "test_security",
}

DEFAULT_COST_S = 10.0

# Mean seconds per test, 2 cores, both workers busy (2026-12-03, a slow day: the whole suite
# took 42 minutes).
COST_S = {
    "test_a2c_advantages": 0.3, "test_a2c_learner": 0.5, "test_a2c_wiring": 6.3,
    "test_api": 7.7, "test_atari": 3.9, "test_bad_inputs": 0.1, "test_cli": 3.0,
    "test_cluster_config": 0.3, "test_cluster_launcher": 30.7, "test_cluster_live": 134.0,
    "test_cluster_policy": 0.3, "test_cluster_rules": 0.1, "test_cluster_start": 14.5,
    "test_config": 0.0, "test_data_parallel": 21.6, "test_docs": 0.1, "test_dqn_learner": 0.9,
    "test_dqn_math": 0.0, "test_dqn_wiring": 10.1, "test_encoder_runs": 7.8,
    "test_env_runner": 3.3, "test_eval_policies": 8.9, "test_faults": 27.7,
    "test_faults_kills": 128.7, "test_faults_values": 48.3, "test_frame_encoder": 0.2,
    "test_gen_checkpoints": 27.0, "test_gen_config": 0.0, "test_gen_data": 1.7,
    "test_gen_faults": 0.0, "test_hostile_checkpoints": 0.1, "test_hostile_checks": 0.0,
    "test_hostile_data": 0.0, "test_hostile_inputs": 0.4, "test_hostile_modes": 0.0,
    "test_hostile_paths": 0.1, "test_jobkinds": 0.0, "test_keys": 0.0, "test_layers": 0.5,
    "test_learning": 109.2, "test_lint": 1.8, "test_losses": 0.3, "test_normalization": 0.1,
    "test_pixelcnn_cache": 0.1, "test_pixelcnn_job": 145.0, "test_pixelcnn_math": 0.2,
    "test_ppo": 0.9, "test_record": 15.8, "test_replay": 0.9, "test_returns": 0.0,
    "test_rllib_fence": 0.2, "test_run_limits": 0.5, "test_secrets": 7.8, "test_security": 11.5,
    "test_shards": 14.1, "test_sizes": 1.8, "test_storage": 11.2, "test_tiers": 0.0,
    "test_tune": 10.4, "test_tune_runs": 65.9, "test_vae_job": 36.9, "test_vae_math": 0.2,
    "test_wiring": 14.0,
}  # fmt: skip


# Tests far from their module's mean: mypy starts without a cache on a fresh clone (CI).
TEST_COST_S = {"tests/test_lint.py::test_mypy": 70.0}


def module_of(nodeid: str) -> str:
    """``tests/test_x.py::test_y[...]`` -> ``test_x``."""
    path = nodeid.split("::", 1)[0]
    return path.rsplit("/", 1)[-1].removesuffix(".py")


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module's group, or the test itself."""
    return GROUPS.get(module_of(nodeid), nodeid)


def longest_first(nodeids: Iterable[str]) -> list[str]:
    """The tests in the order their units are dealt: units by expected seconds, longest
    first (ties in collection order); a unit's tests together, in collection order."""
    units: dict[str, list[str]] = defaultdict(list)
    for nodeid in nodeids:
        units[unit_of(nodeid)].append(nodeid)

    def cost(tests: list[str]) -> float:
        return sum(TEST_COST_S.get(t, COST_S.get(module_of(t), DEFAULT_COST_S)) for t in tests)

    ordered = sorted(units.values(), key=cost, reverse=True)  # stable: ties keep their order
    return [nodeid for tests in ordered for nodeid in tests]


def make_scheduler(config, log):  # noqa: ANN001, ANN201 - xdist's types, imported lazily
    """xdist's scope scheduling (a unit goes whole to one worker; a worker with two tests or
    fewer left gets the next unit) over ``unit_of``'s units, dealt in the order the workers
    collected them (``order_items`` put them longest first)."""
    from xdist.scheduler import LoadScopeScheduling

    class LongestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # not xdist's order (most tests first)
    return LongestFirst(config, log)


def order_items(items: list) -> None:
    """On an xdist worker: ``items`` (pytest's) in ``longest_first``'s order, the same on
    every worker."""
    position = {nodeid: i for i, nodeid in enumerate(longest_first(i.nodeid for i in items))}
    items.sort(key=lambda item: position[item.nodeid])


def _costs_from_junit(path: str) -> dict[str, float]:
    """Mean seconds per test of each module in a ``--junitxml`` report."""
    import xml.etree.ElementTree as ET  # noqa: S405 - the suite's own report

    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314
        module = case.get("classname", "").rsplit(".", 1)[-1]
        total[module] += float(case.get("time", 0.0))
        count[module] += 1
    return {m: round(total[m] / count[m], 1) for m in sorted(total)}


if __name__ == "__main__":
    print(_costs_from_junit(sys.argv[1]))
