"""Tier 1-2: ``runkit.cluster``'s decisions, the same for every job. The GPU choice
(``decide_gpu`` and the callers that size RL Learners, Tune trials and Train workers by it)
with the cluster's GPU count faked, so no GPU and no Ray start are needed; ``RAY_ADDRESS``
checked before anything is written, unit by unit and through the CLI as a user runs it."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from runkit import cluster
from runkit.errors import UserError
from tests.conftest import run_cli


@pytest.fixture
def fake_gpus(monkeypatch):
    """``set(n)`` makes Ray's ``cluster_resources()`` report ``n`` GPUs (and 2 CPUs); ``calls``
    counts how often the cluster was asked."""
    import ray

    class Fake:
        gpus: float | None = None
        calls = 0

        def set(self, n: float | None) -> None:
            self.gpus = n

        def resources(self) -> dict[str, float]:
            self.calls += 1
            return {"CPU": 2.0} if not self.gpus else {"CPU": 2.0, "GPU": float(self.gpus)}

    fake = Fake()
    monkeypatch.setattr(ray, "cluster_resources", fake.resources)
    return fake


# (--use-gpu, GPUs in the cluster, workers) -> one GPU per worker?
DECISIONS = [
    ("no", 0, 1, False),
    ("no", 2, 2, False),
    ("auto", 0, 1, False),
    ("auto", 1, 1, True),
    ("auto", 1, 2, False),  # one GPU for two workers: none gets one
    ("auto", 2, 2, True),
    ("auto", 1, 0, True),  # no remote Learner: the one local process takes it
    ("auto", 0.5, 1, False),  # a fraction of a GPU is not a GPU for a worker
    ("yes", 1, 1, True),
    ("yes", 4, 2, True),
]


@pytest.mark.parametrize(("use_gpu", "gpus", "count", "expected"), DECISIONS)
def test_decide_gpu(fake_gpus, use_gpu, gpus, count, expected):
    fake_gpus.set(gpus)
    assert cluster.decide_gpu(use_gpu, count) is expected
    # "no" is decided without asking the cluster
    assert fake_gpus.calls == (0 if use_gpu == "no" else 1)


@pytest.mark.parametrize(("gpus", "count"), [(0, 1), (1, 2), (0.5, 1)])
def test_use_gpu_yes_without_enough_gpus_is_refused(fake_gpus, gpus, count):
    fake_gpus.set(gpus)
    with pytest.raises(UserError) as info:
        cluster.decide_gpu("yes", count)
    assert str(info.value) == f"--use-gpu yes: the cluster has fewer than {count} GPUs"


def test_unknown_gpu_choice_is_refused_before_asking_the_cluster(fake_gpus):
    fake_gpus.set(2)
    with pytest.raises(UserError, match=r"--use-gpu maybe: must be one of auto, yes, no"):
        cluster.decide_gpu("maybe", 1)
    assert fake_gpus.calls == 0


@pytest.fixture(scope="module")
def image_config():
    """A checked A2C config for Atari frames, so the Nature CNN (RLlib imported, an ALE env read
    for its spaces, nothing started); copy per case."""
    from algorithms.configure import RLRunSpec, build_config

    return build_config(RLRunSpec(algorithm="a2c", env="ALE/Pong-v5"))


# (GPUs in the cluster, remote Learners, --set keys) -> num_gpus_per_learner, for an image torso
LEARNER_GPUS = [
    (0, 0, {}, 0),
    (1, 0, {}, 1),
    (1, 1, {}, 1),
    (1, 2, {}, 0),  # two Learners, one GPU: both stay on CPU
    (2, 2, {}, 1),
    (1, 0, {"num_gpus_per_learner": 0}, 0),  # the user's choice wins, the cluster is not asked
]


@pytest.mark.parametrize(("gpus", "learners", "overrides", "expected"), LEARNER_GPUS)
def test_rl_learner_gets_a_gpu_when_the_cluster_has_enough(
    fake_gpus, image_config, gpus, learners, overrides, expected
):
    from algorithms.configure import RLRunSpec
    from algorithms.run_loop import placed

    fake_gpus.set(gpus)
    config = image_config.copy(copy_frozen=False)
    config.learners(num_learners=learners, num_gpus_per_learner=0)
    config.freeze()
    spec = RLRunSpec(algorithm="a2c", env="ALE/Pong-v5", overrides=overrides)
    used = placed(config, spec)
    assert used.num_gpus_per_learner == expected and config.num_gpus_per_learner == 0
    assert fake_gpus.calls == (0 if overrides else 1)


# (algorithm, env, --set keys) -> whether the networks take an image torso
TORSOS = [
    ("reinforce", "CartPole-v1", {}, False),
    ("dqn", "CartPole-v1", {}, False),
    ("ppo", "CartPole-v1", {}, False),
    ("a2c", "ALE/Pong-v5", {"model_torso": "mlp"}, False),  # an MLP over the frames
    ("a2c", "ALE/Pong-v5", {}, True),
    ("dqn", "ALE/Pong-v5", {}, True),
    ("ppo", "ALE/Pong-v5", {"model_torso": "cnn"}, True),
]


@pytest.mark.parametrize(("algorithm", "env", "overrides", "image"), TORSOS)
def test_learner_takes_the_gpu_only_for_an_image_torso(fake_gpus, algorithm, env, overrides, image):
    """A GPU slows the small MLPs of vector observations down (docs/benchmarks.md,
    learner_device): ``auto`` leaves such a Learner on CPU on a cluster with GPUs, without asking
    the cluster, and gives an image torso's Learner its GPU (the rule the modules build their
    torso by, ``networks.uses_cnn``)."""
    from algorithms.configure import RLRunSpec, build_config
    from algorithms.run_loop import placed

    spec = RLRunSpec(algorithm=algorithm, env=env, overrides=overrides)
    config = build_config(spec)
    fake_gpus.set(4)
    assert placed(config, spec).num_gpus_per_learner == (1 if image else 0)
    assert fake_gpus.calls == (1 if image else 0)


def test_an_mlp_learner_goes_on_the_gpu_when_the_user_says(fake_gpus):
    """``--set num_gpus_per_learner=1`` is the user's choice and is kept for an MLP."""
    from algorithms.configure import RLRunSpec, build_config
    from algorithms.run_loop import placed

    spec = RLRunSpec(algorithm="dqn", env="CartPole-v1", overrides={"num_gpus_per_learner": 1})
    fake_gpus.set(1)
    assert placed(build_config(spec), spec).num_gpus_per_learner == 1


