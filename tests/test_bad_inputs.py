"""Bad input through the command line, as one table: each row is exit status 2, one line on
stderr naming the input, no traceback, and nothing written (a run directory that existed keeps
its files). Adding a case is one row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _setup(tmp: Path) -> None:
    """What the rows refer to: config files, a generative run, a run of an older shape, a
    generative checkpoint and an RL-looking checkpoint."""
    (tmp / "not-yaml.yaml").write_text("lr: [0.1\n  gamma: {\n")
    (tmp / "list.yaml").write_text("- lr\n- 0.1\n")
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "bad.json").write_text("{'lr': 0.1}")
    gen = tmp / "gen-run"
    gen.mkdir()
    (gen / "run.json").write_text(json.dumps({"kind": "generative", "spec": {"model": "vae"}}))
    old = tmp / "old-run"
    old.mkdir()
    spec = {"algorithm": "reinforce", "env": "CartPole-v1", "overrides": {}, "frobnicate": 1}
    (old / "run.json").write_text(json.dumps({"kind": "rl", "spec": spec}))
    gen_ckpt = tmp / "gen-ckpt"
    gen_ckpt.mkdir()
    (gen_ckpt / "state.pt").write_bytes(b"\x80\x02}q\x00.")  # an empty pickled dict
    rl_ckpt = tmp / "rl-ckpt"
    rl_ckpt.mkdir()
    (rl_ckpt / "rlgen_state.json").write_text(json.dumps({"spec": {"env": "CartPole-v1"}}))
    other = tmp / "reinforce-run"
    other.mkdir()
    spec = {"algorithm": "reinforce", "env": "CartPole-v1", "overrides": {}}
    (other / "run.json").write_text(json.dumps({"kind": "rl", "spec": spec}))
    _generative_checkpoints(tmp)
    _datasets(tmp)


def _generative_checkpoints(tmp: Path) -> None:
    """An untrained VAE checkpoint for 28x28 digits, as the training job writes it, and one
    that says VAE but holds a PixelCNN's weights."""
    import torch

    from generative.configure import load_job

    for name, model, weights_of in (("vae-ckpt", "vae", "vae"), ("mixed-ckpt", "vae", "pixelcnn")):
        job, held = load_job(model), load_job(weights_of)
        cfg, held_cfg = job.config_class(), held.config_class()
        state = {
            "model": held.build_model(held_cfg, (1, 28, 28)).state_dict(),
            "epoch": 1, "config": cfg.to_dict(), "shape": [1, 28, 28], "model_name": model,
        }  # fmt: skip
        (tmp / name).mkdir()
        torch.save(state, tmp / name / "state.pt")


def _datasets(tmp: Path) -> None:
    """RGB 32x32 images (not what a 28x28 digit model takes), and splits of two shapes."""
    import numpy as np

    from generative.data import images as gi

    rng = np.random.default_rng(0)
    for name, shapes in (
        ("rgb-data", ((32, 32, 3),) * 2),
        ("mixed-data", ((28, 28, 1), (32, 32, 1))),
    ):
        for split, shape in zip(("train", "test"), shapes, strict=True):
            images = rng.integers(0, 256, size=(8, *shape), dtype=np.uint8)
            gi.write_images(tmp / name / f"{split}.parquet", images, np.zeros(8, np.int64))


