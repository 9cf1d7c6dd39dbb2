"""Generative checkpoints from other people, sized or shaped to exhaust memory or to crash
the loader, and ``rlgen sample --n`` past its bound: each row is refused with one UserError
line naming the checkpoint and what is wrong, before torch.load (archive rows) or before the
network is built (state rows). Adding a case is one row."""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from generative import checkpoints as gc
from generative.config import MAX_GRID
from generative.configure import load_job
from generative.sampling import sample_grid
from tests.test_hostile_data import _idx_bytes, _refused

# --- generative checkpoints -------------------------------------------------------------------


def _state(model: str = "vae", shape: tuple[int, int, int] = (1, 28, 28), **config: Any) -> dict:
    """A state.pt's contents as the training job writes them (untrained weights)."""
    job = load_job(model)
    cfg = job.config_class.from_overrides(model, config)
    net = job.build_model(cfg, shape)
    optimizer = torch.optim.Adam(net.parameters())
    return {
        "model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1,
        "elapsed_s": 1.0, "config": cfg.to_dict(), "shape": list(shape), "model_name": model,
    }  # fmt: skip


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A change to one entry of the state (``config/hidden``: a key of a nested dict)."""

    def change(state: dict) -> None:
        *parents, key = path.split("/")
        target = state
        for parent in parents:
            target = target[parent]
        target[key] = value

    return change


def _drop(path: str) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        *parents, key = path.split("/")
        target = state
        for parent in parents:
            target = target[parent]
        del target[key]

    return change


def _both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        for one in changes:
            one(state)

    return change


def _big_vae(state: dict) -> None:
    """Every key within its own bound, but 3x256x256 8-bit images through hidden=4096 make a
    decoder of 206 billion weights: the model's size is counted before it is built."""
    state["config"].update(hidden=4096, binarize="none", likelihood="categorical")
    state["shape"] = [3, 256, 256]


W = "encoder.1.weight"  # the first layer of the default (MLP) VAE: 512 x 784
STATE_CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("unknown model", _set("model_name", "gan"), "model_name 'gan': one of pixelcnn, vae"),
    ("model name not text", _set("model_name", ["vae"]), "model_name ['vae']"),
    ("huge VAE width", _set("config/hidden", 10**6), "hidden=1000000 is out of range"),
    ("huge latent", _set("config/latent_dim", 2**40), "latent_dim=1099511627776"),
    ("width given as a float", _set("config/hidden", 1e300), "hidden="),
    ("too many weights in all", _big_vae, "weights; at most 500000000"),
    ("unknown config key", _set("config/frobnicate", 1), "config frobnicate: unknown vae"),
    ("config not a mapping", _set("config", [1, 2]), "list, not a mapping"),
    ("learning rate NaN", _set("config/lr", float("nan")), "must be a finite number"),
    ("shape with 2 channels", _set("shape", [2, 28, 28]), "shape [2, 28, 28]: must be"),
    ("shape too tall", _set("shape", [1, 10**6, 28]), "1 <= H, W <= 256"),
    ("shape of two numbers", _set("shape", [1, 28]), "shape [1, 28]"),
    ("shape of text", _set("shape", ["1", 28, 28]), "shape ['1', 28, 28]"),
    ("conv VAE on 30x30", _both(_set("config/arch", "conv"), _set("shape", [1, 30, 30])),
     "does not fit shape [1, 30, 30]"),
    ("extra tensor", _set("model/bogus", torch.zeros(2)), "unexpected bogus"),
    ("missing tensor", _drop(f"model/{W}"), f"missing {W}"),
    ("wrong-shaped tensor", _set(f"model/{W}", torch.zeros(512, 783)), "(512, 783), not"),
    ("weight not a tensor", _set(f"model/{W}", 3), f"weight {W} is not a dense tensor"),
    ("NaN weights", _set(f"model/{W}", torch.full((512, 784), float("nan"))), "NaN"),
    ("negative epoch", _set("epoch", -1), "epoch -1: must be"),
    ("elapsed time infinite", _set("elapsed_s", float("inf")), "elapsed_s inf"),
    ("no config", _drop("config"), "not an rlgen model state"),
    ("optimizer of another model", _set("optimizer/param_groups", [{"params": [0]}]),
     "optimizer is for 1 parameters, the model has 12"),
    ("optimizer moments of other shapes",
     _set("optimizer/state", {0: {"exp_avg": torch.zeros(3, 3)}}), "optimizer 'exp_avg'"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "needle"), STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_bad_checkpoint_state_is_refused(tmp_path, case, change, needle):
    state = _state()
    change(state)
    torch.save(state, tmp_path / "state.pt")
    message = _refused(lambda: gc.load_model(tmp_path), needle, str(tmp_path))
    assert "cannot be loaded" in message
    _refused(lambda: gc.read_state(tmp_path, verb="restored"), "cannot be restored", needle)


