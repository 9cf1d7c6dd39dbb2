"""The cluster launcher path, for real, on this machine: `ray up cluster/local.yaml` (the local
provider) with this machine as the head, reached over SSH with a key made here; `ray submit
rlgen.py -- train ...`, its result checked; `ray down`. The teardown runs even when the test
fails.

The YAML is cluster/local.yaml with what a user edits changed (head address, SSH user and key)
plus test settings:
- SSH reaches a private sshd that the ProxyCommand starts for each connection (`sshd -i`):
  no port, no daemon, the machine's own sshd untouched.
- The setup links the checkout's virtualenv instead of installing the project again (minutes
  of pip on two cores).
- The head runs on free ports and its own temp dir (the template's 6379 and 8265 would meet a
  user's own Ray here), and the template's `ray stop` before `ray start` is dropped: on this
  machine it would end every Ray process, a user's own included. `ray down` runs `ray stop` on
  the head itself, so the node's PATH starts with a `ray` that stops only the head this test
  started (tests/ray_sessions.py) and hands every other command to the real one.
The node's home is a directory of the test (sshd's ``SetEnv HOME``), so the token and the run
land there and nothing of the user's home is touched. A Ray head that is not the test's (the
bystander) must still run at the end.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, ray_cli, ray_env
from tests.ray_sessions import MARKER, Session, bystander_head, describe, start_on_free_ports
from tests.system_packages import require_tools

SSH_TOOLS = ("/usr/sbin/sshd", "ssh", "ssh-keygen", "rsync")
SHIM_DIR = "test-bin"  # in the node's home, first on its PATH


def _ssh_setup(root: Path, home: Path, head: Session) -> tuple[Path, str]:
    """A client key and the ProxyCommand that runs a private sshd for each connection, whose
    sessions get ``home`` as HOME and the head's temp root and marker."""
    key = root / "id_ed25519"
    for path in (key, root / "host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    shutil.copy(key.with_suffix(".pub"), root / "authorized_keys")
    config = root / "sshd_config"
    config.write_text(
        f"HostKey {root / 'host_key'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\n"  # the test's files sit under /tmp, which is world-writable
        f"SetEnv HOME={home} RAY_TMPDIR={head.root} {MARKER}={head.marker}\n"
        "Subsystem sftp internal-sftp\n"
    )  # fmt: skip
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    return key, f"/usr/sbin/sshd -i -f {config} -E {root / 'sshd.log'}"


def _ray_shim(home: Path, head: Session) -> Path:
    """The node's `ray`: `ray stop` stops the test's head and nothing else, the rest goes to
    the node's own ray; every call is logged (returned: the log)."""
    log = home / "ray-calls.log"
    shim = home / SHIM_DIR / "ray"
    shim.parent.mkdir(parents=True)
    stop = [sys.executable, str(ROOT / "tests" / "ray_sessions.py"), "stop", head.root, head.marker]
    shim.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {shlex.quote(str(log))}\n'
        f'if [ "$1" = stop ]; then exec {shlex.join(stop)}; fi\n'
        'exec "$HOME/rlgen/.venv/bin/ray" "$@"\n'
    )
    shim.chmod(0o755)
    return log