RL = ("train", "reinforce", "--env", "CartPole-v1")
A2C = ("train", "a2c", "--env", "CartPole-v1")
DQN = ("train", "dqn", "--env", "CartPole-v1")
CASES: list[tuple[str, tuple[str, ...], str]] = [
    # env ids
    ("env module that does not import", ("train", "reinforce", "--env", "nosuchpkg.envs:Foo-v0"),
     "cannot import nosuchpkg.envs"),
    # malformed --set
    ("--set without =", (*RL, "--set", "lr"), "expected KEY=VALUE"),
    ("--set without a key", (*RL, "--set", "=0.1"), "expected KEY=VALUE"),
    # config files
    ("config not YAML", (*RL, "--config", "{tmp}/not-yaml.yaml"), "cannot parse"),
    ("config YAML list", (*RL, "--config", "{tmp}/list.yaml"), "expected a mapping"),
    ("config JSON list", (*RL, "--config", "{tmp}/list.json"), "expected a mapping"),
    ("config not JSON", (*RL, "--config", "{tmp}/bad.json"), "cannot parse"),
    # wrong types, one per kind of key
    ("number key given text", (*RL, "--set", "lr=fast"), "lr="),
    ("bool key given a number", (*DQN, "--set", "dueling=3"), "dueling=3 must be true or false"),
    ("list key given a number", (*DQN, "--set", "model_hiddens=64"), "list of positive integers"),
    ("list key given negatives", (*DQN, "--set", "model_hiddens=[64,-1]"), "positive integers"),
    ("schedule given text", (*A2C, "--set", "entropy_coeff=[[0,a]]"), "'a' must be a number"),
    ("schedule not pairs", (*A2C, "--set", "entropy_coeff=[1,2,3]"), "[[env_step, value]"),
    ("choice outside its set", (*A2C, "--set", "optimizer=sgdd"), "optimizer"),
    ("generative number as text", ("train", "vae", "--set", "lr=x"), "lr="),
    ("generative choice outside", ("train", "pixelcnn", "--set", "variant=huge"),
     "not one of plain, gated"),
    # runs and checkpoints of another kind
    ("resume a generative run as RL", ("train", "reinforce", "--resume", "{tmp}/gen-run"),
     "is a generative run, not rl"),
    ("resume a run of an older shape", ("train", "reinforce", "--resume", "{tmp}/old-run"),
     "does not fit this version"),
    ("eval a generative checkpoint", ("eval", "{tmp}/gen-ckpt"), "not an rlgen checkpoint"),
    ("sample an RL checkpoint", ("sample", "{tmp}/rl-ckpt"), "not an rlgen checkpoint"),
    ("sample a checkpoint with no model", ("sample", "{tmp}/gen-ckpt"), "cannot be loaded"),
    # another algorithm or model
    ("resume a reinforce run as dqn", ("train", "dqn", "--resume", "{tmp}/reinforce-run"),
     "that run trained reinforce, not dqn"),
    ("checkpoint holding another model's weights", ("sample", "{tmp}/mixed-ckpt"),
     "cannot be loaded"),
    # datasets
    ("dataset that is not one", ("train", "vae", "--dataset", "{tmp}/gen-run"), "gen-run"),
    ("dataset splits of two shapes", ("train", "vae", "--dataset", "{tmp}/mixed-data"),
     "they must match"),
    ("completion images that do not fit the model",
     ("sample", "{tmp}/vae-ckpt", "--complete-from", "{tmp}/rgb-data", "--out", "{tmp}/x.png"),
     "the model was trained on (1, 28, 28)"),
    ("unknown sampler", ("sample", "{tmp}/vae-ckpt", "--sampler", "fast"), "cached"),
    ("negative retries", ("train", "vae", "--max-failures", "-1"), "must be >= 0"),
    ("generative setting for an RL job", (*RL, "--max-failures", "1"),
     "--max-failures is for generative models"),
    ("unknown rollout engine", (*A2C, "--set", "env_runner=fast"), "env_runner"),
]  # fmt: skip


