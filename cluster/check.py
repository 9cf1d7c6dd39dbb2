#!/usr/bin/env python3
"""Check cluster-launcher YAMLs: Ray's own schema, then rlgen's security rules.

    python cluster/check.py cluster/*.yaml      # exit 1 and one line per problem
    python3 cluster/check.py --cidr RANGE[,RANGE...]   # the setup scripts' range rule: exit 2

Every rule reads the config as Ray's launcher will run it: after ``prepare_config`` has filled
each missing key from the provider's defaults (no token, dashboard on 0.0.0.0, no security
group), so deleting a key is never a way around a rule. Rules (each a way a Ray cluster ends up
open to the internet):
- ingress: the address ranges that all ingress rules together admit to SSH or to a Ray port
  number at most ``MAX_IPV4_ADDRESSES`` (one /16) and ``MAX_IPV6_ADDRESSES`` (one /48); more is
  treated as the whole internet, however it is spelled (0.0.0.0/1 + 128.0.0.0/1 is 0.0.0.0/0).
  A range that does not parse is a problem too;
- AWS: every node type names its security group (``SecurityGroupIds``): otherwise the launcher
  creates one that admits SSH from anywhere. GCP: every node type sits on a named subnetwork,
  not the project's ``default`` network (which admits SSH from anywhere);
- token authentication: every ``ray start`` (in any command list) runs with
  ``RAY_AUTH_MODE=token`` in its own environment, the token file is among the file mounts, and
  on every node the last ``chmod`` of it leaves it readable by its owner only;
- the dashboard listens on loopback only (``--dashboard-host=127.0.0.1``, the last one given),
  reached through ``ray dashboard``.
Commands are read as the shell runs them (``shellwords``); what it cannot follow is refused.
Only the standard library is imported at module level: ``--cidr`` works without Ray or PyYAML.
"""

from __future__ import annotations

import contextlib
import copy
import io
import ipaddress
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Union

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # cluster/ is not a package: shellwords sits next to this file
    sys.path.insert(0, HERE)
from command_rules import (  # noqa: E402
    TOKEN_FILE,
    command_problems,
    is_ray_start,
    parse,
    token_mode_problems,
)
from shellwords import CannotCheck  # noqa: E402

SSH_PORT = 22
# GCS, Ray client, dashboard, dashboard agent, metrics, object manager, node manager, runtime
# env agent, and the default range of worker ports.
RAY_PORTS = (6379, 10001, 8265, 52365, 8080, 8076, 8077, 8078, 44217, 44227)
WORKER_PORTS = (10002, 19999)
# The most addresses the ingress rules together may admit to one guarded port; a wider range
# is as good as the internet. One /16 of IPv4, one /48 of IPv6 (a site's usual allocation).
MAX_IPV4_ADDRESSES = 2**16
MAX_IPV6_ADDRESSES = 2**80
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # IPv4 written as IPv6

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 - python3 >= 3.9


def _networks(cidrs: Iterable[object]) -> tuple[list[Network], list[str]]:
    """Parse address ranges; IPv4-mapped IPv6 ranges count as the IPv4 they stand for."""
    nets: list[Network] = []
    bad: list[str] = []
    for cidr in cidrs:
        try:
            if not isinstance(cidr, str) or cidr != cidr.strip():
                raise ValueError(cidr)
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            bad.append(f"{cidr!r} is not an address range (want e.g. 203.0.113.7/32)")
            continue
        if isinstance(net, ipaddress.IPv6Network) and net.overlaps(_MAPPED):
            if net.subnet_of(_MAPPED):
                first = int(net.network_address) & 0xFFFFFFFF
                nets.append(ipaddress.IPv4Network((first, net.prefixlen - 96)))
            else:
                nets.append(ipaddress.IPv4Network("0.0.0.0/0"))
        nets.append(net)
    return nets, bad


def _too_wide(nets: list[Network]) -> list[str]:
    """For each address family whose ranges together exceed the bound, how much they admit."""
    found = []
    for version, bound, prefix in ((4, MAX_IPV4_ADDRESSES, 16), (6, MAX_IPV6_ADDRESSES, 48)):
        same: list[Any] = [n for n in nets if n.version == version]
        total = sum(n.num_addresses for n in ipaddress.collapse_addresses(same))
        if total == 2 ** (32 if version == 4 else 128):
            found.append(f"the whole IPv{version} internet")
        elif total > bound:
            shown = f"2^{total.bit_length() - 1}" if total & (total - 1) == 0 else str(total)
            found.append(
                f"{shown} IPv{version} addresses, more than the 2^{bound.bit_length() - 1} "
                f"(one /{prefix}) allowed"
            )
    return found


