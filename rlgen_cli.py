"""The ``rlgen`` command: parse, call the Python API (``rlgen``), print.

    rlgen train reinforce --env CartPole-v1
    rlgen tune reinforce_cartpole --num-samples 4
    ray submit cluster/aws.yaml rlgen.py -- train reinforce --env CartPole-v1

Bad input: exit status 2 and one ``rlgen: error: ...`` line on stderr; a failed run: 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import jobs
import rlgen
from rlgen import evaluate, record, sample, train, tune
from rlgen_parser import build_parser
from runkit import cluster, storage
from runkit.errors import RunFailed, UserError
from runkit.results import to_dict

EXIT_USAGE = 2


def cmd_train(args: argparse.Namespace) -> int:
    names = (*jobs.all_args(), "seed", "output")
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
    print(
        f"rlgen: {jobs.kind_of(args.algorithm).summary(result)}; result in {where}\n"
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


def cmd_record(args: argparse.Namespace) -> int:
    result = record(
        args.env, steps=args.steps, out=args.out, checkpoint=args.checkpoint,
        epsilon=args.epsilon, num_env_runners=args.num_env_runners,
        num_envs_per_env_runner=args.num_envs_per_env_runner, seed=args.seed,
        env_module=args.env_module,
    )  # fmt: skip
    print(json.dumps(to_dict(result), indent=2))
    print(
        f"rlgen: {result.frames:,} frames of {result.episodes:,} episodes in {result.out} "
        f"(train {result.train_episodes}, test {result.test_episodes} episodes); "
        f"rlgen train vae --dataset {result.out}",
        file=sys.stderr,
    )
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
        keytable.PATH.write_text(json.dumps(rlgen.key_tables(), indent=1) + "\n")
        keytable.tables.cache_clear()
        (Path(rlgen.__file__).resolve().parent / "docs" / "keys.md").write_text(keytable.markdown())
        return 0
    for job in [args.job] if args.job else keytable.tables():
        print(keytable.text(job))
    return 0


def main(argv: list[str] | None = None) -> int:
    rlgen.quiet()
    try:
        args = build_parser().parse_args(argv)
        handler = {
            "train": cmd_train, "tune": cmd_tune, "eval": cmd_eval, "record": cmd_record,
            "sample": cmd_sample, "data": cmd_data, "keys": cmd_keys,
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
    shutdown, temporary files, log handlers), then the processes of a Ray instance it started
    are ended and the process ends without Python's module teardown, which with torch and
    RLlib loaded takes seconds and writes nothing."""
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
    cluster.end_started_instance()
    os._exit(code)


if __name__ == "__main__":
    cli()
