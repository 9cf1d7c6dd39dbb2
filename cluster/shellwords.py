"""Shell command strings read the way the shell will run them, for ``cluster/check.py``.

A launcher YAML's command (``head_start_ray_commands: ["ulimit -n 65536; ray start ..."]``) is
one shell invocation on the node. ``simple_commands`` gives the simple commands the shell runs
(split by ``shellsplit``: quotes removed, comments dropped, backslash-newline joined,
redirections set aside) and tracks the environment each one runs with (``VAR=x cmd``,
``export``, ``unset``, ``env VAR=x cmd``). Whatever it cannot follow exactly (command
substitution, subshells, here-documents, shell keywords, unbalanced quotes) raises
``CannotCheck``: a checker refuses what it cannot read. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from shellsplit import UNKNOWN, CannotCheck, Simple, Value, Word, split

__all__ = [
    "UNKNOWN", "CannotCheck", "Run", "Simple", "Value", "Word", "simple_commands", "split",
]  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One simple command: its words (after assignments and ``env``) and the environment the
    command itself receives."""

    argv: tuple[Word, ...]
    raw: str
    environ: dict[str, Value]  # names this command string decided; others come from the node
    cleared: bool = False  # ``env -i``: nothing comes from the node
    touched: frozenset[str] = frozenset()  # names assigned in this command string so far
    tainted: bool = False  # ``source``/``eval``/``set -a`` ran before: any name may be set

    def env(self, name: str) -> Value:
        if name in self.environ:
            return self.environ[name]
        return None if self.cleared else UNKNOWN

    def assigned(self, name: str) -> bool:
        return self.tainted or name in self.touched


def _basename(word: Word) -> str:
    return word.text.rsplit("/", 1)[-1]


Shell = dict[str, tuple[Value, bool | None]]  # name -> (value, exported or unknown)


def simple_commands(s: str) -> list[Run]:
    """Every simple command of ``s`` with the environment it runs with. Each command string is
    its own shell: nothing carries over from one string to the next. What a command does to
    the shell's variables lasts only outside pipelines and background jobs, and after ``&&``
    or ``||`` (it may not run) leaves each variable it changes unknown."""
    shell: Shell = {}
    tainted = False
    runs: list[Run] = []
    for simple in split(s):
        words, prefix = simple.words, {}
        while words and words[0].assign >= 0:
            prefix[words[0].text[: words[0].assign]] = _value(words[0])
            words = words[1:]
        cleared, argv = False, words
        while argv and _basename(argv[0]) == "env" and argv[0].literal:
            cleared, argv = _env(argv[1:], prefix, cleared)
        if words:
            environ = {} if cleared else {n: _exported(v, e) for n, (v, e) in shell.items()}
            environ.update(prefix)
            touched = frozenset(shell) | frozenset(prefix)
            runs.append(Run(tuple(argv), simple.raw, environ, cleared, touched, tainted))
        if simple.before in ("|", "|&") or simple.after in ("|", "|&", "&"):
            continue  # a subshell: its assignments vanish with it
        after = dict(shell)
        if not words:  # bare assignments set shell variables, exported only if already so
            for name, value in prefix.items():
                after[name] = (value, None if tainted else shell.get(name, (None, None))[1])
        elif argv and _builtin(argv, after):
            tainted = True
            after = {}
        if simple.before in ("&&", "||"):  # it may not have run
            after = {n: v if shell.get(n) == v else (UNKNOWN, None) for n, v in after.items()}
            after.update({n: (UNKNOWN, None) for n in shell if n not in after})
        shell = after
    return runs


def _value(word: Word) -> Value:
    value = word.text[word.assign + 1 :]
    return UNKNOWN if word.expansions else value


def _exported(value: Value, exported: bool | None) -> Value:
    if value is None or exported is True:
        return value
    return None if exported is False else UNKNOWN


def _env(args: list[Word], prefix: dict[str, Value], cleared: bool) -> tuple[bool, list[Word]]:
    """``env [-i] [-u NAME] [NAME=value]... command``: fills ``prefix``, returns the command."""
    i = 0
    while i < len(args) and args[i].text.startswith("-") and args[i].literal:
        opt = args[i].text
        if opt in ("-i", "-", "--ignore-environment"):
            cleared = True
            prefix.clear()
        elif opt in ("-u", "--unset") and i + 1 < len(args):
            i += 1
            prefix[args[i].text] = None
        elif opt.startswith(("-u", "--unset=")):
            prefix[opt.removeprefix("--unset=").removeprefix("-u")] = None
        elif opt == "--":
            i += 1
            break
        else:
            raise CannotCheck(f"env option {opt}")
        i += 1
    while i < len(args) and args[i].assign >= 0:
        prefix[args[i].text[: args[i].assign]] = _value(args[i])
        i += 1
    return cleared, args[i:]


def _builtin(argv: list[Word], shell: Shell) -> bool:
    """Apply what a builtin does to the shell's variables; True when afterwards any variable
    may hold anything (``source``, ``eval``, ``set -a``)."""
    name, args = argv[0].text, argv[1:]
    if name == "export":
        for arg in args:
            if arg.text == "-n" or not arg.literal and arg.assign < 0:
                return True
            if arg.assign >= 0:
                shell[arg.text[: arg.assign]] = (_value(arg), True)
            elif not arg.text.startswith("-"):
                shell[arg.text] = (shell.get(arg.text, (UNKNOWN, None))[0], True)
    elif name == "unset":
        for arg in args:
            if not arg.literal:
                return True
            if not arg.text.startswith("-"):
                shell[arg.text] = (None, False)
    elif name in ("declare", "typeset", "local", "readonly"):
        for arg in args:
            key = arg.text[: arg.assign] if arg.assign >= 0 else arg.text
            shell[key] = (UNKNOWN, None)
            if not arg.literal:
                return True
    elif name in ("source", ".", "eval"):
        return True
    elif name == "set":
        return any(a.text == "allexport" or a.text[:1] in "-+" and "a" in a.text for a in args)
    elif name == "alias":
        raise CannotCheck("alias (it can rename any command)")
    return False
