"""The registry of job kinds: what ``rlgen train`` / ``rlgen.train``, ``rlgen keys`` and
``rlgen tune`` can run. Each kind (``runkit.jobkind.JobKind``) names its own jobs; adding a
kind is one line in ``KINDS``, adding a job to a kind is one line in that kind's package
(``algorithms.ALGORITHMS``, ``generative.MODELS``). Reading the registry imports nothing
heavy."""

from __future__ import annotations

from typing import Any

from algorithms.jobkind import RL
from generative.jobkind import GENERATIVE
from runkit.errors import UserError
from runkit.jobkind import JobKind

KINDS: tuple[JobKind, ...] = (RL, GENERATIVE)


def names() -> list[str]:
    """Every job, in the order of the kinds."""
    return [job for kind in KINDS for job in kind.jobs()]


def kind_of(job: str) -> JobKind:
    """The kind ``job`` belongs to; an unknown name is a UserError listing the known ones."""
    for kind in KINDS:
        if job in kind.jobs():
            return kind
    raise UserError(f"train {job}: unknown algorithm or model; one of {', '.join(sorted(names()))}")


def all_args() -> tuple[str, ...]:
    """Every kind's own ``train()`` arguments (each once)."""
    return tuple(dict.fromkeys(arg for kind in KINDS for arg in kind.own_args))


def export(what: str, source: str) -> dict[str, Any]:
    """``what`` (an ``encoder``, ...) from the checkpoint at ``source``, by the kind that
    exports it (``JobKind.export``)."""
    for kind in KINDS:
        if what in kind.exports:
            return kind.export(what, source)
    raise UserError(f"no kind of job exports {what!r}")


for _kind in KINDS:  # each kind reads what another exports through the registry
    _kind.connect(export)
