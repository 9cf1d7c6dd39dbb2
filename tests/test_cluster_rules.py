"""The rules of ``cluster/check.py`` as tables: each row is one way around a rule (a deleted
key Ray fills with its defaults, the internet split into pieces, a command the shell reads
differently from its text) that the check must report, and rows that must pass so the rules
do not simply refuse everything. No Ray instance is started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_cluster_config import CLUSTER, YAMLS, check, config

# (yaml, keys deleted together, what the report must say)
DELETED: list[tuple[str, tuple[str, ...], str]] = [
    *[(y, ("head_start_ray_commands",), "without RAY_AUTH_MODE=token") for y in YAMLS],
    *[(y, ("head_start_ray_commands",), "dashboard listens on") for y in YAMLS],
    *[(y, ("worker_start_ray_commands",), "without RAY_AUTH_MODE=token") for y in YAMLS],
    *[(y, ("file_mounts",), "not among file_mounts") for y in YAMLS],
    *[(y, ("setup_commands",), "owner only") for y in YAMLS],
    *[(y, ("provider",), "Ray cannot prepare") for y in YAMLS],
    ("aws.yaml", ("available_node_types", "head_node_type"), "no SecurityGroupIds"),
    ("gcp.yaml", ("available_node_types", "head_node_type"), "named subnetwork"),
    ("aws.yaml", ("available_node_types",), "not a valid Ray cluster config"),
    ("gcp.yaml", ("head_node_type",), "not a valid Ray cluster config"),
]


@pytest.mark.parametrize(("name", "keys", "expected"), DELETED, ids=lambda v: str(v))
def test_a_deleted_key_is_judged_as_ray_fills_it(
    name: str, keys: tuple[str, ...], expected: str
) -> None:
    cfg = config(name)
    for key in keys:
        del cfg[key]
    found = check.problems(cfg)
    assert any(expected in p for p in found), found


def test_a_node_types_own_commands_are_checked() -> None:
    cfg = config("aws.yaml")
    cfg["available_node_types"]["cpu_worker"]["worker_setup_commands"] = ["pip install -q x"]
    cfg["available_node_types"]["gpu_worker"]["initialization_commands"] = ["ray start --head"]
    found = " | ".join(check.problems(cfg))
    assert "node type cpu_worker: no setup command makes" in found
    assert "`ray start --head` runs without RAY_AUTH_MODE=token" in found
    assert "dashboard listens on Ray's default" in found
    cfg = config("local.yaml")
    cfg["head_start_ray_commands"] = ["ray stop"]
    assert "no `ray start` in head_start_ray_commands" in " | ".join(check.problems(cfg))


def _ssh_from(cfg: dict[str, Any], ranges: list[Any], per_rule: bool) -> None:
    """Admit SSH from ``ranges``: in one AWS rule, or one rule per range."""
    v4 = [r for r in ranges if ":" not in str(r)]
    v6 = [r for r in ranges if ":" in str(r)]
    groups = [[r] for r in ranges] if per_rule else [ranges]
    rules = [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": r} for r in g if r in v4],
         "Ipv6Ranges": [{"CidrIpv6": r} for r in g if r in v6]}
        for g in groups
    ]  # fmt: skip
    cfg["provider"]["security_group"] = {"GroupName": "rlgen", "IpPermissions": rules}


# Ranges whose union is as good as the internet, however they are spelled.
WIDE: list[tuple[str, list[Any]]] = [
    ("the world", ["0.0.0.0/0"]),
    ("two halves", ["0.0.0.0/1", "128.0.0.0/1"]),
    ("256 /8s", [f"{i}.0.0.0/8" for i in range(256)]),
    ("a /8", ["10.0.0.0/8"]),
    ("a /15", ["198.18.0.0/15"]),
    ("two /16s", ["172.16.0.0/16", "172.17.0.0/16"]),
    ("host bits set", ["203.0.113.7/8"]),
    ("IPv6 world", ["::/0"]),
    ("IPv6 halves", ["::/1", "8000::/1"]),
    ("IPv6 global unicast in halves", ["2000::/4", "3000::/4"]),
    ("IPv6 /32", ["2001:db8::/32"]),
    ("two IPv6 /48s", ["2001:db8::/48", "2001:db8:1::/48"]),
    ("IPv4 as IPv6", ["::ffff:0.0.0.0/96"]),
]
MALFORMED: list[Any] = ["1.2.3.4/33", "0.0.0.0/0 ", "", "anywhere", "1.2.3.4/-1", 7, None]
ALLOWED: list[list[Any]] = [
    ["203.0.113.7/32"], ["198.51.100.0/24"], ["172.16.0.0/16"], ["2001:db8::/48"],
    ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::1/128"], ["203.0.113.7"],
]  # fmt: skip


@pytest.mark.parametrize("per_rule", [False, True], ids=["one rule", "rule per range"])
@pytest.mark.parametrize(("case", "ranges"), WIDE, ids=[w[0] for w in WIDE])
def test_a_wide_range_is_the_internet(case: str, ranges: list[Any], per_rule: bool) -> None:
    cfg = config("aws.yaml")
    _ssh_from(cfg, ranges, per_rule)
    found = check.problems(cfg)
    assert any("ingress opens port 22 to" in p for p in found), found
    assert check.cidr_problems(ranges), ranges  # the setup scripts' rule is the same


def test_gcp_source_ranges_add_up() -> None:
    cfg = config("gcp.yaml")
    node = cfg["available_node_types"]["head"]["node_config"]
    node["x_firewall"] = [
        {"sourceRanges": [cidr], "allowed": [{"IPProtocol": "tcp", "ports": [ports]}]}
        for cidr, ports in (("0.0.0.0/1", "8265"), ("128.0.0.0/1", "8000-9000"))
    ]
    assert "ingress opens port 8265 to the whole IPv4 internet" in check.problems(cfg)


@pytest.mark.parametrize("bad", MALFORMED, ids=repr)
def test_a_malformed_range_is_a_problem(bad: Any) -> None:
    cfg = config("aws.yaml")
    _ssh_from(cfg, ["203.0.113.7/32"], per_rule=False)
    cfg["provider"]["security_group"]["IpPermissions"][0]["IpRanges"].append({"CidrIp": bad})
    assert any("is not an address range" in p for p in check.problems(cfg))
    assert check.cidr_problems([bad])


@pytest.mark.parametrize("ranges", ALLOWED, ids=str)
def test_a_narrow_range_passes(ranges: list[Any]) -> None:
    cfg = config("aws.yaml")
    _ssh_from(cfg, ranges, per_rule=True)
    assert check.problems(cfg) == []
    assert check.cidr_problems(ranges) == []


H = "--dashboard-host=127.0.0.1"
# head_start_ray_commands[1] replaced by each; what the report must say
BAD_STARTS: list[tuple[str, str, str]] = [
    ("comment", f"ray start --head {H} # RAY_AUTH_MODE=token", "without RAY_AUTH_MODE"),
    ("bare assignment ;", f"RAY_AUTH_MODE=token; ray start --head {H}", "without RAY_AUTH_MODE"),
    ("echoed ;", f"echo RAY_AUTH_MODE=token; ray start --head {H}", "without RAY_AUTH_MODE"),
    ("after &&", f"ray start --head {H} && RAY_AUTH_MODE=token true", "without RAY_AUTH_MODE"),
    ("export after", f"ray start --head {H}; export RAY_AUTH_MODE=token", "without RAY_AUTH"),
    ("reassigned", f"export RAY_AUTH_MODE=token; RAY_AUTH_MODE=off; ray start --head {H}",
     "it is 'off'"),
    ("unset", f"export RAY_AUTH_MODE=token; unset RAY_AUTH_MODE; ray start --head {H}",
     "it is unset"),
    ("export in a pipeline", f"export RAY_AUTH_MODE=token | ray start --head {H}",
     "without RAY_AUTH_MODE"),
    ("export that may not run", f"false && export RAY_AUTH_MODE=token; ray start --head {H}",
     "without RAY_AUTH_MODE"),
    ("env -u", f"RAY_AUTH_MODE=token env -u RAY_AUTH_MODE ray start --head {H}", "it is unset"),
    ("env -i", f"export RAY_AUTH_MODE=token; env -i ray start --head {H}", "it is unset"),
    ("sourced after export", f"export RAY_AUTH_MODE=token; . ~/.env; ray start --head {H}",
     "without RAY_AUTH_MODE"),
    ("upper case", f"RAY_AUTH_MODE=TOKEN ray start --head {H}", "it is 'TOKEN'"),
    ("hash inside a word", f"echo a#b; ray start --head {H}", "without RAY_AUTH_MODE"),
    ("repeated flag", f"RAY_AUTH_MODE=token ray start --head {H} --dashboard-host=0.0.0.0",
     "dashboard listens on 0.0.0.0"),
    ("space form", "RAY_AUTH_MODE=token ray start --head --dashboard-host 0.0.0.0",
     "dashboard listens on 0.0.0.0"),
    ("continuation", f"RAY_AUTH_MODE=token ray start --head {H} \\\n  --dashboard-host=::",
     "dashboard listens on ::"),
    ("quotes", "RAY_AUTH_MODE=token ray start --head '--dashboard-host'=\"0.0.0.0\"",
     "dashboard listens on 0.0.0.0"),
    ("flag absent", "RAY_AUTH_MODE=token ray start --head", "listens on Ray's default"),
    ("misspelt flag", "RAY_AUTH_MODE=token ray start --head --dashboard-hosts=127.0.0.1",
     "ray start would refuse it"),
    ("quoted assignment", f"'RAY_AUTH_MODE=token' ray start --head {H}", "cannot check `"),
    ("sh -c", f"RAY_AUTH_MODE=token sh -c 'ray start --head {H}'", "cannot check `"),
    ("bash -c", f'bash -c "RAY_AUTH_MODE=token ray start --head {H}"', "cannot check `"),
    ("eval", f"eval RAY_AUTH_MODE=token ray start --head {H}", "cannot check `"),
    ("nohup", f"RAY_AUTH_MODE=token nohup ray start --head {H}", "cannot check `"),
    ("$(...)", "RAY_AUTH_MODE=token ray start --head --dashboard-host=$(hostname -i)",
     "cannot check `"),
    ("backticks", "RAY_AUTH_MODE=token ray start --head --dashboard-host=`hostname -i`",
     "cannot check `"),
    ("variable host", "RAY_AUTH_MODE=token ray start --head --dashboard-host=\"$HOST\"",
     "cannot check `"),
    ("unquoted variable", f"RAY_AUTH_MODE=token ray start --head {H} $MORE", "cannot check `"),
    ("brace expansion", "RAY_AUTH_MODE=token ray start --head --dashboard-host={127.0.0.1,::}",
     "cannot check `"),
    ("unbalanced quotes", f"RAY_AUTH_MODE=token ray start --head '{H}", "cannot check `"),
    ("subshell", f"(RAY_AUTH_MODE=token ray start --head {H})", "cannot check `"),
    ("if", f"if true; then RAY_AUTH_MODE=token ray start --head {H}; fi", "cannot check `"),
    ("here-document", "bash <<EOF\nRAY_AUTH_MODE=token ray start --head\nEOF", "cannot check `"),
    ("variable command", f"RAY_AUTH_MODE=token $RAY start --head {H}", "cannot check `"),
    ("variable subcommand", f"RAY_AUTH_MODE=token ray $DO --head {H}", "cannot check `"),
    ("whole command a variable", "export RAY_AUTH_MODE=token; $CMD", "cannot check `"),
    ("wrapped variable", "export RAY_AUTH_MODE=token; nohup $CMD", "cannot check `"),
]  # fmt: skip
GOOD_STARTS: list[str] = [
    f"RAY_AUTH_MODE=token ray start --head {H} --port=6379",
    "export RAY_AUTH_MODE=token; ray start --head --dashboard-host 127.0.0.1  # token, loopback",
    "env RAY_AUTH_MODE=token ray start --head --dashboard-host=localhost",
    f"ulimit -n 65536 && RAY_AUTH_MODE=token ray start --head --dashboard-host=0.0.0.0 {H}",
    "RAY_AUTH_MODE='token' ray start --head \\\n  --dashboard-host=\"127.0.0.1\" 2>&1 | tee log",
    "RAY_AUTH_MODE=token ~/rlgen/.venv/bin/ray start --head --dashboard-host=::1",
    f"# start Ray with token auth; dashboard on loopback\nRAY_AUTH_MODE=token ray start --head {H}",
]  # fmt: skip


def _with_head_start(command: str) -> dict[str, Any]:
    cfg = config("local.yaml")
    cfg["head_start_ray_commands"] = ["ray stop", command]
    return cfg


@pytest.mark.parametrize(
    ("case", "command", "expected"), BAD_STARTS, ids=[b[0] for b in BAD_STARTS]
)
def test_a_start_command_is_read_as_the_shell_runs_it(
    case: str, command: str, expected: str
) -> None:
    found = check.problems(_with_head_start(command))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize("command", GOOD_STARTS)
def test_a_sound_start_command_passes(command: str) -> None:
    assert check.problems(_with_head_start(command)) == []


def test_a_ray_start_anywhere_is_checked() -> None:
    cfg = config("aws.yaml")
    cfg["worker_start_ray_commands"][1] += " # RAY_AUTH_MODE=token"
    cfg["worker_start_ray_commands"][1] = cfg["worker_start_ray_commands"][1].replace(
        "RAY_AUTH_MODE=token ray", "ray"
    )
    assert any("without RAY_AUTH_MODE" in p for p in check.problems(cfg))
    cfg = config("gcp.yaml")
    cfg["setup_commands"].append("ray start --head --dashboard-host=0.0.0.0")
    found = " | ".join(check.problems(cfg))
    assert "without RAY_AUTH_MODE" in found and "listens on 0.0.0.0" in found


TOKEN = "~/.ray/auth_token"
BAD_CHMODS: list[list[str]] = [
    [f"echo chmod 600 {TOKEN}"], [f"true # chmod 600 {TOKEN}"], [f"chmod 644 {TOKEN}"],
    [f"chmod 600 {TOKEN}", f"chmod 644 {TOKEN}"], [f"chmod 600 {TOKEN} && chmod -R a+r ~/.ray"],
    [f"chmod 600 '{TOKEN}'"], [f"chmod 600 {TOKEN}; chmod 644 $FILE"], [f"chmod 640 {TOKEN}"],
]  # fmt: skip
GOOD_CHMODS: list[list[str]] = [
    [f"chmod 700 ~/.ray && chmod 600 {TOKEN}"], ["chmod 0600 $HOME/.ray/auth_token"],
    [f"chmod go-rwx {TOKEN}"], [f"chmod -v 400 {TOKEN}  # owner only"],
    [f"chmod 644 {TOKEN}", "chmod -R 700 ~/.ray"],
]  # fmt: skip


@pytest.mark.parametrize(
    ("chmods", "ok"), [(c, False) for c in BAD_CHMODS] + [(c, True) for c in GOOD_CHMODS], ids=str
)
def test_the_token_chmod_is_parsed(chmods: list[str], ok: bool) -> None:
    cfg = config("local.yaml")
    cfg["setup_commands"] = [*chmods, *cfg["setup_commands"][1:]]
    found = check.problems(cfg)
    assert (found == []) if ok else any("owner only" in p for p in found), found


SCRIPTS = {"aws-security-group.sh": ["vpc-0"], "gcp-firewall.sh": ["proj", "us-west1"]}
REFUSED = ["0.0.0.0/0", "::/0", "0.0.0.0/1,128.0.0.0/1", "10.0.0.0/8", "2001:db8::/32", "x/y"]


def _run_script(
    tmp_path: Path, script: str, cidr: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a setup script with a fake aws/gcloud on PATH that logs its arguments, and a python3
    without site-packages (no Ray, no PyYAML), as on a bare laptop."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    fakes = {tool: f'echo "{tool} $*" >> "{log}"\necho sg-0123' for tool in ("aws", "gcloud")}
    fakes["python3"] = f'exec "{sys.executable}" -S -I "$@"'
    for tool, body in fakes.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", str(CLUSTER / script), *SCRIPTS[script], cidr],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    return out, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("cidr", REFUSED)
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_setup_scripts_refuse_what_check_refuses(tmp_path: Path, script: str, cidr: str) -> None:
    out, calls = _run_script(tmp_path, script, cidr)
    assert out.returncode == 2 and "refusing" in out.stderr, out.stderr
    assert calls == ""  # nothing was created


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_setup_scripts_admit_a_narrow_range(tmp_path: Path, script: str) -> None:
    out, calls = _run_script(tmp_path, script, "203.0.113.0/24")
    assert out.returncode == 0, out.stderr
    assert ("--cidr 203.0.113.0/24" if script.startswith("aws") else
            "--source-ranges 203.0.113.0/24") in calls  # fmt: skip


def _aws_rule(cfg: dict[str, Any], rule: Any) -> None:
    cfg["provider"]["security_group"] = {"GroupName": "rlgen", "IpPermissions": [rule]}


def _gcp_head(cfg: dict[str, Any], **node: Any) -> None:
    cfg["available_node_types"]["head"]["node_config"].update(node)


# A config of odd shapes is one problem line each, never a traceback.
ODD_SHAPES: list[tuple[str, Any, str]] = [
    ("aws.yaml", lambda c: _aws_rule(c, {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                         "IpRanges": "0.0.0.0/0"}), "is not a list"),
    ("aws.yaml", lambda c: _aws_rule(c, {"IpProtocol": "tcp", "FromPort": "ssh", "ToPort": 22,
                                         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
     "opens every port to the whole IPv4 internet"),
    ("aws.yaml", lambda c: _aws_rule(c, {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                         "PrefixListIds": [{"PrefixListId": "pl-1"}]}),
     "prefix lists"),
    ("aws.yaml", lambda c: c["available_node_types"]["head"]["node_config"].update(
        SecurityGroupIds="sg-1"), "no SecurityGroupIds"),
    ("gcp.yaml", lambda c: _gcp_head(c, networkInterfaces="default"), "not a list of mappings"),
    ("gcp.yaml", lambda c: _gcp_head(c, x_fw={"sourceRanges": ["0.0.0.0/0"],
                                              "allowed": [{"IPProtocol": "tcp", "ports": "22"}]}),
     "opens every port"),
    ("local.yaml", lambda c: c.update(provider="local"), "Ray cannot prepare"),
    ("local.yaml", lambda c: c.update(provider={"type": "azure", "location": "westus2",
                                                "resource_group": "rlgen"}), "check knows only"),
    ("local.yaml", lambda c: c.update(provider={"type": "kuberay"}), "not a valid Ray cluster"),
    ("local.yaml", lambda c: c.update(head_start_ray_commands="ray start --head"),
     "not a valid Ray cluster config"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "mutate", "expected"), ODD_SHAPES, ids=[f"{n}: {e}" for n, _, e in ODD_SHAPES]
)
def test_odd_shapes_are_problem_lines(name: str, mutate: Any, expected: str) -> None:
    cfg = config(name)
    mutate(cfg)
    found = check.problems(cfg)
    assert any(expected in p for p in found), found