def _experiment(name: str, **changes):
    import dataclasses

    from tune_configs import load_experiment

    return dataclasses.replace(load_experiment(name), **changes)


@pytest.mark.parametrize(
    ("name", "gpus", "fixed", "gpu_per_trial"),
    [
        ("dqn_atari", 0, {}, 0),
        ("dqn_atari", 1, {}, 1),
        ("dqn_atari", 1, {"num_gpus_per_learner": 0}, 0),
        ("reinforce_cartpole", 1, {}, 0),  # an MLP Learner stays on CPU
        ("reinforce_cartpole", 1, {"num_gpus_per_learner": 1}, 1),
    ],
)
def test_tune_rl_trial_reserves_the_learner_gpu_its_run_uses(
    fake_gpus, name, gpus, fixed, gpu_per_trial
):
    """A Tune RL trial reserves what its run will take: a GPU for an image torso's Learner when
    the cluster has one, none for an MLP's, and what the experiment fixes
    (``rlgen tune --set num_gpus_per_learner=...``), which every trial's run keeps."""
    from tuning.run import check_values, trial_resources

    exp = _experiment(name)
    exp = _experiment(name, space={**exp.space, **fixed})
    fake_gpus.set(gpus)
    _, need = trial_resources(exp, check_values(exp))
    assert need.get("GPU", 0.0) == gpu_per_trial, need


# (GPUs in the cluster, Train workers per trial) -> what one generative trial occupies
GEN_TRIAL_NEEDS = [
    (0, 1, {"CPU": 2.0}),
    (0, 2, {"CPU": 3.0}),  # a CPU per worker and one for Ray Data's read tasks
    (1, 2, {"CPU": 3.0}),  # one GPU is not enough for two workers
    (2, 2, {"CPU": 1.0, "GPU": 2.0}),
]


@pytest.mark.parametrize(("gpus", "workers", "need"), GEN_TRIAL_NEEDS)
def test_tune_generative_trial_needs(fake_gpus, gpus, workers, need):
    from tuning.run import trial_resources

    fake_gpus.set(gpus)
    _, got = trial_resources(_experiment("vae_mnist5k", num_workers=workers), None)
    assert got == need


def test_generative_use_gpu_yes_without_a_gpu_writes_nothing(tmp_path, fake_gpus, ray_local):
    """``--use-gpu yes`` on a cluster without GPUs is bad input: refused with its one line
    before the run directory exists (a second try with the same --output is not refused as an
    existing run)."""
    import rlgen

    fake_gpus.set(0)
    out = tmp_path / "run"
    with pytest.raises(UserError, match=r"^--use-gpu yes: the cluster has fewer than 1 GPUs$"):
        rlgen.train("vae", use_gpu="yes", epochs=1, output=out)
    assert not out.exists()


# --- RAY_ADDRESS ---------------------------------------------------------------------------


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port held bound and never listened on: a connection there is refused at once,
    and nothing else can take the port while the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("address", ["", "  ", "auto", "local", "ray://10.0.0.5:10001"])
def test_addresses_left_to_ray(monkeypatch, address):
    monkeypatch.setenv("RAY_ADDRESS", address)
    cluster.check_address()  # no connection attempted, nothing refused


@pytest.mark.parametrize("address", ["head", "head:", ":6379", "head:port", "10.0.0.5:63x9"])
def test_malformed_ray_address_is_refused(monkeypatch, address):
    monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(UserError, match=r"expected HOST:PORT of a Ray head's GCS"):
        cluster.check_address()


def test_unreachable_ray_address_is_refused_at_once(monkeypatch):
    with closed_port() as port:
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        with pytest.raises(UserError) as info:
            cluster.check_address()
    assert str(info.value).startswith(f"RAY_ADDRESS=127.0.0.1:{port}: no Ray head answers there")
    assert "refused" in str(info.value).lower()


# Every command that joins a cluster: RL and generative training (default output under runs/,
# and an explicit --output) and a Tune experiment.
JOINING_COMMANDS = [
    ("train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "1000"),
    ("train", "dqn", "--env", "CartPole-v1", "--output", "run"),
    ("train", "vae", "--epochs", "1", "--output", "run"),
    ("tune", "reinforce_cartpole", "--num-samples", "1", "--output", "exp"),
]


@pytest.mark.parametrize("args", JOINING_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_cli_with_unreachable_ray_address_exits_2_and_writes_nothing(tmp_path, args):
    with closed_port() as port:
        # A timeout well under Ray's own minutes of retries: the refusal comes at once.
        proc = run_cli(*args, cwd=tmp_path, env={"RAY_ADDRESS": f"127.0.0.1:{port}"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"rlgen: error: RAY_ADDRESS=127.0.0.1:{port}: no Ray head answers there "
        "(Connection refused)"
    ], proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no run directory, no runs/, no experiment
