#!/usr/bin/env python3
"""rlgen: deep RL (custom RLlib algorithms) and deep generative models (Ray Train) on Ray.

This one file is the command line and also the script to hand to ``ray submit``:

    ray submit cluster/aws.yaml rlgen.py -- train reinforce --env CartPole-v1

Bad input ends with exit status 2 and one ``rlgen: error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from typing import Any

from algorithms import ALGORITHMS
from generative import MODELS
from runkit.errors import UserError

EXIT_USAGE = 2


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


def _positive_float(text: str) -> float:
    value = float(text)
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
        help="parallel rollout actors (0 = sample in the driver)",
    )
    train.add_argument(
        "--num-envs-per-env-runner",
        type=_positive_int,
        help="vectorized envs inside each rollout actor",
    )
    train.add_argument(
        "--stop-reward",
        type=float,
        help="stop once episode_return_mean reaches this (default: the env's reward_threshold)",
    )
    train.add_argument("--max-env-steps", type=_positive_int)
    train.add_argument("--time-budget-s", type=_positive_float)
    train.add_argument("--seed", type=int)
    train.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=10,
        help="iterations between checkpoints (one is always written at the end)",
    )
    train.add_argument(
        "--video-frames",
        type=_non_negative_int,
        help="frames of the greedy evaluation episode put into TensorBoard at the end "
        "(default 600; 0 = no video)",
    )
    train.add_argument("--output", help="run directory (default: a new one under runs/)")
    train.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="DIR",
        help="continue the run in DIR (or in --output) from its last checkpoint",
    )

    ev = sub.add_parser("eval", help="evaluate an RL checkpoint (greedy and sampling policy)")
    ev.add_argument("checkpoint", help="checkpoint directory or run directory")
    ev.add_argument("--episodes", type=_positive_int, default=10)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument(
        "--video", metavar="FILE", help="record one greedy episode to FILE (.gif or .mp4)"
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

    data = sub.add_parser("data", help="datasets for the generative models")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    imp = data_sub.add_parser("import", help="convert a dataset to rlgen's Parquet format")
    imp.add_argument("kind", choices=("mnist-idx", "cifar10", "folder"))
    imp.add_argument("src", help="folder holding the files to import")
    imp.add_argument("dest", help="new dataset folder (train.parquet, test.parquet)")
    return parser


def cmd_train_generative(args: argparse.Namespace) -> int:
    from generative.harness import GenRunSpec, build_config, train
    from runkit.overrides import merge_overrides
    from runkit.rundir import RUN_FILE, new_run_dir, read_json

    if args.env:
        raise UserError(f"train {args.algorithm}: --env is for RL jobs; use --dataset")
    output = args.resume if isinstance(args.resume, str) else args.output
    resume = bool(args.resume)
    overrides = merge_overrides(args.config, args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if resume:
        run_dir = new_run_dir(output, prefix="", resume=True)
        spec = GenRunSpec(**read_json(run_dir / RUN_FILE)["spec"])
        if spec.model != args.algorithm:
            raise UserError(
                f"--resume {run_dir}: that run trained {spec.model}, not {args.algorithm}"
            )
        spec.overrides.update(overrides)
        build_config(spec)
    else:
        spec = GenRunSpec(model=args.algorithm, overrides=overrides)
        if args.dataset:
            spec.dataset = args.dataset
        if args.num_workers:
            spec.num_workers = args.num_workers
        if args.use_gpu:
            spec.use_gpu = args.use_gpu
        if args.seed is not None:
            spec.seed = args.seed
        build_config(spec)  # fail on bad keys before anything is written
        from generative.data.images import check_dataset, resolve

        check_dataset(resolve(spec.dataset))
        run_dir = new_run_dir(output, prefix=spec.model, resume=False)
    print(f"rlgen: run directory {run_dir}", file=sys.stderr)
    result = train(spec, run_dir, resume=resume)
    print(json.dumps(result, indent=2))
    print(
        f"rlgen: {result['epochs']} epochs, test NLL {result['test_nll_nats']:.2f} nats "
        f"({result['test_bits_per_dim']:.4f} bits/dim); result in {run_dir / 'result.json'}\n"
        f"rlgen: samples in {result['samples_png']}; TensorBoard: tensorboard --logdir "
        f"{result['tensorboard_dir']}",
        file=sys.stderr,
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from generative.harness import sample_grid

    report = sample_grid(
        args.checkpoint, n=args.n, out=args.out, seed=args.seed, complete_from=args.complete_from
    )
    print(json.dumps(report))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from generative.data.images import check_dataset
    from generative.data.importers import import_dataset

    counts = import_dataset(args.kind, args.src, args.dest)
    specs = check_dataset(args.dest)
    print(json.dumps({"dest": args.dest, "images": counts, "shape": specs["train"].shape}))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.algorithm in MODELS:
        return cmd_train_generative(args)
    from algorithms.driver import RLRunSpec, train
    from runkit.overrides import merge_overrides
    from runkit.rundir import RUN_FILE, new_run_dir, read_json

    output = args.resume if isinstance(args.resume, str) else args.output
    resume = bool(args.resume)
    overrides = merge_overrides(args.config, args.set)
    if resume:
        run_dir = new_run_dir(output, prefix="", resume=True)
        spec = RLRunSpec(**read_json(run_dir / RUN_FILE)["spec"])
        if spec.algorithm != args.algorithm:
            raise UserError(
                f"--resume {run_dir}: that run trained {spec.algorithm}, not {args.algorithm}"
            )
        if args.env and args.env != spec.env:
            raise UserError(f"--resume {run_dir}: that run used --env {spec.env}, not {args.env}")
        spec.overrides.update(overrides)
        for field in (
            "stop_reward", "max_env_steps", "time_budget_s", "num_env_runners", "video_frames",
        ):  # fmt: skip
            if getattr(args, field) is not None:  # a resumed run may be given new limits
                setattr(spec, field, getattr(args, field))
    else:
        if not args.env:
            raise UserError("train: --env is required (e.g. --env CartPole-v1)")
        spec = RLRunSpec(
            algorithm=args.algorithm,
            env=args.env,
            overrides=overrides,
            num_env_runners=args.num_env_runners,
            num_envs_per_env_runner=args.num_envs_per_env_runner,
            seed=args.seed,
            stop_reward=args.stop_reward,
            max_env_steps=args.max_env_steps,
            time_budget_s=args.time_budget_s,
            checkpoint_every=args.checkpoint_every,
        )
        if args.video_frames is not None:
            spec.video_frames = args.video_frames
        from algorithms.driver import build_config

        build_config(spec)  # fail on bad input before anything is written
        run_dir = new_run_dir(
            output, prefix=f"{spec.algorithm}-{spec.env.replace('/', '_')}", resume=False
        )
    print(f"rlgen: run directory {run_dir}", file=sys.stderr)
    result = train(spec, run_dir, resume=resume)
    print(json.dumps(result, indent=2))
    print(
        f"rlgen: {'solved' if result['solved'] else 'stopped'} after {result['env_steps']:,} env "
        f"steps in {result['wall_time_s']:.0f} s; result in {run_dir / 'result.json'}\n"
        f"rlgen: TensorBoard logs in {result['tensorboard_dir']}; view them with\n"
        f"    tensorboard --logdir {result['tensorboard_dir']}   (then open http://localhost:6006)",
        file=sys.stderr,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from algorithms.evaluate import evaluate

    report = evaluate(args.checkpoint, episodes=args.episodes, seed=args.seed, video=args.video)
    print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("ray.rllib", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        args = build_parser().parse_args(argv)
        handler = {
            "train": cmd_train, "eval": cmd_eval, "sample": cmd_sample, "data": cmd_data,
        }[args.command]  # fmt: skip
        return handler(args)
    except UserError as exc:
        message = str(exc)
        if not message.startswith("rlgen"):
            message = f"rlgen: error: {message}"
        print(message, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "rlgen: interrupted; the last checkpoint is kept, continue with --resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
