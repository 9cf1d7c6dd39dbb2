"""Tier 1: files written on a GPU machine are read on one without. torch records each tensor's
device in the file; a tensor saved from a GPU comes back on the GPU unless the reader says
otherwise, and without CUDA that is an error. Here the device is written as ``cuda:0`` (how a
GPU run's files name it) and every reader of weights rlgen has must still give CPU tensors:
a generative checkpoint for ``rlgen sample`` and for a resumed run, and an RL policy's weights
for ``rlgen eval``. (On an H200 machine, runs trained there were evaluated and resumed on a
2-core machine without a GPU: docs/algorithms.md.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.serialization

from generative import checkpoints as gc
from runkit.weights import load_checked
from tests.test_hostile_checkpoints import _state


def _save_as_on_gpu(obj: Any, path: Path, monkeypatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(obj, path)


def test_the_files_really_name_the_gpu(tmp_path, monkeypatch):
    """Without a map location such a file comes back on the GPU, or, on a machine without CUDA
    (CI's), does not load at all: the tests below would prove nothing otherwise."""
    _save_as_on_gpu({"w": torch.ones(2)}, tmp_path / "w.pt", monkeypatch)
    if torch.cuda.is_available():
        assert torch.load(tmp_path / "w.pt", weights_only=True)["w"].device.type == "cuda"
        return
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "w.pt", weights_only=True)


@pytest.mark.parametrize(("model", "shape"), [("vae", (1, 28, 28)), ("pixelcnn", (3, 8, 8))])
def test_a_generative_checkpoint_from_a_gpu_loads_on_cpu(tmp_path, monkeypatch, model, shape):
    ckpt = tmp_path / model
    ckpt.mkdir()
    state = _state(model, shape)
    _save_as_on_gpu(state, ckpt / "state.pt", monkeypatch)
    job, _, net = gc.load_model(ckpt)
    assert job.name == model
    for name, tensor in net.state_dict().items():
        assert tensor.device.type == "cpu" and torch.equal(tensor, state["model"][name]), name
    restored = gc.read_state(ckpt, verb="restored")  # the check --resume makes of it
    assert all(t.device.type == "cpu" for t in restored["model"].values())


def _policy_net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def test_rl_policy_weights_from_a_gpu_load_on_cpu(tmp_path, monkeypatch):
    net = _policy_net()
    _save_as_on_gpu(net.state_dict(), tmp_path / "policy_weights.pt", monkeypatch)
    fresh = _policy_net()  # other random weights, replaced by the file's
    loaded = load_checked(tmp_path / "policy_weights.pt", fresh.state_dict())
    fresh.load_state_dict(loaded)
    for name, tensor in fresh.state_dict().items():
        assert tensor.device.type == "cpu" and torch.equal(tensor, net.state_dict()[name]), name
