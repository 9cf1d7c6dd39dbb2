"""The loop every Ray Train worker runs: its shard of the Parquet training split through Ray
Data, DDP steps of the Job's loss, and on rank 0 the test metrics, TensorBoard, PNG grids, a
checkpoint reported every epoch and the report to the caller (``runkit.relay``). Rank 0
broadcasts the caller's stop-or-go, so every worker stops after the same epoch and calls
``ray.train.report`` equally often.

The steps: ``_setup`` (the config, checked again on arrival; seed, model, checkpoint restore,
optimizer), ``_Rank0.open`` (rank 0's writer and test images), ``_train_epoch`` (one pass over
the shard) and ``_Rank0.end_epoch`` (evaluation, TensorBoard, grids, checkpoint, report). The
fault tests' injections sit behind ``generative.faults.fault_hook``."""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from generative.checkpoints import STATE_FILE
from generative.configure import Job, load_job, received_config, unwrap
from generative.faults import NoFaults, fault_hook
from generative.grids import image_grid, save_png
from generative.shards import worker_shard
from runkit import relay
from runkit.results import Report

IMAGES_DIR = "images"
PROGRESS_FILE = "progress.log"  # rank 0 appends a line per epoch


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


def job_and_config(lc: dict[str, Any]) -> tuple[Job, Any]:
    """The Job and its config from the loop config: the driver's checked dict checked again
    here (``received_config``), so a changed one is refused before anything trains."""
    return load_job(lc["model"]), received_config(lc["model"], lc["config"])


@dataclasses.dataclass
class _Worker:
    """What each step of one worker's loop reads, made once by ``_setup``."""

    lc: dict[str, Any]  # the loop config built by the run loop
    job: Job
    cfg: Any
    rank: int
    world: int
    model: torch.nn.Module  # DDP-wrapped, on the device
    optimizer: torch.optim.Optimizer
    device: torch.device
    generator: torch.Generator  # this worker's binarization stream
    first_epoch: int  # epochs done before this attempt (a retry or --resume)
    elapsed_s: float  # rank 0's training and evaluation time, all attempts
    resumed: bool
    streak: int = 0  # non-finite steps in a row (every rank sees the same all-reduced gradients)


def _setup(lc: dict[str, Any]) -> _Worker:
    """Seed, model (with the checkpoint's weights on a retry or resume), DDP, Adam."""
    import ray.train
    import ray.train.torch

    job, cfg = job_and_config(lc)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(lc["seed"] * 1000 + rank)
    model = job.build_model(cfg, tuple(lc["shape"]))
    state: dict[str, Any] | None = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
    model = ray.train.torch.prepare_model(model)  # DDP across workers, moved to the device
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # the state carries the lr of the run that saved
            group["lr"] = cfg.lr  # it; a resume with a new lr (or a PBT exploit) steps with cfg's
    return _Worker(
        lc=lc, job=job, cfg=cfg, rank=rank, world=world, model=model, optimizer=optimizer,
        device=ray.train.torch.get_device(),
        generator=torch.Generator().manual_seed(lc["seed"] * 1000 + rank),
        first_epoch=0 if state is None else int(state["epoch"]),
        elapsed_s=0.0 if state is None else float(state["elapsed_s"]),
        resumed=state is not None,
    )  # fmt: skip


def _step(w: _Worker, loss: torch.Tensor) -> bool:
    """Backpropagate and step; a non-finite gradient skips the step whole (Adam's moments would
    move the weights even with a zeroed gradient). The gradients are all-reduced, so every rank
    skips the same steps. Whether it stepped."""
    w.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in w.model.parameters() if p.grad is not None]
    if not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads, foreach=True))):
        return False
    w.optimizer.step()
    return True


def _train_epoch(
    w: _Worker, images: np.ndarray, epoch: int, t0: float, faults: NoFaults
) -> dict[str, Any] | None:
    """One pass over this worker's shard (``images``: uint8 NCHW; ``epoch`` from 0, begun at
    ``t0``); the epoch's training metrics, or None when ``max_nonfinite_steps`` non-finite steps
    in a row ended it (every rank at the same step)."""
    from generative.data.images import binarize

    cfg, size = w.cfg, w.cfg.batch_size
    w.model.train()
    seen, loss_sum, skipped = 0, 0.0, 0
    order = np.random.default_rng([w.lc["seed"], epoch, w.rank]).permutation(len(images))
    faults.start_epoch(epoch + 1)
    for batch_index, start in enumerate(range(0, len(order), size)):
        faults.before_step(batch_index, w.model)
        x_uint8 = torch.from_numpy(images[order[start : start + size]])
        x = binarize(x_uint8, cfg.binarize, generator=w.generator).to(w.device)
        loss = faults.loss(w.job.loss(w.model, x, cfg))
        if not _step(w, loss):
            skipped, w.streak = skipped + 1, w.streak + 1
            if w.streak >= cfg.max_nonfinite_steps:
                return None
            continue
        w.streak = 0
        seen += len(x)
        loss_sum += float(loss.detach()) * len(x)
    train_s = time.monotonic() - t0
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / seen if seen else math.nan,
        "train_images_per_s": seen * w.world / max(train_s, 1e-9),
        "train_images": seen * w.world,  # every worker's shard has the same count
        "nonfinite_steps_skipped": skipped,
        "torch_threads": torch.get_num_threads(),
    }