def test_good_checkpoints_load(tmp_path):
    for model, shape in (("vae", (1, 28, 28)), ("pixelcnn", (3, 8, 8))):
        (tmp_path / model).mkdir()
        torch.save(_state(model, shape), tmp_path / model / "state.pt")
        job, _, net = gc.load_model(tmp_path / model)
        assert job.name == model and not net.training


def _zip_of(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _bomb(ckpt: Path) -> None:
    """64 MiB of zeros deflated to a few tens of KiB."""
    _zip_of(ckpt / "state.pt", {"state/data.pkl": b"\0" * 2**26}, zipfile.ZIP_DEFLATED)


def _declared_large(ckpt: Path) -> None:
    """A small archive of stored entries whose central directory declares 4 GiB each (over
    the bound of 1 MiB this row sets)."""
    path = ckpt / "state.pt"
    _zip_of(path, {"state/data/0": b"\0" * 100, "state/data/1": b"\0" * 100})
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        raw[at + 24 : at + 28] = struct.pack("<I", 0xFFFFFFF0)  # its uncompressed size
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))


def _cut_short(ckpt: Path) -> None:
    torch.save(_state(), ckpt / "state.pt")
    (ckpt / "state.pt").write_bytes((ckpt / "state.pt").read_bytes()[:5000])


def _saved(ckpt: Path) -> None:
    torch.save(_state(), ckpt / "state.pt")


ARCHIVE_CASES: list[tuple[str, Callable[[Path], object], dict[str, int], str]] = [
    ("zip bomb (deflated zeros)", _bomb, {}, "entry state/data.pkl is compressed"),
    ("entries declare more than the bound", _declared_large, {"MAX_STATE_BYTES": 2**20},
     "unpacks to"),
    ("file over the bound", _saved,
     {"MAX_STATE_BYTES": 2**20}, "bytes; at most 1048576"),
    ("pickle over its bound", _saved,
     {"MAX_PICKLE_BYTES": 100}, "data.pkl is"),
    ("a bare pickle", lambda c: (c / "state.pt").write_bytes(pickle.dumps({})),
     {}, "not a whole torch zip archive"),
    ("cut short", _cut_short, {}, "not a whole torch zip archive"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "write", "bounds", "needle"), ARCHIVE_CASES, ids=[c[0] for c in ARCHIVE_CASES]
)
def test_bad_archive_is_refused_before_torch_load(
    tmp_path, monkeypatch, case, write, bounds, needle
):
    write(tmp_path)
    for name, value in bounds.items():
        monkeypatch.setattr(gc, name, value)

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.load ran on a refused archive")

    monkeypatch.setattr(torch, "load", never)
    _refused(lambda: gc.read_state(tmp_path), needle, str(tmp_path))


# --- sample --n ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, MAX_GRID + 1, 10**9, 2.5, True])
@pytest.mark.parametrize("complete_from", [None, "mnist5k"])
def test_sample_n_is_bounded_before_anything_is_read(tmp_path, n, complete_from):
    # The checkpoint does not exist: the bound on n is checked first.
    call = lambda: sample_grid(  # noqa: E731
        tmp_path / "absent", n=n, out=tmp_path / "s.png", complete_from=complete_from
    )
    _refused(call, f"must be an integer from 1 to {MAX_GRID}", "--n")


# --- through the command line ----------------------------------------------------------------


def test_cli_refuses_hostile_files_in_one_line(tmp_path, rlgen_here):
    huge = tmp_path / "huge"
    huge.mkdir()
    state = _state()
    state["config"]["hidden"] = 10**6
    torch.save(state, huge / "state.pt")
    good = tmp_path / "good"
    good.mkdir()
    torch.save(_state(), good / "state.pt")
    src = tmp_path / "idx"
    src.mkdir()
    for prefix in ("train", "t10k"):
        (src / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_bytes((2**16,) * 4, b""))
        (src / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes((1,), b"\0"))
    rows = [
        (("sample", str(huge), "--out", str(tmp_path / "a.png")), "hidden=1000000"),
        (("sample", str(good), "--n", "100000", "--out", str(tmp_path / "b.png")), "1 to 1024"),
        (("data", "import", "mnist-idx", str(src), str(tmp_path / "ds")), "IDX header dims"),
    ]
    for args, needle in rows:
        proc = rlgen_here(*args, cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert not any((tmp_path / name).exists() for name in ("a.png", "b.png", "ds"))
