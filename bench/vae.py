"""Benchmark: the VAE as a Ray Train job on this machine, side by side in one run.

1. Ray Train overhead: training images/s of the same VAE epochs through ``TorchTrainer`` with
   one worker (``rlgen.train("vae", ...)``) vs a plain PyTorch loop over the same
   data in memory, same batch size, binarization and torch threads (1, as Ray gives a
   one-CPU worker). Goal: plain / Ray <= 1.05.
2. 1 vs 2 Train workers on this 2-core machine: training images/s.
3. Test NLL on mnist5k (nats, importance-weighted bound, K = 50) after a fixed budget of
   epochs, next to a per-pixel independent Bernoulli model fitted to the same training data
   (its exact NLL) so the number means something. The reference on full binarized MNIST is
   86.76 nats.

Writes bench/results/vae.json.

    .venv/bin/python bench/vae.py [--only overhead,workers,nll] [--epochs 3] [--nll-epochs 30]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchkit import generative_run, open_report, parts_to_run, plain_generative_loop

OUT = Path(__file__).resolve().parent / "results"
PARTS = ("overhead", "workers", "nll")


def log(msg: str) -> None:
    print(f"[bench vae] {msg}", flush=True)


def ray_train_run(epochs: int, num_workers: int, **overrides: Any) -> dict:
    return generative_run("vae", epochs, num_workers, **overrides)


def plain_loop(epochs: int, threads: int = 1) -> dict:
    return plain_generative_loop("vae", epochs, threads)


def independent_bernoulli_nll() -> dict:
    """p(x) = prod_i Bernoulli(x_i; p_i), p_i = the mean pixel intensity / 255 over the
    training images (the expected value of the dynamic binarization), clipped to [1e-3, 1-1e-3];
    exact NLL on the test set binarized as the training job does it."""
    from generative.data.images import binarize, mnist5k, read_split, split_path

    root = mnist5k()
    train, _ = read_split(split_path(root, "train"))
    test, _ = read_split(split_path(root, "test"))
    p = np.clip(train.astype(np.float64).mean(axis=0) / 255.0, 1e-3, 1 - 1e-3)
    x = binarize(torch.as_tensor(test), "dynamic", generator=torch.Generator().manual_seed(0))
    x = x.numpy().astype(np.float64)
    nll = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(len(x), -1).sum(axis=1).mean()
    return {"test_nll_nats": round(float(nll), 2), "test_bits_per_dim": nll / (784 * math.log(2))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput run")
    parser.add_argument("--nll-epochs", type=int, default=30, help="budget of the NLL run")
    args = parser.parse_args()
    parts = parts_to_run(args.only, PARTS, parser)
    report, save = open_report(OUT / "vae.json")

    def steady(result: dict) -> float:
        return float(result["train_images_per_s"])  # the last epoch's rate

    if "overhead" in parts:
        log("1. Ray Train (1 worker) vs a plain PyTorch loop, same threads and data")
        plain = plain_loop(args.epochs)
        log(f"plain: {plain}")
        ray_run = ray_train_run(args.epochs, 1, iw_samples=1)
        log(f"ray train: {ray_run['train_images_per_s']} images/s")
        plain_rate = plain["train_images_per_s_per_epoch"][-1]
        report["overhead"] = {
            "plain_pytorch": plain,
            "ray_train_1_worker_images_per_s": steady(ray_run),
            "ratio_plain_to_ray": round(plain_rate / steady(ray_run), 3),
            "goal_ratio": 1.05,
            "ray_wall_time_s_with_setup": ray_run["wall_time_s_with_setup"],
        }
        save()
    if "workers" in parts:
        log("2. 1 vs 2 Train workers")
        rates = {}
        for n in (1, 2):
            rates[str(n)] = steady(ray_train_run(args.epochs, n, iw_samples=1))
            log(f"{n} worker(s): {rates[str(n)]} images/s")
        report["workers"] = {
            "train_images_per_s": rates,
            "speedup_2_over_1": round(rates["2"] / rates["1"], 3),
        }
        save()
    if "nll" in parts:
        log(f"3. test NLL after {args.nll_epochs} epochs vs independent Bernoulli pixels")
        run = ray_train_run(args.nll_epochs, 1)
        report["nll"] = {
            "epochs": args.nll_epochs,
            "vae": {k: run["metrics"][k] for k in run["metrics"] if k.startswith("test_")},
            "vae_wall_time_s": run["wall_time_s"],
            "independent_bernoulli": independent_bernoulli_nll(),
            "reference_full_binarized_mnist_nats": 86.76,
        }
        log(json.dumps(report["nll"]))
        save()
    log(f"wrote {OUT / 'vae.json'}")


if __name__ == "__main__":
    main()
