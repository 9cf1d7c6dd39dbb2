"""Config building from CLI input, without Ray: property-backed RLlib keys can be set."""

import pytest

from algorithms.configure import RLRunSpec, build_config
from runkit.errors import UserError


def test_property_backed_keys_are_settable():
    spec = RLRunSpec(
        algorithm="dqn", env="CartPole-v1", overrides={"train_batch_size_per_learner": 128}
    )
    assert build_config(spec).train_batch_size_per_learner == 128


def test_deprecated_keys_are_refused():
    spec = RLRunSpec(
        algorithm="reinforce", env="CartPole-v1", overrides={"custom_resources_per_worker": {}}
    )
    with pytest.raises(UserError, match="custom_resources_per_worker"):
        build_config(spec)


# --- one build per run ---------------------------------------------------------------------


class _Counted:
    """Wraps a function and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch):
    """``build_config`` as the run loop calls it, ``envs.check_env_id`` and ``envs.make_env``
    counted; the spaces read so far forgotten."""
    import envs
    from algorithms import configure, run_loop

    monkeypatch.setattr(configure, "_SPACES", {})
    out = {}
    for module, name in ((run_loop, "build_config"), (envs, "check_env_id"), (envs, "make_env")):
        out[name] = _Counted(getattr(module, name))
        monkeypatch.setattr(module, name, out[name])
    return out


@pytest.mark.parametrize("gpu", [False, True])
def test_a_run_builds_and_checks_its_config_once(counted, monkeypatch, tmp_path, gpu):
    """``run_loop.train`` (what ``rlgen train`` runs) to its result, Ray and the Algorithm
    replaced: the config is built once and handed to ``run`` frozen, its env id checked once
    (the registration for RLlib is told the build checked it), no env is built again to read
    the spaces, and what reaches ``build_algo`` is frozen too; with a GPU in the cluster (and
    a Learner that gains from one: REINFORCE's MLP does not, test_cluster_policy checks that
    choice) the Learner goes on it, set on a copy."""
    from algorithms import run_loop
    from algorithms.reinforce.algorithm import ReinforceConfig
    from runkit import cluster

    bare = build_config(RLRunSpec(algorithm="reinforce", env="CartPole-v1"))
    checks_per_build = counted["check_env_id"].calls
    assert checks_per_build == 1 and counted["make_env"].calls == 1
    for fn in counted.values():
        fn.calls = 0

    class FakeAlgo:
        def train(self):
            return {"env_runners": {"num_env_steps_sampled_lifetime": 64}, "game_return_mean": 500}

        def stop(self):
            pass

    built, handed = [], []
    real_run = run_loop.run

    def run(*args, config, **kwargs):
        handed.append(config)
        return real_run(*args, config=config, **kwargs)

    def build_algo(config):
        with pytest.raises(AttributeError, match="frozen"):
            config.lr = 0.5
        built.append(config)
        return FakeAlgo()

    monkeypatch.setattr(ReinforceConfig, "build_algo", build_algo)
    monkeypatch.setattr(cluster, "connect", lambda preload=(), api_server=False: None)
    monkeypatch.setattr(cluster, "decide_gpu", lambda use_gpu, count: gpu)
    monkeypatch.setattr(ReinforceConfig, "learner_gpu_pays", lambda self: True)
    monkeypatch.setattr(cluster, "check_cpus", lambda *a, **k: None)
    monkeypatch.setattr(run_loop, "save_checkpoint", lambda algo, run_dir, spec, state: tmp_path)
    monkeypatch.setattr(run_loop, "run", run)
    result = run_loop.train(
        "reinforce", env="CartPole-v1", overrides={}, output=tmp_path / "run", video_frames=0
    )
    assert (result.stop_reason, result.env_steps) == ("solved", 64)
    assert counted["build_config"].calls == 1
    assert counted["check_env_id"].calls == checks_per_build
    assert counted["make_env"].calls == 0  # the spaces of this env and options were read above
    [config] = handed  # the checked config, handed to run() frozen
    with pytest.raises(AttributeError, match="frozen"):
        config.lr = 0.5
    assert config.to_dict() == bare.to_dict()
    [used] = built
    assert used.num_gpus_per_learner == (1 if gpu else 0)
    assert {**used.to_dict(), "num_gpus_per_learner": 0} == bare.to_dict()


def test_spaces_are_read_once_per_env_and_options(counted):
    """A second build of the same env and options reads no new env; other options do, and a
    frozen config refuses changes."""
    first = build_config(RLRunSpec(algorithm="dqn", env="CartPole-v1"), frozen=True)
    again = build_config(RLRunSpec(algorithm="dqn", env="CartPole-v1"))
    assert counted["make_env"].calls == 1
    assert first.to_dict() == again.to_dict()
    with pytest.raises(AttributeError, match="frozen"):
        first.lr = 0.5
    again.lr = 0.5  # not frozen unless asked
    build_config(
        RLRunSpec(algorithm="dqn", env="CartPole-v1", overrides={"rollout_backend": "vector"})
    )
    assert counted["make_env"].calls == 2
