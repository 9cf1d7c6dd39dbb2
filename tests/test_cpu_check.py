"""An RL run whose actors ask for more CPUs than the cluster has: Ray would hold them back
until CPUs free up. On an instance the run started itself no node ever joins, so that is a
refusal (exit 2, one line, the run directory not made) instead of a run that waits in silence;
on a joined cluster, a warning. The count includes the Learner actors (RLlib's
``num_cpus_per_learner="auto"``)."""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace

import pytest
from ray.rllib.core.learner.learner_group import LearnerGroup

from algorithms.configure import actor_cpus
from runkit import cluster, ray_compat
from runkit.errors import UserError
from tests.conftest import run_cli


def _config(runners=2, per_runner=1, learners=0, per_learner="auto", gpus=0):
    return SimpleNamespace(
        num_env_runners=runners, num_cpus_per_env_runner=per_runner, num_learners=learners,
        num_cpus_per_learner=per_learner, num_gpus_per_learner=gpus,
    )  # fmt: skip


@pytest.mark.parametrize(
    "config, need",
    [
        (_config(), 2),
        (_config(learners=2), 4),  # "auto": one CPU per Learner
        (_config(learners=2, per_learner=0.5), 3),
        (_config(learners=2, gpus=1), 2),  # "auto" with a GPU: none
        (_config(runners=0, learners=3, per_runner=2), 3),
    ],
)
def test_the_count_is_what_rllib_asks_for(config, need):
    what, counted = actor_cpus(config)
    assert counted == need
    assert what.startswith(f"{config.num_env_runners} rollout actors x")
    assert ("Learner actors" in what) == bool(config.num_learners)
    # RLlib's rule for "auto", where its Learner actors are made.
    source = inspect.getsource(LearnerGroup.__init__)
    assert 'if self.config.num_cpus_per_learner != "auto"' in source
    assert "if self.config.num_gpus_per_learner == 0" in source


@pytest.mark.parametrize("started_here, need", [(True, 3), (False, 3), (True, 2), (False, 2)])
def test_too_many_is_refused_here_and_a_warning_on_a_joined_cluster(
    monkeypatch, capsys, started_here, need
):
    monkeypatch.setattr(cluster, "cluster_cpus", lambda: 2.0)
    monkeypatch.setattr(ray_compat, "head_started_here", lambda: object() if started_here else None)
    if need > 2 and started_here:
        with pytest.raises(UserError, match="need 3 CPUs at once .* has 2; fewer actors, or hint"):
            cluster.check_cpus("3 rollout actors x 1 CPU", need, hint="hint")
        return
    cluster.check_cpus("3 rollout actors x 1 CPU", need, hint="hint")
    err = capsys.readouterr().err
    assert ("the run waits until CPUs join (or hint)" in err) == (need > 2)


def test_two_learners_beyond_the_machines_cpus_exit_2_with_one_line(tmp_path):
    """``rlgen train`` as a user runs it, on the instance it starts: one rollout actor and two
    Learner actors of 1,000 CPUs each. (A run that waits for them would end at the timeout.)"""
    proc = run_cli(
        "train", "a2c", "--env", "CartPole-v1", "--num-env-runners", "1",
        "--set", "num_learners=2", "--set", "num_cpus_per_learner=1000",
        "--max-env-steps", "100", "--output", str(tmp_path / "run"), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("rlgen: error")]
    assert re.fullmatch(
        r"rlgen: error: 1 rollout actors x 1 CPU and 2 Learner actors x 1000 CPU need 2001 CPUs "
        r"at once and this machine's Ray instance has \d+; fewer actors, or --set "
        r"num_cpus_per_env_runner=\.\.\. or num_cpus_per_learner=\.\.\.",
        line,
    ), line
