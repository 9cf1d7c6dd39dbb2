"""rlgen's rollout engine (``LeanEnvRunner``) against RLlib's ``SingleAgentEnvRunner``: for the
same seed and weights both give the same trajectories and the same sampling metrics, for the
three algorithms, on CartPole (gymnasium's envs one by one, and its numpy vector env), a
Box-action env, and a real ROM with both Atari backends."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from algorithms import rllib_compat
from algorithms.configure import RLRunSpec, build_config

ATARI = "ALE/Breakout-v5"
# (algorithm, env, envs per actor, extra keys, sample calls: num_episodes or num_timesteps)
CASES = [
    ("reinforce", "CartPole-v1", 2, {}, {"num_episodes": 5}),
    ("a2c", "CartPole-v1", 4, {}, {"num_timesteps": 64}),
    ("dqn", "CartPole-v1", 2, {}, {"num_timesteps": 64}),
    ("a2c", "CartPole-v1", 4, {"rollout_backend": "vector"}, {"num_timesteps": 64}),
    ("reinforce", "CartPole-v1", 3, {"rollout_backend": "vector"}, {"num_episodes": 4}),
    ("a2c", "Pendulum-v1", 2, {}, {"num_timesteps": 64}),
    ("reinforce", ATARI, 1, {"model_hiddens": [8]}, {"num_episodes": 3}),
    ("a2c", ATARI, 2, {"rollout_backend": "vector"}, {"num_timesteps": 150}),
    ("dqn", ATARI, 1, {"epsilon": [1.0, 0.3, 600]}, {"num_timesteps": 150}),
    ("dqn", ATARI, 3, {"epsilon": [1.0, 0.3, 600], "rollout_backend": "vector"},
     {"num_timesteps": 150}),
]  # fmt: skip
CALLS = 3
METRICS = ("num_env_steps_sampled_lifetime", "num_episodes_lifetime", "episode_return_mean",
           "episode_len_mean", "episode_return_min", "episode_return_max")  # fmt: skip


def sample_calls(
    runner_kind: str, case: tuple, weights: Any = None, *, seed_once: bool = False
) -> tuple[list, dict, Any, int]:
    """``CALLS`` sample calls of a freshly built local runner; (episodes per call, metrics,
    the runner's module state, env steps of the partial episodes that its ``num_episodes``
    calls dropped, as RLlib's runner holds them at the end of each call; 0 for ours).

    RLlib's runner re-seeds its envs at every ``num_episodes`` call, ours at the first only
    (see ``LeanEnvRunner``'s docstring). ``seed_once``: RLlib's runner resets without a seed
    after its first call, so that its later resets continue each env's own random stream, as
    ours do, and every call of the two can be compared."""
    algorithm, env, num_envs, extra, how = case
    overrides = {"env_runner": runner_kind, **extra}
    if algorithm == "dqn":
        overrides["replay_capacity"] = 1_000
    spec = RLRunSpec(algorithm, env, overrides=overrides, num_env_runners=0,
                     num_envs_per_env_runner=num_envs, seed=7)  # fmt: skip
    algo = build_config(spec).build_algo()
    try:
        runner = algo.env_runner
        if weights is not None:
            runner.module.set_state(weights)
        calls, dropped = [], 0
        for _ in range(CALLS):
            calls.append(runner.sample(**how))
            if runner_kind == "rllib" and "num_episodes" in how:
                dropped += sum(len(e) for e in runner._ongoing_episodes)
                if seed_once:
                    runner._seed = None
        metrics = runner.get_metrics()
        metrics = {k: float(np.asarray(metrics[k].peek())) for k in METRICS if k in metrics}
        return calls, metrics, runner.module.get_state(), dropped
    finally:
        algo.stop()


def trajectory(episode: Any) -> dict[str, Any]:
    return {
        "t_started": episode.t_started,
        "len": len(episode),
        "terminated": bool(episode.is_terminated),
        "truncated": bool(episode.is_truncated),
        "obs": np.asarray(episode.get_observations()),
        "actions": np.asarray(episode.get_actions()),
        "rewards": np.asarray(episode.get_rewards(), dtype=np.float64),
        "final_info": episode.get_infos(-1) if episode.is_done else None,
        "logp": (
            np.asarray(episode.get_extra_model_outputs(Columns.ACTION_LOGP), dtype=np.float64)
            if Columns.ACTION_LOGP in episode.extra_model_outputs
            else None
        ),
    }


def assert_same(a: dict, b: dict) -> None:
    for key in ("t_started", "len", "terminated", "truncated"):
        assert a[key] == b[key], key
    for key in ("obs", "actions", "rewards"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert (a["logp"] is None) == (b["logp"] is None)  # policy-gradient modules only
    if a["logp"] is not None:  # log pi(a|s) of the sampled actions, as the learners may read
        np.testing.assert_allclose(a["logp"], b["logp"], rtol=1e-5, atol=1e-6)
    if a["final_info"] is not None:
        assert {k: float(v) for k, v in a["final_info"].items()} == {
            k: float(v) for k, v in b["final_info"].items()
        }


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}envs-{c[3]}")
def test_same_trajectories_and_metrics_as_rllibs_runner(ray_local, case):
    rllib_calls, rllib_metrics, weights, dropped = sample_calls("rllib", case, seed_once=True)
    lean_calls, lean_metrics, _, _ = sample_calls("rlgen", case, weights)
    episode_mode = "num_episodes" in case[4]
    ids: dict[str, str] = {}  # RLlib's episode id -> ours: chunks continue under one id
    for rllib_eps, lean_eps in zip(rllib_calls, lean_calls, strict=True):
        assert len(rllib_eps) == len(lean_eps)
        for a, b in zip(rllib_eps, lean_eps, strict=True):
            assert_same(trajectory(a), trajectory(b))
            assert ids.setdefault(a.id_, b.id_) == b.id_
    assert len(set(ids.values())) == len(ids)
    assert rllib_metrics == pytest.approx(lean_metrics)
    # Every env step sampled counts once: the episodes (chunks) returned, plus, for
    # num_episodes calls, the partial episodes each call dropped at its end.
    sampled = sum(len(e) for eps in lean_calls for e in eps)
    assert lean_metrics["num_env_steps_sampled_lifetime"] == sampled + dropped
    if not episode_mode:
        assert any(e.t_started > 0 for e in lean_calls[-1])  # chunks did continue
    else:
        assert all(len(eps) == case[4]["num_episodes"] for eps in lean_calls)
        assert all(e.is_done and e.t_started == 0 for eps in lean_calls for e in eps)
        assert lean_metrics["num_episodes_lifetime"] == CALLS * case[4]["num_episodes"]


def test_episode_calls_do_not_replay_the_same_starts(ray_local):
    """With a seed, every num_episodes call of RLlib's runner starts from the same initial
    states; ours seeds once, so later batches start elsewhere."""
    case = ("reinforce", "CartPole-v1", 1, {}, {"num_episodes": 2})
    starts = {
        kind: [np.asarray(eps[0].get_observations(0)) for eps in sample_calls(kind, case)[0]]
        for kind in ("rllib", "rlgen")
    }
    assert all(np.array_equal(starts["rllib"][0], s) for s in starts["rllib"][1:])
    np.testing.assert_array_equal(starts["rlgen"][0], starts["rllib"][0])
    assert not any(np.array_equal(starts["rlgen"][0], s) for s in starts["rlgen"][1:])


def test_chunks_continue_across_calls(ray_local):
    """Each ongoing chunk is picked up by the next call: same id, t_started advanced by its
    length, and its first observation is the last one the previous chunk returned."""
    case = ("a2c", "CartPole-v1", 3, {}, {"num_timesteps": 30})
    calls, _, _, _ = sample_calls("rlgen", case)
    for before, after in zip(calls, calls[1:], strict=False):
        following = {e.id_: e for e in after}
        for chunk in (e for e in before if not e.is_done):
            nxt = following[chunk.id_]
            assert nxt.t_started == chunk.t_started + len(chunk)
            np.testing.assert_array_equal(nxt.get_observations(0), chunk.get_observations(-1))


def test_cartpole_vector_backend_reports_each_games_return(ray_local):
    """On gymnasium's numpy CartPole vector env, ``VectorGameStatistics`` puts each finished
    game's return and length into its last info: they equal the whole episodes' reward sums
    and lengths (games of different lengths on different sub-envs, over several restarts)."""
    case = ("a2c", "CartPole-v1", 3, {"rollout_backend": "vector"}, {"num_timesteps": 600})
    calls, _, _, _ = sample_calls("rlgen", case)
    whole = [e for eps in calls for e in eps if e.is_done and e.t_started == 0]
    assert len(whole) > 30 and len({len(e) for e in whole}) > 5
    for episode in whole:
        info = episode.get_infos(-1)
        assert info["game_return"] == pytest.approx(float(np.sum(episode.get_rewards())))
        assert info["game_frames"] == len(episode)


@pytest.mark.parametrize("algorithm", ["a2c", "dqn"])
def test_local_sampling_gets_the_learners_new_weights(ray_local, algorithm):
    """0 rollout actors and a local Learner: after each round the local runner's
    (inference-only) module holds exactly the Learner's new weights, copied across in-process,
    and the weights number a sync would give it."""
    overrides: dict[str, Any] = {"rollout_fragment_length": 8}
    if algorithm == "dqn":
        overrides.update(replay_capacity=1_000, learning_starts=32)
    spec = RLRunSpec(algorithm, "CartPole-v1", overrides=overrides, num_env_runners=0,
                     num_envs_per_env_runner=2, seed=3)  # fmt: skip
    algo = build_config(spec).build_algo()
    try:
        runner, learner = algo.env_runner, rllib_compat.local_learner(algo.learner_group)
        before = {k: v.clone() for k, v in runner.module.state_dict().items()}
        for _ in range(2):
            algo.train()
            source = learner.module[DEFAULT_MODULE_ID].state_dict()
            target = runner.module.state_dict()
            assert target and set(target) <= set(source)
            for key, tensor in target.items():
                torch.testing.assert_close(tensor, source[key], rtol=0, atol=0)
            # DQN steps its own: 0
            assert rllib_compat.weights_seq_no(runner) == rllib_compat.weights_seq_no(learner)
        assert any(not torch.equal(before[k], v) for k, v in runner.module.state_dict().items())
    finally:
        algo.stop()


def test_categorical_draw_and_logp_are_torch_categoricals():
    """The runner's draw takes the same random numbers to the same actions as RLlib's
    ``TorchCategorical`` (same seed, 2-6 actions, near-deterministic rows included), leaves
    the generator in the same state, and
    its per-call log-probs equal ``TorchCategorical.logp``."""
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

    from algorithms.common.env_runner import categorical_draw, categorical_logp

    gen = torch.Generator().manual_seed(0)
    for actions_n in (2, 3, 6):
        logits = torch.randn(400, actions_n, generator=gen) * 3
        logits[:5, 0] += 30.0  # rows whose first action is all but certain
        torch.manual_seed(actions_n)
        theirs = TorchCategorical.from_logits(logits).sample()
        their_next = torch.rand(4)
        torch.manual_seed(actions_n)
        ours = categorical_draw(logits)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        # the generator is left where RLlib's draw leaves it: the next draws match too
        torch.testing.assert_close(torch.rand(4), their_next, rtol=0, atol=0)
        assert len(set(ours.tolist())) == actions_n
        expected = TorchCategorical.from_logits(logits).logp(theirs).numpy()
        got = categorical_logp(logits.numpy(), ours.numpy())
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_gymnasiums_own_envs_are_built_without_its_passive_checker():
    """The passive checker's wrapper is left off the envs gymnasium ships (checked by its own
    tests) and kept on every other env, here one registered by these tests."""
    from gymnasium.wrappers.common import PassiveEnvChecker

    import tests.fault_envs  # noqa: F401 - registers Corridor-v0
    from envs import make_env

    def wrappers(env: Any) -> list[type]:
        kinds = []
        while hasattr(env, "env"):
            kinds.append(type(env))
            env = env.env
        return kinds

    for env_id in ("CartPole-v1", "Pendulum-v1"):
        assert PassiveEnvChecker not in wrappers(make_env({"env_id": env_id})), env_id
    assert PassiveEnvChecker in wrappers(make_env({"env_id": "Corridor-v0"}))
    # ids naming their module ("module:Env-v0") are registered by gym.make itself
    env = make_env({"env_id": "tests.fault_envs:Corridor-v0"})
    assert PassiveEnvChecker in wrappers(env)
