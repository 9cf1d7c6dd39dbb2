"""The Ray Train harness every generative model runs on (the VAE and the PixelCNN).

A model plugs in as a ``Job`` (see ``generative/vae/train.py``): its config class, how to build
the network, the training loss of a batch, the test metrics, and the image grids. The harness
does the rest: the dataset check, a ``TorchTrainer`` with one worker per ``--num-workers``
(DDP through Ray Train, GPU use automatic), per-worker shards of the Parquet training split
through Ray Data, evaluation / TensorBoard / PNG grids on rank 0, a checkpoint reported every
epoch, ``FailureConfig`` retries that resume from the last checkpoint, ``--resume``, and
result.json.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from runkit.errors import UserError
from runkit.rundir import RESULT_FILE, RUN_FILE, write_json_atomic

MODELS = {
    "vae": "generative.vae.train:VAEJob",
    "pixelcnn": "generative.pixelcnn.train:PixelCNNJob",
}
STATE_FILE = "state.pt"
TRAIN_DIR = "ray_train"
RUN_NAME = "train"
IMAGES_DIR = "images"
KEEP_CHECKPOINTS = 2
PROGRESS_FILE = "progress.log"  # rank 0 appends a line per epoch; the driver echoes it
# Fault injection for the retry test: a worker that starts without a checkpoint raises once
# after finishing this epoch (its checkpoint reported), as a crashed worker would.
FAULT_ENV = "RLGEN_FAIL_AFTER_EPOCH"


class Job(Protocol):
    name: str
    config_class: Any

    def build_model(self, cfg: Any, shape: tuple[int, int, int]) -> torch.nn.Module: ...

    def loss(self, model: torch.nn.Module, x: torch.Tensor, cfg: Any) -> torch.Tensor: ...

    def evaluate(self, model: Any, x_test: torch.Tensor, cfg: Any) -> dict[str, float]: ...

    def grids(self, model: Any, x_test: torch.Tensor, cfg: Any) -> dict[str, torch.Tensor]: ...

    def sample(self, model: Any, n: int, cfg: Any, *, seed: int) -> torch.Tensor: ...


@dataclasses.dataclass
class GenRunSpec:
    """Everything a generative run was asked for; saved as run.json for ``--resume``."""

    model: str
    dataset: str = "mnist5k"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_workers: int = 1
    use_gpu: str = "auto"  # auto | yes | no
    seed: int = 0
    max_failures: int = 2


def load_job(model: str) -> Job:
    module, _, name = MODELS[model].partition(":")
    return getattr(importlib.import_module(module), name)()


def build_config(spec: GenRunSpec) -> Any:
    return load_job(spec.model).config_class.from_overrides(spec.model, spec.overrides)


# --- images ------------------------------------------------------------------------------------


def image_grid(images: torch.Tensor, *, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> one uint8 (rows*H, cols*W, 3) grid with a gray border."""
    x = images.detach().float().clamp(0, 1).cpu()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    cols = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    grid = torch.full((3, rows * (h + pad) + pad, cols * (w + pad) + pad), 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_png(grid_HWC: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid_HWC).save(tmp)
    tmp.replace(path)


# --- the worker loop -----------------------------------------------------------------------


def _unwrap(model: torch.nn.Module) -> Any:
    return model.module if hasattr(model, "module") else model


def train_loop_per_worker(lc: dict[str, Any]) -> None:
    """Runs on every Ray Train worker; ``lc`` is the loop config built by ``train``."""
    import ray.train
    import ray.train.torch

    from generative.data.images import binarize, decode, read_split

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
    generator = torch.Generator().manual_seed(lc["seed"] * 1000 + rank)
    shard = ray.train.get_dataset_shard("train")

    writer, x_test = None, None
    if rank == 0:
        from runkit.tb import ScalarWriter

        writer = ScalarWriter(Path(lc["run_dir"]) / "tensorboard")
        test_images, _ = read_split(lc["test_split"])
        fixed = torch.Generator().manual_seed(0)  # one fixed binarization of the test set
        x_test = binarize(torch.as_tensor(test_images), cfg.binarize, generator=fixed)

    elapsed = float(state["elapsed_s"])
    shard_images: np.ndarray | None = None  # this worker's shard, decoded once, uint8 NCHW
    for epoch in range(int(state["epoch"]), cfg.epochs):
        t0 = time.monotonic()
        if shard_images is None:
            # Ray Data reads and splits the Parquet files once; batches of a few hundred
            # images through its iterator cost more than the VAE's own step, so the shard is
            # kept in memory (MNIST: 47 MB, CIFAR-10: 150 MB over all workers).
            shard_images = np.concatenate(
                [
                    decode(batch["image"], (h, w, c))
                    for batch in shard.iter_batches(batch_size=4096, batch_format="numpy")
                ]
            )
        model.train()
        seen, loss_sum = 0, 0.0
        order = np.random.default_rng([lc["seed"], epoch, rank]).permutation(len(shard_images))
        for start in range(0, len(order), cfg.batch_size):
            x_uint8 = torch.from_numpy(shard_images[order[start : start + cfg.batch_size]])
            x = binarize(x_uint8, cfg.binarize, generator=generator).to(device)
            loss = job.loss(model, x, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(x)
            loss_sum += float(loss.detach()) * len(x)
        train_s = time.monotonic() - t0
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_images_per_s": seen * world / max(train_s, 1e-9),
            "torch_threads": torch.get_num_threads(),
        }
        if rank != 0:
            ray.train.report(metrics)  # every worker reports once per epoch
            continue
        core = _unwrap(model)
        core.eval()
        assert x_test is not None and writer is not None
        metrics.update(job.evaluate(core, x_test.to(device), cfg))
        grids = {name: image_grid(img) for name, img in job.grids(core, x_test, cfg).items()}
        elapsed += time.monotonic() - t0
        metrics["elapsed_s"] = elapsed
        writer.scalars(
            {f"{'test' if k.startswith('test') else 'train'}/{k}": v for k, v in metrics.items()},
            step=epoch + 1,
        )
        for name, grid in grids.items():
            writer.image(f"images/{name}", grid, step=epoch + 1)
            save_png(grid, Path(lc["run_dir"]) / IMAGES_DIR / f"{name}.png")
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
        line = (
            f"[{lc['model']}] epoch {epoch + 1}/{cfg.epochs} | train loss "
            f"{metrics['train_loss']:.2f} | test NLL {metrics.get('test_nll_nats', math.nan):.2f}"
            f" nats ({metrics.get('test_bits_per_dim', math.nan):.4f} bits/dim) | "
            f"{metrics['train_images_per_s']:.0f} images/s | {elapsed:.0f} s"
        )
        with open(Path(lc["run_dir"]) / PROGRESS_FILE, "a") as f:
            f.write(line + "\n")
        if checkpoint is None and os.environ.get(FAULT_ENV) == str(epoch + 1):
            raise RuntimeError(f"{FAULT_ENV}={epoch + 1}: injected worker failure")
    if writer is not None:
        writer.close()


# --- the driver side -----------------------------------------------------------------------


def decide_gpu(use_gpu: str, num_workers: int) -> bool:
    import ray

    if use_gpu == "yes":
        if ray.cluster_resources().get("GPU", 0) < num_workers:
            raise UserError(f"--use-gpu yes: the cluster has fewer than {num_workers} GPUs")
        return True
    if use_gpu == "no":
        return False
    return ray.cluster_resources().get("GPU", 0) >= num_workers


class ProgressEcho:
    """Print the lines rank 0 appends to the run's progress file while ``fit()`` blocks (the
    workers' own output does not reach this terminal)."""

    def __init__(self, path: Path) -> None:
        import threading

        self.path, self._offset, self._stop = path, 0, threading.Event()
        if path.exists():
            self._offset = path.stat().st_size  # a resumed run: only the new lines
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _echo(self) -> None:
        if not self.path.exists():
            return
        with open(self.path) as f:
            f.seek(self._offset)
            text = f.read()
            self._offset = f.tell()
        if text:
            print(text, end="", file=sys.stderr, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._echo()

    def __enter__(self) -> ProgressEcho:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._echo()


def cpus_per_worker(num_workers: int) -> float:
    """Whole CPUs per Train worker where the cluster has one to spare for Ray Data's read
    tasks (each asks for a whole CPU); otherwise a share that leaves one CPU free. With every
    CPU held by a worker the data pipeline could never run and the job would wait forever."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1.0)
    if cpus - num_workers >= 1:
        return 1.0
    return max(0.1, (cpus - 1.0) / num_workers)


def train(spec: GenRunSpec, run_dir: Path, *, resume: bool) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the job; return result.json's dict."""
    import ray
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from algorithms.driver import init_ray
    from generative.data.images import check_dataset, resolve, split_path

    cfg = build_config(spec)
    dataset = resolve(spec.dataset)
    shapes = check_dataset(dataset)
    h, w, c = shapes["train"].shape
    write_json_atomic(run_dir / RUN_FILE, {"kind": "generative", "spec": dataclasses.asdict(spec)})
    init_ray()
    use_gpu = decide_gpu(spec.use_gpu, spec.num_workers)
    loop_config = {
        "model": spec.model,
        "config": cfg.to_dict(),
        "seed": spec.seed,
        "shape": [c, h, w],
        "run_dir": str(run_dir),
        "test_split": split_path(dataset, "test"),
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=spec.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker(spec.num_workers)},
        ),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=str(run_dir / TRAIN_DIR),
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
        ),
        datasets={
            "train": ray.data.read_parquet(split_path(dataset, "train")).select_columns(["image"])
        },
    )
    with ProgressEcho(run_dir / PROGRESS_FILE):
        result = trainer.fit()
    if result.error is not None:
        raise result.error
    metrics = dict(result.metrics or {})
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    out = {
        "model": spec.model,
        "dataset": spec.dataset,
        "epochs": int(metrics.get("epoch", 0)),
        "wall_time_s": round(float(metrics.get("elapsed_s", math.nan)), 3),
        "train_images_per_s": round(float(metrics.get("train_images_per_s", math.nan)), 1),
        "test_nll_nats": metrics.get("test_nll_nats"),
        "test_bits_per_dim": metrics.get("test_bits_per_dim"),
        "checkpoint": checkpoint,
        "samples_png": str(run_dir / IMAGES_DIR / "samples.png"),
        "tensorboard_dir": str(run_dir / "tensorboard"),
        "num_workers": spec.num_workers,
        "use_gpu": use_gpu,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    }
    write_json_atomic(run_dir / RESULT_FILE, out)
    return out


