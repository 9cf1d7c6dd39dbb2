"""Nothing the user points rlgen at runs code.

Crafted files whose unpickling would run a command (it would create a marker file) are handed
to every loader rlgen has for files from elsewhere: an RL checkpoint for `rlgen eval` (both
RLlib's pickles in it and rlgen's weights file), a generative checkpoint for `rlgen sample`, a
CIFAR-10 batch for `rlgen data import`. Each is refused with one clear line (or, for RLlib's
pickles, never read) and the marker never appears. The module `rlgen eval` rebuilds from the
run's JSON spec computes exactly what RLlib's own (pickle-based) restore gives.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import rlgen
from algorithms.checkpoints import WEIGHTS_FILE
from algorithms.evaluate import load_policy
from tests.conftest import run_cli

RLLIB_MODULE_DIR = Path("learner_group") / "learner" / "rl_module" / "default_policy"


class _RunsACommand:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({b"data": _RunsACommand(marker)}, protocol=2)


@pytest.fixture(scope="module")
def rl_checkpoints(tmp_path_factory):
    """One short run of each algorithm on CartPole; {algorithm: newest checkpoint}."""
    root = tmp_path_factory.mktemp("rl")
    out = {}
    for algorithm in ("reinforce", "a2c", "ppo", "dqn"):
        result = rlgen.train(
            algorithm, env="CartPole-v1", max_env_steps=600, seed=1, video_frames=0,
            output=root / algorithm,
        )  # fmt: skip
        out[algorithm] = Path(result.checkpoint)
    return out


@pytest.mark.parametrize("algorithm", ["reinforce", "a2c", "ppo", "dqn"])
def test_rebuilt_module_equals_rllib_restore(rl_checkpoints, algorithm, ray_local):
    from ray.rllib.core.rl_module.rl_module import RLModule

    ckpt = rl_checkpoints[algorithm]
    ours, spec = load_policy(ckpt)
    theirs = RLModule.from_checkpoint(str(ckpt / RLLIB_MODULE_DIR))
    theirs.eval()
    assert spec["algorithm"] == algorithm
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(16, 4)), dtype=torch.float32)
    with torch.no_grad():
        a, b = ours.forward_inference({"obs": obs}), theirs.forward_inference({"obs": obs})
    key = "actions" if "actions" in a else "action_dist_inputs"
    torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert ours_state.keys() == theirs_state.keys()
    for name in ours_state:
        torch.testing.assert_close(ours_state[name], theirs_state[name], rtol=0, atol=0)


def test_eval_never_reads_rllib_pickles(rl_checkpoints, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(rl_checkpoints["dqn"], ckpt)
    marker = tmp_path / "ran"
    pickles = [p for p in ckpt.rglob("*.pkl")]
    assert pickles  # RLlib's state and constructor files
    for path in pickles:
        path.write_bytes(_malicious_pickle(marker))
    out = run_cli("eval", str(ckpt), "--episodes", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["algorithm"] == "dqn"
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["malicious", "truncated", "other-shape"])
def test_bad_weights_file_is_refused(rl_checkpoints, tmp_path, damage):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(rl_checkpoints["reinforce"], ckpt)
    marker = tmp_path / "ran"
    weights = ckpt / WEIGHTS_FILE
    if damage == "malicious":
        weights.write_bytes(_malicious_pickle(marker))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:  # the weights of another network
        torch.save({"encoder.weight": torch.zeros(3, 3)}, weights)
    out = run_cli("eval", str(ckpt), "--episodes", "1")
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert f"{WEIGHTS_FILE} is not this policy's weights" in last and "Traceback" not in out.stderr
    assert not marker.exists()


def test_generative_checkpoint_cannot_run_code(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    marker = tmp_path / "ran"
    (ckpt / "state.pt").write_bytes(_malicious_pickle(marker))
    out = run_cli("sample", str(ckpt), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert out.returncode == 2 and "cannot be loaded" in out.stderr
    assert not marker.exists() and not (tmp_path / "s.png").exists()


def test_cifar_batch_cannot_run_code(tmp_path):
    src = tmp_path / "cifar"
    src.mkdir()
    marker = tmp_path / "ran"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (src / name).write_bytes(_malicious_pickle(marker))
    out = run_cli("data", "import", "cifar10", str(src), str(tmp_path / "ds"))
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert "refused global" in line and "nothing in it was run" in line
    assert not marker.exists() and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("job", ["reinforce", "vae"])
def test_run_dir_holds_no_secret_and_nothing_world_writable(job, tmp_path):
    """Credentials and the Ray token in the environment never reach run.json, result.json,
    checkpoints, logs or TensorBoard, of an RL run or a Ray Train job (whose workers see the
    same environment); nothing rlgen creates is world-writable. (Tune experiments and S3
    outputs: test_tune, test_storage.)"""
    import secrets

    secret, token = f"aws-{secrets.token_hex(16)}", secrets.token_hex(32)
    env = {"AWS_SECRET_ACCESS_KEY": secret, "RAY_AUTH_TOKEN": token}
    out = tmp_path / "run"
    if job == "reinforce":
        args = ["--env", "CartPole-v1", "--max-env-steps", "800"]
    else:
        from tests.test_vae_job import _small_dataset

        data = _small_dataset(tmp_path / "digits", n_train=64, n_test=16)
        args = ["--dataset", str(data), "--epochs", "1", "--set", "grid_n=4"]
    proc = run_cli("train", job, *args, "--output", str(out), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert secret not in proc.stdout + proc.stderr and token not in proc.stdout + proc.stderr
    paths = [out, *out.rglob("*")]
    assert len(paths) > 5
    for path in paths:
        assert path.stat().st_mode & 0o002 == 0, path
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and token.encode() not in data, path