@dataclasses.dataclass
class _Rank0:
    """Rank 0's outputs: TensorBoard, the fixed test images, the copy to the run's storage."""

    run_dir: Path
    writer: Any  # runkit.tb.ScalarWriter
    x_test: torch.Tensor
    mirror: Any  # runkit.storage.Mirror, or None for a run stored where it runs

    @classmethod
    def open(cls, w: _Worker) -> _Rank0:
        from generative.data.images import binarize, read_split
        from runkit.storage import Mirror
        from runkit.tb import ScalarWriter

        run_dir = Path(w.lc["run_dir"])
        # This worker's node may not be the driver's: copy the run directory from here.
        mirror = Mirror(w.lc["storage"], run_dir) if w.lc.get("storage") else None
        # From the first epoch this attempt trains: a retry (with or without a checkpoint) or
        # --resume hides what an earlier attempt logged past it.
        writer = ScalarWriter(run_dir / "tensorboard", resumed_at=w.first_epoch)
        test_images, _ = read_split(w.lc["test_split"])
        fixed = torch.Generator().manual_seed(0)  # one fixed binarization of the test set
        x_test = binarize(torch.as_tensor(test_images), w.cfg.binarize, generator=fixed)
        return cls(run_dir=run_dir, writer=writer, x_test=x_test, mirror=mirror)

    def end_epoch(self, w: _Worker, metrics: dict[str, Any], t0: float, faults: NoFaults) -> bool:
        """Evaluate, log, save and report the epoch ``metrics`` describe (begun at ``t0``);
        whether the caller asked to stop."""
        core = unwrap(w.model)
        core.eval()
        metrics.update(w.job.evaluate(core, self.x_test.to(w.device), w.cfg))
        grids = {
            name: image_grid(img) for name, img in w.job.grids(core, self.x_test, w.cfg).items()
        }
        w.elapsed_s += time.monotonic() - t0
        metrics["elapsed_s"] = w.elapsed_s
        self.log(metrics, grids)
        faults.before_report()
        self.save_and_report(w, core, metrics)
        epoch, lc = metrics["epoch"], w.lc
        relay.wait_committed(lc["relay"], epoch)
        with open(self.run_dir / PROGRESS_FILE, "a") as f:
            f.write(progress_text(lc["model"], w.cfg.epochs, metrics) + "\n")
        if self.mirror is not None:
            self.mirror.push_quietly()
        report = Report(
            job=lc["model"], iteration=epoch, step=epoch, metrics=metrics,
            last=epoch >= w.cfg.epochs,
        )  # fmt: skip
        return relay.send(lc["relay"], report, wait_for_answer=lc["wait_for_answers"])

    def log(self, metrics: dict[str, Any], grids: dict[str, np.ndarray]) -> None:
        """TensorBoard's scalars and images of the epoch; the grids as PNG files too."""
        step = metrics["epoch"]
        scalars = {
            f"{'test' if k.startswith('test') else 'train'}/{k}": v for k, v in metrics.items()
        }
        self.writer.scalars(scalars, step=step)
        for name, grid in grids.items():
            self.writer.image(f"images/{name}", grid, step=step)
            save_png(grid, self.run_dir / IMAGES_DIR / f"{name}.png")
        self.writer.flush()

    def save_and_report(self, w: _Worker, core: Any, metrics: dict[str, Any]) -> None:
        """The epoch's checkpoint, reported to Ray Train with its metrics."""
        import ray.train

        state = {
            "model": core.state_dict(),
            "optimizer": w.optimizer.state_dict(),
            "epoch": metrics["epoch"],
            "elapsed_s": w.elapsed_s,
            "config": w.cfg.to_dict(),
            "shape": list(w.lc["shape"]),
            "model_name": w.lc["model"],
        }
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / STATE_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def train_loop_per_worker(lc: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; ``lc`` is the loop config built by the run loop."""
    import ray.train

    from runkit.allocator import keep_freed_memory

    keep_freed_memory()  # the step's large buffers stay on the heap (no page faults per step)
    w = _setup(lc)
    rank0 = _Rank0.open(w) if w.rank == 0 else None
    faults = fault_hook(w.rank)
    channels, height, width = lc["shape"]
    images: np.ndarray | None = None  # this worker's shard, decoded once, uint8 NCHW
    for epoch in range(w.first_epoch, w.cfg.epochs):
        t0 = time.monotonic()
        if images is None:
            images = worker_shard(lc.get("train_split"), w.rank, w.world, (height, width, channels))
        metrics = _train_epoch(w, images, epoch, t0, faults)
        if metrics is None:
            if rank0 is not None:
                relay.fail(
                    lc["relay"],
                    f"{lc['model']}: {w.cfg.max_nonfinite_steps} non-finite steps in a row (NaN/"
                    f"inf loss or gradient; max_nonfinite_steps) in epoch {epoch + 1}; stopped "
                    "without saving",
                )
            break
        if rank0 is None:
            faults.before_report()
            ray.train.report(metrics)  # every worker reports once per epoch
        stop = rank0 is not None and rank0.end_epoch(w, metrics, t0, faults)
        if _agree(stop, w.world, w.device):
            break
    if rank0 is not None:
        rank0.writer.close()
