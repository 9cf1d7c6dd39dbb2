"""A VAE's encoder handed to the RL side as data (``jobs.export("encoder", ...)``) and rebuilt
there as a torso for stacked frames (``algorithms.common.frame_encoder``): the same numbers as
the VAE's own encoder on every frame, one set of weights for all frames, and a checkpoint or an
export that does not fit refused with one line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import jobs
from algorithms.common.frame_encoder import FrameEncoderTorso
from runkit.errors import UserError
from tests.vae_checkpoints import write_checkpoint as _checkpoint


@pytest.mark.parametrize(("arch", "binarize"), [("mlp", "dynamic"), ("conv", "threshold")])
def test_the_torso_gives_the_vaes_own_mean_for_every_frame(tmp_path, arch, binarize):
    vae = _checkpoint(tmp_path / "vae", arch=arch, binarize=binarize, latent_dim=8, hidden=64)
    export = jobs.export("encoder", str(tmp_path / "vae"))
    assert export["origin"]["model"] == "vae" and export["shape"] == [1, 84, 84]
    torso = FrameEncoderTorso(export, frames=4, frame_shape=(84, 84))
    frames = torch.as_tensor(
        np.random.default_rng(1).integers(0, 256, (3, 4, 84, 84)), dtype=torch.uint8
    )
    with torch.no_grad():
        got = torso.means(frames.float() / 255.0)
        for j in range(4):
            one = frames[:, j : j + 1]
            data = (one >= 128).float() if binarize == "threshold" else one.float() / 255.0
            mean, _ = vae.encode(data)
            torch.testing.assert_close(got[:, j], mean, rtol=0, atol=1e-6)
        assert torso(frames.float() / 255.0).shape == (3, 512)
    # one encoder for every frame of the stack
    names = [n for n, _ in torso.named_parameters() if n.startswith("encoder.")]
    assert len(names) == len(list(vae.encoder.parameters()))


def test_a_checkpoint_that_is_not_a_vae_or_does_not_fit_is_refused(tmp_path):
    _checkpoint(tmp_path / "pixelcnn", model="pixelcnn", shape=(1, 8, 8))
    with pytest.raises(UserError, match="holds a pixelcnn, not a VAE"):
        jobs.export("encoder", str(tmp_path / "pixelcnn"))
    _checkpoint(tmp_path / "digits", shape=(1, 28, 28))
    export = jobs.export("encoder", str(tmp_path / "digits"))
    with pytest.raises(
        ValueError, match="trained on 1x28x28 images; this env's frames are 1x84x84"
    ):
        FrameEncoderTorso(export, frames=4, frame_shape=(84, 84))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError):
        jobs.export("encoder", str(tmp_path / "empty"))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda e: e["layers"].insert(0, ["exec", 1]), "not conv, linear, relu or flatten"),
        (lambda e: e["layers"].__setitem__(1, ["linear", 10**9, 5]), "sizes in 0..65536"),
        (lambda e: e["layers"].__setitem__(1, ["linear", 60000, 60000]), "more than"),
        (lambda e: e["weights"].pop(next(iter(e["weights"]))), "weights name"),
        (lambda e: e["weights"].update({k: v * np.nan for k, v in e["weights"].items()}), "finite"),
        (lambda e: e.update(input="raw"), "input 'raw'"),
        (lambda e: e.update(latent_dim=7), "gives (1, 16), not (1, 14)"),
    ],
)
def test_a_tampered_export_is_refused_before_anything_is_allocated(tmp_path, change, needle):
    _checkpoint(tmp_path / "vae", latent_dim=8, hidden=64)
    export = copy.deepcopy(jobs.export("encoder", str(tmp_path / "vae")))
    change(export)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        FrameEncoderTorso(export, frames=4, frame_shape=(84, 84))
