"""Benchmark: the PixelCNN as a Ray Train job on this machine, side by side in one run.

1. Ray Train overhead: training images/s through ``TorchTrainer`` with one worker vs a plain
   PyTorch loop, same data, model, batch and threads (1). Goal: plain / Ray <= 1.05.
2. Sampling speed on CPU: images/s for 64 samples of 28x28 (raster order, one forward pass per
   value, the batch at once), and how the time grows with the image side (8, 16, 28).
3. Test NLL on mnist5k after the same budget of epochs for the plain and the gated variant,
   next to the VAE's importance-weighted NLL after 30 epochs (run here too).

Writes bench/results/pixelcnn.json.

    .venv/bin/python bench/pixelcnn.py [--only overhead,sampling,nll] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from benchkit import generative_run, open_report, parts_to_run, plain_generative_loop

OUT = Path(__file__).resolve().parent / "results"
PARTS = ("overhead", "sampling", "nll")


def log(msg: str) -> None:
    print(f"[bench pixelcnn] {msg}", flush=True)


def sampling_speed(side: int, n: int, threads: int = 2) -> dict:
    from generative.pixelcnn.config import PixelCNNConfig
    from generative.pixelcnn.model import PixelCNN
    from generative.pixelcnn.sampling import sample

    torch.set_num_threads(threads)
    cfg = PixelCNNConfig()
    model = PixelCNN(
        (1, side, side),
        features=cfg.features,
        layers=cfg.layers,
        output_features=cfg.output_features,
    )
    t0 = time.monotonic()
    sample(model, n, generator=torch.Generator().manual_seed(0), progress=False)
    seconds = time.monotonic() - t0
    return {
        "side": side,
        "n": n,
        "seconds": round(seconds, 2),
        "images_per_s": round(n / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run")
    args = parser.parse_args()
    parts = parts_to_run(args.only, PARTS, parser)
    report, save = open_report(OUT / "pixelcnn.json")

    if "overhead" in parts:
        log("1. Ray Train (1 worker) vs a plain PyTorch loop")
        plain = plain_generative_loop("pixelcnn", args.epochs)
        ray_run = generative_run("pixelcnn", args.epochs, 1, grid_n=1)
        rate = float(ray_run["train_images_per_s"])
        report["overhead"] = {
            "plain_pytorch": plain,
            "ray_train_1_worker_images_per_s": rate,
            "ratio_plain_to_ray": round(plain["train_images_per_s_per_epoch"][-1] / rate, 3),
            "goal_ratio": 1.05,
        }
        log(json.dumps(report["overhead"]))
        save()
    if "sampling" in parts:
        log("2. sampling speed (untrained default model; the cost does not depend on weights)")
        report["sampling"] = [sampling_speed(28, 64)] + [sampling_speed(s, 16) for s in (8, 16, 28)]
        log(json.dumps(report["sampling"]))
        save()
    if "nll" in parts:
        log(f"3. test NLL after {args.epochs} epochs: plain vs gated, and the VAE (30 epochs)")
        runs = {
            v: generative_run("pixelcnn", args.epochs, 1, variant=v, grid_n=1)
            for v in ("plain", "gated")
        }
        vae = generative_run("vae", 30, 1)
        report["nll"] = {
            "epochs": args.epochs,
            **{
                v: {
                    "test_nll_nats": r["test_nll_nats"],
                    "test_bits_per_dim": r["test_bits_per_dim"],
                    "wall_time_s": r["wall_time_s"],
                }
                for v, r in runs.items()
            },
            "vae_30_epochs": {
                "test_nll_nats": vae["test_nll_nats"],
                "wall_time_s": vae["wall_time_s"],
            },
        }
        log(json.dumps(report["nll"]))
        save()
    log(f"wrote {OUT / 'pixelcnn.json'}")


if __name__ == "__main__":
    main()
