#!/usr/bin/env python3
"""Check cluster-launcher YAMLs: Ray's own schema, then rlgen's security rules.

    python cluster/check.py cluster/*.yaml      # exit 1 and one line per problem

Rules (each a way a Ray cluster ends up open to the internet):
- no ingress rule (AWS ``IpPermissions``, GCP firewall ``sourceRanges``) admits 0.0.0.0/0 or
  ::/0 to SSH or to a Ray port;
- AWS: every node type names its security group (``SecurityGroupIds``): otherwise the launcher
  creates one that admits SSH from anywhere. GCP: every node type sits on a named subnetwork,
  not the project's ``default`` network (which admits SSH from anywhere);
- token authentication: every ``ray start`` runs with ``RAY_AUTH_MODE=token``, the token file is
  among the file mounts, and a setup command makes it readable by its owner only;
- the dashboard listens on loopback only (``--dashboard-host=127.0.0.1``), reached through
  ``ray dashboard``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

TOKEN_FILE = "~/.ray/auth_token"
SSH_PORT = 22
# GCS, Ray client, dashboard, dashboard agent, metrics, object manager, node manager, runtime
# env agent, and the default range of worker ports.
RAY_PORTS = (6379, 10001, 8265, 52365, 8080, 8076, 8077, 8078, 44217, 44227)
WORKER_PORTS = (10002, 19999)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _rules(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in the YAML that looks like an ingress rule."""
    if isinstance(node, dict):
        if any(k in node for k in ("IpRanges", "Ipv6Ranges", "sourceRanges")):
            yield node
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def _world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _ports(rule: dict[str, Any]) -> list[tuple[int, int]] | None:
    """The port ranges a rule opens; None means every port."""
    if "FromPort" in rule or "IpProtocol" in rule:  # AWS
        if str(rule.get("IpProtocol", "-1")) == "-1":
            return None
        lo, hi = int(rule.get("FromPort", -1)), int(rule.get("ToPort", -1))
        return None if lo < 0 else [(lo, hi)]
    spans: list[tuple[int, int]] = []  # GCP: allowed: [{IPProtocol, ports: ["22", "6379-6380"]}]
    for allowed in rule.get("allowed", [{"IPProtocol": "all"}]):
        if allowed.get("IPProtocol") == "all" or "ports" not in allowed:
            return None
        for port in allowed["ports"]:
            first, _, last = str(port).partition("-")
            spans.append((int(first), int(last or first)))
    return spans


def _open_to_world(rule: dict[str, Any]) -> bool:
    cidrs = [r.get("CidrIp", "") for r in rule.get("IpRanges", [])]
    cidrs += [r.get("CidrIpv6", "") for r in rule.get("Ipv6Ranges", [])]
    cidrs += list(rule.get("sourceRanges", []))
    return any(_world(c) for c in cidrs)


def ingress_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    guarded = (SSH_PORT, *RAY_PORTS)
    for rule in _rules(config):
        if not _open_to_world(rule):
            continue
        spans = _ports(rule)
        hit = [p for p in guarded if spans is None or any(lo <= p <= hi for lo, hi in spans)]
        if (
            spans is None
            or hit
            or any(lo <= WORKER_PORTS[1] and hi >= WORKER_PORTS[0] for lo, hi in spans)
        ):
            what = "every port" if spans is None else f"port {hit[0]}" if hit else "worker ports"
            problems.append(f"an ingress rule opens {what} to the whole internet")
    return problems


def _start_commands(config: dict[str, Any]) -> list[str]:
    commands = list(config.get("head_start_ray_commands", []))
    commands += list(config.get("worker_start_ray_commands", []))
    return [c for c in commands if re.search(r"\bray start\b", c)]


def token_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    starts = _start_commands(config)
    if not starts:
        problems.append("no `ray start` command: cannot check token authentication")
    for command in starts:
        if "RAY_AUTH_MODE=token" not in command:
            problems.append(f"`{_short(command)}` runs without RAY_AUTH_MODE=token")
    if TOKEN_FILE not in config.get("file_mounts", {}):
        problems.append(f"the token {TOKEN_FILE} is not among file_mounts (nodes would lack it)")
    setup = config.get("setup_commands", []) + config.get("initialization_commands", [])
    if not any(re.search(r"chmod\s+600\s+" + re.escape(TOKEN_FILE), c) for c in setup):
        problems.append(f"no setup command makes {TOKEN_FILE} readable by its owner only")
    return problems


def dashboard_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    for command in config.get("head_start_ray_commands", []):
        if not re.search(r"\bray start\b.*--head", command):
            continue
        host = re.search(r"--dashboard-host[= ](\S+)", command)
        if host is None or host.group(1) not in LOOPBACK_HOSTS:
            shown = host.group(1) if host else "Ray's default"
            problems.append(
                f"the dashboard listens on {shown}; use --dashboard-host=127.0.0.1 and "
                "`ray dashboard`"
            )
    return problems


def provider_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    kind = config.get("provider", {}).get("type")
    for name, node_type in config.get("available_node_types", {}).items():
        node_config = node_type.get("node_config", {})
        if kind == "aws" and not node_config.get("SecurityGroupIds"):
            problems.append(
                f"node type {name}: no SecurityGroupIds (the launcher's own group admits SSH "
                "from anywhere)"
            )
        if kind == "gcp":
            nets = node_config.get("networkInterfaces", [])
            where = [n.get("subnetwork") or n.get("network", "") for n in nets]
            if not where or any(not w or w.rstrip("/").endswith("/default") for w in where):
                problems.append(
                    f"node type {name}: not on a named subnetwork (the default network admits "
                    "SSH from anywhere)"
                )
    return problems


def schema_problems(config: dict[str, Any]) -> list[str]:
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as exc:  # noqa: BLE001 - jsonschema, ValueError, KeyError alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"not a valid Ray cluster config: {first}"]
    return []


def problems(config: dict[str, Any]) -> list[str]:
    """Everything wrong with one cluster config (empty when it passes)."""
    if not isinstance(config, dict):
        return ["not a YAML mapping"]
    return [
        *schema_problems(config),
        *ingress_problems(config),
        *provider_problems(config),
        *token_problems(config),
        *dashboard_problems(config),
    ]


def _short(command: str) -> str:
    return " ".join(command.split())[:70]


def main(paths: list[str]) -> int:
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)
    failed = 0
    for path in paths:
        try:
            config = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: unreadable ({type(exc).__name__})")
            failed += 1
            continue
        found = problems(config)
        for problem in found:
            print(f"{path}: {problem}")
        failed += bool(found)
        if not found:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(str(p) for p in Path(__file__).parent.glob("*.yaml"))))
