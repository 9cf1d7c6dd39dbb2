"""Benchmark: the PixelCNN as a Ray Train job on this machine, side by side in one run.

1. Ray Train overhead: training images/s through ``TorchTrainer`` with one worker vs a plain
   PyTorch loop, same data, model, batch and threads (1). Goal: plain / Ray <= 1.05.
2. Sampling speed on CPU: images/s for 64 samples of 28x28, before (the previous sampler: float32,
   one forward pass of the batch per value) and after (the cached sampler), plain and gated; and
   how the time grows with the image side (8, 16, 28) for the reference sampler (float64, a
   forward pass per value) and the cached one.
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


def _model(side: int, variant: str) -> torch.nn.Module:
    from generative.pixelcnn.config import PixelCNNConfig
    from generative.pixelcnn.model import PixelCNN

    cfg = PixelCNNConfig()
    return PixelCNN((1, side, side), variant=variant, features=cfg.features, layers=cfg.layers,
                    output_features=cfg.output_features)  # fmt: skip


@torch.no_grad()
def previous_sampler(model: torch.nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
    """The sampler before the cache (the "before" figure): float32, one forward pass of the
    whole batch per value, raster order."""
    from generative.pixelcnn.sampling import draw

    model.eval()
    _, h, w = model.shape  # type: ignore[misc]
    x = torch.zeros(n, 1, h, w)
    for r in range(h):
        for c in range(w):
            x[:, 0, r, c] = draw(model(x)[:, 0, r, c], "bernoulli", generator)
    return x


def sampling_speed(
    side: int, n: int, sampler: str, variant: str = "plain", threads: int = 2
) -> dict:
    """Images/s of one sampler: ``previous`` (float32, a forward pass per value), ``naive`` (the
    reference: the same in float64) or ``cached``; an untrained default-size model (the cost
    does not depend on the weights)."""
    from generative.pixelcnn.sampling import sample

    torch.set_num_threads(threads)
    model = _model(side, variant)
    gen = torch.Generator().manual_seed(0)
    t0 = time.monotonic()
    if sampler == "previous":
        previous_sampler(model, n, gen)
    else:
        sample(model, n, generator=gen, progress=False, sampler=sampler)  # type: ignore[arg-type]
    seconds = time.monotonic() - t0
    return {
        "sampler": sampler,
        "variant": variant,
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
        log("2. sampling speed: 64 images of 28x28, before (previous sampler) and after (cached)")
        rows = []
        for variant in ("plain", "gated"):
            before, after = (sampling_speed(28, 64, s, variant) for s in ("previous", "cached"))
            rows.append({"variant": variant, "before": before, "after": after,
                         "speedup": round(before["seconds"] / after["seconds"], 1)})  # fmt: skip
            log(json.dumps(rows[-1]))
        growth = [sampling_speed(s, 16, m) for m in ("naive", "cached") for s in (8, 16, 28)]
        report["sampling"] = {"64_images_28x28": rows, "16_images_by_side": growth}
        log(json.dumps(growth))
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
