"""The ``rlgen`` command line: bad input (exit 2, one line, nothing lost), through
``rlgen_cli.main`` in this process and a few cases in a fresh process as users run it; short
train -> resume -> eval round trips (REINFORCE's as commands in fresh processes)."""

import json
from pathlib import Path

import pytest

import rlgen
from tests.conftest import ROOT, run_cli


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _assert_resumed_tensorboard(out: Path, r1: dict) -> None:
    """TensorBoard: the resumed run's curve continues at the env steps where the first stopped;
    each part ends with the greedy evaluation episode of its last checkpoint, as a GIF."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 2
    import imageio.v2 as imageio

    steps = []
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        # The greedy evaluation episode of the run's last checkpoint, as a GIF, at the end.
        [video_event] = acc.Images("eval/video")
        gif = imageio.mimread(video_event.encoded_image_string, format="GIF")
        assert 2 <= len(gif) <= 40 and gif[0].shape[:2] == (213, 320)  # 600x400 scaled
        assert {
            "episode/return_mean",
            "learner/policy_loss",
            "learner/value_loss",
            "learner/entropy",
            "learner/grad_norm",
            "perf/env_steps_per_s",
        } <= set(acc.Tags()["scalars"])
        steps.append([e.step for e in acc.Scalars("episode/return_mean")])
        assert video_event.step == steps[-1][-1]
    assert steps[0][-1] == r1["env_steps"]
    assert steps[1][0] > r1["env_steps"]


def _greedy_returns(out: Path, seeds: tuple[int, ...]) -> list[float]:
    """The run's policy played by argmax on CartPole with the env seeds ``seeds``."""
    import gymnasium as gym
    import torch

    from algorithms.evaluate import load_policy

    module, _ = load_policy(out)
    env, returns = gym.make("CartPole-v1"), []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                logits = module.forward_inference({"obs": torch.as_tensor(obs[None])})
            action = int(logits["action_dist_inputs"].argmax(-1))
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return returns


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--env", "CartPol-v1"], ["CartPol-v1", "CartPole-v1"]),
        (["--env", "CartPole-v1", "--set", "lrr=0.1"], ["lrr", "did you mean lr"]),
        (["--env", "CartPole-v1", "--set", "lr=0"], ["lr=0", "> 0"]),
        (["--env", "CartPole-v1", "--set", "lr=-0.01"], ["lr=-0.01"]),
        (["--env", "CartPole-v1", "--set", "gamma=0"], ["gamma=0", "<= 1"]),
        (["--env", "CartPole-v1", "--set", "gamma=1.01"], ["gamma=1.01"]),
        (["--env", "CartPole-v1", "--num-env-runners", "-1"], ["--num-env-runners", "-1"]),
        (["--env", "CartPole-v1", "--set", "num_env_runners=-2"], ["num_env_runners=-2"]),
        (["--env", "CartPole-v1", "--set", "baseline=median"], ["baseline", "moving_average"]),
        (["--env", "CartPole-v1", "--set", "episodes_per_batch=0"], ["episodes_per_batch=0"]),
        (["--env", "CartPole-v1", "--set", "reward_to_go=2"], ["reward_to_go=2", "true or false"]),
        (
            ["--env", "CartPole-v1", "--set", "episodes_per_batch=1", "--set", "num_learners=2"],
            ["episodes_per_batch=1", "num_learners=2"],
        ),
        (["--env", "CartPole-v1", "--config", "missing.yaml"], ["missing.yaml"]),
        ([], ["--env"]),
    ],
)
def test_train_bad_input(args, needles, tmp_path, rlgen_here):
    proc = rlgen_here("train", "reinforce", *args, "--output", str(tmp_path / "run"), cwd=tmp_path)
    _assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()  # nothing written for a refused run