def _cluster_yaml(
    path: Path, name: str, key: Path, proxy: str, head: Session, ports: dict[str, int]
) -> Path:
    cfg = yaml.safe_load((ROOT / "cluster" / "local.yaml").read_text())
    cfg["cluster_name"] = name
    cfg["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    cfg["auth"] = {
        "ssh_user": "root" if os.geteuid() == 0 else os.environ.get("USER", "root"),
        "ssh_private_key": str(key),
        "ssh_proxy_command": proxy,
    }
    setup = cfg["setup_commands"]
    venv = [c for c in setup if ".venv" in c and "PATH" not in c]
    assert len(venv) == 2, setup  # the create-venv and pip-install lines this test replaces
    cfg["setup_commands"] = [c for c in setup if c not in venv]
    cfg["setup_commands"].insert(1, f"ln -sfn {Path(sys.prefix)} ~/rlgen/.venv")
    cfg["setup_commands"].append(
        f"grep -q {SHIM_DIR} ~/.bashrc || "
        f"echo 'export PATH=\"$HOME/{SHIM_DIR}:$PATH\"' >> ~/.bashrc"
    )
    for kind in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert cfg[kind].count("ray stop") == 1 and len(cfg[kind]) == 2, cfg[kind]
    (start,) = [c for c in cfg["head_start_ray_commands"] if c != "ray stop"]
    assert start.count("--port=6379") == 1, start
    gcs = f"--port={ports['gcs']}"
    cfg["head_start_ray_commands"] = [
        f"{start.replace('--port=6379', gcs)} --temp-dir={head.temp_dir} "
        f"--dashboard-port={ports['dashboard']} "
        f"--ray-client-server-port={ports['client']} "
        f"--dashboard-agent-listen-port={ports['agent']} --min-worker-port=0 --max-worker-port=0"
    ]
    cfg["worker_start_ray_commands"] = []  # no worker node here (worker_ips is empty)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _check_node_and_submit(
    node_home: Path, token: Path, ports: dict[str, int], config: Path, env: dict[str, str]
) -> None:
    """The head `ray up` started: the client's token copied privately, the project uploaded,
    its jobs API refusing a request without the token; then a run submitted with `ray submit`
    joins it and finishes."""
    node_token = node_home / ".ray" / "auth_token"
    assert node_token.read_text() == token.read_text()
    assert node_token.stat().st_mode & 0o777 == 0o600
    assert (node_home / "rlgen" / "rlgen.py").is_file()  # the project as it is here
    jobs = f"http://127.0.0.1:{ports['dashboard']}/api/jobs/"
    with pytest.raises(urllib.error.HTTPError) as refused:  # token auth on the head
        urllib.request.urlopen(jobs, timeout=30)
    assert refused.value.code == 401

    submitted = ray_cli(
        "submit", str(config), "rlgen.py", "--", "train", "reinforce", "--env",
        "CartPole-v1", "--max-env-steps", "1500", "--output", "~/runs/launcher", env=env,
        timeout=600,
    )  # fmt: skip
    log = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, log[-4000:]
    # It joined the head `ray up` started (found through the node's RAY_TMPDIR).
    assert "Ray cluster at" in log and f":{ports['gcs']}: 1 node(s)" in log
    result = json.loads((node_home / "runs" / "launcher" / "result.json").read_text())
    assert result["algorithm"] == "reinforce" and result["env_steps"] >= 1500
    assert (node_home / "rlgen.py").is_file()  # what `ray submit` uploaded