def cidr_problems(cidrs: Iterable[object]) -> list[str]:
    """The address-range rule on its own (empty when the ranges may be admitted to SSH)."""
    nets, bad = _networks(cidrs)
    return bad + [f"admits {what}" for what in _too_wide(nets)]


def _rules(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in the config that looks like an ingress rule."""
    if isinstance(node, dict):
        if any(k in node for k in ("IpRanges", "Ipv6Ranges", "sourceRanges", "PrefixListIds")):
            yield node
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def _ports(rule: dict[str, Any]) -> list[tuple[int, int]]:
    """The port ranges a rule opens (0-65535 for every port); ValueError when unreadable."""
    try:
        if "FromPort" in rule or "IpProtocol" in rule:  # AWS
            lo, hi = int(rule.get("FromPort", -1)), int(rule.get("ToPort", -1))
            if str(rule.get("IpProtocol", "-1")) == "-1" or lo < 0:
                return [(0, 65535)]
            spans = [(lo, hi)]
        else:  # GCP: allowed: [{IPProtocol, ports: ["22", "6379-6380"]}]
            spans = []
            for allowed in rule.get("allowed", [{"IPProtocol": "all"}]):
                if allowed.get("IPProtocol") == "all" or "ports" not in allowed:
                    return [(0, 65535)]
                if not isinstance(allowed["ports"], list):
                    raise ValueError(f"ports {allowed['ports']!r} is not a list")
                for port in allowed["ports"]:
                    first, _, last = str(port).partition("-")
                    spans.append((int(first), int(last or first)))
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"an ingress rule's ports cannot be read ({exc})") from None
    if not all(0 <= lo <= hi <= 65535 for lo, hi in spans):
        raise ValueError(f"an ingress rule's ports {spans} are out of range")
    return spans


def _sources(rule: dict[str, Any]) -> tuple[list[object], list[str]]:
    cidrs: list[object] = []
    problems = []
    for key, field in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"), ("sourceRanges", "")):
        entries = rule.get(key) or []
        if not isinstance(entries, list):
            problems.append(f"an ingress rule's {key} is not a list")
            continue
        cidrs += [e.get(field) if field and isinstance(e, dict) else e for e in entries]
    if rule.get("PrefixListIds"):
        problems.append("an ingress rule admits prefix lists, whose ranges the check cannot see")
    return cidrs, problems


def _guarded(lo: int, hi: int) -> list[str]:
    named = [f"port {p}" for p in (SSH_PORT, *RAY_PORTS) if lo <= p <= hi]
    if lo <= WORKER_PORTS[1] and hi >= WORKER_PORTS[0]:
        named.append(f"worker ports {WORKER_PORTS[0]}-{WORKER_PORTS[1]}")
    return named


def ingress_problems(config: dict[str, Any]) -> list[str]:
    """Judge, port by port, the union of the ranges every ingress rule admits to it."""
    problems: list[str] = []
    rules: list[tuple[list[tuple[int, int]], list[Network]]] = []
    for rule in _rules(config):
        try:
            spans = _ports(rule)
        except ValueError as exc:
            problems.append(f"{exc}: taken as every port")
            spans = [(0, 65535)]
        cidrs, found = _sources(rule)
        nets, bad = _networks(cidrs)
        problems += found + [f"an ingress rule: {b}" for b in bad]
        rules.append((spans, nets))
    cuts = {0, 65536, WORKER_PORTS[0], WORKER_PORTS[1] + 1}
    cuts |= {p + d for p in (SSH_PORT, *RAY_PORTS) for d in (0, 1)}
    cuts |= {edge for spans, _ in rules for lo, hi in spans for edge in (lo, hi + 1)}
    edges = sorted(cuts)
    wide: dict[str, list[tuple[int, int]]] = {}  # what is admitted -> port intervals
    for lo, end in zip(edges, edges[1:], strict=False):
        covering = [ns for spans, ns in rules if any(a <= lo and end - 1 <= b for a, b in spans)]
        nets = [n for ns in covering for n in ns]
        for what in _too_wide(nets):
            wide.setdefault(what, []).append((lo, end - 1))
    for what, spans in wide.items():
        ports = list(dict.fromkeys(name for lo, hi in spans for name in _guarded(lo, hi)))
        if sum(hi - lo + 1 for lo, hi in spans) == 65536:
            ports = ["every port"]
        if ports:
            problems.append(f"ingress opens {', '.join(ports)} to {what}")
    return problems


def provider_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    kind = config["provider"].get("type")
    if kind not in ("aws", "gcp", "local"):
        return [f"provider {kind!r}: the check knows only aws, gcp and local"]
    for name, node_type in config["available_node_types"].items():
        node_config = node_type["node_config"]
        groups = node_config.get("SecurityGroupIds")
        if kind == "aws" and not (isinstance(groups, list) and groups):
            problems.append(
                f"node type {name}: no SecurityGroupIds (the launcher's own group admits SSH "
                "from anywhere)"
            )
        if kind == "gcp":
            nets = node_config.get("networkInterfaces", [])
            if not isinstance(nets, list) or not all(isinstance(n, dict) for n in nets):
                problems.append(f"node type {name}: networkInterfaces is not a list of mappings")
                continue
            where = [n.get("subnetwork") or n.get("network", "") for n in nets]
            if not where or any(not w or w.rstrip("/").endswith("/default") for w in where):
                problems.append(
                    f"node type {name}: not on a named subnetwork (the default network admits "
                    "SSH from anywhere)"
                )
    return problems


def _lists(config: dict[str, Any]) -> Iterator[tuple[str, str, list[str]]]:
    """(node, key, commands) for each command list a node runs, node types' own lists too."""
    for key in ("initialization_commands", "head_setup_commands", "head_start_ray_commands"):
        yield "head", key, config[key]
    for name, node_type in config["available_node_types"].items():
        for key in ("initialization_commands", "worker_setup_commands"):
            yield f"node type {name}", key, node_type.get(key, config[key])
        yield f"node type {name}", "worker_start_ray_commands", config["worker_start_ray_commands"]


def token_problems(config: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for node, key, commands in _lists(config):
        for command in commands:
            problems += command_problems(str(command))
        if key.endswith("setup_commands"):
            problems += token_mode_problems(node, [str(c) for c in commands])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = []
        for command in config[key]:
            with contextlib.suppress(CannotCheck):
                starts += [r for r in parse(str(command)) if is_ray_start(r.argv)]
        if not starts:
            problems.append(f"no `ray start` in {key}: token authentication unseen")
    if TOKEN_FILE not in config["file_mounts"]:
        problems.append(f"the token {TOKEN_FILE} is not among file_mounts (nodes would lack it)")
    return problems


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ray's launcher code logs and prints as it prepares a config; keep it off our output."""
    log = logging.getLogger("ray")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def prepare(config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The config as ``ray up`` runs it (Ray's defaults filled in, node types merged) and
    validated against Ray's schema; or None and the one reason Ray would refuse it."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    with _quiet():
        try:
            prepared = prepare_config(copy.deepcopy(config))
        except Exception as exc:  # noqa: BLE001 - KeyError, ValueError, click's abort alike
            return None, [f"Ray cannot prepare this config: {_first_line(exc)}"]
        try:
            validate_config(prepared)
        except Exception as exc:  # noqa: BLE001 - jsonschema, ValueError alike
            return None, [f"not a valid Ray cluster config: {_first_line(exc)}"]
    return prepared, []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def problems(config: Any) -> list[str]:
    """Everything wrong with one cluster config (empty when it passes)."""
    if not isinstance(config, dict):
        return ["not a YAML mapping"]
    prepared, found = prepare(config)
    if prepared is None:
        return found
    found = [
        *ingress_problems(prepared),
        *provider_problems(prepared),
        *token_problems(prepared),
    ]
    return list(dict.fromkeys(found))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--cidr"]:
        if len(argv) != 2:
            print("usage: check.py --cidr RANGE[,RANGE...]", file=sys.stderr)
            return 2
        found = cidr_problems(argv[1].split(","))
        for problem in found:
            print(problem, file=sys.stderr)
        return 2 if found else 0
    import yaml

    failed = 0
    for path in argv or sorted(str(p) for p in Path(HERE).glob("*.yaml")):
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
    sys.exit(main(sys.argv[1:]))