def test_bad_config_file_contents(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lr: [unclosed\n")
    proc = run_cli("train", "reinforce", "--env", "CartPole-v1", "--config", str(cfg), cwd=tmp_path)
    _assert_one_line_error(proc, "bad.yaml")


def test_existing_output_is_refused_and_kept(tmp_path, rlgen_here):
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.json").write_text('{"keep": true}')
    proc = rlgen_here("train", "reinforce", "--env", "CartPole-v1", "--output", str(out),
                      cwd=tmp_path)  # fmt: skip
    _assert_one_line_error(proc, str(out), "--resume")
    assert json.loads((out / "result.json").read_text()) == {"keep": True}


def test_resume_of_a_non_run_directory(tmp_path, rlgen_here):
    proc = rlgen_here("train", "reinforce", "--resume", str(tmp_path), cwd=tmp_path)
    _assert_one_line_error(proc, "not an rlgen run directory")


def test_eval_bad_video_name(tmp_path):
    _assert_one_line_error(run_cli("eval", str(tmp_path), "--video", "x.avi"), ".gif or .mp4")


def test_eval_missing_and_corrupt_checkpoints(tmp_path, rlgen_here):
    _assert_one_line_error(rlgen_here("eval", str(tmp_path / "nope")), "no such file")
    _assert_one_line_error(rlgen_here("eval", str(tmp_path)), "not an rlgen checkpoint")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "rlgen_state.json").write_text("{not json")
    _assert_one_line_error(rlgen_here("eval", str(ckpt)), "unreadable")
    spec = {"algorithm": "reinforce", "env": "CartPole-v1", "overrides": {}}
    (ckpt / "rlgen_state.json").write_text(json.dumps({"spec": spec, "state": {}}))
    _assert_one_line_error(rlgen_here("eval", str(ckpt)), "no policy_weights.pt")
    (ckpt / "policy_weights.pt").write_bytes(b"garbage")
    _assert_one_line_error(rlgen_here("eval", str(ckpt)), "policy_weights.pt is not this policy's")


def test_train_resume_eval_round_trip(tmp_path, rlgen_here):
    out = tmp_path / "run"
    first = run_cli(
        "train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "2000",
        "--checkpoint-every", "2", "--seed", "1", "--video-frames", "40", "--output", str(out),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    r1 = json.loads((out / "result.json").read_text())
    assert r1["env_steps"] >= 2000 and r1["solved"] is False
    assert set(r1) >= {
        "algorithm", "env", "env_steps", "wall_time_s", "episode_return_mean",
        "best_episode_return_mean", "solved", "env_steps_per_s", "checkpoint", "tensorboard_dir",
    }  # fmt: skip
    assert "tensorboard --logdir" in first.stderr

    second = run_cli("train", "reinforce", "--resume", str(out), "--max-env-steps", "4000")
    assert second.returncode == 0, second.stderr
    r2 = json.loads((out / "result.json").read_text())
    assert r2["env_steps"] >= 4000
    assert r2["wall_time_s"] > r1["wall_time_s"]
    assert r2["checkpoint"] != r1["checkpoint"]

    _assert_resumed_tensorboard(out, r1)

    video = tmp_path / "play.gif"
    ev = run_cli("eval", str(out), "--episodes", "2", "--video", str(video))
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    assert report["env"] == "CartPole-v1" and report["episodes"] == 2

    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    # Pillow merges identical consecutive frames into one longer GIF frame.
    assert 2 <= len(frames) <= report["video_frames"]
    assert frames[0].shape[:2] == (400, 600)  # CartPole's rgb_array frame
    # A relative checkpoint path works too (RLlib's loader needs absolute ones); here, as
    # below, through ``rlgen_cli.main`` in this process (eval starts no Ray).
    import os

    rel = rlgen_here("eval", os.path.relpath(out, ROOT), "--episodes", "1", cwd=ROOT)
    assert rel.returncode == 0, rel.stderr
    assert json.loads(rel.stdout)["episodes"] == 1
    # An existing video file is never overwritten.
    again = rlgen_here("eval", str(out), "--episodes", "1", "--video", str(video))
    _assert_one_line_error(again, "already exists")
    # The greedy return is the checkpoint's policy played by argmax on the env seeds 0, 1.
    import numpy as np

    returns = _greedy_returns(out, seeds=(0, 1))
    assert report["greedy_return_mean"] == pytest.approx(np.mean(returns))
    assert report["greedy_return_std"] == pytest.approx(np.std(returns))


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--env", "CartPole-v1", "--set", "model_torso=cnn"], ["model_torso=cnn", "(C, 84, 84)"]),
        (["--env", "ALE/Breakot-v5"], ["ALE/Breakot-v5", "ALE/Breakout-v5"]),
        (["--env", "CartPole-v1", "--set", "replay_ratio=0"], ["replay_ratio=0", "> 0"]),
        (["--env", "CartPole-v1", "--set", "n_step=0"], ["n_step=0", ">= 1"]),
        (["--env", "CartPole-v1", "--set", "per_beta=0.5"], ["per_beta=0.5", "[start, env steps"]),
        (["--env", "CartPole-v1", "--set", "per_beta=[1.5, 100]"], ["per_beta start=1.5"]),
        (["--env", "CartPole-v1", "--set", "huber_delta=0"], ["huber_delta=0", "> 0"]),
        (["--env", "CartPole-v1", "--set", "epsilon=[1.0, 0.1]"], ["epsilon=[1.0, 0.1]"]),
        (["--env", "CartPole-v1", "--set", "double_q=2"], ["double_q=2", "true or false"]),
        (["--env", "CartPole-v1", "--set", "model_hiddens=[0]"], ["model_hiddens=[0]"]),
        (["--env", "Pendulum-v1"], ["Discrete"]),
    ],
)
def test_dqn_bad_input(args, needles, tmp_path, rlgen_here):
    proc = rlgen_here("train", "dqn", *args, "--output", str(tmp_path / "run"), cwd=tmp_path)
    _assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args,needles",
    [
        (["--env", "CartPole-v1", "--set", "lambda_=1.5"], ["lambda_=1.5", "<= 1"]),
        (["--env", "CartPole-v1", "--set", "optimizer=sgd"], ["optimizer='sgd'", "rmsprop"]),
        (
            ["--env", "CartPole-v1", "--set", "rollout_fragment_length=0"],
            ["rollout_fragment_length=0"],
        ),
        (["--env", "CartPole-v1", "--set", "entropy_coeff=-0.1"], ["entropy_coeff=-0.1"]),
        (
            ["--env", "CartPole-v1", "--set", "entropy_coeff=[[100, 0.01], [0, 0.0]]"],
            ["entropy_coeff", "ascending"],
        ),
        (["--env", "CartPole-v1", "--set", "model_torso=cnn"], ["model_torso=cnn", "(C, 84, 84)"]),
        (["--env", "CartPole-v1", "--set", "vf_coef=0.5"], ["vf_coef", "did you mean vf_coeff"]),
        (["--env", "CartPole-v1", "--set", "num_learners=9"], ["num_learners=9", "= 8"]),
        (["--env", "CartPole-v1", "--set", "shared_torso=1"], ["shared_torso=1"]),
    ],
)
def test_a2c_bad_input(args, needles, tmp_path, rlgen_here):
    proc = rlgen_here("train", "a2c", *args, "--output", str(tmp_path / "run"), cwd=tmp_path)
    _assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def _entropy_coeff(step: float) -> float:
    """The schedule ``[[0, 0.02], [4000, 0.0]]`` of the A2C run below: linear from 0.02 at env
    step 0 to 0 at env step 4000, 0 after."""
    return 0.02 * (1.0 - min(step, 4000) / 4000)