@pytest.mark.cluster
def test_ray_up_submit_down_over_ssh_on_loopback(tmp_path: Path) -> None:
    missing = require_tools(*SSH_TOOLS)
    if missing is not None:
        pytest.fail(missing)
    node_home, client_home = tmp_path / "node-home", tmp_path / "client-home"
    node_home.mkdir()
    (client_home / ".ray").mkdir(parents=True)
    token = client_home / ".ray" / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    head = Session.new(tmp_path / "head")  # the Ray head `ray up` starts
    ssh = Session.new(None)  # this test's SSH clients and the sshd each of them runs
    client_tmp = tmp_path / "client-tmp"  # the launcher's own state (cluster-NAME.state, ...)
    client_tmp.mkdir()
    env = ray_env(HOME=str(client_home), RAY_TMPDIR=str(client_tmp), TMPDIR=str(client_tmp),
                  **ssh.env)  # fmt: skip
    name = f"rlgen-loopback-{secrets.token_hex(4)}"  # also names the SSH control socket
    key, proxy = _ssh_setup(tmp_path, node_home, head)
    calls = _ray_shim(node_home, head)
    config = tmp_path / "cluster.yaml"

    def up(ports: dict[str, int]) -> subprocess.CompletedProcess:
        return ray_cli("up", "-y", str(_cluster_yaml(config, name, key, proxy, head, ports)),
                       env=env, timeout=600)  # fmt: skip

    down: subprocess.CompletedProcess | None = None
    after_down: dict | None = None
    with bystander_head(tmp_path / "bystander", ray_env()) as bystander:
        try:
            ports = start_on_free_ports(head, ("gcs", "dashboard", "client", "agent"), up)
            assert calls.exists() and "start --head" in calls.read_text(), (
                "`ray up` did not start the head through the test's `ray` (the node's PATH)"
            )
            _check_node_and_submit(node_home, token, ports, config, env)
        finally:
            # `ray down` only where the node's `ray` is known to be the test's: the real
            # `ray stop` would end every Ray process on this machine.
            if calls.exists() and "start --head" in calls.read_text():
                down = ray_cli("down", "-y", str(config), env=env, timeout=300)
                after_down = head.processes()
            head.stop()
            ssh.stop()
            left, left_ssh = head.processes(), ssh.processes()  # looked for again: none may be left
            head.remove()
            control = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
            shutil.rmtree(f"/tmp/ray_ssh_{control}/{hashlib.sha256(name.encode()).hexdigest()[:10]}",
                          ignore_errors=True)  # fmt: skip
        assert down is not None and down.returncode == 0, down and (down.stdout + down.stderr)
        assert "stop" in calls.read_text().splitlines()  # `ray down` ran the node's `ray stop`
        assert after_down == {}, f"`ray down` left the head running: {describe(after_down or {})}"
        assert not left and not left_ssh, describe({**left, **left_ssh})
        assert bystander.alive(), "the test ended a Ray head that is not its own"


def test_system_packages_script_installs_what_is_missing_once(tmp_path):
    """tests/system_packages.py with a stand-in apt-get (and sudo) on a PATH where the tools
    are missing: the first run installs each missing package once, the second finds them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\nPATH=/usr/bin:/bin\n"
        f'echo "$*" >> {record}\n'
        f'[ "$1" = install ] && for t in ssh ssh-keygen rsync; do '
        f"printf '#!/bin/sh\\n' > {bin_dir}/$t; chmod +x {bin_dir}/$t; done\n"
        "exit 0\n"
    )
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    for tool in ("apt-get", "sudo"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": str(bin_dir)}
    script = [sys.executable, str(ROOT / "tests" / "system_packages.py")]
    first = subprocess.run(script, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    wanted = ["openssh-client", "rsync"] + ([] if Path("/usr/sbin/sshd").exists() else
                                           ["openssh-server"])  # fmt: skip
    installed = [line.split()[-1] for line in first.stdout.splitlines()]
    assert sorted(installed) == sorted(wanted) and "installed" in first.stdout
    assert record.read_text().count("install ") == 1  # one apt-get install, no update needed
    second = subprocess.run(script, capture_output=True, text=True, env=env)
    assert second.returncode == 0 and second.stdout == "system packages: all present\n"
    assert record.read_text().count("install ") == 1  # nothing installed again


def test_system_packages_script_warns_and_exits_0_without_apt(tmp_path, monkeypatch):
    """No apt-get (a PATH with nothing on it): one warning naming the packages, exit status 0;
    the launcher test's check then names each missing tool and the script in one line."""
    script = [sys.executable, str(ROOT / "tests" / "system_packages.py")]
    done = subprocess.run(script, capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.startswith("warning: cannot install ") and "no apt-get" in done.stderr
    assert "openssh-client" in done.stderr and "rsync" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    monkeypatch.setenv("PATH", str(tmp_path))
    line = require_tools(*SSH_TOOLS)
    assert line is not None and "\n" not in line
    assert "ssh (Debian package openssh-client)" in line and "rsync (Debian package rsync)" in line
    assert "tests/system_packages.py" in line
