"""Ray clusters for real, on loopback (127.0.0.0/8): `ray start --head` with token
authentication and rlgen joining it through RAY_ADDRESS and `ray job submit`; then a cluster of
two nodes on this machine (a second `ray start --address` on another loopback address) where
rollout actors and Ray Train workers must run on the non-head node and Train checkpoints go to
a real S3 API. Every Ray process is stopped at the end (`ray stop`), even on failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import S3_BUCKET, free_port, ray_cli, ray_env, run_cli, s3_files
from tests.test_vae_job import _small_dataset

pytestmark = pytest.mark.cluster

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"  # Ray rewrites 127.0.0.1 to the machine's address


@dataclasses.dataclass
class Cluster:
    address: str  # GCS, for RAY_ADDRESS
    dashboard: str  # the job API
    env: dict[str, str]  # token settings (and S3) every client here uses


@contextlib.contextmanager
def ray_cluster(
    tmp_path: Path, *, head_cpus: int, worker_cpus: int | None = None, extra: dict | None = None
) -> Iterator[Cluster]:
    import ray

    ray.shutdown()  # this process's own instance; `ray stop` ends every Ray process here
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), **(extra or {}))
    gcs, dash = free_port(), free_port()
    try:
        head = ray_cli(
            "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={gcs}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--num-cpus={head_cpus}",
            "--disable-usage-stats", env=env,
        )  # fmt: skip
        assert head.returncode == 0, head.stderr[-3000:]
        nodes = 1
        if worker_cpus is not None:
            worker = ray_cli(
                "start", f"--address={HEAD_IP}:{gcs}", f"--node-ip-address={WORKER_IP}",
                f"--num-cpus={worker_cpus}", "--disable-usage-stats", env=env,
            )  # fmt: skip
            assert worker.returncode == 0, worker.stderr[-3000:]
            nodes = 2
        cluster = Cluster(f"{HEAD_IP}:{gcs}", f"http://127.0.0.1:{dash}", env)
        deadline = time.monotonic() + 60
        while len(_state(cluster, "nodes")) < nodes:
            assert time.monotonic() < deadline, "the nodes did not all join"
            time.sleep(1)
        yield cluster
    finally:
        ray_cli("stop", "--force", env=env)


def _state(cluster: Cluster, kind: str) -> list[dict]:
    out = ray_cli(
        "list", kind, "--address", cluster.dashboard, "--detail", "--format", "json",
        "--limit", "10000", env=cluster.env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_one_node_started_with_token_auth(tmp_path):
    with ray_cluster(tmp_path, head_cpus=2) as cluster:
        token = Path(cluster.env["RAY_AUTH_TOKEN_PATH"]).read_text()
        jobs = f"{cluster.dashboard}/api/jobs/"
        assert _http_status(jobs, None) == 401
        assert _http_status(jobs, "0" * len(token)) == 403  # a wrong token: forbidden
        assert _http_status(jobs, token) == 200

        # rlgen joins the started head through RAY_ADDRESS (not an embedded instance).
        joined = run_cli(
            "train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "1500",
            "--output", str(tmp_path / "via-address"),
            env={**cluster.env, "RAY_ADDRESS": cluster.address},
        )  # fmt: skip
        assert joined.returncode == 0, joined.stderr[-3000:]
        assert f"Ray cluster at {cluster.address}: 1 node(s), 2 CPUs" in joined.stderr
        result = json.loads((tmp_path / "via-address" / "result.json").read_text())
        assert result["env_steps"] >= 1500 and result["algorithm"] == "reinforce"

        # ... and through the job API: `ray job submit -- rlgen train ...`.
        out = tmp_path / "via-job"
        submitted = ray_cli(
            "job", "submit", "--address", cluster.dashboard, "--", "rlgen", "train", "reinforce",
            "--env", "CartPole-v1", "--max-env-steps", "1500", "--output", str(out),
            env=cluster.env, timeout=600,
        )  # fmt: skip
        assert submitted.returncode == 0, (submitted.stdout + submitted.stderr)[-3000:]
        assert f"Ray cluster at {cluster.address}" in submitted.stdout + submitted.stderr
        assert json.loads((out / "result.json").read_text())["env_steps"] >= 1500

        # Without the token: the job API refuses the submission, the driver cannot join.
        stranger = {**cluster.env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none"),
                    "HOME": str(tmp_path)}  # fmt: skip
        refused = ray_cli(
            "job", "submit", "--address", cluster.dashboard, "--", "rlgen", "train", "reinforce",
            "--env", "CartPole-v1", "--output", str(tmp_path / "stranger-job"), env=stranger,
        )  # fmt: skip
        assert refused.returncode != 0
        joined_without = run_cli(
            "train", "reinforce", "--env", "CartPole-v1", "--max-env-steps", "500",
            "--output", str(tmp_path / "stranger-driver"),
            env={**stranger, "RAY_ADDRESS": cluster.address},
        )  # fmt: skip
        assert joined_without.returncode == 2, joined_without.stderr[-3000:]
        assert "token" in joined_without.stderr.splitlines()[-1]
        assert not (tmp_path / "stranger-job").exists()
        assert not (tmp_path / "stranger-driver").exists()
        assert len([j for j in _state(cluster, "jobs") if j.get("type") == "SUBMISSION"]) == 1


def test_two_nodes_actors_and_train_workers_off_the_head(tmp_path, s3_server):
    data = _small_dataset(tmp_path / "digits")
    # The head offers no CPU (as in cluster/aws.yaml): every actor must go to the other node.
    with ray_cluster(tmp_path, head_cpus=0, worker_cpus=2, extra=s3_server) as cluster:
        nodes = {n["node_ip"]: n["node_id"] for n in _state(cluster, "nodes")}
        assert set(nodes) == {HEAD_IP, WORKER_IP}
        env = {**cluster.env, "RAY_ADDRESS": cluster.address}
        rl_args = ("train", "a2c", "--env", "CartPole-v1", "--max-env-steps", "2048",
                   "--num-env-runners", "2", "--seed", "3")  # fmt: skip
        rl = run_cli(*rl_args, "--output", str(tmp_path / "a2c"), env=env)
        assert rl.returncode == 0, rl.stderr[-3000:]
        assert f"Ray cluster at {cluster.address}: 2 node(s), 2 CPUs" in rl.stderr

        uri = f"s3://{S3_BUCKET}/two-nodes/vae"
        gen = run_cli(
            "train", "vae", "--dataset", str(data), "--epochs", "2", "--num-workers", "2",
            "--set", "iw_samples=5", "--set", "grid_n=16", "--output", uri, env=env,
        )  # fmt: skip
        assert gen.returncode == 0, gen.stderr[-3000:]

        actors = _state(cluster, "actors")
        runners = [a for a in actors if a["class_name"] == "LeanEnvRunner"]  # rlgen's rollouts
        workers = [a for a in actors if a["class_name"] == "RayTrainWorker"]
        assert len(runners) == 2 and len(workers) == 2
        assert {a["node_id"] for a in runners + workers} == {nodes[WORKER_IP]}

    # Train checkpoints went to the S3 server, one per epoch (2 kept), the run dir beside them.
    stored = s3_files(s3_server, uri)
    ckpts = sorted(
        {k.split("/")[2] for k in stored if k.startswith("ray_train/train/checkpoint_2")}
    )
    assert len(ckpts) == 2 and all(f"ray_train/train/{c}/state.pt" in stored for c in ckpts)
    result = json.loads(gen.stdout)
    assert result["checkpoint"] == f"{uri}/ray_train/train/{ckpts[-1]}" and result["epochs"] == 2
    assert {"run.json", "result.json", "images/samples.png"} <= set(stored)
    assert any(k.startswith("tensorboard/events.out.tfevents") for k in stored)
    sampled = run_cli("sample", uri, "--n", "4", "--out", str(tmp_path / "s.png"), env=s3_server)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert json.loads(sampled.stdout)["checkpoint"] == result["checkpoint"]

    # Two nodes give what one gives: the same A2C run on the embedded instance.
    alone = run_cli(*rl_args, "--output", str(tmp_path / "a2c-alone"))
    assert alone.returncode == 0, alone.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("a2c", "a2c-alone"))
    assert a["env_steps"] == b["env_steps"]
    assert a["episode_return_mean"] == b["episode_return_mean"]
