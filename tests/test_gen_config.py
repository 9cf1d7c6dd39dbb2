"""A generative run's config is built and checked once, on the driver, and frozen after; the
Train workers get its checked dict and check it again on arrival, refusing a changed one with
the driver's own message."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from generative import run_loop
from generative.config import GenConfig
from generative.configure import GenRunSpec, build_config, load_job
from generative.data.images import write_images
from generative.worker_loop import job_and_config
from runkit.errors import UserError


@pytest.mark.parametrize("model", ["vae", "pixelcnn"])
def test_a_checked_config_cannot_be_changed(model):
    cfg = build_config(GenRunSpec(model=model, overrides={"epochs": 3}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1e-2
    assert cfg.epochs == 3 and cfg.lr == 1e-3


TAMPERED = [
    ("vae", {"latent_dim": 0}),  # out of range
    ("vae", {"laten_dim": 8}),  # an unknown key
    ("vae", {"binarize": "none", "likelihood": "bernoulli"}),  # a check across keys
    ("vae", {"hidden": "512"}),  # a wrong type
    ("pixelcnn", {"layers": 10_000}),
    ("pixelcnn", {"variant": "blind"}),
]


@pytest.mark.parametrize(("model", "change"), TAMPERED)
def test_a_worker_refuses_a_changed_config_with_the_drivers_message(model, change):
    """The driver's check of ``change`` as --set keys and the worker's check of the checked
    dict with ``change`` made to it fail alike, with the same one-line message."""
    with pytest.raises(UserError) as driver:
        build_config(GenRunSpec(model=model, overrides=change))
    checked = build_config(GenRunSpec(model=model)).to_dict()
    with pytest.raises(UserError) as worker:
        job_and_config({"model": model, "config": {**checked, **change}})
    assert str(worker.value) == str(driver.value)
    assert "\n" not in str(worker.value)


@pytest.mark.parametrize("model", ["vae", "pixelcnn"])
def test_a_worker_rebuilds_the_drivers_config_as_it_was(model):
    """The checked dict goes through JSON-like transport unchanged and comes back equal."""
    built = build_config(GenRunSpec(model=model, overrides={"lr": 1, "epochs": 2.0}))
    sent = json.loads(json.dumps(built.to_dict()))
    job, received = job_and_config({"model": model, "config": sent})
    assert received == built and type(received) is type(built)
    assert job.name == load_job(model).name


def _tiny_dataset(root):
    images = np.random.default_rng(0).integers(0, 256, size=(8, 4, 4, 1), dtype=np.uint8)
    for split in ("train", "test"):
        write_images(root / f"{split}.parquet", images)
    return str(root)


class _Relay:
    """Stands in for runkit.relay.Relay (no actor)."""

    def __init__(self, show, on_report):
        self.handle, self.waits, self.failure, self.stopped = None, False, None, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _driver_without_ray(monkeypatch) -> list[dict]:
    """The driver's run path with Ray's parts replaced: no cluster, no actor, and a
    TorchTrainer that only keeps the loop config its workers would get (returned)."""
    import ray.train.torch

    from generative import train_compat
    from runkit import cluster

    loop_configs: list[dict] = []

    class Trainer:
        def __init__(self, loop, *, train_loop_config, **_):
            loop_configs.append(train_loop_config)

        def fit(self):
            metrics = {"epoch": 1, "elapsed_s": 1.0, "train_images_per_s": 1.0}
            return type("Result", (), {"error": None, "metrics": metrics, "checkpoint": None})

    for name, value in (("connect", None), ("cluster_gpus", 0.0), ("cluster_cpus", 2.0)):
        monkeypatch.setattr(cluster, name, lambda *_, value=value: value)
    monkeypatch.setattr(cluster, "alive_nodes", lambda: 1)
    monkeypatch.setattr(run_loop, "Relay", _Relay)
    monkeypatch.setattr(ray.train.torch, "TorchTrainer", Trainer)
    # Also where this process started Ray (an earlier test's instance), the trainer is the fake.
    monkeypatch.setattr(train_compat, "LeanTorchTrainer", Trainer)
    return loop_configs


def test_one_run_builds_and_checks_its_config_once(tmp_path, monkeypatch):
    """``train`` (a fresh run, then a resume of it) builds and checks the config once each, on
    the driver; its workers' loop config holds that config's dict, which they rebuild equal."""
    cls = load_job("vae").config_class
    built: list[GenConfig] = []
    checks: list[GenConfig] = []
    from_overrides, validate = cls.from_overrides.__func__, cls.validate

    def counted_build(klass, *args, **kwargs):
        built.append(from_overrides(klass, *args, **kwargs))
        return built[-1]

    def counted_check(self):
        checks.append(self)
        validate(self)

    monkeypatch.setattr(cls, "from_overrides", classmethod(counted_build))
    monkeypatch.setattr(cls, "validate", counted_check)
    loop_configs = _driver_without_ray(monkeypatch)

    data, out = _tiny_dataset(tmp_path), tmp_path / "run"
    run_loop.train("vae", dataset=data, overrides={"latent_dim": 4}, epochs=1, output=out)
    assert len(built) == len(checks) == 1 and (built[0].latent_dim, built[0].epochs) == (4, 1)
    assert [lc["config"] for lc in loop_configs] == [built[0].to_dict()]
    assert json.loads((out / "result.json").read_text())["epochs"] == 1

    built.clear(), checks.clear(), loop_configs.clear()
    run_loop.train("vae", overrides={"hidden": 16}, epochs=2, output=out, resume=True)
    assert len(built) == len(checks) == 1
    assert (built[0].latent_dim, built[0].hidden, built[0].epochs) == (4, 16, 2)
    [lc] = loop_configs
    assert lc["config"] == built[0].to_dict()
    assert job_and_config(lc)[1] == built[0]
