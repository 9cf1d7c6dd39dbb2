"""The loop every Ray Train worker runs: its shard of the Parquet training split through Ray
Data, DDP steps of the Job's loss, and on rank 0 the test metrics, TensorBoard, PNG grids, a
checkpoint reported every epoch and the report to the caller (``runkit.relay``). Rank 0
broadcasts the caller's stop-or-go, so every worker stops after the same epoch and calls
``ray.train.report`` equally often."""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generative.checkpoints import STATE_FILE
from generative.configure import load_job, unwrap
from generative.grids import image_grid, save_png
from generative.shards import worker_shard
from runkit import relay
from runkit.results import Report

IMAGES_DIR = "images"
PROGRESS_FILE = "progress.log"  # rank 0 appends a line per epoch
# Fault injection for the fault tests: a directory of files named
# ``<kind>-rank<R>-epoch<E>-batch<B>``; at batch B of epoch E the worker of rank R raises
# (``raise``), SIGKILLs its own process (``kill``), makes that step's loss NaN (``nanloss``) or
# its weights NaN (``nanweights``), once: it claims the file first (renames it ``claimed-...``).
FAULT_DIR_ENV = "RLGEN_TRAIN_FAULT_DIR"


def _armed_faults(rank: int, epoch: int) -> dict[int, Path]:
    """Batch index -> fault file, for this worker and epoch (none unless the tests arm some)."""
    root = os.environ.get(FAULT_DIR_ENV)
    if not root:
        return {}
    found = Path(root).glob(f"*-rank{rank}-epoch{epoch}-batch*")
    armed = [p for p in found if not p.name.startswith("claimed-")]
    return {int(p.name.rpartition("batch")[2]): p for p in armed}


def _fire(fault: Path) -> str | None:
    """Raise or kill here; ``nanloss`` (this step's loss is NaN) and ``nanweights`` (this
    worker's weights become NaN) are returned for the loop to apply."""
    try:
        fault.rename(fault.with_name(f"claimed-{fault.name}"))
    except FileNotFoundError:
        return None  # fired before (this is a retry)
    kind = fault.name.split("-")[0]
    if kind in ("nanloss", "nanweights"):
        return kind
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"{fault.name}: injected worker failure")


def progress_text(model: str, epochs: int, metrics: dict[str, Any]) -> str:
    return (
        f"[{model}] epoch {metrics['epoch']}/{epochs} | train loss "
        f"{metrics['train_loss']:.2f} | test NLL {metrics.get('test_nll_nats', math.nan):.2f}"
        f" nats ({metrics.get('test_bits_per_dim', math.nan):.4f} bits/dim) | "
        f"{metrics['train_images_per_s']:.0f} images/s | {metrics['elapsed_s']:.0f} s"
    )