@pytest.mark.parametrize("algorithm,scheduled", [("a2c", "entropy_coeff"), ("ppo", "clip_param")])
def test_actor_critic_train_resume_eval(tmp_path, ray_local, rlgen_here, algorithm, scheduled):
    """The same run directory contract as REINFORCE: result.json, TensorBoard tags (a scheduled
    coefficient included: A2C's entropy coefficient, PPO's clip), --resume and eval; through
    the Python API and ``rlgen_cli.main`` in this process (REINFORCE's round trip above runs
    the commands)."""
    out = tmp_path / algorithm
    first = rlgen.train(
        algorithm, env="CartPole-v1", max_env_steps=2000, seed=0, num_env_runners=2,
        overrides={scheduled: [[0, 0.02], [4000, 0.0]]}, video_frames=0, output=out,
    )  # fmt: skip
    r1 = json.loads((out / "result.json").read_text())
    assert r1 == rlgen.to_dict(first)
    assert r1["algorithm"] == algorithm and r1["env_steps"] >= 2000
    rlgen.train(algorithm, resume=out, max_env_steps=4000)
    r2 = json.loads((out / "result.json").read_text())
    assert r2["env_steps"] >= 4000 and r2["checkpoint"] != r1["checkpoint"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = []
    for f in sorted((out / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f))
        acc.Reload()
        assert {"episode/return_mean", "learner/value_loss", "learner/entropy"} <= set(
            acc.Tags()["scalars"]
        )
        curves.append([(e.step, e.value) for e in acc.Scalars(f"learner/{scheduled}")])
    first_run, resumed = curves
    assert first_run[-1][0] == r1["env_steps"] < resumed[0][0]
    assert resumed[-1][0] == r2["env_steps"]
    # Each iteration's last step used the schedule at the run's env-step count, the resumed
    # run's too: a schedule started again from 0 on --resume would be 0.01 too high there.
    for step, coeff in first_run + resumed:
        assert coeff == pytest.approx(_entropy_coeff(step), rel=1e-5, abs=1e-9), (step, coeff)
    ev = rlgen_here("eval", str(out), "--episodes", "2")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["episodes"] == 2
