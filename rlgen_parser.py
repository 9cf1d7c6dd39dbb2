"""The ``rlgen`` command's arguments: one parser per subcommand, each flag checked as it is
read (bad input: one line, exit status 2, through ``_Parser.error``)."""

from __future__ import annotations

import argparse
import math
from typing import Any

import jobs
import rlgen
from runkit.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one clear line, no usage dump
        raise UserError(f"{self.prog}: {message}")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; must be >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlgen", description=(rlgen.__doc__ or "rlgen").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_train, _add_tune, _add_eval, _add_record, _add_sample, _add_data, _add_keys):
        add(sub)
    return parser


def _add_train(sub: Any) -> None:
    """``rlgen train JOB``: what it learns from, the kind's own settings, the config."""
    train = sub.add_parser("train", help="train an RL agent or a generative model")
    train.add_argument("algorithm", choices=sorted(jobs.names()))
    train.add_argument("--env", help="gymnasium env id, e.g. CartPole-v1 (not needed on --resume)")
    train.add_argument(
        "--dataset", help="generative models: mnist5k (default) or a dataset folder / URI"
    )
    train.add_argument("--epochs", type=_positive_int, help="generative models: epochs")
    train.add_argument(
        "--num-workers", type=_positive_int, help="generative models: Ray Train workers"
    )
    train.add_argument(
        "--use-gpu", choices=("auto", "yes", "no"), help="generative models (default auto)"
    )
    train.add_argument(
        "--max-failures",
        type=_non_negative_int,
        help="generative models: how often failed Train workers are restarted from the last "
        "checkpoint before the run ends (default 2)",
    )
    _add_run_settings(train)


def _add_run_settings(train: Any) -> None:
    """``rlgen train``: config keys, rollouts, limits, checkpoints, output, resume."""
    train.add_argument("--config", help="YAML or JSON file of config keys")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config key override; repeatable; wins over --config",
    )
    train.add_argument(
        "--num-env-runners",
        type=_non_negative_int,
        help="parallel rollout actors (0 = sample in the Algorithm process)",
    )
    train.add_argument(
        "--num-envs-per-env-runner",
        type=_positive_int,
        help="vectorized envs inside each rollout actor",
    )
    train.add_argument(
        "--stop-reward",
        type=_finite_float,
        help="stop once episode_return_mean reaches this (default: the env's reward_threshold)",
    )
    train.add_argument("--max-env-steps", type=_positive_int)
    train.add_argument("--time-budget-s", type=_positive_float)
    train.add_argument("--seed", type=int)
    train.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        help="iterations between checkpoints (default 10; one is always written at the end)",
    )
    train.add_argument(
        "--video-frames",
        type=_non_negative_int,
        help="frames of the greedy evaluation episode put into TensorBoard at the end "
        "(default 600; 0 = no video)",
    )
    train.add_argument(
        "--output", help="run directory, or an s3:// / gs:// URI (default: a new one under runs/)"
    )
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="DIR",
        help="continue the run in DIR (or in --output) from its last checkpoint",
    )


def _add_tune(sub: Any) -> None:
    """``rlgen tune EXPERIMENT``."""
    tn = sub.add_parser("tune", help="hyperparameter search with Ray Tune (--list: experiments)")
    tn.add_argument("experiment", nargs="?", help="an experiment name, see --list")
    tn.add_argument("--list", action="store_true", help="list the experiments and exit")
    tn.add_argument("--num-samples", type=int, help="trials (default: the experiment's)")
    tn.add_argument("--search", default="random", help="random (and grid) or optuna")
    tn.add_argument("--output", help="experiment directory (default: a new one under runs/)")
    tn.add_argument("--resume", action="store_true", help="continue the experiment in --output")
    tn.add_argument("--max-env-steps", type=_positive_int, help="RL: env steps per trial")
    tn.add_argument("--time-budget-s", type=_positive_float, help="RL: seconds per trial")
    tn.add_argument("--epochs", type=_positive_int, help="generative: epochs per trial")
    tn.add_argument("--dataset", help="generative: the dataset to search on (default mnist5k)")
    tn.add_argument("--config", help="YAML or JSON file of config keys fixed for every trial")
    tn.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="config key fixed for every trial (no longer searched); repeatable",
    )  # fmt: skip
    tn.add_argument("--seed", type=int, help="every trial's seed (default 0)")
    tn.add_argument("--max-concurrent", type=int, help="trials at once (default: what fits)")


