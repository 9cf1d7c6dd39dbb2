"""``rlgen record``: the recording format (``runkit.recording``), the rollout actor that writes
it (``algorithms.record_runner``), the command, and the generative jobs reading a recording.

The round trip is checked against what the agent itself saw: the episodes the real rollout
actor sampled on Breakout (lives lost, resets, episodes continuing across rounds), their stacked
observations rebuilt bit for bit from the Parquet rows."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from runkit import recording

BREAKOUT = "ALE/Breakout-v5"


# -- the format ------------------------------------------------------------------------------


def test_rows_of_chunked_and_cut_episodes_rebuild_their_stacks(tmp_path):
    """An episode written in two chunks (the second closing it), and one cut by the budget:
    each observation once, steps 0..T, the flags on the last action, action -1 on the last
    observation; stacks rebuilt from the single frames."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(9, 5, 6), dtype=np.uint8)  # one episode's 9 observations
    actions = np.arange(8) % 3
    rows = recording.Rows()
    rows.add(frames[:5], episode=7, first_step=0, actions=actions[:4], rewards=np.ones(4),
             terminated=False, truncated=False, closed=False)  # fmt: skip
    rows.add(frames[4:], episode=7, first_step=4, actions=actions[4:], rewards=np.ones(4),
             terminated=True, truncated=False, closed=True)  # fmt: skip
    rows.add(frames[:1], episode=9, first_step=3, actions=np.zeros(0), rewards=np.zeros(0),
             terminated=False, truncated=False, closed=True)  # fmt: skip
    writer = recording.ShardWriter(tmp_path / "a.parquet", recording.schema({"env": "x"}))
    writer.write(rows)
    assert not (tmp_path / "a.parquet").exists()  # hidden until closed
    writer.close()
    table = pq.read_table(tmp_path / "a.parquet")
    meta = json.loads(table.schema.metadata[recording.METADATA_KEY])
    assert meta == {"env": "x"}
    ep = table.filter(table.column("episode").to_numpy() == 7).to_pydict()
    assert ep["step"] == list(range(9))
    assert ep["action"] == [*actions.tolist(), recording.NO_ACTION]
    assert ep["terminated"] == [False] * 7 + [True, False]
    assert not any(ep["truncated"])
    got = np.stack([np.frombuffer(b, np.uint8).reshape(5, 6) for b in ep["image"]])
    assert np.array_equal(got, frames)
    stacks = recording.stacked_observations(got, np.asarray(ep["step"]), 4)
    assert stacks.shape == (9, 4, 5, 6)
    assert np.array_equal(stacks[0], np.stack([frames[0]] * 4))
    assert np.array_equal(stacks[2], frames[[0, 0, 1, 2]])
    assert np.array_equal(stacks[8], frames[5:9])
    cut = table.filter(table.column("episode").to_numpy() == 9).to_pydict()
    assert cut["step"] == [3] and cut["action"] == [recording.NO_ACTION]


def test_episodes_are_split_never_frames():
    assert [recording.split_of(k) for k in range(12)] == ["test"] + ["train"] * 9 + [
        "test",
        "train",
    ]
    assert recording.episode_id(3, 5) != recording.episode_id(5, 3)


# -- the rollout actor, on Breakout, without Ray ----------------------------------------------


def _local_runner(tmp_path: Path, num_envs: int, epsilon: float = 1.0, weights=None):
    from algorithms.record import Policy, _config, _metadata
    from algorithms.record_runner import RecordingRunner

    spec = {"algorithm": "a2c", "env": BREAKOUT, "overrides": {}}
    policy = Policy("a2c", spec, weights, epsilon, None)
    config = _config(policy, 1, num_envs, seed=3)
    runner = RecordingRunner(config=config, worker_index=1, num_workers=1)
    runner.start_recording(str(tmp_path), 0, epsilon, weights, _metadata(BREAKOUT, config,
                                                                          policy, 3))  # fmt: skip
    seen: list = []
    sample = runner.sample

    def keep(**kwargs):
        episodes = sample(**kwargs)
        seen.extend(episodes)
        return episodes

    runner.sample = keep
    return runner, seen


def _agent_view(chunks: list) -> dict[str, dict[str, np.ndarray]]:
    """Per RLlib episode id: the stacked observations, actions, rewards and end flag the agent
    had, its chunks put together (a chunk's first observation is the one before's last)."""
    by_id: dict[str, list] = defaultdict(list)
    for ep in chunks:
        by_id[ep.id_].append(ep)
    out = {}
    for eid, parts in by_id.items():
        parts.sort(key=lambda e: e.t_started)
        obs = [np.asarray(p.get_observations())[:-1] for p in parts]
        obs.append(np.asarray(parts[-1].get_observations())[-1:])
        out[eid] = {
            "obs": np.concatenate(obs),
            "actions": np.concatenate([np.asarray(p.get_actions()) for p in parts]),
            "rewards": np.concatenate([np.asarray(p.get_rewards()) for p in parts]),
            "terminated": parts[-1].is_terminated,
            "t0": parts[0].t_started,
        }
    return out


