"""Ray Tune experiments, one module per experiment (``<job>_<env or dataset>``), each a typed
search space over its job's config (see ``experiment.py``), plus the machinery that runs them
(``run.py``), the trial (``trial.py``) and the summary (``summary.py``).

``EXPERIMENTS`` maps each name to its module, so ``rlgen tune --list`` reads the docstrings
without importing Ray.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

from runkit.errors import UserError

EXPERIMENTS = {
    name: f"tune_configs.{name}"
    for name in (
        "reinforce_cartpole", "a2c_cartpole", "dqn_cartpole", "dqn_atari", "a2c_atari",
        "a2c_atari_pretrained", "ppo_cartpole", "ppo_atari", "vae_mnist5k", "pixelcnn_mnist5k",
    )
}  # fmt: skip


def load_experiment(name: str) -> Any:
    """The module's ``EXPERIMENT``; an unknown name is a UserError listing the known ones."""
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {name!r}: one of {', '.join(sorted(EXPERIMENTS))}")
    return importlib.import_module(EXPERIMENTS[name]).EXPERIMENT


def describe() -> dict[str, str]:
    """Each experiment's docstring, first line, read from the source without importing it."""
    here = Path(__file__).parent
    out = {}
    for name in EXPERIMENTS:
        doc = ast.get_docstring(ast.parse((here / f"{name}.py").read_text())) or ""
        out[name] = doc.splitlines()[0] if doc else ""
    return out
