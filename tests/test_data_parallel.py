"""Tier 2: two data-parallel Learners (DDP over gloo, on a real local Ray cluster) take the same
update as one Learner on the same batch, for REINFORCE, A2C, PPO and DQN: the same gradient and the
same weights after the step, the same TD errors in the replay's priorities; and ``rlgen train
--set num_learners=2`` trains on two Learner actors."""

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

import rlgen_cli
from algorithms.a2c.algorithm import A2CConfig
from algorithms.common.data_parallel import shard_whole_episodes
from algorithms.dqn.algorithm import DQNConfig
from algorithms.ppo.algorithm import PPOConfig
from algorithms.reinforce.algorithm import ReinforceConfig
from algorithms.rllib_compat import local_learner
from envs import rllib_env_name

# Random-policy CartPole episodes last ~10-40 steps: a limit of 20 truncates some of them.
SHORT_CARTPOLE = {"max_episode_steps": 20}
RANDOM_ACTIONS_SEED = 0


def _with_learners(config, num_learners):
    if num_learners == 0:
        return config.build_algo()
    return config.learners(num_learners=num_learners, num_cpus_per_learner=0.5).build_algo()


def _grads(algo):
    """Each Learner's last gradient (after clipping), by parameter name."""

    def read(learner):
        module = learner.module[DEFAULT_MODULE_ID].unwrapped()
        return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}

    return [call.get() for call in algo.learner_group.foreach_learner(read)]


def _weights(algo):
    return {
        k: torch.as_tensor(v)
        for k, v in algo.learner_group.get_weights()[DEFAULT_MODULE_ID].items()
    }


def _assert_same(a: dict, b: dict, *, rtol=1e-4):
    """Equal within float32 rounding, relative to each tensor's own scale (policy-head
    gradients start near 1e-4: a fixed absolute tolerance would hide a wrong weighting)."""
    assert a.keys() == b.keys()
    for name in a:
        scale = float(b[name].abs().max())
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=rtol * scale + 1e-12, msg=name)


def _one_and_two(config):
    one = _with_learners(config, 0)
    two = _with_learners(config.copy(copy_frozen=False), 2)
    two.learner_group.set_weights(one.learner_group.get_weights())
    return one, two


def _compare_updates(one, two, episodes):
    # Whole episodes make shards of unequal size: the mean of the Learners' means would not be
    # the batch mean.
    sizes = [sum(len(e) for e in s) for s in shard_whole_episodes(episodes, 2)]
    assert sizes[0] != sizes[1], sizes
    one.update_learners(episodes)
    two.update_learners(episodes)
    [g_one] = _grads(one)
    g_two = _grads(two)
    assert len(g_two) == 2 and g_one  # DDP: both Learners hold the averaged gradient
    for g in g_two:
        _assert_same(g, g_one)
    _assert_same(_weights(two), _weights(one))


@contextlib.contextmanager
def _chunks_into_one_and_two(config):
    """One Learner and two take an update on the same 45 random-action steps of 3 envs x 15
    (chunks cut by the rollout length, ended by termination and by truncation), compared by
    ``_compare_updates``; yields (one, two) for more checks, then stops both."""
    one, two = _one_and_two(config)
    try:
        one.env_runner.env.single_action_space.seed(RANDOM_ACTIONS_SEED)
        episodes = one.env_runner.sample(num_timesteps=45, random_actions=True)
        assert len(episodes) >= 3
        _compare_updates(one, two, episodes)
        yield one, two
    finally:
        one.stop()
        two.stop()


def test_whole_episode_shards_cover_every_episode_once():
    lengths = [30, 5, 12, 7, 1, 9]
    episodes = [list(range(n)) for n in lengths]
    shards = shard_whole_episodes(episodes, 3)
    assert all(shards)
    assert sorted(len(e) for s in shards for e in s) == sorted(lengths)
    with pytest.raises(ValueError, match="at least one episode"):
        shard_whole_episodes(episodes[:2], 3)


