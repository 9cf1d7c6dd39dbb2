"""The cluster-launcher YAMLs: valid for Ray's launcher, and closed to the internet.

Each YAML passes Ray's own schema and ``cluster/check.py``; each way of opening a cluster up
(a world-open ingress rule, no security group, token auth missing somewhere, the dashboard on
a public address) is a one-line mutation that the check must catch.
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
YAMLS = ("aws.yaml", "gcp.yaml", "local.yaml")


def _load_check() -> Any:
    spec = importlib.util.spec_from_file_location("cluster_check", CLUSTER / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_check()


def config(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / name).read_text())


@pytest.mark.parametrize("name", YAMLS)
def test_every_yaml_passes_schema_and_rules(name: str) -> None:
    assert check.problems(config(name)) == []


def test_yamls_cover_the_node_types_the_jobs_need() -> None:
    for name in ("aws.yaml", "gcp.yaml"):
        cfg = config(name)
        types = cfg["available_node_types"]
        assert types[cfg["head_node_type"]]["resources"] == {"CPU": 0}  # no actors on the head
        gpu = [t for t in types.values() if t.get("docker", {}).get("worker_image", "")]
        assert gpu and all(t["docker"]["worker_image"].endswith("-py311-gpu") for t in gpu)
        assert cfg["docker"]["image"] == "rayproject/ray:2.60.0-py311-cpu"
        assert any("torch==2.13.0 -e ~/rlgen" in c for c in cfg["setup_commands"])
        assert cfg["file_mounts"]["~/rlgen"] == "."
    assert (
        "InstanceMarketOptions"
        in config("aws.yaml")["available_node_types"]["gpu_worker_spot"]["node_config"]
    )
    gcp_spot = config("gcp.yaml")["available_node_types"]["cpu_worker_spot"]["node_config"]
    assert gcp_spot["scheduling"] == [{"preemptible": True}]


def test_ray_defaults_fail_the_rules() -> None:
    """Ray's own GCP defaults: default network, no token, dashboard on 0.0.0.0."""
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).parent / "gcp" / "defaults.yaml"
    found = " | ".join(check.problems(yaml.safe_load(path.read_text())))
    assert "named subnetwork" in found and "RAY_AUTH_MODE=token" in found
    assert "dashboard listens on 0.0.0.0" in found


def _world_rule(**rule: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(cfg: dict[str, Any]) -> None:
        cfg["provider"].setdefault("security_group", {}).setdefault("IpPermissions", []).append(
            rule
        )

    return mutate


def _gcp_firewall(cfg: dict[str, Any]) -> None:
    # Not a launcher key: the rule must be caught wherever a rule-shaped mapping appears.
    cfg["available_node_types"]["head"]["node_config"]["x_firewall"] = {
        "sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["10001"]}]
    }  # fmt: skip


def _start(cfg: dict[str, Any], which: str, old: str, new: str) -> None:
    cfg[which] = [c.replace(old, new) for c in cfg[which]]


MUTATIONS: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("aws.yaml", "dashboard port open to the world",
     _world_rule(IpProtocol="tcp", FromPort=8265, ToPort=8265, IpRanges=[{"CidrIp": "0.0.0.0/0"}]),
     "opens port 8265"),
    ("aws.yaml", "SSH open to the IPv6 world",
     _world_rule(IpProtocol="tcp", FromPort=22, ToPort=22, Ipv6Ranges=[{"CidrIpv6": "::/0"}]),
     "opens port 22"),
    ("aws.yaml", "all traffic from anywhere",
     _world_rule(IpProtocol="-1", IpRanges=[{"CidrIp": "0.0.0.0/0"}]), "opens every port"),
    ("aws.yaml", "a port range that covers GCS",
     _world_rule(IpProtocol="tcp", FromPort=6000, ToPort=7000, IpRanges=[{"CidrIp": "0.0.0.0/0"}]),
     "opens port 6379"),
    ("aws.yaml", "no security group on one node type",
     lambda c: c["available_node_types"]["gpu_worker"]["node_config"].pop("SecurityGroupIds"),
     "gpu_worker: no SecurityGroupIds"),
    ("gcp.yaml", "the default network",
     lambda c: c["available_node_types"]["cpu_worker"]["node_config"].update(
         networkInterfaces=[{"network": "global/networks/default"}]), "named subnetwork"),
    ("gcp.yaml", "a world-open firewall rule", _gcp_firewall, "opens port 10001"),
    ("aws.yaml", "a worker started without token auth",
     lambda c: _start(c, "worker_start_ray_commands", "RAY_AUTH_MODE=token ", ""),
     "without RAY_AUTH_MODE=token"),
    ("gcp.yaml", "the head started without token auth",
     lambda c: _start(c, "head_start_ray_commands", "RAY_AUTH_MODE=token ", ""),
     "without RAY_AUTH_MODE=token"),
    ("local.yaml", "the token not copied to the nodes",
     lambda c: c["file_mounts"].pop("~/.ray/auth_token"), "not among file_mounts"),
    ("local.yaml", "the token left readable by others",
     lambda c: c.update(setup_commands=[s for s in c["setup_commands"] if "chmod" not in s]),
     "owner only"),
    ("aws.yaml", "dashboard on every interface",
     lambda c: _start(c, "head_start_ray_commands", "127.0.0.1", "0.0.0.0"),
     "dashboard listens on 0.0.0.0"),
    ("local.yaml", "dashboard host left to Ray",
     lambda c: _start(c, "head_start_ray_commands", "--dashboard-host=127.0.0.1", ""),
     "dashboard listens on Ray's default"),
    ("gcp.yaml", "a key the launcher does not know",
     lambda c: c.update(max_wrokers=3), "not a valid Ray cluster config"),
    ("aws.yaml", "a node type without node_config",
     lambda c: c["available_node_types"]["cpu_worker"].pop("node_config"),
     "not a valid Ray cluster config"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "case", "mutate", "expected"), MUTATIONS, ids=[m[1] for m in MUTATIONS]
)
def test_each_opening_is_caught(
    name: str, case: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    cfg = copy.deepcopy(config(name))
    mutate(cfg)
    found = check.problems(cfg)
    assert any(expected in p for p in found), (case, found)


def test_a_rule_from_one_address_range_is_allowed() -> None:
    cfg = config("aws.yaml")
    _world_rule(IpProtocol="tcp", FromPort=22, ToPort=22, IpRanges=[{"CidrIp": "203.0.113.0/24"}])(
        cfg
    )
    assert check.problems(cfg) == []


def test_check_command_exit_status(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(CLUSTER / "check.py")], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": ok") == len(YAMLS)
    bad = config("local.yaml")
    _start(bad, "head_start_ray_commands", "127.0.0.1", "0.0.0.0")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    failed = subprocess.run(
        [sys.executable, str(CLUSTER / "check.py"), str(tmp_path / "bad.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1 and "dashboard listens on 0.0.0.0" in failed.stdout


@pytest.mark.parametrize("script", ["aws-security-group.sh", "gcp-firewall.sh"])
def test_setup_scripts_refuse_a_world_open_ssh_range(script: str) -> None:
    args = ["vpc-0", "0.0.0.0/0"] if script.startswith("aws") else ["proj", "us-west1", "::/0"]
    out = subprocess.run(
        ["bash", str(CLUSTER / script), *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2 and "refusing" in out.stderr
