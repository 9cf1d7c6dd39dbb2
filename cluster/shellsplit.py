"""Shell command strings split into simple commands and words, the way the shell reads them,
for ``shellwords`` (and through it ``cluster/check.py``).

``split`` cuts a command string into the simple commands the shell runs (on ``;``, ``&&``,
``||``, ``|``, ``&`` and newlines), each a list of ``Word``s with quotes removed, comments
dropped, backslash-newline joined and redirections set aside. Each word records the variables
expanded in it (and which of those outside double quotes) and whether it is a ``NAME=value``
assignment. Whatever it cannot read exactly (command substitution, subshells, here-documents,
shell keywords, unbalanced quotes) raises ``CannotCheck``.

``shlex`` is not enough here: a quoted ``';'`` comes back as the operator ``;``, a ``#`` inside
a word starts a comment (``a#b; ray start`` loses the ``ray start``), and nothing says which
words held an expansion. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEYWORDS = frozenset(
    "if then elif else fi for while until do done case esac function select time coproc "
    "{ } ! [[ ]]".split()
)
METACHARS = " \t\n;&|()<>"


class CannotCheck(ValueError):
    """The command uses shell syntax the checker does not follow."""


class _Unknown:
    def __repr__(self) -> str:
        return "unknown"


UNKNOWN = _Unknown()
# A variable's value: a string, unset (None), or unknown. (Union: --cidr runs on python3 >= 3.9.)
Value = Union[str, None, _Unknown]  # noqa: UP007


@dataclass(frozen=True)
class Word:
    """One word after quote removal. ``text`` keeps each expansion as written (``$HOME``)."""

    raw: str
    text: str
    expansions: tuple[str, ...] = ()  # variable names expanded in it ("?" for special ones)
    unquoted: tuple[str, ...] = ()  # those expanded outside double quotes (split, globbed)
    pattern: bool = False  # an unquoted * ? [ { } (pathname or brace expansion)
    assign: int = -1  # index of the "=" when the word is NAME=value

    @property
    def literal(self) -> bool:
        return not self.expansions and not self.pattern


def _expansion(s: str, i: int) -> tuple[str, str, int]:
    """The ``$`` expansion at ``s[i]``: (text as written, variable name, index after it)."""
    nxt = s[i + 1 : i + 2]
    if nxt == "(":
        raise CannotCheck("command substitution $(...)")
    if nxt in ("'", '"'):
        raise CannotCheck(f"${nxt}...{nxt} quoting")
    if nxt == "{":
        end = s.find("}", i)
        if end < 0:
            raise CannotCheck("unbalanced ${")
        inner = s[i + 2 : end]
        if any(c in inner for c in "$`'\"\\"):
            raise CannotCheck("nested expansion in ${...}")
        return s[i : end + 1], inner if NAME.fullmatch(inner) else "?", end + 1
    match = NAME.match(s, i + 1)
    if match:
        return s[i : match.end()], match.group(), match.end()
    if nxt and nxt in "0123456789@*#?$!-":
        return s[i : i + 2], "?", i + 2
    return "$", "", i + 1  # a lone $ is itself


@dataclass
class _WordBuilder:
    chars: list[str] = field(default_factory=list)
    expansions: list[str] = field(default_factory=list)
    unquoted: list[str] = field(default_factory=list)
    pattern: bool = False
    plain: bool = True  # nothing quoted or expanded yet (an assignment's name must be plain)
    assign: int = -1

    def add(self, text: str, quoted: bool) -> None:
        if not quoted and text == "=" and self.plain and self.assign < 0:
            if NAME.fullmatch("".join(self.chars)):
                self.assign = len("".join(self.chars))
        if quoted:
            self.plain = False
        elif text in "*?[{}":
            self.pattern = True
        self.chars.append(text)

    def expand(self, text: str, name: str, quoted: bool) -> None:
        self.plain = False
        self.chars.append(text)
        if name:
            self.expansions.append(name)
            if not quoted:
                self.unquoted.append(name)


def _word(s: str, i: int) -> tuple[Word, int]:
    """Read the word starting at ``s[i]``; returns it and the index after it."""
    start, b = i, _WordBuilder()
    while i < len(s) and s[i] not in METACHARS:
        c = s[i]
        if c == "\\":
            if s[i + 1 : i + 2] == "\n":  # line continuation
                i += 2
                continue
            b.add(s[i + 1 : i + 2] or "\\", quoted=True)
            i += 2
        elif c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise CannotCheck("unbalanced quotes")
            b.add(s[i + 1 : end], quoted=True)
            i = end + 1
        elif c == '"':
            i = _double_quoted(s, i + 1, b)
        elif c == "`":
            raise CannotCheck("command substitution `...`")
        elif c == "$":
            i = _dollar(s, i, b, quoted=False)
        else:
            b.add(c, quoted=False)
            i += 1
    word = Word(
        raw=s[start:i], text="".join(b.chars), expansions=tuple(b.expansions),
        unquoted=tuple(b.unquoted), pattern=b.pattern, assign=b.assign,
    )  # fmt: skip
    return word, i


def _dollar(s: str, i: int, b: _WordBuilder, *, quoted: bool) -> int:
    """Add the ``$...`` at ``s[i]`` (an expansion of a variable, or a literal ``$``); returns
    the index after it."""
    text, name, i = _expansion(s, i)
    if name:
        b.expand(text, name, quoted=quoted)
    else:
        b.add(text, quoted=quoted)
    return i


def _double_quoted(s: str, i: int, b: _WordBuilder) -> int:
    """Add the inside of a double-quoted string starting at ``s[i]``; returns the index after
    its closing quote."""
    while i < len(s):
        c = s[i]
        if c == '"':
            b.add("", quoted=True)
            return i + 1
        if c == "\\" and s[i + 1 : i + 2] in ("$", "`", '"', "\\", "\n"):
            if s[i + 1] != "\n":
                b.add(s[i + 1], quoted=True)
            i += 2
        elif c == "`":
            raise CannotCheck("command substitution `...`")
        elif c == "$":
            i = _dollar(s, i, b, quoted=True)
        else:
            b.add(c, quoted=True)
            i += 1
    raise CannotCheck("unbalanced quotes")


_SEPARATORS = ("&&", "||", "|&", ";", "&", "|", "\n")
_REDIRECTS = ("&>>", "&>", "<<<", "<>", "<&", ">>", ">&", ">|", "<", ">")


@dataclass(frozen=True)
class Simple:
    """A simple command as written: its words (redirections left out), its text, and the
    operators before and after it ("" at either end of the string)."""

    words: list[Word]
    raw: str
    before: str
    after: str


_CONTINUED = ("|", "|&", "&&", "||")  # a newline after these does not end the list


def split(s: str) -> list[Simple]:
    """The simple commands of ``s`` in order."""
    commands: list[Simple] = []
    words: list[Word] = []
    begin, i, before = 0, 0, ""

    def finish(end: int, op: str) -> None:
        nonlocal words, before
        if words:
            commands.append(Simple(words, " ".join(s[begin:end].split()), before, op))
            before = op
        elif not (op == "\n" and before in _CONTINUED):
            before = op
        words = []

    while i < len(s):
        c = s[i]
        if c in " \t" or s.startswith("\\\n", i):
            i += 1 if c in " \t" else 2
        elif c == "#":  # a comment runs to the end of the line
            end = s.find("\n", i)
            finish(i, "\n")
            i = len(s) if end < 0 else end + 1
        elif s.startswith("<<", i) and not s.startswith("<<<", i):
            raise CannotCheck("here-document")
        elif op := next((r for r in _REDIRECTS if s.startswith(r, i)), None):
            i += len(op)
            while i < len(s) and s[i] in " \t":
                i += 1
            if i >= len(s) or s[i] in METACHARS:
                raise CannotCheck(f"redirection {op} without a target")
            _, i = _word(s, i)  # the target is not an argument
        elif op := next((o for o in _SEPARATORS if s.startswith(o, i)), None):
            if s.startswith(";;", i):
                raise CannotCheck("case syntax ;;")
            finish(i, op)
            i += len(op)
        elif c in "()":
            raise CannotCheck("subshell or function ( )")
        else:
            if not words:
                begin = i
            word, i = _word(s, i)
            if word.text.isdigit() and word.raw.isdigit() and s[i : i + 1] in ("<", ">"):
                continue  # a file-descriptor number: 2>&1
            if not words and word.raw in KEYWORDS:
                raise CannotCheck(f"shell keyword {word.raw}")
            words.append(word)
    finish(len(s), "")
    return commands