def _add_eval(sub: Any) -> None:
    """``rlgen eval CHECKPOINT``."""
    ev = sub.add_parser("eval", help="evaluate an RL checkpoint (greedy and sampling policy)")
    ev.add_argument("checkpoint", help="checkpoint directory or run directory")
    ev.add_argument("--episodes", type=_positive_int, default=10)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--video", metavar="FILE", help="record one greedy episode to FILE (.gif or .mp4)"
    )
    ev.add_argument(
        "--env-module",
        metavar="MODULE",
        help="for a checkpoint whose env id is MODULE:EnvId: the module to import (only if you "
        "trust it; rlgen never imports a module a checkpoint names)",
    )


def _add_record(sub: Any) -> None:
    """``rlgen record --env ENV --steps N --out DIR``."""
    rec = sub.add_parser(
        "record", help="record what an agent sees (Atari frames) as a dataset for vae/pixelcnn"
    )
    rec.add_argument("--env", help="Atari game (ALE/...); default: the checkpoint's")
    rec.add_argument(
        "--checkpoint", help="act with this RL checkpoint's greedy policy (default: random)"
    )
    rec.add_argument(
        "--epsilon", type=_finite_float, help="with --checkpoint: the chance of a random action"
    )
    rec.add_argument("--steps", type=_positive_int, required=True, help="env steps to record")
    rec.add_argument("--out", required=True, help="new folder for the recording")
    rec.add_argument(
        "--num-env-runners", type=_positive_int, default=2, help="rollout actors, each writes"
    )
    rec.add_argument("--num-envs-per-env-runner", type=_positive_int, default=1)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument(
        "--env-module",
        metavar="MODULE",
        help="for a checkpoint whose env id is MODULE:EnvId: the module to import (only if you "
        "trust it)",
    )


def _add_sample(sub: Any) -> None:
    """``rlgen sample CHECKPOINT``."""
    sample = sub.add_parser("sample", help="image grid from a generative checkpoint")
    sample.add_argument("checkpoint", help="checkpoint directory or run directory")
    sample.add_argument("--n", type=_positive_int, default=64, help="images in the grid")
    sample.add_argument("--out", default="samples.png", help="PNG file to write (never replaced)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--complete-from",
        metavar="DATASET",
        help="PixelCNN: complete the bottom half of this dataset's first --n test images",
    )
    sample.add_argument(
        "--sampler",
        metavar="cached|naive",  # checked where the samplers are (exit 2 otherwise)
        default="cached",
        help="PixelCNN: cached layer activations (fast), or one forward pass per value (the "
        "reference); the same seed draws the same images",
    )


def _add_data(sub: Any) -> None:
    """``rlgen data import``."""
    data = sub.add_parser("data", help="datasets for the generative models")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    imp = data_sub.add_parser("import", help="convert a dataset to rlgen's Parquet format")
    imp.add_argument("kind", choices=("mnist-idx", "cifar10", "folder"))
    imp.add_argument("src", help="folder holding the files to import")
    imp.add_argument("dest", help="new dataset folder (train.parquet, test.parquet)")


def _add_keys(sub: Any) -> None:
    """``rlgen keys [JOB]``."""
    keys = sub.add_parser("keys", help="a job's config keys: defaults, allowed values, meaning")
    keys.add_argument("job", nargs="?", choices=sorted(jobs.names()))
    keys.add_argument(
        "--write", action="store_true",
        help="developers: regenerate the key tables and docs/keys.md from the config classes",
    )  # fmt: skip