@pytest.mark.parametrize(
    "baseline,normalization", [("value", "centre_and_scale"), ("batch_mean", "scale")]
)
def test_reinforce_two_learners_equal_one(ray_local, baseline, normalization):
    config = (
        ReinforceConfig()
        .environment("CartPole-v1", env_config=SHORT_CARTPOLE)
        .training(episodes_per_batch=7, baseline=baseline, advantage_normalization=normalization)
        .debugging(seed=0)
    )
    one, two = _one_and_two(config)
    try:
        # Seeded random actions (the envs are seeded by the config): the same episodes, with
        # unequal lengths and shards, every run.
        one.env_runner.env.single_action_space.seed(RANDOM_ACTIONS_SEED)
        episodes = one.env_runner.sample(num_episodes=7, random_actions=True)
        lengths = sorted(len(e) for e in episodes)
        assert any(e.is_truncated for e in episodes) and lengths[0] != lengths[-1]
        _compare_updates(one, two, episodes)
    finally:
        one.stop()
        two.stop()


def test_a2c_two_learners_equal_one(ray_local):
    config = (
        A2CConfig()
        .environment("CartPole-v1", env_config=SHORT_CARTPOLE)
        .env_runners(num_envs_per_env_runner=3, rollout_fragment_length=15)
        .training(advantage_normalization="centre_and_scale", lambda_=0.9)
        .debugging(seed=0)
    )
    with _chunks_into_one_and_two(config):
        pass


@pytest.mark.parametrize("kl_target", [None, 1e-6])
def test_ppo_two_learners_equal_one(ray_local, kl_target):
    """Three epochs of four shuffled minibatches: each Learner holds its whole chunks (unequal
    shards) and its rows of each minibatch (some minibatch rows on one side only), and the
    two take one Learner's twelve steps: the same last gradient and weights. With a KL
    target no update can meet, both stop after the first epoch, together."""
    config = (
        PPOConfig()
        .environment("CartPole-v1", env_config=SHORT_CARTPOLE)
        .env_runners(num_envs_per_env_runner=3, rollout_fragment_length=15)
        .training(
            num_epochs=3, minibatch_size=11, lambda_=0.9, kl_target=kl_target, vf_clip_param=0.2
        )  # fmt: skip
        .debugging(seed=0)
    )
    with _chunks_into_one_and_two(config) as (one, two):
        done = [r.get() for r in two.learner_group.foreach_learner(lambda lr: lr.epochs_done)]
        assert done == [1 if kl_target else 3] * 2
        # The KL that decides is the whole minibatch's, on each Learner.
        kl = [r.get() for r in two.learner_group.foreach_learner(lambda lr: lr.minibatch_kl)]
        assert kl == pytest.approx([local_learner(one.learner_group).minibatch_kl] * 2, rel=1e-4)
        assert kl[0] > 0


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_a2c_two_learners_equal_one_with_a_vae_encoder(tmp_path, ray_local, mode):
    """A VAE's encoder as the torso (Breakout): frozen (in no optimizer, no gradient) or
    fine-tuned (an optimizer of its own at encoder_lr), two Learners take one Learner's step."""
    import jobs
    from algorithms.checkpoints import load_encoder
    from algorithms.configure import RLRunSpec, build_config
    from tests.vae_checkpoints import small_frame_vae

    vae = small_frame_vae(tmp_path / "vae")
    spec = RLRunSpec(
        algorithm="a2c", env="ALE/Breakout-v5", num_env_runners=0, num_envs_per_env_runner=3,
        seed=0, overrides={"encoder": str(vae), "encoder_mode": mode, "encoder_lr": 1e-4,
                           "rollout_fragment_length": 10, "shared_torso": False},
    )  # fmt: skip
    config = build_config(spec, importer=jobs.export)
    one = _with_learners(config, 0)
    load_encoder(one, config.encoder_weights())
    two = _with_learners(config.copy(copy_frozen=False), 2)
    two.learner_group.set_weights(one.learner_group.get_weights())
    try:
        one.env_runner.env.single_action_space.seed(RANDOM_ACTIONS_SEED)
        episodes = one.env_runner.sample(num_timesteps=30, random_actions=True)
        assert len(episodes) == 3  # 3 chunks of 10 steps: shards of 10 and 20
        _compare_updates(one, two, episodes)
        names = [n for n in _grads(one)[0] if "encoder." in n]
        assert bool(names) == (mode == "finetune"), names  # two torsos, each trained or not
    finally:
        one.stop()
        two.stop()


