"""Bad input through the command line, as one table: each row is exit status 2, one line on
stderr naming the input, no traceback, and nothing written (a run directory that existed keeps
its files). Adding a case is one row."""

from __future__ import annotations

import json
from pathlib import Path

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
    # datasets
    ("dataset that is not one", ("train", "vae", "--dataset", "{tmp}/gen-run"), "gen-run"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case, argv, needle):
    _setup(tmp_path)
    before = _files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if args[0] == "train" and "--resume" not in args:
        args += ["--output", str(tmp_path / "out")]
    proc = run_cli(*args, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (case, proc.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in proc.stderr, (case, proc.stderr[-2000:])
    assert needle in lines[0], (case, lines[0])
    assert not (tmp_path / "out").exists()
    assert _files(tmp_path) == before  # nothing written, nothing lost
