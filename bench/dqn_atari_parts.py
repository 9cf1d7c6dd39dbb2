"""The Atari parts of bench/dqn.py (1. replay memory, 2. training throughput and the compute
limit, 3. sampling throughput of one rollout actor): each function measures one side and returns
the dict that bench/dqn.py puts into its JSON report."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from benchkit import steps_of, timed_calls

if TYPE_CHECKING:
    import gymnasium as gym

GAME = "ALE/Breakout-v5"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------------------
# RLlib's own DQN, configured like ours


def rllib_atari_config(batch: int = 32, learning_starts: int = 1_000) -> Any:
    """RLlib's built-in DQN on its own Atari path: ``wrap_atari_for_new_api_stack`` at 84x84
    with an env-side 4-frame stack (float32), the Nature CNN, one update of ``batch`` per 4 env
    steps (rollout_fragment_length 4 and training_intensity = batch / 4)."""
    import gymnasium as gym
    from ray.rllib.algorithms.dqn import DQNConfig as RLlibDQNConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.env.wrappers.atari_wrappers import wrap_atari_for_new_api_stack
    from ray.tune.registry import register_env

    from envs import register_ale

    def make(cfg: dict) -> gym.Env:
        register_ale()
        env = gym.make(GAME, frameskip=1, repeat_action_probability=0.0)
        return wrap_atari_for_new_api_stack(env, dim=84, framestack=4)

    register_env("bench-rllib-breakout", make)
    return (
        RLlibDQNConfig()
        .environment("bench-rllib-breakout")
        .env_runners(num_env_runners=0, rollout_fragment_length=4)
        .training(
            lr=1e-4,
            train_batch_size_per_learner=batch,
            training_intensity=batch / 4,
            num_steps_sampled_before_learning_starts=learning_starts,
            n_step=1,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
        )
        .rl_module(
            model_config=DefaultModelConfig(
                # RLlib types filters as tuples; its own examples and defaults use lists.
                conv_filters=[[32, 8, 4], [64, 4, 2], [64, 3, 1]],  # type: ignore[list-item]
                conv_activation="relu",
                head_fcnet_hiddens=[512],
            )
        )
        .reporting(min_sample_timesteps_per_iteration=100)
        .debugging(seed=0)
    )


def ours_atari_algo(num_envs: int = 1, **overrides: Any) -> Any:
    from algorithms.configure import RLRunSpec, build_config

    spec = RLRunSpec(
        algorithm="dqn", env=GAME, overrides=overrides, seed=0, num_envs_per_env_runner=num_envs
    )
    return build_config(spec).build_algo()


# --------------------------------------------------------------------------------------------
# 1. Replay memory


def memory_ours(transitions: int) -> dict:
    from algorithms.dqn.replay import FrameReplay
    from envs.atari import make_atari_env

    env = make_atari_env(GAME, training=True, frame_stack=4)
    num_actions = int(cast("gym.spaces.Discrete", env.action_space).n)
    # Room for every transition plus the extra final frame of each episode: no overwrites.
    replay = FrameReplay(transitions + transitions // 10, (84, 84), stack=4, n_step=1)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    chunk_obs, chunk_act, chunk_rew, key = [obs], [], [], 0
    before = rss_bytes()
    for _ in range(transitions):
        action = int(rng.integers(num_actions))
        obs, reward, terminated, truncated, _ = env.step(action)
        chunk_obs.append(obs)
        chunk_act.append(action)
        chunk_rew.append(reward)
        done = terminated or truncated
        if done or len(chunk_act) == 200:
            replay.add_chunk(
                key,
                np.asarray(chunk_obs),
                np.asarray(chunk_act),
                np.asarray(chunk_rew, dtype=np.float32),
                terminated=terminated,
                truncated=truncated,
            )
            if done:
                key += 1
                obs, _ = env.reset()
            chunk_obs, chunk_act, chunk_rew = [obs], [], []
    grown = rss_bytes() - before
    env.close()
    return {
        "transitions": len(replay),
        "replay_bytes_per_transition": round(replay.bytes_per_transition, 1),
        "rss_growth_bytes_per_transition": round(grown / max(len(replay), 1), 1),
    }


def memory_rllib(env_steps: int) -> dict:
    algo = rllib_atari_config(learning_starts=10**9).build_algo()  # sampling and storing only
    try:
        while steps_of(algo.train()) < 500:  # warm up: first allocations, torch, the env
            pass
        start_steps, before = steps_of(algo.train()), rss_bytes()
        while (steps := steps_of(algo.train())) < start_steps + env_steps:
            pass
        grown = rss_bytes() - before
    finally:
        algo.stop()
    return {
        "env_steps": steps - start_steps,
        "rss_growth_bytes_per_env_step": round(grown / (steps - start_steps), 1),
    }


# --------------------------------------------------------------------------------------------
# 2. Atari training throughput


def throughput_ours(seconds: float, num_envs: int = 1, backend: str = "python") -> dict:
    algo = ours_atari_algo(
        num_envs, learning_starts=1_000, replay_capacity=50_000, rollout_backend=backend
    )
    try:
        while steps_of(algo.train()) < 1_000:
            pass
        parts: dict[str, float] = {}
        timed_calls(algo, "_sample", parts, "sampling (env runner: envs, connectors, forward)")
        timed_calls(algo.replay, "add_chunk", parts, "replay add")
        timed_calls(algo.replay, "sample", parts, "replay sample (stacking, n-step)")
        timed_calls(algo.learner_group, "foreach_learner", parts, "update (Learner)")
        timed_calls(algo.env_runner_group, "sync_weights", parts, "weight sync")
        s0 = steps_of(algo.train())
        parts.update(dict.fromkeys(parts, 0.0))
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            result = algo.train()
        elapsed, steps = time.monotonic() - t0, steps_of(result) - s0
    finally:
        algo.stop()
    parts["other (metrics, priorities, bookkeeping)"] = elapsed - sum(parts.values())
    return {
        "num_envs": num_envs,
        "backend": backend,
        "env_steps_per_s": round(steps / elapsed, 2),
        "env_steps": steps,
        "seconds": round(elapsed, 1),
        "time_fraction": {k: round(v / elapsed, 3) for k, v in parts.items()},
    }


def throughput_rllib(seconds: float) -> dict:
    algo = rllib_atari_config().build_algo()
    try:
        while steps_of(algo.train()) < 1_000:
            pass
        s0, t0 = steps_of(algo.train()), time.monotonic()
        while time.monotonic() - t0 < seconds:
            result = algo.train()
        elapsed, steps = time.monotonic() - t0, steps_of(result) - s0
    finally:
        algo.stop()
    return {"env_steps_per_s": round(steps / elapsed, 2), "env_steps": steps}


def throughput_compute_limit(num_envs: int = 1, cycles: int = 150, batch: int = 32) -> dict:
    """The same work with no framework: per 4 env steps, the action forwards (4 of one
    (4, 84, 84) uint8 stack with one env; with 8 envs, half of one forward of 8) and one
    double-DQN Huber step on a batch of 32, fused Adam, gradient clipping;
    random frames, no env, no replay."""
    from algorithms.dqn import losses
    from algorithms.dqn.module import QNetwork

    q_net = QNetwork((4, 84, 84), 4, {"torso": "cnn", "dueling": True})
    target = QNetwork((4, 84, 84), 4, {"torso": "cnn", "dueling": True})
    target.load_state_dict(q_net.state_dict())
    optim = torch.optim.Adam(q_net.parameters(), lr=1e-4, fused=True)  # as our Learner's
    gen = torch.Generator().manual_seed(0)

    def frames(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8, generator=gen)

    # A pool of distinct minibatches, stepped through like a replay sample's (the same
    # minibatch every time would stay in the CPU caches).
    pool = 32
    obs1, obs, next_obs = frames(num_envs), frames(pool * batch), frames(pool * batch)
    forwards = [4] if num_envs == 1 else [1, 0] if num_envs == 8 else None
    assert forwards is not None, "1 or 8 envs"
    actions = torch.randint(0, 4, (batch,), generator=gen)
    returns, discount, weights = torch.rand(batch), torch.full((batch,), 0.99), torch.ones(batch)

    def cycle(i: int) -> None:
        with torch.no_grad():
            for _ in range(forwards[i % len(forwards)]):
                q_net(obs1).argmax(dim=1)
        rows = slice((i % pool) * batch, (i % pool + 1) * batch)
        q_B = losses.q_taken(q_BA=q_net(obs[rows]), actions_B=actions)
        with torch.no_grad():
            y_B = losses.double_q_target(
                returns_B=returns,
                discount_B=discount,
                next_q_online_BA=q_net(next_obs[rows]),
                next_q_target_BA=target(next_obs[rows]),
            )
        loss = losses.huber_td_loss(q_B=q_B, target_B=y_B, weights_B=weights, delta=1.0)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(q_net.parameters(), 10.0)
        optim.step()

    for i in range(10):
        cycle(i)
    t0 = time.perf_counter()
    for i in range(cycles):
        cycle(i)
    per_cycle = (time.perf_counter() - t0) / cycles
    return {
        "num_envs": num_envs,
        "env_steps_per_s": round(4 / per_cycle, 2),
        "ms_per_4_env_steps": round(per_cycle * 1e3, 2),
    }


# --------------------------------------------------------------------------------------------
# 3. Sampling throughput of one rollout actor


def sampling_raw(steps: int) -> dict:
    from envs.atari import make_atari_env

    env = make_atari_env(GAME, training=True, frame_stack=4)
    num_actions = int(cast("gym.spaces.Discrete", env.action_space).n)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(num_actions)))
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return {"env_steps_per_s": round(rate, 1)}


def sampling_actor(steps: int, *, num_envs: int, backend: str) -> dict:
    algo = ours_atari_algo(num_envs, rollout_backend=backend, replay_capacity=1_000)
    try:
        runner = algo.env_runner
        runner.sample(num_timesteps=200)  # warm-up
        t0 = time.perf_counter()
        runner.sample(num_timesteps=steps)
        rate = steps / (time.perf_counter() - t0)
    finally:
        algo.stop()
    return {"env_steps_per_s": round(rate, 1), "num_envs": num_envs, "backend": backend}
