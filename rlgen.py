#!/usr/bin/env python3
"""rlgen: deep RL (custom RLlib algorithms) and deep generative models (Ray Train) on Ray.

This one file is the Python API, the command line over it, and the script to hand to
``ray submit``:

    import rlgen
    result = rlgen.train("reinforce", env="CartPole-v1", max_env_steps=5000)
    search = rlgen.tune("reinforce_cartpole", num_samples=4, max_env_steps=50_000)

    rlgen train reinforce --env CartPole-v1
    rlgen tune reinforce_cartpole --num-samples 4
    ray submit cluster/aws.yaml rlgen.py -- train reinforce --env CartPole-v1

Bad input raises ``rlgen.UserError`` (the CLI: exit status 2 and one ``rlgen: error: ...`` line
on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from algorithms import ALGORITHMS
from generative import MODELS
from runkit import cluster, keytable, storage
from runkit.checks import check_range, check_seed
from runkit.errors import RunFailed, UserError
from runkit.results import (
    EvalResult,
    GenerativeResult,
    OnReport,
    Report,
    RLResult,
    SampleResult,
    to_dict,
)

__all__ = [
    "train", "evaluate", "sample", "tune", "UserError", "RunFailed", "Report",
    "RLResult", "GenerativeResult", "EvalResult", "SampleResult", "to_dict",
]  # fmt: skip

EXIT_USAGE = 2
RL_ONLY = (
    "env", "stop_reward", "max_env_steps", "time_budget_s", "num_env_runners",
    "num_envs_per_env_runner", "checkpoint_every", "video_frames",
)  # fmt: skip
GENERATIVE_ONLY = ("dataset", "epochs", "num_workers", "use_gpu", "max_failures")


def _quiet() -> None:
    """Keep Ray's and RLlib's advice and deprecation notes off the terminal."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # imported for evaluation videos
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("ray.rllib", "ray.tune", "ray.train", "ray._common.deprecation"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --- the Python API ---------------------------------------------------------------------------


def train(
    job: str,
    *,
    env: str | None = None,
    dataset: str | None = None,
    overrides: dict[str, Any] | None = None,
    config: str | Path | None = None,
    stop_reward: float | None = None,
    max_env_steps: int | None = None,
    time_budget_s: float | None = None,
    epochs: int | None = None,
    num_env_runners: int | None = None,
    num_envs_per_env_runner: int | None = None,
    num_workers: int | None = None,
    use_gpu: str | None = None,
    max_failures: int | None = None,
    seed: int | None = None,
    checkpoint_every: int | None = None,
    video_frames: int | None = None,
    output: str | Path | None = None,
    resume: bool | str | Path = False,
    on_report: OnReport | None = None,
) -> RLResult | GenerativeResult:
    """Train an RL agent (``reinforce``, ``a2c``, ``dqn``; needs ``env``) or a generative model
    (``vae``, ``pixelcnn``; ``dataset`` defaults to mnist5k), exactly as ``rlgen train`` does.

    ``overrides`` are config keys (``--set``), over those of the ``config`` file. ``resume``
    continues the run in ``output`` (or, given as a path, in that run directory) from its last
    checkpoint. ``output`` may be an ``s3://`` or ``gs://`` URI (a local working copy is
    mirrored there; see ``runkit.storage``); with ``RAY_ADDRESS`` set, that cluster is joined
    first. ``on_report(report)`` is called after every iteration (RL) or epoch
    (generative); returning True stops the run cleanly. Returns the result written to
    ``result.json``; bad input raises UserError before anything is written.
    """
    from runkit.overrides import merge_overrides

    _quiet()
    given = {
        "env": env, "stop_reward": stop_reward, "max_env_steps": max_env_steps,
        "time_budget_s": time_budget_s, "num_env_runners": num_env_runners,
        "num_envs_per_env_runner": num_envs_per_env_runner,
        "checkpoint_every": checkpoint_every, "video_frames": video_frames,
        "dataset": dataset, "epochs": epochs, "num_workers": num_workers, "use_gpu": use_gpu,
        "max_failures": max_failures,
    }  # fmt: skip
    if job not in ALGORITHMS and job not in MODELS:
        known = ", ".join(sorted(ALGORITHMS) + sorted(MODELS))
        raise UserError(f"train {job}: unknown algorithm or model; one of {known}")
    foreign = GENERATIVE_ONLY if job in ALGORITHMS else RL_ONLY
    wrong = [k for k in foreign if given[k] is not None]
    if wrong:
        what = "RL jobs" if job in MODELS else "generative models"
        raise UserError(f"train {job}: --{wrong[0].replace('_', '-')} is for {what}")
    if isinstance(resume, (str, Path)):
        output, resume = resume, True
    if seed is not None:
        _as_user_error(check_seed, "--seed", seed)
    for name, value in (("--stop-reward", stop_reward), ("--time-budget-s", time_budget_s)):
        if value is not None:
            _as_user_error(check_range, name, value)  # a finite number
    merged = merge_overrides(None if config is None else str(config), None)
    merged.update(overrides or {})
    keytable.precheck(job, merged)  # bad keys and values, before RLlib, torch or Ray load
    cluster.join_if_addressed()

    def run(out: str | Path | None, report: OnReport | None, storage: str | None = None) -> Any:
        if job in MODELS:
            from generative.run_loop import train as train_generative

            return train_generative(
                job, dataset=dataset, overrides=merged, epochs=epochs, num_workers=num_workers,
                use_gpu=use_gpu, max_failures=max_failures, seed=seed, output=out,
                resume=bool(resume), on_report=report, storage=storage,
            )  # fmt: skip
        from algorithms.run_loop import train as train_rl

        limits: dict[str, Any] = {k: given[k] for k in RL_ONLY if k != "env"}
        return train_rl(
            job, env=env, overrides=merged, output=out, resume=bool(resume), on_report=report,
            seed=seed, **limits,
        )  # fmt: skip

    if not storage.is_uri(output):
        return run(output, on_report)
    uri = str(output)

    def run_mirrored(local: Path, sync: Callable[[bool], None]) -> Any:
        def report(r: Report) -> bool | None:
            sync(job in MODELS or r.checkpoint is not None or r.last)
            return None if on_report is None else on_report(r)

        return run(local, report, uri)

    return storage.run_at_uri(uri, resume=bool(resume), run=run_mirrored)


def evaluate(
    checkpoint: str | Path,
    *,
    episodes: int = 10,
    seed: int = 0,
    video: str | Path | None = None,
    env_module: str | None = None,
) -> EvalResult:
    """Greedy and sampling returns of an RL checkpoint (or a run directory's newest) over
    ``episodes`` fresh episodes each; ``video`` records one greedy episode (.gif or .mp4).
    A checkpoint whose env is registered by a module of its own (``package.module:EnvId``) is
    refused unless ``env_module`` names that module: a checkpoint never makes rlgen import
    anything by itself."""
    from algorithms.evaluate import evaluate as evaluate_rl

    _quiet()
    _as_user_error(check_seed, "--seed", seed)
    return _read_from_storage(
        checkpoint,
        lambda ckpt: evaluate_rl(
            ckpt, episodes=episodes, seed=seed, video=None if video is None else str(video),
            env_module=env_module,
        ),
    )  # fmt: skip


def sample(
    checkpoint: str | Path,
    *,
    n: int = 64,
    out: str | Path = "samples.png",
    seed: int = 0,
    complete_from: str | None = None,
    sampler: str = "cached",
) -> SampleResult:
    """A PNG grid of ``n`` samples from a generative checkpoint (or a run directory's newest);
    with ``complete_from`` (a dataset, PixelCNN) test images next to completions. ``sampler``
    (PixelCNN): ``cached`` (default) or ``naive``, the reference; both draw the same images."""
    from generative.sampling import check_grid_size, sample_grid

    _quiet()
    _as_user_error(check_seed, "--seed", seed)
    check_grid_size(n)  # before a checkpoint at a URI is copied here
    return _read_from_storage(
        checkpoint,
        lambda ckpt: sample_grid(
            ckpt, n=n, out=out, seed=seed, complete_from=complete_from, sampler=sampler
        ),
    )


T = TypeVar("T", EvalResult, SampleResult)


def _read_from_storage(checkpoint: str | Path, read: Callable[[str | Path], T]) -> T:
    """``read(checkpoint)``; a checkpoint or run stored at a URI is copied here first and the
    result names the URI."""
    if not storage.is_uri(checkpoint):
        return read(checkpoint)
    uri = str(checkpoint)
    local = storage.fetch(uri)
    result = read(local)
    named = storage.local_to_uri(result.checkpoint, local, uri) or result.checkpoint
    return dataclasses.replace(result, checkpoint=named)


def tune(
    experiment: Any,
    *,
    num_samples: int | None = None,
    search: str = "random",
    output: str | Path | None = None,
    resume: bool = False,
    max_env_steps: int | None = None,
    time_budget_s: float | None = None,
    epochs: int | None = None,
    dataset: str | None = None,
    overrides: dict[str, Any] | None = None,
    config: str | Path | None = None,
    space: dict[str, Any] | None = None,
    seed: int | None = None,
    max_concurrent: int | None = None,
) -> Any:
    """Run a Ray Tune experiment: a name from ``tune_configs`` (``rlgen tune --list``) or a
    ``tune_configs.experiment.Experiment``. Each trial is an ordinary rlgen run under
    ``<output>/trials/``; per-trial limits as in ``train``; ``overrides`` / ``config`` fix keys
    for every trial, ``space`` adds or replaces searched keys (Tune domains). With ``resume``,
    the experiment in ``output`` continues. Returns a ``TuneResult`` (also results.json)."""
    from runkit.overrides import merge_overrides
    from tune_configs.run import tune as run_experiment

    _quiet()
    if seed is not None:
        _as_user_error(check_seed, "--seed", seed)
    if time_budget_s is not None:
        _as_user_error(check_range, "--time-budget-s", time_budget_s)  # a finite number
    cluster.join_if_addressed()
    if storage.is_uri(output):
        raise UserError(f"tune --output {output}: an experiment directory must be local")
    fixed = {
        **(merge_overrides(str(config), []) if config is not None else {}),
        **(overrides or {}),
    }
    return run_experiment(
        experiment, num_samples=num_samples, search=search, output=output, resume=resume,
        max_env_steps=max_env_steps, time_budget_s=time_budget_s, epochs=epochs,
        dataset=dataset, overrides=fixed or None, space=space, seed=seed,
        max_concurrent=max_concurrent,
    )  # fmt: skip


def _as_user_error(check: Callable[..., None], *args: Any) -> None:
    """Run one of ``runkit.checks``' checks; its ValueError becomes the UserError of bad input."""
    try:
        check(*args)
    except ValueError as exc:
        raise UserError(str(exc)) from None


# --- the command line -----------------------------------------------------------------------


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
    parser = _Parser(prog="rlgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train an RL agent or a generative model")
    train.add_argument("algorithm", choices=sorted(ALGORITHMS) + sorted(MODELS))
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

    data = sub.add_parser("data", help="datasets for the generative models")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    imp = data_sub.add_parser("import", help="convert a dataset to rlgen's Parquet format")
    imp.add_argument("kind", choices=("mnist-idx", "cifar10", "folder"))
    imp.add_argument("src", help="folder holding the files to import")
    imp.add_argument("dest", help="new dataset folder (train.parquet, test.parquet)")

    keys = sub.add_parser("keys", help="a job's config keys: defaults, allowed values, meaning")
    keys.add_argument("job", nargs="?", choices=sorted(ALGORITHMS) + sorted(MODELS))
    keys.add_argument(
        "--write", action="store_true",
        help="developers: regenerate the key tables and docs/keys.md from the config classes",
    )  # fmt: skip
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    names = (*RL_ONLY, *GENERATIVE_ONLY, "seed", "output")
    result = train(
        args.algorithm,
        overrides=_overrides(args),
        resume=args.resume,
        **{name: getattr(args, name) for name in names},
    )
    print(json.dumps(to_dict(result), indent=2))
    where = f"{result.run_dir.rstrip('/')}/result.json"
    logs = result.tensorboard_dir
    if storage.is_uri(logs):  # the run's local working copy stays readable by TensorBoard
        logs = str(storage.mirror_dir(result.run_dir) / "tensorboard")
    if isinstance(result, RLResult):
        summary = (
            f"{'solved' if result.solved else 'stopped'} after {result.env_steps:,} env steps "
            f"in {result.wall_time_s:.0f} s"
        )
    else:
        summary = (
            f"{result.epochs} epochs, test NLL {result.test_nll_nats:.2f} nats "
            f"({result.test_bits_per_dim:.4f} bits/dim); samples in {result.samples_png}"
        )
    print(
        f"rlgen: {summary}; result in {where}\n"
        f"rlgen: TensorBoard: tensorboard --logdir {logs}   "
        "(then open http://localhost:6006)",
        file=sys.stderr,
    )
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from runkit.overrides import merge_overrides

    return merge_overrides(args.config, args.set)


def cmd_tune(args: argparse.Namespace) -> int:
    import tune_configs

    if args.list:
        for name, line in tune_configs.describe().items():
            print(f"{name:20s} {line}")
        return 0
    if not args.experiment:
        raise UserError("tune: name an experiment (rlgen tune --list shows them)")
    result = tune(
        args.experiment,
        num_samples=args.num_samples,
        search=args.search,
        output=args.output,
        resume=args.resume,
        max_env_steps=args.max_env_steps,
        time_budget_s=args.time_budget_s,
        epochs=args.epochs,
        dataset=args.dataset,
        overrides=_overrides(args) or None,
        seed=args.seed,
        max_concurrent=args.max_concurrent,
    )
    print(f"rlgen: results in {Path(result.output_dir) / 'results.json'}", file=sys.stderr)
    failed = [t["trial"] for t in result.trials if t["status"] == "error"]
    if failed:
        print(f"rlgen: {len(failed)} trial(s) failed ({', '.join(failed)}); their error.txt "
              f"files are in {result.output_dir}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    result = evaluate(
        args.checkpoint, episodes=args.episodes, seed=args.seed, video=args.video,
        env_module=args.env_module,
    )  # fmt: skip
    print(json.dumps(to_dict(result), indent=2))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    result = sample(
        args.checkpoint,
        n=args.n,
        out=args.out,
        seed=args.seed,
        complete_from=args.complete_from,
        sampler=args.sampler,
    )
    print(json.dumps(to_dict(result)))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from generative.data.images import check_dataset
    from generative.data.importers import import_dataset

    counts = import_dataset(args.kind, args.src, args.dest)
    specs = check_dataset(args.dest)
    print(json.dumps({"dest": args.dest, "images": counts, "shape": specs["train"].shape}))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    import signal

    from runkit import keytable

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `rlgen keys dqn | head` ends quietly

    if args.write:
        keytable.PATH.write_text(json.dumps(key_tables(), indent=1) + "\n")
        keytable.tables.cache_clear()
        (Path(__file__).resolve().parent / "docs" / "keys.md").write_text(keytable.markdown())
        return 0
    for job in [args.job] if args.job else keytable.tables():
        print(keytable.text(job))
    return 0


def key_tables() -> dict[str, Any]:
    """Every job's key table, read from its config class (imports RLlib)."""
    from algorithms.keys import describe as describe_algorithm
    from generative.keys import describe as describe_model

    tables = {name: describe_algorithm(name) for name in ALGORITHMS}
    tables.update({name: describe_model(name) for name in MODELS})
    return tables


def main(argv: list[str] | None = None) -> int:
    _quiet()
    try:
        args = build_parser().parse_args(argv)
        handler = {
            "train": cmd_train, "tune": cmd_tune, "eval": cmd_eval, "sample": cmd_sample,
            "data": cmd_data, "keys": cmd_keys,
        }[args.command]  # fmt: skip
        return handler(args)
    except UserError as exc:
        message = str(exc)
        if not message.startswith("rlgen"):
            message = f"rlgen: error: {message}"
        print(message, file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as exc:
        print(f"rlgen: error: {exc}", file=sys.stderr)
        return RunFailed.exit_code
    except KeyboardInterrupt:
        print(
            "rlgen: interrupted; the last checkpoint is kept, continue with --resume",
            file=sys.stderr,
        )
        return 130


def cli() -> None:
    """The ``rlgen`` command: ``main``, then the exit handlers a normal exit runs (Ray's
    shutdown, temporary files, log handlers), then the process ends without Python's module
    teardown, which with torch and RLlib loaded takes seconds and writes nothing."""
    import atexit

    code = main()
    cluster.leave_before_exit()
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a stream already closed
            pass
    os._exit(code)


if __name__ == "__main__":
    cli()