def _check_refused(tmp_path: Path, case: str, argv: tuple[str, ...], needle: str, run) -> None:
    _setup(tmp_path)
    before = _files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if args[0] == "train" and "--resume" not in args:
        args += ["--output", str(tmp_path / "out")]
    proc = run(*args, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (case, proc.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in proc.stderr, (case, proc.stderr[-2000:])
    assert needle in lines[0], (case, lines[0])
    assert not (tmp_path / "out").exists()
    assert _files(tmp_path) == before  # nothing written, nothing lost


@pytest.mark.parametrize(("case", "argv", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, rlgen_here, case, argv, needle):
    _check_refused(tmp_path, case, argv, needle, rlgen_here)


# One row per command and job kind again, each in a fresh interpreter exactly as a user runs
# it: nothing an import prints on the way adds a line.
FRESH = [
    "--set without =", "bool key given a number", "schedule given text",
    "generative choice outside", "eval a generative checkpoint", "sample an RL checkpoint",
]  # fmt: skip


@pytest.mark.parametrize("case", FRESH)
def test_bad_input_from_a_fresh_process(tmp_path, case):
    [(argv, needle)] = [(argv, needle) for name, argv, needle in CASES if name == case]
    _check_refused(tmp_path, case, argv, needle, run_cli)


# The same kinds of input through the Python API: a UserError with one line naming the input,
# nothing written. Each row: (case, call(rlgen, tmp), needle).
API_CASES: list[tuple[str, Any, str]] = [
    ("unknown job", lambda r, t: r.train("trpo", env="CartPole-v1"), "unknown algorithm or model"),
    ("no env", lambda r, t: r.train("reinforce"), "--env is required"),
    ("unknown env", lambda r, t: r.train("reinforce", env="CartPol-v1"), "CartPole-v1"),
    ("env module that does not import",
     lambda r, t: r.train("a2c", env="nosuchpkg.envs:Foo-v0"), "cannot import nosuchpkg.envs"),
    ("unknown key", lambda r, t: r.train("dqn", env="CartPole-v1", overrides={"lrr": 0.1}),
     "did you mean lr"),
    ("number key given text",
     lambda r, t: r.train("reinforce", env="CartPole-v1", overrides={"lr": "fast"}), "lr="),
    ("bool key given a number",
     lambda r, t: r.train("dqn", env="CartPole-v1", overrides={"dueling": 3}), "true or false"),
    ("schedule not pairs",
     lambda r, t: r.train("a2c", env="CartPole-v1", overrides={"entropy_coeff": [1, 2, 3]}),
     "[[env_step, value]"),
    ("config not YAML", lambda r, t: r.train("reinforce", env="CartPole-v1",
                                             config=t / "not-yaml.yaml"), "cannot parse"),
    ("config a list", lambda r, t: r.train("reinforce", env="CartPole-v1", config=t / "list.json"),
     "expected a mapping"),
    ("generative choice outside", lambda r, t: r.train("pixelcnn", overrides={"variant": "huge"}),
     "not one of plain, gated"),
    ("RL setting for a generative model", lambda r, t: r.train("vae", env="CartPole-v1"),
     "--env is for"),
    ("resume a generative run as RL", lambda r, t: r.train("reinforce", resume=t / "gen-run"),
     "is a generative run, not rl"),
    ("resume a reinforce run as dqn", lambda r, t: r.train("dqn", resume=t / "reinforce-run"),
     "that run trained reinforce, not dqn"),
    ("resume a run of an older shape", lambda r, t: r.train("reinforce", resume=t / "old-run"),
     "does not fit this version"),
    ("eval a generative checkpoint", lambda r, t: r.evaluate(t / "gen-ckpt"),
     "not an rlgen checkpoint"),
    ("sample an RL checkpoint", lambda r, t: r.sample(t / "rl-ckpt"), "not an rlgen checkpoint"),
    ("checkpoint holding another model's weights", lambda r, t: r.sample(t / "mixed-ckpt"),
     "cannot be loaded"),
    ("dataset splits of two shapes", lambda r, t: r.train("vae", dataset=str(t / "mixed-data")),
     "they must match"),
    ("completion images that do not fit the model",
     lambda r, t: r.sample(t / "vae-ckpt", out=t / "x.png", complete_from=str(t / "rgb-data")),
     "the model was trained on (1, 28, 28)"),
    ("unknown sampler", lambda r, t: r.sample(t / "vae-ckpt", sampler="fast"), "cached, naive"),
    ("negative retries", lambda r, t: r.train("vae", max_failures=-1),
     "max_failures=-1 is out of range: must be >= 0"),
    ("generative setting for an RL job",
     lambda r, t: r.train("dqn", env="CartPole-v1", max_failures=1), "--max-failures is for"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "needle"), API_CASES, ids=[c[0] for c in API_CASES])
def test_bad_input_through_the_python_api(tmp_path, monkeypatch, case, call, needle):
    import rlgen

    _setup(tmp_path)
    before = _files(tmp_path)
    monkeypatch.chdir(tmp_path)  # a default output (runs/...) would land here
    with pytest.raises(rlgen.UserError) as caught:
        call(rlgen, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and needle in message, (case, message)
    assert _files(tmp_path) == before
    assert not (tmp_path / "runs").exists()
