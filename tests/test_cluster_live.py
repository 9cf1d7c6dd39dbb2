"""Ray clusters for real, on loopback (127.0.0.0/8): `ray start --head` with token
authentication and rlgen joining it through RAY_ADDRESS and `ray job submit`; then a cluster of
two nodes on this machine (a second `ray start --address` on another loopback address) where
rollout actors and Ray Train workers must run on the non-head node and Train checkpoints go to
a real S3 API.

Each node runs on free ports and its own temp dir, and is stopped at the end (even on failure)
by killing exactly its own processes (tests/ray_sessions.py), never with `ray stop`: a Ray head
that is not the tests' (the bystander, as a user's own would be) must still run afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import S3_BUCKET, ray_cli, ray_env, run_cli, s3_files
from tests.ray_sessions import (
    Bystander,
    Session,
    bystander_head,
    describe,
    free_port,
    start_on_free_ports,
)
from tests.test_vae_job import _small_dataset

pytestmark = pytest.mark.cluster

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"  # Ray rewrites 127.0.0.1 to the machine's address


@pytest.fixture(scope="module")
def bystander(tmp_path_factory) -> Iterator[Bystander]:
    with bystander_head(tmp_path_factory.mktemp("bystander"), ray_env()) as head:
        yield head


@dataclasses.dataclass
class Cluster:
    address: str  # GCS, for RAY_ADDRESS
    dashboard: str  # the job API
    env: dict[str, str]  # token settings (and S3) every client here uses


@contextlib.contextmanager
def ray_cluster(
    tmp_path: Path,
    bystander: Bystander,
    *,
    head_cpus: int,
    worker_cpus: int | None = None,
    extra: dict | None = None,
    pick_port: Callable[[], int] | None = None,
) -> Iterator[Cluster]:
    """A head (and a worker node) on free ports, each its own session; at the end both are
    stopped, none of their processes is left, and the bystander still runs."""
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), **(extra or {}))
    head = Session.new(tmp_path / "head")
    worker = Session.new(tmp_path / "worker") if worker_cpus is not None else None
    try:
        ports = start_on_free_ports(
            head,
            ("gcs", "dashboard", "client", "agent"),
            lambda p: ray_cli(
                "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={p['gcs']}",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={p['dashboard']}",
                f"--ray-client-server-port={p['client']}",
                f"--dashboard-agent-listen-port={p['agent']}", "--min-worker-port=0",
                "--max-worker-port=0", f"--num-cpus={head_cpus}", "--disable-usage-stats",
                f"--temp-dir={head.temp_dir}", env={**env, **head.env},
            ),
            pick=pick_port or free_port,
        )  # fmt: skip
        cluster = Cluster(
            f"{HEAD_IP}:{ports['gcs']}", f"http://127.0.0.1:{ports['dashboard']}", env
        )
        if worker is not None:
            start_on_free_ports(
                worker,
                ("agent",),
                lambda p: ray_cli(
                    "start", f"--address={cluster.address}", f"--node-ip-address={WORKER_IP}",
                    f"--dashboard-agent-listen-port={p['agent']}", "--min-worker-port=0",
                    "--max-worker-port=0", f"--num-cpus={worker_cpus}", "--disable-usage-stats",
                    f"--temp-dir={worker.temp_dir}", env={**env, **worker.env},
                ),
            )  # fmt: skip
        nodes = 1 if worker is None else 2
        deadline = time.monotonic() + 60
        while len(_state(cluster, "nodes")) < nodes:
            assert time.monotonic() < deadline, "the nodes did not all join"
            time.sleep(1)
        yield cluster
    finally:
        sessions = [s for s in (worker, head) if s is not None]
        for s in sessions:
            s.stop()
        left = {s.root: s.processes() for s in sessions}  # looked for again: none may be left
        for s in sessions:
            s.remove()
    assert not any(left.values()), {root: describe(p) for root, p in left.items() if p}
    assert bystander.alive(), "stopping the test's nodes ended a Ray head that is not theirs"


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


def _offering(port: int, *, at: int) -> tuple[Callable[[], int], list[int]]:
    """A port picker whose call number ``at`` answers ``port`` and the others free ports; the
    list records every port it gave."""
    given: list[int] = []

    def pick() -> int:
        given.append(port if len(given) + 1 == at else free_port())
        return given[-1]

    return pick, given


def test_one_node_started_with_token_auth(tmp_path, bystander):
    taken = socket.create_server(("127.0.0.1", 0))  # held by this test until the end
    pick, given = _offering(taken.getsockname()[1], at=2)  # picked in order gcs, dashboard, ...
    with taken, ray_cluster(tmp_path, bystander, head_cpus=2, pick_port=pick) as cluster:
        # The dashboard port offered first was taken: that start failed, was stopped (the
        # cluster's teardown asserts nothing of it is left) and ran again on new ports.
        assert given[1] == taken.getsockname()[1] and len(given) >= 8
        assert not cluster.dashboard.endswith(f":{given[1]}")

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


def test_two_nodes_actors_and_train_workers_off_the_head(tmp_path, s3_server, bystander):
    data = _small_dataset(tmp_path / "digits")
    # The head offers no CPU (as in cluster/aws.yaml): every actor must go to the other node.
    with ray_cluster(tmp_path, bystander, head_cpus=0, worker_cpus=2, extra=s3_server) as cluster:
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
