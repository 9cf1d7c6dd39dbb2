"""Runs stored on object storage, against a real S3 API on loopback (moto's server).

An RL run writes to ``s3://``, is resumed from there on another machine's view (its local
working copy deleted), and is evaluated from there; the mirror copies only what changed, keeps
markers for last, and removes pruned checkpoints; bad URIs and misuse are refused cleanly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runkit import storage
from runkit.errors import UserError
from tests.conftest import S3_BUCKET, S3_SECRET, files_holding, run_cli, s3_files, s3_objects


@pytest.fixture
def s3(s3_server, tmp_path, monkeypatch):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(storage.MIRROR_ENV, str(tmp_path / "mirror"))
    return {**s3_server, storage.MIRROR_ENV: str(tmp_path / "mirror")}


def test_rl_run_written_resumed_and_evaluated_from_s3(s3, tmp_path):
    uri = f"s3://{S3_BUCKET}/rl/reinforce-1"
    common = ("--set", "train_batch_size=500")
    first = run_cli(
        "train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "1500", *common,
        "--output", uri, env=s3,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["run_dir"] == uri and result["checkpoint"].startswith(uri + "/checkpoints/")
    stored = s3_files(s3, uri)
    assert {"run.json", "result.json"} <= set(stored)
    ckpt = result["checkpoint"][len(uri) + 1 :]
    assert f"{ckpt}/rlgen_state.json" in stored
    assert any(k.startswith("tensorboard/events.out.tfevents") for k in stored)

    # Another machine: no local working copy, only the URI.
    shutil.rmtree(storage.mirror_dir(uri))
    again = run_cli("train", "reinforce", "--resume", uri, "--max-env-steps", "3000", env=s3)
    assert again.returncode == 0, again.stderr
    assert "copied" in again.stderr and f"from {uri}" in again.stderr
    resumed = json.loads(again.stdout)
    assert resumed["env_steps"] >= 3000 > result["env_steps"]
    assert resumed["checkpoint"] > result["checkpoint"]  # iter_N names sort in time order
    local_result = storage.mirror_dir(uri) / "result.json"  # the copy uploaded last
    assert json.loads(local_result.read_text()) == resumed
    assert s3_files(s3, uri)["result.json"] == len(local_result.read_bytes())

    shutil.rmtree(storage.mirror_dir(uri))
    ev = run_cli("eval", uri, "--episodes", "2", env=s3)
    assert ev.returncode == 0, ev.stderr
    evaluated = json.loads(ev.stdout)
    assert evaluated["checkpoint"] == resumed["checkpoint"] and evaluated["episodes"] == 2

    # The storage secret reached neither a stored object, the local copy, nor the terminal.
    assert not [k for k, v in s3_objects(s3, uri).items() if S3_SECRET.encode() in v]
    assert not files_holding(Path(s3[storage.MIRROR_ENV]), S3_SECRET)
    outputs = "".join(p.stdout + p.stderr for p in (first, again, ev))
    assert S3_SECRET not in outputs


def test_a_uri_holding_files_is_refused_and_kept(s3):
    uri = f"s3://{S3_BUCKET}/rl/occupied"
    mirror = storage.Mirror(uri, Path(s3[storage.MIRROR_ENV]) / "seed")
    mirror.local.mkdir(parents=True)
    (mirror.local / "notes.txt").write_text("keep me")
    mirror.push()
    out = run_cli("train", "reinforce", "--env", "CartPole-v1", "--output", uri, env=s3)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "already holds files" in out.stderr
    assert s3_files(s3, uri) == {"notes.txt": 7}
    resume = run_cli("train", "reinforce", "--resume", uri, env=s3)
    assert resume.returncode == 2 and "not an rlgen run" in resume.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "reinforce", "--env", "CartPole-v1", "--output", "s3://"), "needs a bucket"),
        (("eval", f"s3://{S3_BUCKET}/nothing-here"), "nothing stored there"),
        (("tune", "reinforce_cartpole", "--output", f"s3://{S3_BUCKET}/x"), "must be local"),
    ],
)
def test_bad_storage_input(s3, args, message):
    out = run_cli(*args, env=s3)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_mirror_copies_changes_only_and_removes_pruned_files(s3, tmp_path):
    uri = f"s3://{S3_BUCKET}/mirror/unit"
    local = tmp_path / "run"
    (local / "checkpoints" / "iter_000001").mkdir(parents=True)
    (local / "checkpoints" / "iter_000001" / "rlgen_state.json").write_text("{}")
    (local / "checkpoints" / "iter_000001" / "weights.pt").write_bytes(b"w" * 100)
    (local / "ray_train").mkdir()
    (local / "ray_train" / "left-to-ray-train").write_text("x")
    (local / "result.json.tmp").write_text("half")
    mirror = storage.Mirror(uri, local)
    assert mirror.push() == 2
    assert mirror.push() == 0  # nothing changed
    assert set(s3_files(s3, uri)) == {
        "checkpoints/iter_000001/rlgen_state.json", "checkpoints/iter_000001/weights.pt"
    }  # fmt: skip
    (local / "checkpoints" / "iter_000002").mkdir()
    (local / "checkpoints" / "iter_000002" / "rlgen_state.json").write_text("{}")
    shutil.rmtree(local / "checkpoints" / "iter_000001")
    assert mirror.push() == 1
    assert set(s3_files(s3, uri)) == {"checkpoints/iter_000002/rlgen_state.json"}
    # pull gives another machine the same tree
    other = storage.Mirror(uri, tmp_path / "other")
    assert other.pull() == 1
    assert (tmp_path / "other" / "checkpoints" / "iter_000002" / "rlgen_state.json").is_file()


def test_markers_are_copied_after_their_checkpoint(s3, tmp_path):
    """A copy cut short must never leave a remote checkpoint that looks complete: the order
    of uploads puts every marker after every other file."""
    uri = f"s3://{S3_BUCKET}/mirror/order"
    local = tmp_path / "run"
    for name in ("iter_000001", "iter_000002"):
        (local / "checkpoints" / name).mkdir(parents=True)
        (local / "checkpoints" / name / "rlgen_state.json").write_text("{}")
        (local / "checkpoints" / name / "zz_weights.pt").write_bytes(b"w")
    order: list[str] = []
    mirror = storage.Mirror(uri, local)
    mirror.fs = _Recording(mirror.fs, order)
    mirror.push()
    names = [p.rsplit("/", 1)[-1] for p in order]
    assert names[:2] == ["zz_weights.pt", "zz_weights.pt"]
    assert names[2:] == ["rlgen_state.json", "rlgen_state.json"]


class _Recording:
    """The real S3 filesystem, with the order of the files it is asked to write noted."""

    def __init__(self, fs, order):
        self._fs, self._order = fs, order

    def open_output_stream(self, path, *args, **kwargs):
        self._order.append(path)
        return self._fs.open_output_stream(path, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._fs, name)


def test_uri_helpers():
    assert storage.is_uri("s3://b/k") and storage.is_uri("gs://b/k")
    assert not storage.is_uri("/tmp/s3://x") and not storage.is_uri(None)
    assert storage.split_uri("gs://bucket/a/b/") == ("gs", "bucket/a/b")
    with pytest.raises(UserError, match="needs a bucket"):
        storage.split_uri("gs://")
    local = Path("/m/runs/s3/b/k")
    assert storage.local_to_uri("/m/runs/s3/b/k/checkpoints/x", local, "s3://b/k") == (
        "s3://b/k/checkpoints/x"
    )
    assert storage.local_to_uri("b/k/ray_train/c", local, "s3://b/k") == "s3://b/k/ray_train/c"
    assert storage.local_to_uri("mnist5k", local, "s3://b/k") == "mnist5k"
