"""The suite's tiers (tests/conftest.py): what starts Ray or a process is marked so, and a test
in the fast tier that starts either fails."""

from __future__ import annotations

import subprocess as sp
from types import SimpleNamespace

import pytest

from tests import conftest
from tests.conftest import run_cli


def test_a_fast_test_cannot_start_a_process(request):
    assert request.node.get_closest_marker("fast") is not None
    with pytest.raises(RuntimeError, match="in the fast tier: mark it @pytest.mark.subprocess"):
        sp.run(["true"], check=True)


def test_a_fast_test_cannot_start_ray(request):
    import ray

    assert request.node.get_closest_marker("fast") is not None
    was = ray.is_initialized()  # (an earlier test of this process may have started one)
    with pytest.raises(RuntimeError, match="in the fast tier: mark it @pytest.mark.ray"):
        start = ray.init  # (spelt so: the call's own name would put this test in the ray tier)
        start(num_cpus=1)
    assert ray.is_initialized() == was


def _runs_the_cli():
    return run_cli("--help")


def _calls_a_helper_that_runs_the_cli():
    return _runs_the_cli()


def _trains():
    import rlgen

    return rlgen.train("reinforce", env="CartPole-v1", max_env_steps=10)


def _pure():
    return sum(range(3))


@pytest.mark.parametrize(
    "function,fixtures,tiers",
    [
        (_pure, (), set()),
        (_runs_the_cli, (), {"subprocess"}),
        (_calls_a_helper_that_runs_the_cli, (), {"subprocess"}),
        (_trains, (), {"ray"}),
        (_pure, ("ray_local",), {"ray"}),
        (_pure, ("s3_server", "tmp_path"), {"subprocess"}),
    ],
)
def test_tiers_come_from_calls_helpers_and_fixtures(function, fixtures, tiers):
    item = SimpleNamespace(function=function, fixturenames=fixtures)
    assert conftest._tiers(item) == tiers


def test_cli_help_runs(request):
    assert request.node.get_closest_marker("subprocess") is not None
    assert request.node.get_closest_marker("fast") is None
    assert run_cli("--help").returncode == 0