# --- checkpoints for ``rlgen sample`` --------------------------------------------------------


def find_checkpoint(path: Path) -> Path:
    """A checkpoint directory (holding state.pt) or a run directory (its newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path}: no such file or directory")
    if (path / STATE_FILE).is_file():
        return path
    found = sorted(path.glob(f"{TRAIN_DIR}/{RUN_NAME}/checkpoint_*/{STATE_FILE}"))
    if not found:
        raise UserError(f"checkpoint {path}: not a generative checkpoint or run directory")
    return max(found, key=lambda p: p.stat().st_mtime).parent


def load_model(path: Path) -> tuple[Job, Any, torch.nn.Module]:
    ckpt = find_checkpoint(path)
    try:
        state = torch.load(ckpt / STATE_FILE, weights_only=True, map_location="cpu")
        job = load_job(state["model_name"])
        cfg = job.config_class(**state["config"])
        model = job.build_model(cfg, tuple(state["shape"]))
        model.load_state_dict(state["model"])
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad checkpoint
        raise UserError(f"checkpoint {ckpt}: cannot be loaded ({type(exc).__name__})") from None
    model.eval()
    return job, cfg, model


def sample_grid(
    checkpoint: str, *, n: int, out: str, seed: int = 0, complete_from: str | None = None
) -> dict[str, Any]:
    """A grid of ``n`` samples, or with ``complete_from`` (a dataset) the first ``n`` test
    images each next to a completion of its bottom half."""
    from generative.data.images import binarize, read_split, resolve, split_path

    target = Path(out)
    if target.exists():
        raise UserError(f"--out {out}: already exists; choose a new file name")
    if target.suffix.lower() != ".png":
        raise UserError(f"--out {out}: must end in .png")
    job, cfg, model = load_model(Path(checkpoint))
    if complete_from is None:
        images = job.sample(model, n, cfg, seed=seed)
    else:
        if not hasattr(job, "complete"):
            raise UserError(f"--complete-from: the {job.name} model does not complete images")
        originals, _ = read_split(split_path(resolve(complete_from), "test"))
        trained_on = tuple(getattr(model, "shape", ()))
        if tuple(originals.shape[1:]) != trained_on:
            raise UserError(
                f"--complete-from {complete_from}: images are {originals.shape[1:]}, the model "
                f"was trained on {trained_on}"
            )
        x = binarize(
            torch.as_tensor(originals[:n]), cfg.binarize, generator=torch.Generator().manual_seed(0)
        )
        images = job.complete(model, x, cfg, seed=seed)
    save_png(image_grid(images), target)
    return {"checkpoint": str(find_checkpoint(Path(checkpoint))), "n": n, "out": str(target)}