def _dqn_pair(**training):
    base = dict(
        learning_starts=0,
        replay_capacity=1000,
        n_step=3,
        target_update_period=2,  # a hard sync inside the call: at the same step on both paths
        updates_per_learner_call=4,
        lr=1e-2,
    )
    config = (
        DQNConfig()
        .environment(rllib_env_name("CartPole-v1"))
        .training(**{**base, **training})
        .debugging(seed=0)
    )
    # One Learner with minibatches of 32 rows vs two Learners with 16 rows each.
    one = config.copy(copy_frozen=False).training(train_batch_size_per_learner=32).build_algo()
    two = _with_learners(
        config.copy(copy_frozen=False).training(train_batch_size_per_learner=16), 2
    )
    two.learner_group.set_weights(one.learner_group.get_weights())
    episodes = one.env_runner.sample(num_timesteps=300)
    for algo in (one, two):
        algo.store(episodes)
    return one, two


@pytest.mark.parametrize("prioritized", [False, True])
def test_dqn_two_learners_equal_one(ray_local, prioritized):
    one, two = _dqn_pair(prioritized_replay=prioritized)
    try:
        for algo in (one, two):
            algo._learn(env_steps=300, num_updates=4)
        _assert_same(_weights(two), _weights(one))
        if prioritized:  # each TD error went back to the slot it was computed for
            slots = np.arange(one.replay.capacity)
            np.testing.assert_allclose(
                two.replay.tree.get(slots), one.replay.tree.get(slots), rtol=1e-4, atol=1e-7
            )
            assert one.replay.max_priority > 1.0  # the priorities were refreshed at all
    finally:
        one.stop()
        two.stop()


@pytest.fixture
def learner_updates(monkeypatch):
    """The Learners of every ``LearnerGroup.update`` in this process: per call, the number of
    results it returned (one per Learner that took a shard); and who the Learners of the first
    call were, each (process id, DDP rank, DDP world size) as the Learner itself reports it."""
    from ray.rllib.core.learner.learner_group import LearnerGroup

    seen = {"results": [], "learners": None}
    update = LearnerGroup.update

    def whoami(learner):
        import os

        import torch.distributed as dist

        ddp = dist.is_available() and dist.is_initialized()
        return os.getpid(), dist.get_rank() if ddp else 0, dist.get_world_size() if ddp else 1

    def spy(self, *args, **kwargs):
        results = update(self, *args, **kwargs)
        seen["results"].append(len(results))
        if seen["learners"] is None:
            seen["learners"] = [call.get() for call in self.foreach_learner(whoami)]
        return results

    monkeypatch.setattr(LearnerGroup, "update", spy)
    return seen


@pytest.mark.parametrize(
    "algorithm,extra",
    [
        ("reinforce", ["--set", "episodes_per_batch=4"]),
        ("a2c", []),
        ("ppo", []),
        ("dqn", ["--set", "learning_starts=300", "--set", "prioritized_replay=true"]),
    ],
)
def test_cli_trains_with_two_learners(tmp_path, ray_local, learner_updates, algorithm, extra):
    """``rlgen train ... --set num_learners=2`` (``rlgen_cli.main`` in this process, on the test
    session's Ray): two Learner actors, DDP ranks 0 and 1, took every update."""
    out = tmp_path / "run"
    status = rlgen_cli.main(
        ["train", algorithm, "--env", "CartPole-v1", "--set", "num_learners=2",
         "--set", "num_cpus_per_learner=0.5", *extra, "--max-env-steps", "1200",
         "--video-frames", "0", "--output", str(out)]
    )  # fmt: skip
    assert status == 0
    result = json.loads((out / "result.json").read_text())
    assert result["env_steps"] >= 1200
    assert (Path(result["checkpoint"]) / "rlgen_state.json").is_file()
    assert learner_updates["results"] and set(learner_updates["results"]) == {2}
    pids, ranks, worlds = zip(*learner_updates["learners"], strict=True)
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert sorted(ranks) == [0, 1] and set(worlds) == {2}