def _episodes_read_back(out: Path, k: int = 4) -> dict[int, dict[str, np.ndarray]]:
    """Per episode of a recording, in step order: its frames, steps, actions, rewards and
    end flags, and the stacks of ``k`` frames rebuilt from them."""
    from algorithms.record import read_back

    table = read_back(out).to_pydict()
    rows: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for i, e in enumerate(table["episode"]):
        rows[e]["frames"].append(np.frombuffer(table["image"][i], np.uint8).reshape(84, 84))
        for key in ("step", "action", "reward", "terminated"):
            rows[e][key].append(table[key][i])
    episodes = {}
    for e, cols in rows.items():
        order = np.argsort(cols["step"])
        episode = {key: np.asarray(v)[order] for key, v in cols.items()}
        episode["stacks"] = recording.stacked_observations(episode["frames"], episode["step"], k)
        episodes[e] = episode
    return episodes


def test_breakout_stacks_rebuild_bit_for_bit_from_the_recording(tmp_path):
    """The real rollout actor on Breakout (two envs, rounds of 150 steps: episodes continue
    across rounds; random play loses lives, each life an episode of the training preset): every
    episode's stacked observations, actions, rewards and end flags come back exactly."""
    runner, seen = _local_runner(tmp_path, num_envs=2)
    taken = sum(runner.record_round(150) for _ in range(8))
    counts = runner.finish_recording()
    runner.stop()
    agent = _agent_view(seen)
    back = _episodes_read_back(tmp_path)
    assert counts["steps"] == taken >= 1200
    assert counts["episodes"] == len(agent) == len(back)
    ended = [a for a in agent.values() if a["terminated"]]
    assert len(ended) >= 4, "random Breakout play loses several lives in 1,200 steps"
    assert counts["frames"] == taken + len(agent)  # one more observation than actions each
    matched = 0
    for a in agent.values():
        (b,) = [b for b in back.values() if len(b["action"]) == len(a["actions"]) + 1
                and np.array_equal(b["stacks"], a["obs"])]  # fmt: skip
        assert a["t0"] == 0
        assert np.array_equal(b["action"][:-1], a["actions"])
        assert b["action"][-1] == recording.NO_ACTION
        assert np.array_equal(b["reward"][:-1], a["rewards"].astype(np.float32))
        assert b["terminated"][-2] == a["terminated"] and not b["terminated"][:-2].any()
        matched += 1
    assert matched == len(agent)


def test_the_split_keeps_each_episode_on_one_side(tmp_path):
    runner, _ = _local_runner(tmp_path, num_envs=1)
    for _ in range(6):
        runner.record_round(200)
    counts = runner.finish_recording()
    runner.stop()
    sides = {}
    for split in ("train", "test"):
        table = pq.read_table(tmp_path / f"{split}.parquet")
        sides[split] = set(table.column("episode").to_pylist())
    assert sides["train"] and sides["test"]
    assert not sides["train"] & sides["test"]
    assert len(sides["test"]) == counts["test_episodes"]
    assert len(sides["train"]) == counts["train_episodes"]


def test_epsilon_zero_takes_the_greedy_action_and_one_a_random_one(tmp_path):
    """With a policy's weights and epsilon 0, every recorded action is the module's greedy
    action for the stack rebuilt from the recording; epsilon 1 ignores the policy."""
    import torch

    runner0, _ = _local_runner(tmp_path / "probe", num_envs=1)
    weights = {k: v.detach().numpy() + 0.01 for k, v in runner0.module.state_dict().items()}
    runner0.stop()
    runner, _ = _local_runner(tmp_path / "greedy", num_envs=1, epsilon=0.0, weights=weights)
    runner.record_round(120)
    runner.finish_recording()
    back = _episodes_read_back(tmp_path / "greedy")
    (episode,) = [e for e in back.values() if len(e["action"]) > 10][:1]
    with torch.no_grad():
        out = runner.module.forward_inference({"obs": torch.as_tensor(episode["stacks"][:-1])})
    greedy = out["action_dist_inputs"].argmax(-1).numpy()
    assert np.array_equal(episode["action"][:-1], greedy)
    runner.stop()


# -- the command, and the generative jobs on its recording -------------------------------------


