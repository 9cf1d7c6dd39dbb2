"""The command rules of ``cluster/check.py``: each ``ray start`` a node runs has token
authentication and (on the head) a loopback dashboard; the token ends up mode 600.

Commands are read with ``shellwords`` as the shell will run them, and ``ray start``'s arguments
with Ray's own click parser (so a repeated option counts as Ray counts it: the last wins).
What cannot be read clearly is refused as "cannot check".
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from typing import Any

from shellwords import UNKNOWN, CannotCheck, Run, Value, Word, simple_commands

TOKEN_FILE = "~/.ray/auth_token"
EXPANDED = "\x00"  # marks an argument that held a variable when handed to Ray's CLI parser


def _short(command: str) -> str:
    return " ".join(command.replace(EXPANDED, "").split())[:70]


def _cannot(run_or_text: Run | str, why: str) -> str:
    text = run_or_text if isinstance(run_or_text, str) else run_or_text.raw
    return f"cannot check `{_short(text)}`: {why}"


@functools.cache
def _start_parser() -> Any:
    """Ray's own parser for ``ray start`` arguments (the last of a repeated option wins)."""
    import click
    from ray.scripts.scripts import start

    return start.make_parser(click.Context(start))


def is_ray_start(argv: tuple[Word, ...]) -> bool:
    return (
        len(argv) >= 2
        and argv[0].literal
        and argv[0].text.rsplit("/", 1)[-1] == "ray"
        and argv[1].text == "start"
    )


def _said(mode: Value) -> str:
    if mode is None:
        return "it is unset"
    return "it is not set by this command" if mode is UNKNOWN else f"it is {mode!r}"


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ray_start_problems(run: Run) -> list[str]:
    import click

    for word in run.argv[2:]:
        if word.pattern:
            return [_cannot(run, f"unquoted pattern in {word.raw} (expands to file names)")]
        risky = [n for n in word.unquoted if n != "RAY_HEAD_IP" or run.assigned(n)]
        if risky:
            return [_cannot(run, f"unquoted ${risky[0]} may expand to several arguments")]
    args = [w.text + EXPANDED if w.expansions else w.text for w in run.argv[2:]]
    try:
        opts, rest, _ = _start_parser().parse_args(args)
    except click.ClickException as exc:
        return [f"`{_short(run.raw)}`: ray start would refuse it ({exc.format_message()})"]
    if rest:
        return [f"`{_short(run.raw)}`: ray start takes no argument {_short(rest[0])!r}"]
    problems = []
    mode = run.env("RAY_AUTH_MODE")
    if mode != "token":
        problems.append(f"`{_short(run.raw)}` runs without RAY_AUTH_MODE=token ({_said(mode)})")
    host = opts.get("dashboard_host")
    if opts.get("head") and host is not None and EXPANDED in host:
        problems.append(_cannot(run, "the dashboard host comes from a variable"))
    elif opts.get("head") and (host is None or not _loopback(host)):
        shown = "Ray's default" if host is None else host or "''"
        problems.append(
            f"the dashboard listens on {shown}; use --dashboard-host=127.0.0.1 and `ray dashboard`"
        )
    return problems


@functools.cache
def parse(command: str) -> tuple[Run, ...]:
    return tuple(simple_commands(command))


def command_problems(command: str) -> list[str]:
    """Every ``ray start`` in one command string runs with token auth (and, on the head, a
    loopback dashboard); a ``ray start`` the parser cannot see clearly is refused."""
    try:
        runs = parse(command)
    except CannotCheck as exc:
        return [_cannot(command, str(exc))]
    problems = []
    for run in runs:
        if is_ray_start(run.argv):
            problems += _ray_start_problems(run)
        elif why := _opaque(run):
            problems.append(_cannot(run, why))
        elif "ray" in run.raw.lower() and "start" in run.raw.lower():
            problems.append(_cannot(run, "`ray start` run through another command"))
    return problems


# Commands that run another command made of their arguments.
WRAPPERS = frozenset(
    "exec command builtin nohup sudo doas su runuser xargs timeout nice ionice stdbuf setsid "
    "chroot watch flock taskset numactl time env sh bash dash zsh ksh eval source . python "
    "python3 script parallel tmux screen".split()
)


def _opaque(run: Run) -> str | None:
    """Why the command may run something other than what is written (None when it cannot):
    its name or a wrapped command comes from a variable."""
    if not run.argv:
        return None
    first = run.argv[0]
    name = first.text.rsplit("/", 1)[-1]
    if first.pattern or any(n != "HOME" for n in first.expansions):
        return f"the command {first.raw} comes from a variable"
    if name == "ray" and len(run.argv) > 1 and not run.argv[1].literal:
        return f"ray's subcommand {run.argv[1].raw} comes from a variable"
    risky = [n for w in run.argv for n in w.unquoted if n != "HOME"]
    if name in WRAPPERS and risky:
        return f"{name} runs a command that may be built from ${risky[0]}"
    return None


def _home(word: Word) -> str | None:
    """The path a chmod operand names, ``~/``-relative where it is under $HOME; None when the
    shell decides it (variables, patterns)."""
    text = word.text
    if word.expansions == ("HOME",) and text.startswith(("$HOME/", "${HOME}/")):
        return "~/" + text.split("/", 1)[1]
    if not word.literal:
        return None
    return text if word.raw.startswith("~") or not text.startswith("~") else "./" + text


CHMOD_OPTION = re.compile(
    r"-[RvcfHLP]+|--(recursive|verbose|changes|silent|quiet|(no-)?dereference|(no-)?preserve-root)"
)
OWNER_ONLY = re.compile(r"[0-7]?[0-7]00|go-rwx|og-rwx|go=|og=")


def _chmod(args: tuple[Word, ...]) -> bool | None:
    """What ``chmod args`` does to the token: True owner-only, False maybe more, None nothing."""
    options = [w.text for w in args if w.literal and CHMOD_OPTION.fullmatch(w.text)]
    words = [w for w in args if not (w.literal and CHMOD_OPTION.fullmatch(w.text))]
    if not words:
        return None
    recursive = any("R" in o or o == "--recursive" for o in options)
    mode, files = words[0], words[1:]
    good = mode.literal and OWNER_ONLY.fullmatch(mode.text) is not None
    paths = [_home(f) for f in files]
    unknown = any(p is None or recursive and p.startswith("/") for p in paths)
    token = any(
        p is not None
        and (
            p.rstrip("/") == TOKEN_FILE or recursive and TOKEN_FILE.startswith(p.rstrip("/") + "/")
        )
        for p in paths
    )
    if token:
        return good
    return False if unknown and not good else None


def token_mode_problems(node: str, setup: list[str]) -> list[str]:
    """On one node, the last chmod that reaches the token leaves it owner-only."""
    state: bool | None = None
    for command in setup:
        with contextlib.suppress(CannotCheck):  # reported by command_problems
            for run in parse(command):
                argv = run.argv
                if argv and argv[0].literal and argv[0].text.rsplit("/", 1)[-1] == "chmod":
                    effect = _chmod(argv[1:])
                    state = state if effect is None else effect
    if state is True:
        return []
    later = " (a later chmod may undo it)" if state is False else ""
    return [f"{node}: no setup command makes {TOKEN_FILE} readable by its owner only{later}"]
