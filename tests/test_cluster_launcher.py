"""The cluster launcher path, for real, on loopback: sshd on 127.0.0.1 (a key made here),
`ray up cluster/local.yaml` (the local provider) with this machine as the head, `ray submit
rlgen.py -- train ...`, its result checked, `ray down`, sshd stopped by its pid; the teardown
runs even when the test fails.

The YAML is cluster/local.yaml with only what a user edits changed (head address, SSH user and
key) plus two test settings: SSH reaches the test's sshd on its own port through a
ProxyCommand, and the setup links the checkout's virtualenv instead of installing the project
again (minutes of pip on two cores). The node's home is a directory of the test (sshd's
``SetEnv HOME``), so the token and the run land there and nothing of the user's home is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, ray_cli, ray_env

pytestmark = pytest.mark.cluster

TOOLS = {"/usr/sbin/sshd": "openssh-server", "rsync": "rsync", "nc": "netcat-openbsd"}
CLUSTER_NAME = "rlgen-loopback-test"


def _ensure_debian_packages() -> None:
    missing = sorted(
        {pkg for tool, pkg in TOOLS.items() if not (Path(tool).exists() or shutil.which(tool))}
    )
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        done = subprocess.run(sudo + cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"could not install {missing} ({' '.join(cmd)}): {done.stderr[-500:]}")


def _start_sshd(root: Path, home: Path) -> tuple[subprocess.Popen, int, Path]:
    key = root / "id_ed25519"
    for path in (key, root / "host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    shutil.copy(key.with_suffix(".pub"), root / "authorized_keys")
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\n"  # the test's files sit under /tmp, which is world-writable
        f"SetEnv HOME={home}\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    sshd = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(root / "sshd.log")],
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sshd, port, key
        except OSError:
            if time.monotonic() > deadline or sshd.poll() is not None:
                sshd.kill()
                pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()[-800:]}")
            time.sleep(0.2)


def _cluster_yaml(path: Path, key: Path, port: int) -> Path:
    cfg = yaml.safe_load((ROOT / "cluster" / "local.yaml").read_text())
    cfg["cluster_name"] = CLUSTER_NAME
    cfg["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    cfg["auth"] = {
        "ssh_user": "root" if os.geteuid() == 0 else os.environ.get("USER", "root"),
        "ssh_private_key": str(key),
        "ssh_proxy_command": f"nc 127.0.0.1 {port}",
    }
    setup = cfg["setup_commands"]
    venv = [c for c in setup if ".venv" in c and "PATH" not in c]
    assert len(venv) == 2, setup  # the create-venv and pip-install lines this test replaces
    cfg["setup_commands"] = [c for c in setup if c not in venv]
    cfg["setup_commands"].insert(1, f"ln -sfn {Path(sys.prefix)} ~/rlgen/.venv")
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ray_up_submit_down_over_ssh_on_loopback(tmp_path):
    import ray

    _ensure_debian_packages()
    ray.shutdown()  # `ray up` restarts Ray on this machine: nothing of this process may hang on
    node_home, client_home = tmp_path / "node-home", tmp_path / "client-home"
    node_home.mkdir()
    (client_home / ".ray").mkdir(parents=True)
    token = client_home / ".ray" / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = ray_env(HOME=str(client_home))
    sshd, port, key = _start_sshd(tmp_path, node_home)
    config = _cluster_yaml(tmp_path / "cluster.yaml", key, port)
    try:
        up = ray_cli("up", "-y", str(config), env=env, timeout=600)
        assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
        node_token = node_home / ".ray" / "auth_token"
        assert node_token.read_text() == token.read_text()
        assert node_token.stat().st_mode & 0o777 == 0o600
        assert (node_home / "rlgen" / "rlgen.py").is_file()  # the project as it is here
        with pytest.raises(urllib.error.HTTPError) as refused:  # token auth on the head
            urllib.request.urlopen("http://127.0.0.1:8265/api/jobs/", timeout=30)
        assert refused.value.code == 401

        submitted = ray_cli(
            "submit", str(config), "rlgen.py", "--", "train", "reinforce", "--env",
            "CartPole-v1", "--max-env-steps", "1500", "--output", "~/runs/launcher", env=env,
            timeout=600,
        )  # fmt: skip
        log = submitted.stdout + submitted.stderr
        assert submitted.returncode == 0, log[-4000:]
        assert "Ray cluster at" in log and ":6379: 1 node(s)" in log  # joined the ray-up head
        result = json.loads((node_home / "runs" / "launcher" / "result.json").read_text())
        assert result["algorithm"] == "reinforce" and result["env_steps"] >= 1500
        assert (node_home / "rlgen.py").is_file()  # what `ray submit` uploaded
    finally:
        down = ray_cli("down", "-y", str(config), env=env, timeout=300)
        sshd.terminate()
        sshd.wait(timeout=30)
        ray_cli("stop", "--force", env=env, timeout=120)
        for leftover in Path("/tmp/ray").glob(f"cluster-{CLUSTER_NAME}.*"):
            leftover.unlink()
    assert down.returncode == 0, (down.stdout + down.stderr)[-3000:]