def _agree(stop: bool, world: int, device: torch.device) -> bool:
    """Rank 0's decision on every rank."""
    if world == 1:
        return stop
    import torch.distributed as dist

    flag = torch.tensor([1 if stop else 0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def train_loop_per_worker(lc: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; ``lc`` is the loop config built by the run loop."""
    import ray.train
    import ray.train.torch

    from generative.data.images import binarize, read_split
    from runkit.allocator import keep_freed_memory
    from runkit.storage import Mirror
    from runkit.tb import ScalarWriter

    keep_freed_memory()  # the step's large buffers stay on the heap (no page faults per step)

    job = load_job(lc["model"])
    cfg = job.config_class(**lc["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(lc["seed"] * 1000 + rank)
    c, h, w = lc["shape"]
    model = job.build_model(cfg, (c, h, w))
    state: dict[str, Any] = {"epoch": 0, "elapsed_s": 0.0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
    model = ray.train.torch.prepare_model(model)  # DDP across workers, moved to the device
    device = ray.train.torch.get_device()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if checkpoint is not None:
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # the state carries the lr of the run that saved
            group["lr"] = cfg.lr  # it; a resume with a new lr (or a PBT exploit) steps with cfg's
    generator = torch.Generator().manual_seed(lc["seed"] * 1000 + rank)
    run_dir = Path(lc["run_dir"])

    writer, x_test, mirror = None, None, None
    if rank == 0:
        if lc.get("storage"):  # this worker's node may not be the driver's: copy from here
            mirror = Mirror(lc["storage"], run_dir)
        resumed_at = None if checkpoint is None else int(state["epoch"])  # a retry or --resume
        writer = ScalarWriter(run_dir / "tensorboard", resumed_at=resumed_at)
        test_images, _ = read_split(lc["test_split"])
        fixed = torch.Generator().manual_seed(0)  # one fixed binarization of the test set
        x_test = binarize(torch.as_tensor(test_images), cfg.binarize, generator=fixed)

    elapsed = float(state["elapsed_s"])
    streak = 0  # non-finite steps in a row (every rank sees the same all-reduced gradients)
    aborted = False
    shard_images: np.ndarray | None = None  # this worker's shard, decoded once, uint8 NCHW
    for epoch in range(int(state["epoch"]), cfg.epochs):
        t0 = time.monotonic()
        if shard_images is None:
            shard_images = worker_shard(lc.get("train_split"), rank, world, (h, w, c))
        model.train()
        seen, loss_sum = 0, 0.0
        order = np.random.default_rng([lc["seed"], epoch, rank]).permutation(len(shard_images))
        skipped = 0
        faults = _armed_faults(rank, epoch + 1)
        for batch_index, start in enumerate(range(0, len(order), cfg.batch_size)):
            fault = _fire(faults[batch_index]) if batch_index in faults else None
            if fault == "nanweights":
                with torch.no_grad():
                    for p in model.parameters():
                        p.fill_(math.nan)
            x_uint8 = torch.from_numpy(shard_images[order[start : start + cfg.batch_size]])
            x = binarize(x_uint8, cfg.binarize, generator=generator).to(device)
            loss = job.loss(model, x, cfg)
            if fault == "nanloss":
                loss = loss * math.nan
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, foreach=True))):
                # Skip the step whole: Adam's moments would move the weights even with a
                # zeroed gradient. The gradients are all-reduced, so every rank skips it.
                skipped, streak = skipped + 1, streak + 1
                if streak >= cfg.max_nonfinite_steps:
                    aborted = True
                    break
                continue
            streak = 0
            optimizer.step()
            seen += len(x)
            loss_sum += float(loss.detach()) * len(x)
        if aborted:  # every rank gets here at the same step
            if rank == 0:
                relay.fail(
                    lc["relay"],
                    f"{lc['model']}: {cfg.max_nonfinite_steps} non-finite steps in a row (NaN/inf"
                    f" loss or gradient; max_nonfinite_steps) in epoch {epoch + 1}; stopped "
                    "without saving",
                )
            break
        train_s = time.monotonic() - t0
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / seen if seen else math.nan,
            "train_images_per_s": seen * world / max(train_s, 1e-9),
            "train_images": seen * world,  # every worker's shard has the same count
            "nonfinite_steps_skipped": skipped,
            "torch_threads": torch.get_num_threads(),
        }
        stop = False
        if rank != 0:
            ray.train.report(metrics)  # every worker reports once per epoch
        else:
            core = unwrap(model)
            core.eval()
            assert x_test is not None and writer is not None
            metrics.update(job.evaluate(core, x_test.to(device), cfg))
            grids = {name: image_grid(img) for name, img in job.grids(core, x_test, cfg).items()}
            elapsed += time.monotonic() - t0
            metrics["elapsed_s"] = elapsed
            writer.scalars(
                {
                    f"{'test' if k.startswith('test') else 'train'}/{k}": v
                    for k, v in metrics.items()
                },
                step=epoch + 1,
            )
            for name, grid in grids.items():
                writer.image(f"images/{name}", grid, step=epoch + 1)
                save_png(grid, run_dir / IMAGES_DIR / f"{name}.png")
            writer.flush()
            with tempfile.TemporaryDirectory() as d:
                torch.save(
                    {
                        "model": core.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch + 1,
                        "elapsed_s": elapsed,
                        "config": cfg.to_dict(),
                        "shape": [c, h, w],
                        "model_name": lc["model"],
                    },
                    Path(d) / STATE_FILE,
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
            relay.wait_committed(lc["relay"], epoch + 1)
            with open(run_dir / PROGRESS_FILE, "a") as f:
                f.write(progress_text(lc["model"], cfg.epochs, metrics) + "\n")
            if mirror is not None:
                mirror.push_quietly()
            report = Report(
                job=lc["model"], iteration=epoch + 1, step=epoch + 1, metrics=metrics,
                last=epoch + 1 >= cfg.epochs,
            )  # fmt: skip
            stop = relay.send(lc["relay"], report, wait_for_answer=lc["wait_for_answers"])
        if _agree(stop, world, device):
            break
    if writer is not None:
        writer.close()