def _one_line_refusal(proc, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_bad_record_requests_are_refused_in_one_line(tmp_path, rlgen_here):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    base = ("record", "--steps", "100")
    for args, needle in [
        ((*base, "--env", BREAKOUT, "--epsilon", "0.1", "--out", str(tmp_path / "a")),
         "--epsilon needs --checkpoint"),
        ((*base, "--env", "CartPole-v1", "--out", str(tmp_path / "b")), "Atari game"),
        ((*base, "--env", BREAKOUT, "--out", str(used)), "not empty"),
        ((*base, "--env", BREAKOUT, "--out", str(link)), "symbolic link"),
        ((*base, "--out", str(tmp_path / "c")), "give --env"),
        ((*base, "--env", BREAKOUT, "--out", "s3://bucket/rec"), "local folder"),
        (("record", "--steps", "0", "--env", BREAKOUT, "--out", str(tmp_path / "d")), "--steps"),
    ]:  # fmt: skip
        _one_line_refusal(rlgen_here(*args), needle)
    assert (used / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "elsewhere").exists()


def test_two_actors_record_breakout_and_the_vae_learns_from_it(tmp_path):
    """``rlgen record`` with two rollout actors: each writes its own files, the steps are the
    ones asked for, one more frame than actions per episode, the env and preset in the files'
    metadata and in recording.json; then ``rlgen train vae --dataset DIR`` reads the recording
    as it is, with its episode split, and shows game frames in TensorBoard."""
    from tests import pngs
    from tests.conftest import run_cli

    out = tmp_path / "rec"
    done = run_cli(
        "record", "--env", BREAKOUT, "--steps", "1500", "--num-env-runners", "2",
        "--out", str(out), "--seed", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "env steps" in done.stderr  # progress
    assert result["steps"] >= 1500 and result["policy"] == "random"
    assert result["frames"] == result["steps"] + result["episodes"]
    info = json.loads((out / recording.RECORDING_FILE).read_text())
    assert info["env"] == BREAKOUT and info["preset"]["frame_stack"] == 4
    assert info["num_env_runners"] == 2 and info["frames"] == result["frames"]
    files = sorted(p.name for p in (out / "train.parquet").iterdir())
    assert files == ["actor000.parquet", "actor001.parquet"]
    table = pq.read_table(out / "train.parquet" / "actor001.parquet")
    meta = json.loads(table.schema.metadata[recording.METADATA_KEY])
    assert meta["env"] == BREAKOUT and meta["preset"]["sticky_actions"] == 0.0
    assert set(table.column("height").to_pylist()) == {84}
    actors = {e >> 32 for e in table.column("episode").to_pylist()}
    assert actors == {1}

    run = tmp_path / "vae"
    trained = run_cli(
        "train", "vae", "--dataset", str(out), "--epochs", "1", "--output", str(run),
        "--set", "batch_size=64",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    vae = json.loads((run / "result.json").read_text())
    train_rows = pq.read_table(out / "train.parquet").num_rows
    assert vae["metrics"]["train_images"] == train_rows  # one worker: every training frame
    assert np.isfinite(vae["test_nll_nats"])
    events = run / "tensorboard"  # every event file, as TensorBoard reads it
    for name in ("reconstructions", "samples"):
        (grid,) = pngs.tensorboard_images(events, f"images/{name}").values()
        assert grid.shape[0] >= 84 and grid.shape[1] >= 84, (name, grid.shape)


def test_a_checkpoints_greedy_policy_records_with_its_own_preset(ray_local, tmp_path):
    """``rlgen.record(checkpoint=...)`` with two actors: the policy as ``rlgen eval`` reads it,
    the checkpoint's frame stack (2, not the preset's 4) in the recording's preset, and with
    epsilon 0 every action the greedy action of that policy on the stack rebuilt from the
    recording; another game than the checkpoint's is refused."""
    import torch

    import rlgen
    from algorithms.evaluate import load_policy

    run = tmp_path / "a2c"
    rlgen.train(
        "a2c", env=BREAKOUT, output=run, seed=0, video_frames=0, max_env_steps=10,
        overrides={"frame_stack": 2, "num_envs_per_env_runner": 2,
                   "rollout_fragment_length": 5, "min_sample_timesteps_per_iteration": 10},
    )  # fmt: skip
    with pytest.raises(rlgen.UserError, match="plays ALE/Breakout-v5"):
        rlgen.record("ALE/Pong-v5", checkpoint=run, steps=10, out=tmp_path / "pong")
    out = tmp_path / "rec"
    result = rlgen.record(checkpoint=run, epsilon=0.0, steps=300, out=out, num_env_runners=2)
    assert (result.policy, result.epsilon, result.env) == ("checkpoint", 0.0, BREAKOUT)
    info = json.loads((out / recording.RECORDING_FILE).read_text())
    assert info["preset"]["frame_stack"] == 2 and info["policy"]["algorithm"] == "a2c"
    module, _ = load_policy(run)
    checked = 0
    for episode in _episodes_read_back(out, k=2).values():
        with torch.no_grad():
            logits = module.forward_inference({"obs": torch.as_tensor(episode["stacks"][:-1])})
        greedy = logits["action_dist_inputs"].argmax(-1).numpy()
        assert np.array_equal(episode["action"][:-1], greedy)
        checked += len(greedy)
    assert checked == result.steps
